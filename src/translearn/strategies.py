"""Freezing policies: which stages train from which epoch, what BatchNorm does, and the parameter groups.

A policy is a pure schedule (``unfreeze_epochs``); :class:`FreezePlan` binds it to one network and
enforces it. Three pitfalls shape the design (see ``seed2017.md``):

* ``requires_grad=False`` alone lets BatchNorm keep updating running stats; ``bn="frozen"`` puts frozen
  stages in eval mode, and :meth:`FreezePlan.apply_modes` is re-applied after every ``model.train()``
  (MMPretrain's ``norm_eval`` idea).
* Frozen parameters never enter the optimizer, so momentum and weight decay cannot move them.
* ``requires_grad`` is set once, before the optimizer and any DDP wrap. Gradual unfreezing therefore
  marks every stage it will ever train as trainable up front, in its own parameter group from step 0,
  and drops its gradients until its epoch (:meth:`FreezePlan.gate_gradients`): torch optimizers skip a
  parameter whose ``grad`` is None, so it gets no update, momentum, weight decay or optimizer state, and
  DDP and LR schedulers never see the optimizer change.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from torch import nn

from translearn.backbones import TransferNet
from translearn.errors import UserError

BN_MODES = ("frozen", "train")
NEVER = math.inf


class FreezePolicy:
    """Base policy: every stage from epoch 0 (that is, finetune)."""

    name: ClassVar[str] = "finetune"

    def __init__(
        self,
        bn: str = "frozen",
        lr_decay: float = 1.0,
        cache_features: str | bool = "auto",
        cache_views: int = 1,
        cache_dtype: str = "float32",
    ):
        if bn not in BN_MODES:
            raise UserError(f"strategy.bn must be one of {', '.join(BN_MODES)}, got '{bn}'")
        if not 0 < lr_decay <= 1:
            raise UserError(f"strategy.lr_decay must be in (0, 1], got {lr_decay}")
        self.bn = bn
        self.lr_decay = float(lr_decay)
        # How the run executes, not what trains: see translearn.features (the frozen-feature cache).
        self.cache_features = str(cache_features).lower()
        self.cache_views = int(cache_views)
        self.cache_dtype = str(cache_dtype)

    def unfreeze_epochs(self, net: TransferNet) -> list[float]:
        """For each stage, the first epoch in which it trains (``NEVER`` = frozen throughout)."""
        return [0.0] * net.num_stages

    def lr_multipliers(self, net: TransferNet) -> list[float]:
        """Discriminative LRs: stage i from the top gets ``lr_decay**i`` (the head is depth 0)."""
        n = net.num_stages
        return [self.lr_decay ** (n - i) for i in range(n)]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "bn": self.bn, "lr_decay": self.lr_decay}


class Finetune(FreezePolicy):
    """Train every layer."""

    name = "finetune"


class Freeze(FreezePolicy):
    """Train only the new head: a linear probe when ``bn="frozen"``, the 2017 recipe when ``bn="train"``."""

    name = "freeze"

    def unfreeze_epochs(self, net: TransferNet) -> list[float]:
        return [NEVER] * net.num_stages


class FirstK(FreezePolicy):
    """Freeze stages 1..k (stage 1 is the stem); ``k=0`` is finetune, ``k=num_stages`` is freeze."""

    name = "first_k"

    def __init__(self, k: int = 1, bn: str = "frozen", lr_decay: float = 1.0, **cache: Any):
        super().__init__(bn=bn, lr_decay=lr_decay, **cache)
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise UserError(f"strategy.k must be an integer >= 0, got {k!r}")
        self.k = k

    def unfreeze_epochs(self, net: TransferNet) -> list[float]:
        n = net.num_stages
        if self.k > n:
            names = ", ".join(f"{i + 1}={s.name}" for i, s in enumerate(net.stages))
            raise UserError(
                f"strategy.k={self.k} is out of range for {net.arch}, which has {n} stages ({names}); "
                f"use 0..{n}"
            )
        return [NEVER if i < self.k else 0.0 for i in range(n)]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "k": self.k}


class Gradual(FreezePolicy):
    """Start as freeze, then unfreeze one stage at a time from the top (ULMFiT-style).

    The top stage unfreezes at epoch ``start``, the next one ``every`` epochs later, and so on; at most
    ``max_stages`` stages ever unfreeze (all when None). ``epochs`` lists the epochs explicitly instead.
    """

    name = "gradual"

    def __init__(
        self,
        start: int = 1,
        every: int = 1,
        max_stages: int | None = None,
        epochs: list[int] | None = None,
        bn: str = "frozen",
        lr_decay: float = 1.0,
        **cache: Any,
    ):
        super().__init__(bn=bn, lr_decay=lr_decay, **cache)
        if start < 0 or every < 1:
            raise UserError(f"strategy.start must be >= 0 and strategy.every >= 1, got {start} and {every}")
        if max_stages is not None and max_stages < 0:
            raise UserError(f"strategy.max_stages must be >= 0 or null, got {max_stages}")
        if epochs is not None:
            epochs = [int(e) for e in epochs]
            if any(e < 0 for e in epochs) or epochs != sorted(epochs):
                raise UserError(f"strategy.epochs must be non-negative and ascending, got {epochs}")
        self.start, self.every, self.max_stages = start, every, max_stages
        self.epochs = epochs

    def unfreeze_epochs(self, net: TransferNet) -> list[float]:
        n = net.num_stages
        schedule = self.epochs if self.epochs is not None else [self.start + d * self.every for d in range(n)]
        if self.max_stages is not None:
            schedule = schedule[: self.max_stages]
        if len(schedule) > n:
            raise UserError(
                f"strategy.epochs lists {len(schedule)} unfreezes but {net.arch} has only {n} stages"
            )
        out = [NEVER] * n
        for depth, epoch in enumerate(schedule):  # depth 0 is the top stage
            out[n - 1 - depth] = float(epoch)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "start": self.start,
            "every": self.every,
            "max_stages": self.max_stages,
            "epochs": self.epochs,
        }


class FreezePlan:
    """A policy bound to one network: sets ``requires_grad`` once and enforces the schedule."""

    def __init__(self, net: TransferNet, policy: FreezePolicy):
        self.net = net
        self.policy = policy
        self.names = [s.name for s in net.stages] + ["head"]
        self.unfreeze = [*policy.unfreeze_epochs(net), 0.0]
        self.lr_mult = [*policy.lr_multipliers(net), 1.0]
        self.params = [params for _, params in net.named_groups()]
        for params, epoch in zip(self.params, self.unfreeze, strict=True):
            for p in params:
                p.requires_grad_(epoch != NEVER)

    @property
    def num_stages(self) -> int:
        return self.net.num_stages

    def frozen(self, index: int, epoch: int) -> bool:
        """Whether group ``index`` (stages, then the head at ``num_stages``) is frozen during ``epoch``."""
        return epoch < self.unfreeze[index]

    def trainable_parameters(self, epoch: int | None = None) -> list[nn.Parameter]:
        """The parameters that train in ``epoch`` (any epoch when None)."""
        return [
            p
            for i, params in enumerate(self.params)
            for p in params
            if (self.unfreeze[i] != NEVER if epoch is None else not self.frozen(i, epoch))
        ]

    def trained_parameters(self, epochs: int) -> list[nn.Parameter]:
        """The parameters that trained in at least one of the first ``epochs`` epochs."""
        return [
            p for i, params in enumerate(self.params) for p in params if self.unfreeze[i] < max(epochs, 1)
        ]

    def apply_modes(self, epoch: int) -> None:
        """Put frozen stages in eval mode (``bn="frozen"``); call after every ``model.train()``."""
        if self.policy.bn != "frozen":
            return
        for i in range(self.num_stages):
            if self.frozen(i, epoch):
                for module in self.net.stage_modules(i):
                    module.eval()

    def gate_gradients(self, epoch: int) -> None:
        """Drop gradients of stages that will unfreeze later, so the optimizer skips them entirely.

        The only thing that holds a waiting stage still: its group's LR follows the schedule like any other.
        """
        for i, params in enumerate(self.params):
            if self.unfreeze[i] != NEVER and self.frozen(i, epoch):
                for p in params:
                    p.grad = None

    def param_groups(
        self, lr: float, weight_decay: float = 0.0, decay_norm_and_bias: bool = False
    ) -> list[dict[str, Any]]:
        """One optimizer group per trainable stage (split by weight decay), created up front.

        Each group's ``lr`` is ``lr`` times the stage's multiplier (``strategy.lr_decay``); norm weights and
        biases (1-D tensors) get no weight decay unless ``decay_norm_and_bias``. ``name`` is the stage's
        (Lightning's LearningRateMonitor logs ``lr-<optimizer>/<name>``).
        """
        groups = []
        for name, params, epoch, mult in zip(
            self.names, self.params, self.unfreeze, self.lr_mult, strict=True
        ):
            if epoch == NEVER:
                continue
            decay = [p for p in params if decay_norm_and_bias or p.ndim > 1]
            no_decay = [p for p in params if not (decay_norm_and_bias or p.ndim > 1)]
            for suffix, members, wd in (("", decay, weight_decay), ("/no_decay", no_decay, 0.0)):
                if members:
                    groups.append(
                        {
                            "params": members,
                            "lr": lr * mult,
                            "weight_decay": wd,
                            "name": name + suffix,
                        }
                    )
        return groups

    def summary(self, epoch: int = 0) -> str:
        marks = [
            "train"
            if not self.frozen(i, epoch)
            else ("frozen" if self.unfreeze[i] == NEVER else f"from epoch {int(self.unfreeze[i])}")
            for i in range(len(self.names))
        ]
        return ", ".join(f"{n} ({m})" for n, m in zip(self.names, marks, strict=True))
