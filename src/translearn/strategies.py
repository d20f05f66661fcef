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

    def check_epochs(self, max_epochs: int) -> None:
        """A schedule that cannot happen in ``max_epochs`` is the user's mistake (called at fit start)."""

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


def _stage_names(net: TransferNet) -> str:
    return ", ".join(f"{i + 1}={s.name}" for i, s in enumerate(net.stages))


class Surgical(FreezePolicy):
    """Train only the listed stages and the head (Lee et al., ICLR 2023, "Surgical Fine-Tuning").

    Stages count as in ``first_k``: 1 is the stem, then one per block group. A contiguous range such as
    ``[4, 5]`` (ResNet: layer3-layer4) is the paper's block; early blocks suit input-level shifts
    (corruptions), the last layers label shifts.
    """

    name = "surgical"

    def __init__(
        self, stages: list[int] | None = None, bn: str = "frozen", lr_decay: float = 1.0, **cache: Any
    ):
        super().__init__(bn=bn, lr_decay=lr_decay, **cache)
        if not stages:
            raise UserError(
                "strategy=surgical needs the stages to train: strategy.stages=[i,...] (1 = the stem), "
                "e.g. strategy.stages=[4,5] for ResNet's layer3-layer4"
            )
        if any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in stages):
            raise UserError(f"strategy.stages must be stage numbers >= 1 (1 = the stem), got {list(stages)}")
        self.stages = sorted(set(stages))

    def unfreeze_epochs(self, net: TransferNet) -> list[float]:
        n = net.num_stages
        outside = [s for s in self.stages if s > n]
        if outside:
            raise UserError(
                f"strategy.stages={self.stages}: {net.arch} has {n} stages ({_stage_names(net)}); "
                f"use numbers 1..{n}"
            )
        return [0.0 if i + 1 in self.stages else NEVER for i in range(n)]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "stages": self.stages}


class LpFt(FreezePolicy):
    """A linear probe for ``probe_epochs`` epochs, then every stage from the probe's head (Kumar et al.,
    ICLR 2022): fine-tuning from a trained head distorts the pretrained features less than from a random
    one. The stages wait on the gradient gate, so the optimizer, the schedule and DDP never change; the
    probe epochs read cached features where that is exact (``cache_features=auto``).
    """

    name = "lp_ft"

    def __init__(self, probe_epochs: int = 5, bn: str = "frozen", lr_decay: float = 1.0, **cache: Any):
        super().__init__(bn=bn, lr_decay=lr_decay, **cache)
        if not isinstance(probe_epochs, int) or isinstance(probe_epochs, bool) or probe_epochs < 1:
            raise UserError(f"strategy.probe_epochs must be an integer >= 1, got {probe_epochs!r}")
        self.probe_epochs = probe_epochs

    def unfreeze_epochs(self, net: TransferNet) -> list[float]:
        return [float(self.probe_epochs)] * net.num_stages

    def check_epochs(self, max_epochs: int) -> None:
        if self.probe_epochs >= max_epochs:
            raise UserError(
                f"strategy.probe_epochs={self.probe_epochs} leaves no fine-tuning epoch in "
                f"trainer.max_epochs={max_epochs}; use fewer probe epochs or more epochs"
            )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "probe_epochs": self.probe_epochs}


class AutoRGN(FreezePolicy):
    """Every stage trains; each step, each tensor's LR is scaled by its relative gradient norm
    ‖g‖/‖w‖, normalised to [0, 1] over the network (Lee et al., ICLR 2023, Auto-RGN): the layers whose
    gradients are large relative to their weights, the ones the data asks to change, learn fastest.

    Each tensor gets its own optimizer group so the scale applies to its LR (for every optimizer, Adam
    included); :meth:`scale` sets it after backward and the module restores the scheduled LR after the
    step, so LR schedulers see only their own values.
    """

    name = "auto_rgn"
    per_tensor_groups: ClassVar[bool] = True

    @staticmethod
    def scale(optimizer: Any) -> dict[str, float]:
        """Scale each group's LR by its tensor's RGN / the largest RGN; returns the mean scale per stage.

        Call between backward and ``optimizer.step()``, and :meth:`restore` after it. Groups whose
        gradient was dropped (a frozen or waiting tensor) are left alone. A tensor whose weights are all
        zero (a fresh BatchNorm bias) has no relative scale: it trains at the full rate and does not set
        the maximum.
        """
        rgn: list[float | None] = []
        for group in optimizer.param_groups:
            p = group["params"][0]
            norm = p.detach().norm() if p.grad is not None else None
            rgn.append(
                None if norm is None else float(p.grad.detach().norm() / norm) if norm > 0 else math.inf
            )
        top = max((r for r in rgn if r is not None and r != math.inf), default=0.0)
        per_stage: dict[str, list[float]] = {}
        for group, r in zip(optimizer.param_groups, rgn, strict=True):
            group["scheduled_lr"] = group["lr"]
            if r is None:
                continue
            factor = 1.0 if r == math.inf else r / top if top > 0 else 0.0
            group["lr"] = group["lr"] * factor
            per_stage.setdefault(group["stage"], []).append(factor)
        return {stage: sum(v) / len(v) for stage, v in per_stage.items()}

    @staticmethod
    def restore(optimizer: Any) -> None:
        for group in optimizer.param_groups:
            if "scheduled_lr" in group:
                group["lr"] = group.pop("scheduled_lr")


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
                # auto_rgn scales each tensor's LR: one group per tensor, named <stage>/<index>.
                split = (
                    [[p] for p in members] if getattr(self.policy, "per_tensor_groups", False) else [members]
                )
                for j, part in enumerate(p for p in split if p):
                    label = name + suffix + (f"/{j}" if len(split) > 1 else "")
                    groups.append(
                        {"params": part, "lr": lr * mult, "weight_decay": wd, "name": label, "stage": name}
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
