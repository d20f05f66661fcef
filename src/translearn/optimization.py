"""Optimizer and LR schedule from ``model.optimizer`` / ``model.scheduler``.

The schedule is a :class:`torch.optim.lr_scheduler.LambdaLR` with one multiplier per parameter group:
the usual StepLR/cosine factor times a gate that is 0 until the group's stage unfreezes. torch's own
StepLR/CosineAnnealingLR cannot gate single groups, and ``add_param_group`` mid-training breaks both
schedulers and DDP, so the factors are written out here (each matches its torch namesake).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from translearn.errors import UserError

OPTIMIZERS = ("sgd", "adamw")
SCHEDULERS = ("step", "cosine", "none")


def build_optimizer(
    groups: list[dict[str, Any]],
    name: str = "sgd",
    lr: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    nesterov: bool = False,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    **_: Any,
) -> torch.optim.Optimizer:
    """SGD or AdamW over groups that already carry their own ``lr`` and ``weight_decay``."""
    if not groups:
        raise UserError("nothing to train: the strategy freezes every parameter")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    raise UserError(f"model.optimizer.name must be one of {', '.join(OPTIMIZERS)}, got '{name}'")


class GatedFactor:
    """LR multiplier for one group at a given epoch; a plain object so LambdaLR checkpoints its state."""

    def __init__(
        self,
        name: str,
        unfreeze_epoch: float,
        max_epochs: int,
        step_size: int = 10,
        gamma: float = 0.1,
        warmup_epochs: int = 0,
        min_lr_ratio: float = 0.0,
    ):
        self.name, self.unfreeze_epoch, self.max_epochs = name, unfreeze_epoch, max_epochs
        self.step_size, self.gamma = step_size, gamma
        self.warmup_epochs, self.min_lr_ratio = warmup_epochs, min_lr_ratio

    def __call__(self, epoch: int) -> float:
        if epoch < self.unfreeze_epoch:
            return 0.0
        if epoch < self.warmup_epochs:
            factor = (epoch + 1) / (self.warmup_epochs + 1)
        elif self.name == "step":  # = torch.optim.lr_scheduler.StepLR
            factor = self.gamma ** (epoch // self.step_size)
        elif self.name == "cosine":  # = CosineAnnealingLR with T_max = max_epochs
            progress = min(epoch / max(self.max_epochs, 1), 1.0)
            factor = self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
        else:
            factor = 1.0
        return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    max_epochs: int,
    name: str = "step",
    step_size: int = 10,
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    min_lr_ratio: float = 0.0,
    **_: Any,
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch schedule whose every group stays at LR 0 until its ``unfreeze_epoch``."""
    if name not in SCHEDULERS:
        raise UserError(f"model.scheduler.name must be one of {', '.join(SCHEDULERS)}, got '{name}'")
    if step_size < 1:
        raise UserError(f"model.scheduler.step_size must be >= 1, got {step_size}")
    factors = [
        GatedFactor(
            name, g.get("unfreeze_epoch", 0.0), max_epochs, step_size, gamma, warmup_epochs, min_lr_ratio
        )
        for g in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
