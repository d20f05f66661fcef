"""The study table: runs grouped by dataset × colour and strategy, rendered as markdown and CSV.

One row per dataset × colour (plus the backbone, weights, gray mode, crop size or epochs where those
vary), one column per strategy (``first_k`` with its ``k``, ``bn=train`` where BatchNorm adapted), and
best validation accuracy in the cells: mean ± std over seeds with their count. The 2017 study's numbers
sit beside the columns they are comparable to, and nowhere else.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from translearn.report.collect import Collection

ACC = "best_val_acc"  # the study's metric: best validation accuracy over the epochs
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


# --- grouping --------------------------------------------------------------------------------------


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


def _display_order(key: dict[str, Any]) -> list[Any]:
    # rgb before gray within a dataset, as the 2017 table reads
    return [key["dataset"], 0 if key["color"] == "rgb" else 1, key["color"], *(key[k] for k in ROW_EXTRAS)]


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


# --- the 2017 study --------------------------------------------------------------------------------


def load_reference() -> dict[tuple[str, str], dict[str, float]]:
    """The 2017 study's best validation accuracy by (dataset, color), shipped with the package."""
    text = resources.files("translearn").joinpath("reference/seed2017.json").read_text()
    return {
        (c["dataset"], c["color"]): {s: float(c[s]) for s in REFERENCE_STRATEGIES if c.get(s) is not None}
        for c in json.loads(text)["cells"]
    }


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


def _reference_header(strategy: str) -> str:
    return f"2017 {strategy}" + (f" (bn={REFERENCE_FREEZE_BN})" if strategy == "freeze" else "")


# --- rendering -------------------------------------------------------------------------------------


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


def table_with_notes(table: Table, found: Collection | None = None, markdown: bool = False) -> str:
    """The table, its notes and the cells that are not in it: the terminal's output and table.md's body."""
    lines = [table.to_markdown(), "", *(f"- {n}" for n in table.notes()), *_problems(found, markdown)]
    return "\n".join(lines)


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


def table_markdown(table: Table, found: Collection | None = None, sources: Sequence[Path] = ()) -> str:
    """table.md: the table, its notes, and the cells that are not in it."""
    parts = ["# translearn results", ""]
    if sources:
        parts += ["From " + ", ".join(f"`{s}`" for s in sources) + ".", ""]
    parts.append(table_with_notes(table, found, markdown=True))
    return "\n".join(parts) + "\n"


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


def _run_order(run: dict[str, Any]) -> tuple[Any, ...]:
    return (
        *(_sort_value(v) for v in _display_order(_row_key(run))),
        _column_order(run),
        _sort_value(run.get("seed")),
        str(run.get("metrics_path")),
    )


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
