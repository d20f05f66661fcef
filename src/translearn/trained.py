"""A trained run read back: its checkpoint found and its model loaded, for predict, eval and export.

A run folder is read at its best checkpoint (``metrics.json``'s ``best_checkpoint``, else
``checkpoints/best-*.ckpt``, else ``last.ckpt``); a ``.ckpt`` file is read as it is. Only translearn's own
checkpoints qualify: they describe their inputs (class names, preprocessing, colour mode), so the model is
usable on images without the run's config.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from translearn.errors import UserError
from translearn.log import mute_lightning_noise
from translearn.rundir import RunDir, peek

# What a checkpoint must describe to be used on images: without these it is a bare set of weights.
REQUIRED_HPARAMS = ("class_names", "preprocessing", "num_classes", "backbone")


@dataclass
class Trained:
    """A trained model read back from its checkpoint, with what describes its inputs."""

    module: Any  # translearn.module.TransferModule, in eval mode, on the CPU
    checkpoint: Path
    run_dir: Path | None  # the run folder the checkpoint belongs to, where it has one
    hparams: dict[str, Any]

    @property
    def class_names(self) -> list[str]:
        return list(self.hparams["class_names"])


def checkpoint_of(target: Path) -> tuple[Path, Path | None]:
    """(checkpoint, run folder) of a run folder or a ``.ckpt`` file; a run folder gives its best checkpoint.

    ``best_checkpoint`` in ``metrics.json`` is an absolute path; a run folder copied elsewhere keeps the
    file under ``checkpoints/``, so its name is looked up there too.
    """
    if target.is_file():
        parent = target.parent.parent
        return target, parent if target.parent.name == "checkpoints" and (
            parent / ".hydra"
        ).is_dir() else None
    if not target.is_dir():
        raise UserError(f"{target} does not exist; pass a run directory of translearn.train or a .ckpt file")
    folder = RunDir(target)
    named = (folder.metrics() or {}).get("best_checkpoint")
    if named:
        for candidate in (Path(named), folder.checkpoints / Path(named).name):
            if candidate.is_file():
                return candidate, target
    bests = sorted(folder.checkpoints.glob("best-*.ckpt"), key=lambda p: p.stat().st_mtime_ns)
    if bests:
        return bests[-1], target
    if (folder.checkpoints / "last.ckpt").is_file():
        return folder.checkpoints / "last.ckpt", target
    raise UserError(
        f"{target} holds no checkpoint (checkpoints/best-*.ckpt or last.ckpt); pass the run directory of a "
        "python -m translearn.train run, or a .ckpt file"
    )


def load_trained(target: str | Path) -> Trained:
    """The model of a run folder or checkpoint, in eval mode on the CPU, without fetching pretrained weights.

    Read with ``weights_only=True``, like every checkpoint translearn reads. A checkpoint that does not
    describe its inputs (another tool's, or a bare state_dict) is a one-line error.
    """
    checkpoint, run_dir = checkpoint_of(Path(target).expanduser().absolute())
    state, why = peek(checkpoint)
    if state is None:
        raise UserError(f"{checkpoint} is not a readable checkpoint ({why})")
    hparams = state.get("hyper_parameters")
    if not isinstance(hparams, dict) or any(k not in hparams for k in REQUIRED_HPARAMS):
        raise UserError(
            f"{checkpoint} is not a translearn checkpoint (its hyper_parameters hold no class_names and "
            "preprocessing); pass a run directory or a checkpoint written by python -m translearn.train"
        )
    from translearn.module import TransferModule

    try:
        with quiet_lightning():
            module = TransferModule.load_from_checkpoint(
                checkpoint, map_location="cpu", weights_only=True, weights="none", compile=False,
                channels_last=False,
            )  # fmt: skip
    except RuntimeError as exc:  # a state_dict that does not fit the architecture its hparams name
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{checkpoint}: its weights do not fit a {hparams['backbone']} ({first})") from None
    module.eval()
    return Trained(module, checkpoint, run_dir, dict(hparams))


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's start-up lines ("GPU available: ...") and loader hints are noise in a command's output."""
    loggers = [logging.getLogger(n) for n in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*GPU available but not used.*")
            mute_lightning_noise()
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
