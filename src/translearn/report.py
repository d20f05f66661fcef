"""The results table and plots of sweeps: ``python -m translearn.report DIR [DIR ...]``.

Each DIR may be a run directory, a sweep directory, a folder of sweeps, or a ``metrics.json`` itself.
Every ``metrics.json`` below them becomes one run; cells that left ``failure.json`` (or never finished)
are listed apart with their reason. The study table has one row per dataset × colour (plus the
backbone, weights, gray mode, crop size or epochs where those vary), one column per strategy
(``first_k`` with its ``k``, ``bn=train`` where BatchNorm adapted), and best validation accuracy in
the cells: mean ± std over seeds with their count. The 2017 study's numbers sit beside the columns
they are comparable to.

Written to ``--out`` (default ``<first DIR>/report/``): ``results.csv`` (one row per run, every
metrics.json key), ``table.md``, ``accuracy.png`` and ``accuracy_vs_params.png``. Only those files
(and a small manifest that marks the folder as the report's) are ever written; nothing else there is
touched.

The same steps are importable, e.g. in notebooks/results.ipynb::

    runs = load_runs("outputs/sweeps/2024-...")      # list of metrics dicts
    table = summarize(runs)                            # Table; table.to_markdown(), table.records()
    fig = accuracy_figure(table)                       # a matplotlib Figure
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from translearn.errors import UserError, exit_with
from translearn.rundir import COMPLETE, INTERRUPTED, RunDir
from translearn.storage import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ACC = "best_val_acc"  # the study's metric: best validation accuracy over the epochs
REQUIRED_KEYS = ("dataset", "color", "strategy", "best_val_acc")
# Numbers the table and plots compute with: any other type makes the whole metrics.json unusable.
NUMERIC_KEYS = (
    "best_val_acc", "val_acc", "test_acc", "val_loss", "val_acc_top5", "test_acc_top5", "train_seconds",
    "trainable_params", "frozen_params", "total_params", "seed", "epochs", "k", "train_img_per_s",
)  # fmt: skip
# What the report writes into its folder; nothing else there is ever replaced or deleted.
CSV_FILE, TABLE_FILE = "results.csv", "table.md"
ACC_PLOT, PARAMS_PLOT = "accuracy.png", "accuracy_vs_params.png"
REPORT_FILES = (CSV_FILE, TABLE_FILE, ACC_PLOT, PARAMS_PLOT)
MANIFEST = ".translearn-report.json"  # marks a folder as the report's own, so rewriting it is expected
# Run folders hold these; none of them can hold another run, and checkpoints can be large trees.
PRUNED_DIRS = {"checkpoints", "csv", "wandb", "tensorboard", "lightning_logs", "__pycache__"}
# Row dimensions besides dataset and colour; each becomes a column of the table only where it varies.
ROW_EXTRAS = ("backbone", "weights", "gray_mode", "image_size", "max_epochs")
STRATEGY_ORDER = ("finetune", "freeze", "first_k", "gradual")
CSV_FIRST = (
    "dataset", "color", "gray_mode", "strategy", "bn", "k", "backbone", "weights", "seed", "epochs",
    "max_epochs", "best_val_acc", "val_acc", "test_acc", "train_seconds", "trainable_params",
    "frozen_params", "total_params", "num_classes", "sweep_id", "run_dir", "status",
)  # fmt: skip
# The 2017 study used torchvision's resnet18 only, and its freeze left BatchNorm in train mode
# (running statistics adapted to the target data): translearn's strategy=freeze strategy.bn=train.
REFERENCE_BACKBONE = "resnet18"
REFERENCE_WEIGHTS = ("imagenet", "IMAGENET1K_V1")  # resnet18 has one ImageNet version: both name it
REFERENCE_FREEZE_BN = "train"
REFERENCE_STRATEGIES = ("finetune", "freeze")


# --- finding runs ----------------------------------------------------------------------------------


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


def _warn(message: str) -> None:
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


def collect(
    paths: Iterable[str | os.PathLike[str]],
    warn: Callable[[str], None] | None = _warn,
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
            found.runs.append({**run, "metrics_path": str(file)})
        for cell, status in [(c, "failed") for c in failed] + [(c, "unfinished") for c in unfinished]:
            if (key := cell.resolve()) in seen:
                continue
            seen.add(key)
            folder = RunDir(cell)
            if status == "failed":
                reason = str(
                    (folder.failure() or {}).get("reason") or "failed (failure.json gives no reason)"
                )
            elif folder.status == INTERRUPTED:
                reason = "interrupted; resume it with sweep.resume=true (or ckpt_path=last for a single run)"
            else:
                reason = "no metrics.json: still running, or stopped before its first checkpoint"
            found.incomplete.append(Incomplete(cell, status, reason))
    if require_runs and not found.runs:
        where = ", ".join(str(p) for p in paths)
        if found.skipped:
            file, why = found.skipped[0]
            n = len(found.skipped)
            raise UserError(f"no readable metrics.json under {where}: {n} skipped ({file} {why})")
        if found.incomplete:
            first = found.incomplete[0]
            raise UserError(
                f"no complete runs under {where}: {len(found.incomplete)} cell(s) failed or did not finish "
                f"(e.g. {first.path.name}: {first.reason})"
            )
        raise UserError(
            f"no runs under {where}: no metrics.json found; pass a run directory (hydra.run.dir), a sweep "
            "directory (hydra.sweep.dir) or a folder of sweeps"
        )
    # Warned only once the report goes ahead, so a failing command still says exactly one line.
    for file, why in found.skipped if warn else ():
        warn(f"skipped {file}: it {why}; rerun that cell, or move the file away")
    return found


def load_runs(*paths: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete runs under ``paths`` as metrics dicts (with ``metrics_path``), for notebooks."""
    return collect(paths).runs


# --- the study table -------------------------------------------------------------------------------


@dataclass
class Stat:
    """One table cell: a value per run (seed), summarised as mean ± sample std."""

    values: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass
class Row:
    """One dataset × colour (× whatever else varies) and its cells, keyed by strategy column."""

    key: dict[str, Any]  # dataset, color and every ROW_EXTRAS value (shown only where they vary)
    acc: dict[str, Stat] = field(default_factory=dict)
    seconds: dict[str, Stat] = field(default_factory=dict)
    params: dict[str, Stat] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # runs per column, accuracy or not
    reference: dict[str, float] = field(default_factory=dict)  # 2017 value by REFERENCE_STRATEGIES

    def label(self, key_names: Sequence[str]) -> str:
        return " ".join(str(self.key[k]) for k in key_names if self.key.get(k) not in (None, ""))


@dataclass
class Table:
    """The study table; ``to_markdown()`` renders it, ``records()`` gives it in long form."""

    key_names: list[str]
    columns: list[str]  # strategy columns in display order
    rows: list[Row]
    # Which strategy column each 2017 number sits on (freeze prefers ``freeze bn=train``).
    reference_on: dict[str, str] = field(default_factory=dict)
    # The 2017 column comes right after this column (the last variant of that strategy).
    reference_after: dict[str, str] = field(default_factory=dict)

    def to_markdown(self) -> str:
        after = {col: strat for strat, col in self.reference_after.items()}
        header: list[str] = list(self.key_names)
        for col in self.columns:
            header.append(col)
            if col in after:
                header.append(_reference_header(after[col]))
        header += [f"time {c}" for c in self.columns] + [f"trainable {c}" for c in self.columns]
        lines = ["| " + " | ".join(header) + " |"]
        lines.append("|" + "---|" * len(self.key_names) + "--:|" * (len(header) - len(self.key_names)))
        for row in self.rows:
            cells = ["" if row.key.get(k) is None else str(row.key[k]) for k in self.key_names]
            for col in self.columns:
                cells.append(_format_acc(row.acc.get(col), row.runs.get(col, 0)))
                if col in after:
                    ref = row.reference.get(after[col])
                    cells.append("" if ref is None else f"{ref:.4f}")
            cells += [_format_seconds(row.seconds.get(c)) for c in self.columns]
            cells += [_format_count(row.params.get(c)) for c in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def notes(self) -> list[str]:
        """What a reader needs to read the numbers right; the BatchNorm caveat above all."""
        notes = [
            "Cells: best validation accuracy (best_val_acc); mean ± sample std over seeds, with n, where a "
            "cell has more than one run. time: mean training time; trainable: trainable parameters."
        ]
        if self.reference_after:
            notes.append(
                "2017: the study this project reproduces (ResNet18, ImageNet weights, 15 epochs, one "
                "unseeded run, best validation accuracy), shown for resnet18 rows with ImageNet weights only."
            )
        if "freeze" in self.reference_after:
            notes.append(
                "The 2017 freeze kept BatchNorm in train mode, so its running statistics adapted to the "
                "target data: that is `strategy=freeze strategy.bn=train` (column `freeze bn=train`). "
                "Plain `freeze` keeps BatchNorm frozen, a pure linear probe, and is not the same experiment."
            )
        return notes

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per row × strategy (e.g. ``pandas.DataFrame(table.records())``)."""
        out = []
        for row in self.rows:
            for col in self.columns:
                if col not in row.runs:
                    continue
                acc, secs = row.acc.get(col, Stat()), row.seconds.get(col, Stat())
                params = row.params.get(col)
                strategy = col.split()[0]
                out.append(
                    {
                        **{k: row.key.get(k) for k in ("dataset", "color", *ROW_EXTRAS)},
                        "strategy": col,
                        "best_val_acc_mean": acc.mean,
                        "best_val_acc_std": acc.std,
                        "n": acc.n,
                        "train_seconds_mean": secs.mean,
                        "trainable_params": params.mean if params else None,
                        "reference_2017": row.reference.get(strategy)
                        if self.reference_on.get(strategy) == col
                        else None,
                    }
                )
        return out


def _reference_header(strategy: str) -> str:
    return f"2017 {strategy}" + (f" (bn={REFERENCE_FREEZE_BN})" if strategy == "freeze" else "")


def strategy_label(run: dict[str, Any]) -> str:
    """The column a run belongs to: the strategy, ``k`` for first_k, and ``bn=train`` where it applies."""
    name = str(run.get("strategy"))
    parts = [name]
    if name == "first_k" and run.get("k") is not None:
        parts.append(f"k={run['k']}")
    if name != "finetune" and run.get("bn") == "train":  # finetune has no frozen BatchNorm to speak of
        parts.append("bn=train")
    return " ".join(parts)


def _column_order(run: dict[str, Any]) -> tuple[Any, ...]:
    name = str(run.get("strategy"))
    rank = STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else len(STRATEGY_ORDER)
    k = run.get("k")
    return (rank, name, k if isinstance(k, int | float) else -1, run.get("bn") == "train")


def _row_key(run: dict[str, Any]) -> dict[str, Any]:
    key = {k: run.get(k) for k in ("dataset", "color", *ROW_EXTRAS)}
    if key["color"] != "gray":
        key["gray_mode"] = None  # only gray runs have a gray mode
    return key


def _sort_value(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) else (1, str(v))


def load_reference() -> dict[tuple[str, str], dict[str, float]]:
    """The 2017 study's best validation accuracy by (dataset, color), shipped with the package."""
    text = resources.files("translearn").joinpath("reference/seed2017.json").read_text()
    return {
        (c["dataset"], c["color"]): {s: float(c[s]) for s in REFERENCE_STRATEGIES if c.get(s) is not None}
        for c in json.loads(text)["cells"]
    }


def summarize(runs: Sequence[dict[str, Any]], reference: bool = True) -> Table:
    """Group runs into the study table: rows by dataset × colour (× what varies), columns by strategy."""
    by_row: dict[tuple[Any, ...], Row] = {}
    order: dict[str, tuple[Any, ...]] = {}
    for run in runs:
        key = _row_key(run)
        row = by_row.setdefault(tuple(key.values()), Row(key=key))
        col = strategy_label(run)
        order[col] = _column_order(run)
        row.runs[col] = row.runs.get(col, 0) + 1
        for stats, name in ((row.acc, ACC), (row.seconds, "train_seconds"), (row.params, "trainable_params")):
            stat = stats.setdefault(col, Stat())
            value = run.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
                stat.values.append(float(value))
    columns = sorted(order, key=lambda c: order[c])
    rows = sorted(by_row.values(), key=lambda r: tuple(_sort_value(v) for v in _display_order(r.key)))
    varying = [k for k in ROW_EXTRAS if len({r.key[k] for r in rows if r.key[k] is not None}) > 1]
    table = Table(key_names=["dataset", "color", *varying], columns=columns, rows=rows)
    if reference:
        _attach_reference(table)
    return table


def _display_order(key: dict[str, Any]) -> list[Any]:
    # rgb before gray within a dataset, as the 2017 table reads
    return [key["dataset"], 0 if key["color"] == "rgb" else 1, key["color"], *(key[k] for k in ROW_EXTRAS)]


def _attach_reference(table: Table) -> None:
    ref = load_reference()
    for strategy in REFERENCE_STRATEGIES:
        variants = [c for c in table.columns if c.split()[0] == strategy]
        if not variants:
            continue
        preferred = f"{strategy} bn={REFERENCE_FREEZE_BN}" if strategy == "freeze" else strategy
        on = preferred if preferred in variants else variants[0]
        hits = 0
        for row in table.rows:
            value = ref.get((row.key["dataset"], row.key["color"]), {}).get(strategy)
            comparable = row.key.get("backbone") in (REFERENCE_BACKBONE, None) and row.key.get("weights") in (
                *REFERENCE_WEIGHTS,
                None,
            )  # 2017 started from ImageNet weights: other starts are a different experiment
            if value is not None and comparable:
                row.reference[strategy] = value
                hits += 1
        if hits:
            table.reference_on[strategy] = on
            table.reference_after[strategy] = variants[-1]


def _format_acc(stat: Stat | None, runs: int) -> str:
    if not runs:
        return ""
    if stat is None or stat.mean is None:
        return "n/a"
    if stat.n == 1:
        return f"{stat.mean:.4f}"
    return f"{stat.mean:.4f} ± {stat.std:.4f} (n={stat.n})"


def _format_seconds(stat: Stat | None) -> str:
    if stat is None or stat.mean is None:
        return ""
    s = stat.mean
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _format_count(stat: Stat | None) -> str:
    if stat is None or stat.mean is None:
        return ""
    n = stat.mean
    if n < 10_000:
        return f"{n:,.0f}"
    if n < 1_000_000:
        return f"{n / 1e3:.0f}k"
    return f"{n / 1e6:.1f}M"


# --- files -----------------------------------------------------------------------------------------


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list | tuple):
            out[f"{prefix}{key}"] = json.dumps(value)
        else:
            out[f"{prefix}{key}"] = value
    return out


def results_csv(runs: Sequence[dict[str, Any]]) -> str:
    """One row per run with every metrics.json key (nested keys dotted), known keys first."""
    flat = [_flatten(r) for r in sorted(runs, key=_run_order)]
    names = [k for k in CSV_FIRST if any(k in r for r in flat)]
    for r in flat:
        names += [k for k in r if k not in names and k != "metrics_path"]
    names.append("metrics_path")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: "" if v is None else v for k, v in r.items()} for r in flat)
    return buf.getvalue()


def _run_order(run: dict[str, Any]) -> tuple[Any, ...]:
    return (
        *(_sort_value(v) for v in _display_order(_row_key(run))),
        _column_order(run),
        _sort_value(run.get("seed")),
        str(run.get("metrics_path")),
    )


def table_markdown(table: Table, found: Collection | None = None, sources: Sequence[Path] = ()) -> str:
    """table.md: the table, its notes, and the cells that are not in it."""
    parts = ["# translearn results", ""]
    if sources:
        parts += ["From " + ", ".join(f"`{s}`" for s in sources) + ".", ""]
    parts += [table.to_markdown(), ""]
    parts += [f"- {n}" for n in table.notes()]
    parts += _problems(found, markdown=True)
    return "\n".join(parts) + "\n"


def _problems(found: Collection | None, markdown: bool) -> list[str]:
    if found is None:
        return []
    code = (lambda s: f"`{s}`") if markdown else str
    lines: list[str] = []
    if found.incomplete:
        lines += ["", f"Cells with no result ({len(found.incomplete)}):"]
        lines += [f"- {c.status}: {code(c.path)}: {c.reason}" for c in found.incomplete]
    if found.skipped:
        lines += ["", f"Skipped metrics.json files ({len(found.skipped)}):"]
        lines += [f"- {code(p)}: it {why}" for p, why in found.skipped]
    return lines


def _prepare_out(out: Path, force: bool) -> None:
    """Create the output folder, refusing to replace same-named files the report did not write."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a folder for the report")
    if out.is_dir() and not force and not (out / MANIFEST).is_file():
        theirs = [name for name in REPORT_FILES if (out / name).exists()]
        if theirs:
            raise UserError(
                f"{out} already holds {', '.join(theirs)}, not written by translearn.report; choose another "
                "folder with --out, or pass --force to replace those files"
            )
    out.mkdir(parents=True, exist_ok=True)


# --- plots -----------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    # A bare Figure draws with Agg and never touches pyplot's global state or a display.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", dpi=110)


def _colors(columns: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {c: cmap(i % 10) for i, c in enumerate(columns)}


def accuracy_figure(table: Table) -> Figure:
    """Grouped bars: best_val_acc per row, one bar per strategy (std as error bar), 2017 values marked."""
    cols, rows = table.columns, table.rows
    fig = _figure(max(6.0, 2.5 + len(rows) * (0.3 * len(cols) + 0.5)), 4.8)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(cols))
    colors = _colors(cols)

    def x_of(i: int, j: int) -> float:
        return i - 0.4 + width * (j + 0.5)

    for j, col in enumerate(cols):
        points = [(x_of(i, j), r.acc[col]) for i, r in enumerate(rows) if col in r.acc and r.acc[col].n]
        if points:
            ax.bar(
                [x for x, _ in points],
                [s.mean for _, s in points],
                width,
                yerr=[s.std or math.nan for _, s in points],  # nan: no error bar for one run
                capsize=2,
                color=colors[col],
                label=col,
            )
    labelled = False
    for i, row in enumerate(rows):
        for strategy, value in row.reference.items():
            if strategy not in table.reference_on:
                continue
            x = x_of(i, cols.index(table.reference_on[strategy]))
            label = None if labelled else f"2017 study (its freeze: bn={REFERENCE_FREEZE_BN})"
            ax.hlines(value, x - width / 2, x + width / 2, colors="black", linewidth=2.0, label=label)
            ax.plot([x], [value], marker="D", markersize=3.5, color="black")
            labelled = True
    ax.set_xticks(range(len(rows)), [r.label(table.key_names) for r in rows], rotation=20, ha="right")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel("best validation accuracy")
    ax.set_title("Best validation accuracy per dataset × colour and strategy")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return fig


def params_figure(table: Table) -> Figure:
    """Accuracy against trainable parameters (log x): how much retraining each strategy buys."""
    from matplotlib.lines import Line2D

    fig = _figure(8.0, 5.0)
    ax = fig.add_subplot()
    colors = _colors(table.columns)
    shapes = "osD^vP*Xh<>p"
    markers = {id(r): shapes[i % len(shapes)] for i, r in enumerate(table.rows)}
    for col in table.columns:
        for row in table.rows:
            acc, params = row.acc.get(col), row.params.get(col)
            if not acc or not acc.n or not params or not params.n or not params.mean or params.mean <= 0:
                continue
            ax.errorbar(
                [params.mean], [acc.mean], yerr=[acc.std or math.nan], fmt=markers[id(row)],
                color=colors[col], capsize=2, markersize=6,
            )  # fmt: skip
    handles = [Line2D([], [], color=colors[c], marker="o", linestyle="", label=c) for c in table.columns]
    handles += [
        Line2D([], [], color="gray", marker=markers[id(r)], linestyle="", label=r.label(table.key_names))
        for r in table.rows
    ]
    ax.set_xscale("log")
    ax.set_xlabel("trainable parameters (log scale)")
    ax.set_ylabel("best validation accuracy")
    ax.set_title("Accuracy vs trainable parameters")
    ax.grid(alpha=0.3, which="both")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    return fig


# --- the whole report ------------------------------------------------------------------------------


@dataclass
class Report:
    """What ``write_report`` found, built and wrote."""

    found: Collection
    table: Table
    out: Path
    files: list[Path]
    markdown: str


def write_report(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    reference: bool = True,
    plots: bool = True,
    force: bool = False,
    warn: Callable[[str], None] | None = _warn,
) -> Report:
    """Collect, tabulate and write results.csv, table.md and the plots into ``out``."""
    found = collect(paths, warn=warn)
    sources = [Path(p).expanduser() for p in paths]
    first = sources[0] if sources[0].is_dir() else sources[0].parent
    out_dir = Path(out).expanduser() if out is not None else first / "report"
    _prepare_out(out_dir, force)
    names = [CSV_FILE, TABLE_FILE, *((ACC_PLOT, PARAMS_PLOT) if plots else ())]
    manifest = {"written_by": "translearn.report", "files": names, "inputs": [str(s) for s in sources]}
    # The manifest goes first, so a report stopped half-way can still be rewritten without --force.
    (out_dir / MANIFEST).write_text(json.dumps({**manifest, "time": time.time()}, indent=2) + "\n")
    table = summarize(found.runs, reference=reference)
    markdown = table_markdown(table, found, sources)
    write_atomic(out_dir / CSV_FILE, results_csv(found.runs))
    write_atomic(out_dir / TABLE_FILE, markdown)
    if plots:
        for name, make in ((ACC_PLOT, accuracy_figure), (PARAMS_PLOT, params_figure)):
            fig = make(table)
            png = io.BytesIO()
            fig.savefig(png, format="png")
            write_atomic(out_dir / name, png.getvalue())
    return Report(found, table, out_dir, [out_dir / n for n in names], markdown)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every translearn error
        exit_with(f"{message} (usage: python -m translearn.report DIR [DIR ...] [--out DIR])")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m translearn.report DIR [DIR ...]``: print the table, write the report folder."""
    parser = _Parser(
        prog="python -m translearn.report",
        description="The results table and plots of translearn runs and sweeps.",
    )
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="run dirs, sweep dirs, folders of sweeps")
    parser.add_argument("--out", help="where to write the report (default: <first DIR>/report)")
    parser.add_argument("--no-reference", action="store_true", help="omit the 2017 study's numbers")
    parser.add_argument("--no-plots", action="store_true", help="write only results.csv and table.md")
    parser.add_argument(
        "--force", action="store_true", help="replace results.csv etc. in a folder the report did not write"
    )
    args = parser.parse_args(argv)
    try:
        report = write_report(
            args.dirs,
            out=args.out,
            reference=not args.no_reference,
            plots=not args.no_plots,
            force=args.force,
        )
    except UserError as exc:
        exit_with(str(exc))
    print(report.table.to_markdown())
    print()
    for note in report.table.notes():
        print(f"- {note}")
    for line in _problems(report.found, markdown=False):
        print(line)
    print()
    n_runs, n_bad = len(report.found.runs), len(report.found.incomplete)
    without = f", {n_bad} cell(s) without a result" if n_bad else ""
    print(f"translearn: {n_runs} run(s) in the table{without}")
    for path in report.files:
        print(f"translearn: wrote {path}")


if __name__ == "__main__":
    main()
