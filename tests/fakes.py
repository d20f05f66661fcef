"""Tiny real objects for tests: random-image loaders and a Trainer that takes a few real steps."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset


def random_loader(
    n: int = 16, classes: int = 3, side: int = 32, channels: int = 3, batch: int = 8, seed: int = 0
) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, side, side, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)


def tiny_trainer(epochs: int = 1, batches: int = 2, callbacks: list | None = None) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        limit_train_batches=batches,
        limit_val_batches=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks or [],
    )


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, cloned."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class CrashAtEpoch(pl.Callback):
    """Simulates a killed job: raises at the start of ``epoch``, after earlier epochs were checkpointed."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            raise RuntimeError(f"simulated crash at epoch {self.epoch}")
