"""Callbacks that Lightning does not ship (the ``callbacks`` config group lists them with Lightning's own)."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from pytorch_lightning.callbacks.progress import ProgressBar as LightningProgressBar


class EpochSeed(pl.Callback):
    """Re-seed every RNG at the start of each training epoch, from (seed, epoch, rank).

    What runs in the main process (dropout, drop-path, anything else drawing from the global RNGs) then
    depends only on the epoch, so a run resumed from ``last.ckpt`` replays exactly the epochs an
    uninterrupted run would have: Lightning restores weights and optimizer state but not the RNG streams.
    Shuffling and augmentation do not rely on it: they are keyed by (seed, epoch, index) in
    ``translearn.data.base`` (``EpochShuffle`` and ``ImageFileDataset``), whatever the worker count.
    """

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = (self.seed * 1_000_003 + trainer.current_epoch * 1_009 + trainer.global_rank) % (2**31 - 1)
        random.seed(value)
        np.random.seed(value)
        torch.manual_seed(value)


class ModelCheckpoint(LightningModelCheckpoint):
    """Lightning's ModelCheckpoint, whose best score and top-k list survive a run folder moved or copied.

    Lightning restores them only when the checkpoint's saved ``dirpath`` is the current one ("The dirpath
    has changed ... won't be reloaded"): a run moved from cluster scratch to home and resumed started with
    no best, so its next epoch, however worse, became the best (``metrics.json``'s ``best_val_acc``, the
    test checkpoint), and the real best file was never pruned. Here the saved paths are re-rooted onto
    the current folder when the files they name are there (``rerooted``). The class keeps Lightning's
    name, hence its state key: checkpoints written with Lightning's class load into this one.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(rerooted(state_dict, self.dirpath))


_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def rerooted(state: dict[str, Any], dirpath: str | None) -> dict[str, Any]:
    """A ModelCheckpoint state saved under another ``dirpath``, its paths moved under ``dirpath``.

    Only when every file the state names lies under its old folder and exists under the new one: a
    checkpoint of some other run, or a folder that lost its files, keeps Lightning's rule (the scores are
    dropped, with its warning) rather than pointing at files that are not this run's.
    """
    old = state.get("dirpath")
    if not old or not dirpath or old == dirpath:
        return state
    new_root, old_root = Path(dirpath), Path(old)

    def moved(path: str) -> Path | None:
        try:
            return new_root / Path(path).relative_to(old_root)
        except ValueError:  # not under the old folder
            return None

    named = [p for p in (*(state.get(k) for k in _PATH_KEYS), *(state.get("best_k_models") or {})) if p]
    targets = {p: moved(p) for p in named}
    if any(t is None or not t.is_file() for t in targets.values()):
        return state
    out = dict(state, dirpath=dirpath)
    for key in _PATH_KEYS:
        if state.get(key):
            out[key] = str(targets[state[key]])
    if "best_k_models" in state:
        out["best_k_models"] = {str(targets[p]): v for p, v in state["best_k_models"].items()}
    return out


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


class Throughput(pl.Callback):
    """Seconds spent in training batches and in validation, and training images per second.

    ``metrics.json`` reports ``train_img_per_s`` (training samples over all ranks ÷ seconds in training
    epochs, validation excluded) and ``val_seconds``, so a user sees where the time goes. The sanity check
    counts in neither.
    """

    def __init__(self) -> None:
        self.train_seconds = 0.0
        self.val_seconds = 0.0
        self.train_samples = 0
        self.fit_seconds_before = 0.0  # wall seconds of the fits before a resume, from the checkpoint
        self._since: float | None = None
        self._val_since: float | None = None
        self._fit_since: float | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._fit_since = time.perf_counter()

    @property
    def train_img_per_s(self) -> float | None:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else None

    def _stop_train_clock(self) -> None:
        if self._since is not None:
            self.train_seconds += time.perf_counter() - self._since
            self._since = None

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._since = time.perf_counter()

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx
    ) -> None:
        target = batch[1] if isinstance(batch, (tuple, list)) and len(batch) > 1 else batch
        self.train_samples += len(target) * trainer.world_size

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._stop_train_clock()
        self._val_since = time.perf_counter()

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._val_since is not None:
            self.val_seconds += time.perf_counter() - self._val_since
            self._val_since = None

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stop_train_clock()  # epochs without validation (check_val_every_n_epoch > 1)

    # Kept in checkpoints, so a resumed run reports the whole run, not only the part after the resume.
    def state_dict(self) -> dict[str, float]:
        fit = self.fit_seconds_before + (time.perf_counter() - self._fit_since if self._fit_since else 0.0)
        return {
            "train_seconds": self.train_seconds,
            "val_seconds": self.val_seconds,
            "samples": self.train_samples,
            "fit_seconds": fit,
        }

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.val_seconds = float(state.get("val_seconds", 0.0))
        self.train_samples = int(state.get("samples", 0))
        self.fit_seconds_before = float(state.get("fit_seconds", 0.0))


class RunIdentity(pl.Callback):
    """Store what defines a run (dataset, model, strategy, seed) in every checkpoint.

    ``ckpt_path=last`` compares it with the command that resumes: a freeze run resumed as finetune, or on
    gray images, would otherwise continue silently as a mixture of the two.
    """

    KEY = "translearn_identity"

    def __init__(self, identity: dict, index: str | None = None) -> None:
        self.identity = identity
        self.index = index  # the dataset index's digest: resuming on changed files is refused

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: dict) -> None:
        from translearn.rundir import INDEX_KEY

        checkpoint[self.KEY] = self.identity
        if self.index:
            checkpoint[INDEX_KEY] = self.index


class ParamCounts(pl.Callback):
    """Log ``params/trainable``, ``params/frozen`` and ``params/total`` as metrics when fitting starts.

    The module gives the counts to ``log_hyperparams``, which the CSV logger writes to ``hparams.yaml``:
    logged as metrics at step 0 they also reach ``csv/metrics.csv`` (one row without an epoch, which the
    report's curves skip) and TensorBoard's and W&B's scalars. Trainable means "trains in some epoch":
    a ``gradual`` stage that waits counts, as in the startup line.
    """

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        plan = getattr(pl_module, "plan", None)
        trainable_params = (
            plan.trainable_parameters()
            if plan is not None
            else [p for p in pl_module.parameters() if p.requires_grad]
        )
        trainable = sum(p.numel() for p in trainable_params)
        total = sum(p.numel() for p in pl_module.parameters())
        counts = {"params/trainable": trainable, "params/frozen": total - trainable, "params/total": total}
        for logger in trainer.loggers:  # each logger's log_metrics writes on rank 0 only
            logger.log_metrics(counts, step=0)


class ProgressBar(pl.Callback):
    """The training progress bar: rich's when ``rich`` is installed, else Lightning's tqdm bar.

    Constructing one gives an instance of a subclass that is also the chosen Lightning bar (the config
    names one class either way). With ``enabled=False`` (``trainer.enable_progress_bar=false``:
    ``debug=tiny``, sweeps) it is a plain callback that does nothing, because Lightning refuses a progress
    bar among the callbacks of a trainer that has its bar turned off. Rich also renders cleanly where the
    output is not a terminal (a SLURM log, ``| tee``): its final state once, not one carriage-return
    update after another.
    """

    def __new__(cls, enabled: bool = True, refresh_rate: int = 1) -> ProgressBar:
        if cls is ProgressBar and enabled:
            from translearn.extras import installed

            cls = _RichBar if installed("rich") else _TqdmBar
        return super().__new__(cls)

    def __init__(self, enabled: bool = True, refresh_rate: int = 1) -> None:
        if isinstance(self, LightningProgressBar):
            super().__init__(refresh_rate=refresh_rate)  # the Lightning bar's, next in the MRO
        else:
            super().__init__()


class _RichBar(ProgressBar, RichProgressBar):
    pass


class _TqdmBar(ProgressBar, TQDMProgressBar):
    pass
