"""One run folder, read and written in one place: its status, result, failure record and checkpoints.

A run folder is a single run's ``hydra.run.dir`` or one cell of a sweep. It is always in exactly one state:

* ``complete``: ``metrics.json`` with ``"status": "complete"`` (written last, atomically);
* ``failed``: ``failure.json`` says why (the cell recorded it itself, or its launcher did);
* ``interrupted``: a checkpoint to resume from, and no result;
* ``pending``: nothing yet.

``translearn.train`` (single runs and in-process cells), the launcher, the sweep summary, ``sweep.resume``
and ``translearn.report`` all ask this type, so they cannot disagree about when a run is done or resumable.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from translearn.errors import RunRefused
from translearn.storage import write_atomic, write_json

COMPLETE, FAILED, INTERRUPTED, PENDING = "complete", "failed", "interrupted", "pending"
INDEX_KEY = "translearn_index"  # a checkpoint's dataset-index digest (callbacks.RunIdentity)


def peek(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(checkpoint, None), or (None, why it cannot be read); loaded once per file version.

    Resuming asks several things of one checkpoint (is it readable, its identity, its W&B run id, its
    epoch for the CSV history): memory-mapped, weights_only, and cached on (path, size, mtime).
    """
    try:
        stat = os.stat(path)
    except OSError as exc:
        return None, str(exc)
    return _peek(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _peek(path: str, _size: int, _mtime: int) -> tuple[dict[str, Any] | None, str | None]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # truncated zip, bytes that are not a checkpoint, unsafe pickle, I/O error
        text = str(exc).strip()
        return None, text.splitlines()[0][:200] if text else type(exc).__name__
    if not isinstance(state, dict) or "state_dict" not in state:
        return None, "it holds no state_dict"
    return state, None


def readable_checkpoint(path: Path) -> str | None:
    """None if ``path`` loads as a checkpoint; else why not."""
    return peek(path)[1]


@dataclass(frozen=True)
class RunDir:
    """A run folder and everything translearn keeps in it."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    # --- reading --------------------------------------------------------------------------------

    def metrics(self) -> dict[str, Any] | None:
        """The result, if the run completed."""
        try:
            data = json.loads((self.path / "metrics.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("status") == COMPLETE else None

    def failure(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path / "failure.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else {"reason": "failure.json is not a JSON object"}

    def checkpoint_files(self) -> list[Path]:
        """Every finished checkpoint, newest first (temporary ``.partial`` files excluded)."""
        if not self.checkpoints.is_dir():
            return []
        files = [p for p in self.checkpoints.glob("*.ckpt") if p.is_file()]
        return sorted(files, key=lambda p: (p.stat().st_mtime_ns, p.name == "last.ckpt"), reverse=True)

    @property
    def status(self) -> str:
        if self.metrics() is not None:
            return COMPLETE
        if self.failure() is not None:
            return FAILED
        if self.checkpoint_files():
            return INTERRUPTED
        return PENDING

    def resume_checkpoint(self) -> Path:
        """The checkpoint ``ckpt_path=last`` resumes from: ``last.ckpt``, or the newest good one if it is bad.

        A corrupt ``last.ckpt`` (a kill during a save by an older version, a full disk, a copy cut short)
        falls back to the newest readable checkpoint with a warning; with none, a one-line error says what
        to do. The bad file is left where it is: translearn never deletes what it cannot read.
        """
        last = self.checkpoints / "last.ckpt"
        files = self.checkpoint_files()
        if not files:
            raise RunRefused(
                f"ckpt_path=last but {self.checkpoints} holds no checkpoint to resume from; "
                "drop ckpt_path to start this run afresh"
            )
        if last.is_file():
            why = readable_checkpoint(last)
            if why is None:
                return last
            for candidate in files:
                if candidate != last and readable_checkpoint(candidate) is None:
                    warnings.warn(
                        f"translearn: {last} is unreadable ({why}); resuming from {candidate.name}, "
                        "the newest good checkpoint",
                        stacklevel=2,
                    )
                    return candidate
            raise RunRefused(
                f"{last} is unreadable ({why}) and no other checkpoint is good; move it away and rerun "
                "without ckpt_path to start afresh"
            )
        for candidate in files:
            if readable_checkpoint(candidate) is None:
                return candidate
        raise RunRefused(
            f"no readable checkpoint in {self.checkpoints}; rerun without ckpt_path to start afresh"
        )

    def identity(self, checkpoint: Path) -> dict[str, Any] | None:
        """What the run stored about its own setup (``callbacks.RunIdentity``); None for older checkpoints."""
        found = (peek(checkpoint)[0] or {}).get("translearn_identity")
        return found if isinstance(found, dict) else None

    def check_same_run(self, checkpoint: Path, identity: dict[str, Any]) -> None:
        """Resuming with other settings than the run's own is a one-line error that names them."""
        _check_same_run(self, checkpoint, identity)

    @staticmethod
    def stored_index(checkpoint: Path) -> str | None:
        """The dataset index's digest the checkpoint was trained on; None for one saved before it was kept."""
        found = (peek(checkpoint)[0] or {}).get(INDEX_KEY)
        return found if isinstance(found, str) and found else None

    def check_same_data(self, checkpoint: Path, index: str | None) -> None:
        """Resuming on other data than the run trained on is a one-line error (``callbacks.RunIdentity``
        stores the dataset index's digest): a file added to a class moved others between train and val,
        and ``best_val_acc`` became a maximum over two validation sets, with training images in the second.
        """
        stored = self.stored_index(checkpoint)
        if not stored or not index or stored == index:
            return  # a checkpoint from before the digest was stored, or data without an index
        raise RunRefused(
            f"the data changed since {checkpoint} was saved (dataset index {stored} then, {index} now: files "
            "added, removed or changed, so the splits differ); restore the files to resume, or start a new "
            "run in another hydra.run.dir"
        )

    @staticmethod
    def epochs_trained(checkpoint: Path) -> int | None:
        """How many training epochs the checkpoint has finished; None if it cannot be read.

        The fit loop's ``processed`` count, which is what Lightning compares with ``max_epochs``; a
        checkpoint without loop state gives its ``epoch``, a lower bound (mid-epoch saves count one less).
        """
        state = peek(checkpoint)[0]
        if state is None:
            return None
        try:
            return int(state["loops"]["fit_loop"]["epoch_progress"]["current"]["processed"])
        except (KeyError, TypeError, ValueError):
            epoch = state.get("epoch")
            return int(epoch) if isinstance(epoch, int) else None

    def check_epochs_left(self, checkpoint: Path, max_epochs: int | None) -> None:
        """A resume with fewer epochs than the checkpoint has trained is a one-line error.

        Lightning would train nothing and the run be marked complete with ``epochs`` above ``max_epochs``
        and no validation result of the resumed fit (``val_acc`` null).
        """
        done = self.epochs_trained(checkpoint)
        if max_epochs is None or max_epochs < 0 or done is None or done <= max_epochs:
            return
        raise RunRefused(
            f"{checkpoint} has already trained {done} epochs, more than trainer.max_epochs={max_epochs}; "
            f"resume with trainer.max_epochs={done} or more (a larger value trains on), or start a new run "
            "in another hydra.run.dir"
        )

    def wandb_run_id(self, checkpoint: Path | None) -> str | None:
        if checkpoint is None:
            return None
        return (peek(checkpoint)[0] or {}).get("wandb_run_id")

    @staticmethod
    def best_validation(checkpoint: Path | None) -> dict[str, Any]:
        """The epoch, balanced accuracy and val confusion matrix stored in the best checkpoint.

        TransferModule keeps its last validation epoch's matrix in its state, so each checkpoint holds
        its own epoch's; empty for no checkpoint, or one written before the module kept them.
        """
        state = peek(checkpoint)[0] if checkpoint else None
        if state is None or "val_confusion_at_epoch" not in state["state_dict"]:
            return {}
        weights = state["state_dict"]
        macro = float(weights["val_acc_macro_at_epoch"])
        return {
            "epoch": state.get("epoch"),
            "acc_macro": None if macro != macro else macro,  # NaN: never validated
            "confusion": weights["val_confusion_at_epoch"].tolist(),
        }

    # --- writing --------------------------------------------------------------------------------

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json(self.path / "metrics.json", metrics)

    def write_confusion(self, split: str, matrix: list[list[int]], class_names: list[str]) -> Path:
        """``confusion_<split>.csv``: rows are the true class, columns the predicted one, by name."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["true", *class_names])
        writer.writerows(
            [name, *(int(n) for n in row)] for name, row in zip(class_names, matrix, strict=True)
        )
        path = self.path / f"confusion_{split}.csv"
        write_atomic(path, out.getvalue())
        return path

    def record_failure(self, reason: str, returncode: int | None = None) -> None:
        write_json(
            self.path / "failure.json",
            {
                "status": FAILED,
                "reason": reason,
                "returncode": returncode,
                "time": time.time(),
                "host": socket.gethostname(),
                "pid": os.getpid(),
            },
        )

    def clear_failure(self) -> None:
        """A rerun replaces the failure record (kept as ``failure.previous.json``)."""
        marker = self.path / "failure.json"
        if marker.exists():
            os.replace(marker, self.path / "failure.previous.json")


# Keys that may change between a run and its resume: where things are, how fast they load, how long to train.
RESUME_FREE_KEYS = (
    "dataset.root",
    "dataset.num_workers",
    "dataset.cache",
    "dataset.cache_dir",
    "dataset.index_dir",
    "model.compile",
    "model.channels_last",
)


class RunLock:
    """One live run per run folder: a second run started into the same hydra.run.dir (a requeued or
    duplicated job) trained into it at the same time, and both exited 0 over one mixed folder.

    An ``flock`` on ``.translearn.lock`` in the folder: the kernel drops it when its process dies, so a
    killed run leaves no lock to take over. The file says who holds it, for the refusal's words.
    """

    NAME = ".translearn.lock"

    def __init__(self, folder: Path):
        self.path = Path(folder) / self.NAME
        self._file: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; the run-folder checks still refuse a finished run
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunRefused(
                f"another run ({owner}) is training in {self.path.parent}; wait for it, or choose another "
                "hydra.run.dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        when = time.strftime("%Y-%m-%d %H:%M:%S")
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, started {when}")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            self.path.unlink(missing_ok=True)
            self._file.close()  # closing drops the flock
            self._file = None


def run_identity(cfg: DictConfig) -> dict[str, Any]:
    """The settings that define a run's result, flattened (``dataset.color``: ``rgb``, ...)."""
    flat: dict[str, Any] = {"seed": cfg.get("seed")}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}", v)
        elif prefix not in RESUME_FREE_KEYS:
            flat[prefix] = value

    for group in ("dataset", "model", "strategy"):
        walk(group, OmegaConf.to_container(cfg[group], resolve=True))
    return flat


def _check_same_run(folder: RunDir, checkpoint: Path, identity: dict[str, Any]) -> None:
    stored = folder.identity(checkpoint)
    if stored is None or stored == identity:
        return
    changed = [k for k in sorted(set(stored) | set(identity)) if stored.get(k) != identity.get(k)]
    shown = "; ".join(f"{k}={stored.get(k)} in the run, {identity.get(k)} now" for k in changed[:3])
    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
    raise RunRefused(
        f"{checkpoint} belongs to a different run ({shown}{more}); resume with the run's own settings, "
        "or start a new run in another hydra.run.dir"
    )


class CsvHistory:
    """A resumed run's earlier CSV rows: Lightning's CSVLogger deletes ``metrics.csv`` when it starts again.

    Read before the resumed fit, put back in front of its rows after it (atomically), so the file keeps
    every epoch once: the earlier run's up to the resume epoch, the resumed run's from there. Rows without
    an epoch (the LR monitor's, the parameter counts at step 0) go by step: the earlier run's from before
    the checkpoint's step are kept, and a row the resumed fit logs again identically is written once.
    """

    def __init__(self, file: Path, rows: list[dict[str, str]], epoch: int, logger: Any = None):
        self.file, self.rows, self.epoch, self.logger = file, rows, epoch, logger

    @classmethod
    def before_resume(cls, loggers: list[Any], resumed_from: Path | None) -> CsvHistory | None:
        from pytorch_lightning.loggers import CSVLogger

        csv_logger = next((lg for lg in loggers if isinstance(lg, CSVLogger)), None)
        if csv_logger is None or resumed_from is None:
            return None
        file = Path(csv_logger.log_dir) / "metrics.csv"
        if not file.is_file():
            return None
        state = peek(resumed_from)[0] or {}
        epoch, step = int(state.get("epoch", 0)) + 1, int(state.get("global_step", 0))
        with open(file, newline="") as f:
            rows = [r for r in _read_rows(f) if _before(r, epoch, step)]
        return cls(file, rows, epoch, csv_logger)

    def merge(self) -> None:
        after: list[dict[str, str]] = []
        kept = [_filled(r) for r in self.rows if _epoch(r) is None]
        if self.file.is_file():
            with open(self.file, newline="") as f:
                after = [
                    r
                    for r in _read_rows(f)
                    if (_epoch(r) is None and _filled(r) not in kept)
                    or (_epoch(r) is not None and _epoch(r) >= self.epoch)
                ]
        # Lightning's writer appends later rows (the test metrics) under its own sorted list of the keys
        # it has seen, and rewrites the file when a key is new: the file's header must be that same list,
        # and the list must know the earlier run's keys (a resumed fit that trained nothing logged none).
        experiment = getattr(self.logger, "experiment", None)
        seen = list(getattr(experiment, "metrics_keys", []))
        keys = sorted({k for row in [*self.rows, *after] for k in row} | set(seen))
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        writer.writerows([*self.rows, *after])
        write_atomic(self.file, text.getvalue())
        if experiment is not None and hasattr(experiment, "metrics_keys"):
            experiment.metrics_keys = keys


def _read_rows(f: Any) -> list[dict[str, str]]:
    """``csv.DictReader``'s rows without the values past the header, which it files under the key None.

    Why: a run interrupted while Lightning's CSV writer rewrote its file under a longer header left rows
    longer than the header, and the None key beside the column names failed the resumed run's merge ("'<'
    not supported between instances of 'NoneType' and 'str'"): the cell could not be resumed.
    """
    return [{k: v for k, v in row.items() if k is not None} for row in csv.DictReader(f)]


def _epoch(row: dict[str, str]) -> int | None:
    value = row.get("epoch", "")
    return int(float(value)) if value not in ("", None) else None


def _before(row: dict[str, str], epoch: int, step: int) -> bool:
    """Logged before the resume point: an earlier epoch's row, or an epoch-less row of an earlier step."""
    if _epoch(row) is not None:
        return _epoch(row) < epoch
    value = row.get("step", "")
    return value not in ("", None) and int(float(value)) < step


def _filled(row: dict[str, str]) -> dict[str, str]:
    """A row's logged values only: files written under different headers leave different blanks."""
    return {k: v for k, v in row.items() if v not in ("", None)}
