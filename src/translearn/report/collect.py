"""Finding runs: every metrics.json, failed cell and unfinished run folder under the folders given.

Kept apart from the table so notebooks and the sweep tools can list runs without building one. A run
folder's state (failed, interrupted) is asked of :class:`translearn.rundir.RunDir`, the one place that
decides it; only metrics.json is read here, strictly, so a broken file is skipped with its reason.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from translearn.errors import UserError
from translearn.report.recipe import read_recipe
from translearn.rundir import COMPLETE, INTERRUPTED, RunDir

REQUIRED_KEYS = ("dataset", "color", "strategy", "best_val_acc")
# Numbers the table and plots compute with: any other type makes the whole metrics.json unusable.
NUMERIC_KEYS = (
    "best_val_acc", "val_acc", "test_acc", "val_loss", "val_acc_top5", "test_acc_top5", "train_seconds",
    "trainable_params", "frozen_params", "total_params", "seed", "epochs", "k", "train_img_per_s",
    "best_val_acc_macro", "val_acc_macro", "test_acc_macro", "best_epoch", "max_epochs",
)  # fmt: skip
# Run folders hold these; none of them can hold another run, and checkpoints can be large trees.
PRUNED_DIRS = {"checkpoints", "csv", "wandb", "tensorboard", "lightning_logs", "__pycache__"}


@dataclass(frozen=True)
class Incomplete:
    """A cell with no usable result: it failed (``failure.json``) or never finished."""

    path: Path
    status: str  # "failed" or "unfinished"
    reason: str


@dataclass
class Collection:
    """Everything found under the given folders."""

    runs: list[dict[str, Any]]
    incomplete: list[Incomplete] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # unreadable metrics.json and why


def warn_on_stderr(message: str) -> None:
    """The default ``warn``: one ``translearn: warning:`` line on stderr."""
    print(f"translearn: warning: {message}", file=sys.stderr, flush=True)


def read_metrics(path: Path) -> dict[str, Any]:
    """One run's metrics; ValueError says why a file cannot count (half-written, hand-edited, foreign)."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot be read ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"is not valid JSON ({exc.msg.lower()}: line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError as exc:  # undecodable bytes
        raise ValueError(f"is not text ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("is not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)}")
    if data.get("status", COMPLETE) != COMPLETE:
        raise ValueError(f"has status {data['status']!r}, not {COMPLETE!r}")
    for key in NUMERIC_KEYS:
        value = data.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value)
        ):
            raise ValueError(f"has {key}={value!r}, not a number")
    return data


def _scan(root: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """``metrics.json`` files, failed cell folders and unfinished run folders below ``root``."""
    metrics: list[Path] = []
    failed: list[Path] = []
    started: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if "metrics.json" in filenames:
            metrics.append(here / "metrics.json")
            dirnames.clear()
        elif "failure.json" in filenames:
            failed.append(here)
            dirnames.clear()
        else:
            if ".hydra" in dirnames:
                started.append(here)
            dirnames[:] = sorted(d for d in dirnames if d not in PRUNED_DIRS and not d.startswith("."))
    # A folder Hydra started a run in, with no result below it, did not finish (killed, or still running).
    found = [p.parent for p in metrics] + failed
    unfinished = [s for s in started if not any(f == s or s in f.parents for f in found)]
    return metrics, failed, unfinished


def _incomplete(cell: Path, status: str) -> Incomplete:
    folder = RunDir(cell)
    if status == "failed":
        reason = str((folder.failure() or {}).get("reason") or "failed (failure.json gives no reason)")
    elif folder.status == INTERRUPTED:
        reason = "interrupted; resume it with sweep.resume=true (or ckpt_path=last for a single run)"
    else:
        reason = "no metrics.json: still running, or stopped before its first checkpoint"
    return Incomplete(cell, status, reason)


def collect(
    paths: Iterable[str | os.PathLike[str]],
    warn: Callable[[str], None] | None = warn_on_stderr,
    require_runs: bool = True,
) -> Collection:
    """Every run, failed cell and unreadable metrics.json under ``paths`` (each found once).

    A corrupt metrics.json is skipped with a warning so one bad cell cannot hide a sweep's results;
    with ``require_runs``, finding no usable run at all is a UserError that says what was found.
    """
    paths = [Path(p).expanduser() for p in paths]
    if not paths:
        raise UserError("no directory given; pass a run directory, a sweep directory or a folder of sweeps")
    found = Collection(runs=[])
    seen: set[Path] = set()
    for path in paths:
        if not path.exists():
            raise UserError(
                f"{path} does not exist; pass a run directory (hydra.run.dir), a sweep directory "
                "(hydra.sweep.dir) or a folder of sweeps"
            )
        if path.is_file():
            if path.name != "metrics.json":
                raise UserError(f"{path} is a file; pass a run or sweep directory, or a metrics.json")
            metrics, failed, unfinished = [path], [], []
        else:
            metrics, failed, unfinished = _scan(path)
        for file in metrics:
            if (key := file.resolve()) in seen:
                continue
            seen.add(key)
            try:
                run = read_metrics(file)
            except ValueError as exc:
                found.skipped.append((file, str(exc)))
                continue
            # recipe: what must match before runs are averaged (see translearn.report.recipe)
            found.runs.append({**run, "recipe": read_recipe(file.parent, run), "metrics_path": str(file)})
        for cell, status in [(c, "failed") for c in failed] + [(c, "unfinished") for c in unfinished]:
            if (key := cell.resolve()) in seen:
                continue
            seen.add(key)
            found.incomplete.append(_incomplete(cell, status))
    if require_runs and not found.runs:
        raise UserError(_nothing_usable(found, paths))
    # Warned only once the report goes ahead, so a failing command still says exactly one line.
    for file, why in found.skipped if warn else ():
        warn(f"skipped {file}: it {why}; rerun that cell, or move the file away")
    return found


def _nothing_usable(found: Collection, paths: list[Path]) -> str:
    where = ", ".join(str(p) for p in paths)
    if found.skipped:
        file, why = found.skipped[0]
        return f"no readable metrics.json under {where}: {len(found.skipped)} skipped ({file} {why})"
    if found.incomplete:
        first = found.incomplete[0]
        return (
            f"no complete runs under {where}: {len(found.incomplete)} cell(s) failed or did not finish "
            f"(e.g. {first.path.name}: {first.reason})"
        )
    return (
        f"no runs under {where}: no metrics.json found; pass a run directory (hydra.run.dir), a sweep "
        "directory (hydra.sweep.dir) or a folder of sweeps"
    )


def run_folder(run: dict[str, Any]) -> Path | None:
    """Where a run's logs live: beside its metrics.json (runs move), else the run_dir it recorded."""
    for key in ("metrics_path", "run_dir"):
        if run.get(key):
            path = Path(run[key])
            path = path.parent if key == "metrics_path" else path
            if path.is_dir():
                return path
    return None


def load_runs(*paths: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete runs under ``paths`` as metrics dicts (with ``metrics_path``), for notebooks."""
    return collect(paths).runs
