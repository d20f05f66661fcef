"""Callbacks that Lightning does not ship (the ``callbacks`` config group lists them with Lightning's own)."""

from __future__ import annotations

import random

import numpy as np
import pytorch_lightning as pl
import torch


class EpochSeed(pl.Callback):
    """Re-seed every RNG at the start of each training epoch, from (seed, epoch, rank).

    Shuffling, augmentation, dropout and worker seeds then depend only on the epoch, so a run resumed
    from ``last.ckpt`` replays exactly the epochs an uninterrupted run would have: Lightning restores
    weights and optimizer state but not the RNG streams.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch * 1_009 + trainer.global_rank) % (2**31 - 1)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)
