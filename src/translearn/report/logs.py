"""What a run logged besides metrics.json: its validation curve and its confusion matrices.

- The curve comes from Lightning's CSVLogger file ``<run dir>/csv/metrics.csv``. Its rows are sparse:
  one per ``log`` call, and only validation rows carry ``val/acc``; the lr monitor and the test logs
  write rows of their own (a test row's ``epoch`` is one past the last training epoch), so only rows with
  the metric are read. Where a run logged to TensorBoard only, ``<run dir>/tensorboard/`` is read instead
  (``val/acc`` by step, mapped to epochs through the ``epoch`` scalar Lightning logs beside it).
- A confusion matrix is ``confusion_val.csv`` / ``confusion_test.csv``: header ``true,<class>,...``,
  one row per true class, one column per predicted class, counts.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translearn.errors import UserError
from translearn.report.collect import run_folder

if TYPE_CHECKING:
    from translearn.report.table import Table

CSV_LOG = Path("csv") / "metrics.csv"
TB_DIR = "tensorboard"
VAL_ACC = "val/acc"


@dataclass(frozen=True)
class Curve:
    """Validation accuracy by epoch (0-based) of one run."""

    epochs: list[int]
    values: list[float]
    source: Path

    @property
    def best_epoch(self) -> int:
        """The first epoch with the highest value, as ModelCheckpoint(mode=max) keeps it."""
        return self.epochs[max(range(len(self.values)), key=lambda i: (self.values[i], -i))]


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _from_csv(path: Path, column: str) -> Curve | None:
    by_epoch: dict[int, float] = {}
    try:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                value, epoch = _float(row.get(column)), _float(row.get("epoch"))
                if value is not None and epoch is not None:
                    by_epoch[int(epoch)] = value  # the last row of an epoch wins (a resumed epoch)
    except (OSError, csv.Error, UnicodeDecodeError):
        return None
    if not by_epoch:
        return None
    epochs = sorted(by_epoch)
    return Curve(epochs, [by_epoch[e] for e in epochs], path)


def _from_tensorboard(folder: Path, tag: str) -> Curve | None:
    if not any(folder.rglob("events.out.tfevents.*")):
        return None
    try:  # only runs logged to TensorBoard alone pay for this import
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return None
    by_epoch: dict[int, float] = {}
    for events in sorted({p.parent for p in folder.rglob("events.out.tfevents.*")}):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        scalars = acc.Tags().get("scalars", [])
        if tag not in scalars:
            continue
        epoch_at = {e.step: int(e.value) for e in acc.Scalars("epoch")} if "epoch" in scalars else {}
        for event in acc.Scalars(tag):
            epoch = epoch_at.get(event.step)
            if epoch is not None and math.isfinite(event.value):
                by_epoch[epoch] = float(event.value)
    if not by_epoch:
        return None
    epochs = sorted(by_epoch)
    return Curve(epochs, [by_epoch[e] for e in epochs], folder)


def read_curve(folder: Path, column: str = VAL_ACC) -> Curve | None:
    """The run's validation curve from csv/metrics.csv, else TensorBoard; None when it logged neither."""
    curve = _from_csv(folder / CSV_LOG, column)
    if curve is None and (folder / TB_DIR).is_dir():
        curve = _from_tensorboard(folder / TB_DIR, column)
    return curve


def best_epoch(run: dict[str, Any], folder: Path | None) -> tuple[int, int] | None:
    """(best epoch, epochs trained), 0-based best: from metrics.json, else from the logged curve."""
    best, epochs = run.get("best_epoch"), run.get("epochs")
    if isinstance(best, int) and isinstance(epochs, int):
        return best, epochs
    curve = read_curve(folder) if folder is not None else None
    if curve is None:
        return None
    return curve.best_epoch, (epochs if isinstance(epochs, int) else curve.epochs[-1] + 1)


def cell_curves(table: Table) -> tuple[dict[tuple[int, str], list[Curve]], list[dict[str, Any]]]:
    """Every cell's curves, keyed by (row index, column), and the runs that logged none."""
    curves: dict[tuple[int, str], list[Curve]] = {}
    missing: list[dict[str, Any]] = []
    for i, row in enumerate(table.rows):
        for col, runs in row.members.items():
            for run in runs:
                folder = run_folder(run)
                curve = read_curve(folder) if folder is not None else None
                if curve is None:
                    missing.append(run)
                else:
                    curves.setdefault((i, col), []).append(curve)
    return curves, missing


@dataclass(frozen=True)
class Confusion:
    """Counts with rows = true class and columns = predicted class."""

    classes: list[str]
    counts: list[list[int]]
    source: Path

    @property
    def accuracy(self) -> float | None:
        total = sum(map(sum, self.counts))
        return sum(self.counts[i][i] for i in range(len(self.classes))) / total if total else None


def confusion_path(folder: Path, split: str = "val") -> Path:
    return folder / f"confusion_{split}.csv"


def read_confusion(folder: Path, split: str = "val") -> Confusion:
    """``<folder>/confusion_<split>.csv``; a UserError says what is missing or malformed."""
    path = confusion_path(folder, split)
    if not folder.is_dir():
        raise UserError(
            f"{folder} is not a run directory; pass the folder of one run (it holds metrics.json)"
        )
    if not path.is_file():
        others = sorted(p.name for p in folder.glob("confusion_*.csv"))
        hint = (
            f" (it has {', '.join(others)})" if others else " (runs trained before it was recorded lack it)"
        )
        raise UserError(f"{folder} has no {path.name}{hint}; pick a run that has one")
    try:
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if r]
        header, body = rows[0], rows[1:]
        classes = header[1:]
        counts = [[int(float(v)) for v in r[1:]] for r in body]
    except (OSError, IndexError, ValueError, csv.Error, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a confusion matrix CSV ({exc}); rerun the run's evaluation") from None
    if not classes or len(counts) != len(classes) or any(len(r) != len(classes) for r in counts):
        raise UserError(
            f"{path} is not a square confusion matrix ({len(counts)} rows, {len(classes)} classes); "
            "rerun the run's evaluation"
        )
    return Confusion(classes, counts, path)
