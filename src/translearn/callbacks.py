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


class WandbRunId(pl.Callback):
    """Store the W&B run id in every checkpoint, so a resumed run continues the same W&B run.

    ``translearn.train`` reads it back from ``last.ckpt`` before it creates the logger (``id=``,
    ``resume="allow"``). Without a W&B logger this does nothing.
    """

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict) -> None:
        from pytorch_lightning.loggers import WandbLogger

        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and logger.version:
                checkpoint["wandb_run_id"] = logger.version
