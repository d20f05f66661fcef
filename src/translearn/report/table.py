"""The study table: runs grouped by dataset × colour × recipe and strategy, rendered as markdown and CSV.

A *row* is one dataset × colour plus every recipe key that varies between the runs (backbone, weights,
lr, batch size, image size, epochs, ...: :mod:`translearn.report.recipe`), so runs with different
recipes are never averaged together; a *column* is one strategy variant (``first_k`` with its ``k``,
``bn=train`` where BatchNorm adapted). A cell is mean ± std over distinct seeds with n
(:mod:`translearn.report.stats`). The 2017 study's numbers sit beside the cells they are comparable to.

The table renders long: one line per row × column, so a sweep over ``strategy.k``, the lr or the image
size gives one line per value and the table stays within ``WIDTH`` columns however many values a sweep
has. The study's comparisons (finetune − freeze, rgb − gray) follow in a table of gaps of their own, each
read against its spread.
"""

from __future__ import annotations

import csv
import io
import json
import math
import textwrap
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from translearn.errors import UserError
from translearn.report.checks import caveats
from translearn.report.collect import Collection, run_folder
from translearn.report.recipe import FROM_CONFIG, RECIPE_KEYS, read_config, read_recipe
from translearn.report.stats import SPREAD_FACTOR, Gap, Stat, compare

ACC = "best_val_acc"  # the study's metric: best validation accuracy over the epochs
# --metric: accuracy over all images (micro), or the mean of per-class recalls (macro, balanced accuracy)
METRICS = {"micro": "best_val_acc", "macro": "best_val_acc_macro"}
# Row dimensions besides dataset and colour; each is shown (in the setup column) only where it varies.
ROW_EXTRAS = RECIPE_KEYS
STRATEGY_ORDER = ("finetune", "freeze", "first_k", "surgical", "gradual", "lp_ft", "auto_rgn")
CSV_FIRST = (
    "dataset", "color", "gray_mode", "strategy", "bn", "k", "backbone", "weights", "seed", "epochs",
    "max_epochs", "best_epoch", "best_val_acc", "val_acc", "test_acc", "best_val_acc_macro", "val_acc_macro",
    "test_acc_macro", "train_seconds", "trainable_params", "frozen_params", "total_params", "num_classes",
    "sweep_id", "run_dir", "status",
)  # fmt: skip
# The 2017 study used torchvision's resnet18 only, and its freeze left BatchNorm in train mode
# (running statistics adapted to the target data): translearn's strategy=freeze strategy.bn=train.
REFERENCE_BACKBONE = "resnet18"
REFERENCE_WEIGHTS = ("imagenet", "IMAGENET1K_V1")  # resnet18 has one ImageNet version: both name it
REFERENCE_FREEZE_BN = "train"
REFERENCE_STRATEGIES = ("finetune", "freeze")
WIDTH = 120  # the terminal table's width at most, in characters
# A recipe cell without a value: unknown (the run folder has no config to tell), or no such key for this
# row's data (shapes has a dataset.task, real datasets none: beside shapes, theirs read '?' as if unknown).
UNKNOWN = "?"
NO_SUCH_KEY = "–"


@dataclass
class Row:
    """One dataset × colour (× whatever recipe key varies) and its cells, keyed by strategy column."""

    key: dict[str, Any]  # dataset, color and every ROW_EXTRAS value (shown only where they vary)
    acc: dict[str, Stat] = field(default_factory=dict)
    seconds: dict[str, Stat] = field(default_factory=dict)
    params: dict[str, Stat] = field(default_factory=dict)
    runs: dict[str, int] = field(default_factory=dict)  # runs per column, accuracy or not
    reference: dict[str, float] = field(default_factory=dict)  # 2017 value by REFERENCE_STRATEGIES
    stage_names: dict[str, list[str]] = field(default_factory=dict)  # first_k columns: the net's stages
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict, repr=False)  # the runs per column
    lacks: set[str] = field(default_factory=set)  # shown recipe keys this row's configs do not have

    def setup(self, key_names: Sequence[str]) -> str:
        """The varying recipe keys as ``lr=0.01 batch_size=32`` (empty where nothing varies); keys the
        row's data does not have are left out, ``task=?`` would claim an unknown task."""
        return " ".join(
            f"{k}={_value(self.key.get(k))}"
            for k in key_names
            if k not in ("dataset", "color", *self.lacks)
            and not (k == "gray_mode" and self.key.get(k) is None)
        )

    def cell(self, key: str) -> str:
        """The table's text for one recipe key: its value, ``?`` (unknown) or ``–`` (no such key)."""
        if key in self.lacks:
            return NO_SUCH_KEY
        return "" if key == "gray_mode" and self.key.get(key) is None else _value(self.key.get(key))

    def label(self, key_names: Sequence[str]) -> str:
        return " ".join(
            p for p in (str(self.key["dataset"]), str(self.key["color"]), self.setup(key_names)) if p
        )


@dataclass
class Table:
    """The study table; ``to_markdown()`` renders it, ``records()`` gives it in long form."""

    key_names: list[str]
    columns: list[str]  # strategy columns in display order
    rows: list[Row]
    metric: str = ACC  # the metrics.json key in the cells
    # Which strategy column each 2017 number sits on (freeze prefers ``freeze bn=train``).
    reference_on: dict[str, str] = field(default_factory=dict)
    k_of: dict[str, int] = field(default_factory=dict)  # first_k columns: their k
    gaps: list[Gap] = field(default_factory=list)  # finetune − freeze and rgb − gray, where both exist
    warnings: list[str] = field(default_factory=list)  # caveats that change how to read the table
    extra_notes: list[str] = field(default_factory=list)  # grouping, repeated seeds, missing metrics

    @property
    def setup_keys(self) -> list[str]:
        return [k for k in self.key_names if k not in ("dataset", "color")]

    def strategy_text(self, row: Row, col: str) -> str:
        """The column's name for one row, with k in layer names: ``first_k k=2: stem, layer1 frozen``."""
        if col not in self.k_of:
            return col
        rest = [p for p in col.split()[1:] if not p.startswith("k=")]
        return " ".join([col.split()[0], *rest, k_label(self.k_of[col], row.stage_names.get(col))])

    def lines(self) -> list[tuple[Row, str]]:
        """(row, column) of every cell with runs, in display order."""
        return [(row, col) for row in self.rows for col in self.columns if col in row.runs]

    def to_markdown(self, width: int | None = WIDTH) -> str:
        """The table, one line per cell, aligned and at most ``width`` characters wide (None: no limit)."""
        keys = self.setup_keys  # one column each, only where they vary
        ref = bool(self.reference_on)
        header = [
            "dataset",
            "color",
            *keys,
            "strategy",
            self.metric,
            *(["2017"] if ref else []),
            "time",
            "params",
        ]
        cells = []
        for row, col in self.lines():
            line = [str(row.key["dataset"]), str(row.key["color"])]
            line += [row.cell(k) for k in keys]
            line += [self.strategy_text(row, col), _format_acc(row.acc.get(col), row.runs.get(col, 0))]
            if ref:
                value = next((row.reference.get(s) for s, c in self.reference_on.items() if c == col), None)
                line.append("" if value is None else f"{value:.4f}")
            line += [_format_seconds(row.seconds.get(col)), _format_count(row.params.get(col))]
            cells.append(line)
        strategy = 2 + len(keys)
        # Too wide: cut the recipe columns first, then the strategy's layer names, then the dataset.
        shrink = {**{2 + i: max(6, len(k)) for i, k in enumerate(keys)}, strategy: 16, 0: 8}
        return grid(header, cells, right=range(strategy + 1, len(header)), shrink=shrink, width=width)

    def gaps_markdown(self, width: int | None = WIDTH) -> str:
        """The study's comparisons, one per line, each read against its spread ('' when there are none)."""
        if not self.gaps:
            return ""
        cells = [
            [
                g.where,
                g.name,
                f"{g.diff:+.4f}",
                "" if g.se is None else f"{SPREAD_FACTOR * g.se:.4f}",
                g.verdict,
            ]
            for g in self.gaps
        ]
        return grid(
            ["where", "gap", "mean diff", "2 SE", "reading"],
            cells,
            right=(2, 3),
            shrink={0: 16, 1: 20},
            width=width,
        )

    def notes(self) -> list[str]:
        """What a reader needs to read the numbers right; the BatchNorm caveat above all."""
        name = "macro (balanced) accuracy" if self.metric.endswith("_macro") else "accuracy"
        notes = [
            f"{self.metric}: best validation {name} over the epochs; mean ± sample std over distinct seeds, "
            "with n (the seeds). time: mean training time; params: trainable parameters."
        ]
        if self.reference_on:
            notes.append(
                "2017: the study this project reproduces (ResNet18, ImageNet weights, 15 epochs, one "
                "unseeded run, best validation accuracy), shown for resnet18 rows with ImageNet weights only."
            )
        if "freeze" in self.reference_on:
            notes.append(
                "The 2017 freeze kept BatchNorm in train mode, so its running statistics adapted to the "
                "target data: that is `strategy=freeze strategy.bn=train` (strategy `freeze bn=train`). "
                "Plain `freeze` keeps BatchNorm frozen, a pure linear probe, and is not the same experiment."
            )
        return notes + self.extra_notes

    def reading(self) -> list[str]:
        """A short reading in sentences: the best strategy per row, the gaps, and the caveats."""
        lines = []
        for row in self.rows:
            scored = {c: s for c, s in row.acc.items() if s.mean is not None}
            if len(scored) > 1:
                best = max(scored, key=lambda c: scored[c].mean or 0.0)
                lines.append(
                    f"{row.label(self.key_names)}: highest {self.metric} with "
                    f"{self.strategy_text(row, best)}, {scored[best].text()} ({len(scored)} strategies)."
                )
        lines += [gap.sentence() + "." for gap in self.gaps]
        if any(g.verdict != "beyond spread" for g in self.gaps):
            lines.append("Gaps within the spread, or with one seed a side, are not evidence of a difference.")
        lines += [f"Caveat: {w}." for w in self.warnings]
        return lines

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per row × strategy (e.g. ``pandas.DataFrame(table.records())``)."""
        out = []
        for row, col in self.lines():
            acc, secs = row.acc.get(col, Stat()), row.seconds.get(col, Stat())
            params = row.params.get(col)
            strategy = col.split()[0]
            out.append(
                {
                    **{k: row.key.get(k) for k in ("dataset", "color", *ROW_EXTRAS)},
                    "setup": row.setup(self.key_names),
                    "strategy": col,
                    "k": self.k_of.get(col),
                    "strategy_text": self.strategy_text(row, col),
                    f"{self.metric}_mean": acc.mean,
                    f"{self.metric}_std": acc.std,
                    "n": acc.n,
                    "runs": row.runs.get(col, 0),
                    "train_seconds_mean": secs.mean,
                    "trainable_params": params.mean if params else None,
                    "reference_2017": row.reference.get(strategy)
                    if self.reference_on.get(strategy) == col
                    else None,
                }
            )
        return out


def k_label(k: int, stage_names: Sequence[str] | None) -> str:
    """``k=2: stem, layer1 frozen``; plain ``k=2`` where the run did not record its stage names."""
    if not stage_names:
        return f"k={k}"
    if k <= 0:
        return f"k={k}: none frozen"
    if k >= len(stage_names):
        return f"k={k}: all {len(stage_names)} stages frozen"
    frozen = list(stage_names[:k])
    return f"k={k}: {', '.join(frozen) if k <= 2 else f'{frozen[0]}..{frozen[-1]}'} frozen"


def grid(
    header: Sequence[str],
    cells: Sequence[Sequence[str]],
    right: Container[int],
    shrink: dict[int, int] | None = None,
    width: int | None = WIDTH,
) -> str:
    """An aligned markdown table; too wide, the ``shrink`` columns (index: least width), in that order,
    are cut with '…' until it fits ``width``. The ``right`` columns are numbers, right-aligned."""
    widths = [max([len(h), 3, *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    for i, floor in (shrink or {}).items():
        excess = sum(widths) + 3 * len(widths) + 1 - (width or sum(widths) + 3 * len(widths) + 1)
        if excess > 0:
            widths[i] = max(min(floor, widths[i]), widths[i] - excess)

    def cut(text: str, w: int) -> str:
        return text if len(text) <= w else text[: w - 1] + "…"

    def line(values: Sequence[str]) -> str:
        parts = [
            cut(v, widths[i]).rjust(widths[i]) if i in right else cut(v, widths[i]).ljust(widths[i])
            for i, v in enumerate(values)
        ]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join("-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths))
    return "\n".join([line(header), rule + "|", *(line(r) for r in cells)])


# --- grouping --------------------------------------------------------------------------------------


def strategy_label(run: dict[str, Any]) -> str:
    """The column a run belongs to: the strategy, ``k`` for first_k, and ``bn=train`` where it applies."""
    name = str(run.get("strategy"))
    parts = [name]
    if name == "first_k" and run.get("k") is not None:
        parts.append(f"k={run['k']}")
    stages, names = run.get("stages"), run.get("stage_names") or []
    if name == "surgical" and isinstance(stages, list):  # "surgical [4,5] layer3+layer4"
        shown = [names[s - 1] for s in stages if isinstance(s, int) and 0 < s <= len(names)]
        parts.append(f"[{','.join(str(s) for s in stages)}]" + (f" {'+'.join(shown)}" if shown else ""))
    if name == "lp_ft" and run.get("probe_epochs") is not None:
        parts.append(f"probe={run['probe_epochs']}")
    if name != "finetune" and run.get("bn") == "train":  # finetune has no frozen BatchNorm to speak of
        parts.append("bn=train")
    return " ".join(parts)


def _column_order(run: dict[str, Any]) -> tuple[Any, ...]:
    name = str(run.get("strategy"))
    rank = STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else len(STRATEGY_ORDER)
    k = run.get("k")
    stages = run.get("stages") if isinstance(run.get("stages"), list) else []
    return (rank, name, run.get("bn") == "train", k if isinstance(k, int | float) else -1, stages)


def recipe_of(run: dict[str, Any]) -> dict[str, Any]:
    """The run's recipe as collect read it, or from metrics.json alone for a dict built by hand."""
    recipe = run.get("recipe")
    return recipe if isinstance(recipe, dict) else read_recipe(None, run)


def _row_key(run: dict[str, Any]) -> dict[str, Any]:
    recipe = recipe_of(run)
    key = {"dataset": run.get("dataset"), "color": run.get("color")}
    key.update({k: recipe.get(k) for k in ROW_EXTRAS})
    if key["color"] != "gray":
        key["gray_mode"] = None  # only gray runs have a gray mode
    return key


def _sort_value(v: Any) -> tuple[int, Any]:
    return (0, v) if isinstance(v, int | float) and not isinstance(v, bool) else (1, str(v))


def _display_order(key: dict[str, Any]) -> list[Any]:
    # rgb before gray within a dataset, as the 2017 table reads
    return [key["dataset"], 0 if key["color"] == "rgb" else 1, key["color"], *(key[k] for k in ROW_EXTRAS)]


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _varies_within_a_dataset(rows: Sequence[Row], key: str) -> bool:
    """A recipe key gets a column where one dataset has rows that differ in it; keys that differ only
    between datasets (their class count, folder, batch size) are the dataset's own and say nothing new."""
    seen: dict[str, set[str]] = {}
    for row in rows:
        if key == "gray_mode" and not row.key[key]:
            continue
        seen.setdefault(str(row.key["dataset"]), set()).add(str(row.key[key]))
    return any(len(values) > 1 for values in seen.values())


def _lacked_keys(row: Row, keys: Sequence[str]) -> set[str]:
    """The config keys among ``keys`` that this row's runs' configs do not have (shapes' task beside a real
    dataset): None there means no such key. Without a config to read, None stays unknown."""
    missing = [k for k in keys if k in FROM_CONFIG and row.key.get(k) is None]
    if not missing:
        return set()
    runs = [run for members in row.members.values() for run in members]
    folders = [run_folder(run) if isinstance(run.get("recipe"), dict) else None for run in runs]
    configs = all(f is not None and read_config(f) is not None for f in folders)
    return set(missing) if runs and configs else set()


def summarize(runs: Sequence[dict[str, Any]], reference: bool = True, metric: str = "micro") -> Table:
    """Group runs into the study table: rows by dataset × colour × recipe, columns by strategy.

    ``metric`` is ``micro`` (best_val_acc) or ``macro`` (best_val_acc_macro, balanced accuracy).
    """
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    acc_key = METRICS[metric]
    by_row: dict[tuple[Any, ...], Row] = {}
    order: dict[str, tuple[Any, ...]] = {}
    k_of: dict[str, int] = {}
    for run in runs:
        key = _row_key(run)
        row = by_row.setdefault(tuple(map(str, key.values())), Row(key=key))
        col = strategy_label(run)
        order[col] = _column_order(run)
        if str(run.get("strategy")) == "first_k" and isinstance(run.get("k"), int):
            k_of[col] = run["k"]
            if isinstance(run.get("stage_names"), list) and col not in row.stage_names:
                row.stage_names[col] = [str(s) for s in run["stage_names"]]
        row.runs[col] = row.runs.get(col, 0) + 1
        row.members.setdefault(col, []).append(run)
        for stats, name in (
            (row.acc, acc_key),
            (row.seconds, "train_seconds"),
            (row.params, "trainable_params"),
        ):
            stat = stats.setdefault(col, Stat())
            if (value := _number(run.get(name))) is not None:
                stat.add(value, run.get("seed"))
    columns = sorted(order, key=lambda c: order[c])
    rows = sorted(by_row.values(), key=lambda r: tuple(_sort_value(v) for v in _display_order(r.key)))
    varying = [k for k in ROW_EXTRAS if _varies_within_a_dataset(rows, k)]
    for row in rows:
        row.lacks = _lacked_keys(row, varying)
    table = Table(
        key_names=["dataset", "color", *varying], columns=columns, rows=rows, metric=acc_key, k_of=k_of
    )
    if reference and metric == "micro":
        _attach_reference(table)
    table.gaps = _gaps(table)
    table.extra_notes = _grouping_notes(table, runs, metric, reference)
    table.warnings = caveats(runs, acc_key)
    return table


def _gaps(table: Table) -> list[Gap]:
    gaps: list[Gap] = []
    for row in table.rows:
        where = row.label(table.key_names)
        for col in table.columns:
            if col.split()[0] == "freeze" and col in row.acc and "finetune" in row.acc:
                gap = compare(f"finetune − {col}", where, row.acc["finetune"], row.acc[col])
                gaps += [gap] if gap else []
    others = [k for k in table.key_names if k not in ("color", "gray_mode")]
    for gray in (r for r in table.rows if r.key["color"] == "gray"):
        for rgb in (r for r in table.rows if r.key["color"] == "rgb"):
            if any(str(rgb.key[k]) != str(gray.key[k]) for k in others):
                continue
            mode = f" {gray.key['gray_mode']}" if "gray_mode" in table.key_names else ""
            where = " ".join(p for p in (str(gray.key["dataset"]), rgb.setup(table.key_names)) if p)
            for col in table.columns:
                if col in rgb.acc and col in gray.acc:
                    name = f"rgb − gray{mode} ({col})"
                    gap = compare(name, where, rgb.acc[col], gray.acc[col])
                    gaps += [gap] if gap else []
    return gaps


def _grouping_notes(table: Table, runs: Sequence[dict[str, Any]], metric: str, reference: bool) -> list[str]:
    notes = []
    if table.setup_keys:
        values = {
            k: sorted({str(r.key[k]) for r in table.rows if r.key[k] is not None}) for k in table.setup_keys
        }
        named = "; ".join(f"{k} ({', '.join(v) or UNKNOWN})" for k, v in values.items())
        shown = {row.cell(k) for row in table.rows for k in table.setup_keys}
        marks = [
            f"'{mark}': {says}"
            for mark, says in (
                (UNKNOWN, "the run folder has no .hydra/config.yaml to tell"),
                (NO_SUCH_KEY, "that dataset has no such setting"),
            )
            if mark in shown
        ]
        marked = f" ({'; '.join(marks)})" if marks else ""
        notes.append(
            f"setup: the runs differ in {named}; runs with different recipes are grouped apart (one line "
            f"each), never averaged together{marked}."
        )
    repeated = [(row, col, stat) for row in table.rows for col, stat in row.acc.items() if stat.runs > stat.n]
    if repeated:
        row, col, stat = repeated[0]
        shared = " and ".join(f"{count} with seed {seed}" for seed, count in stat.repeated.items())
        more = f" ({len(repeated)} cells in all)" if len(repeated) > 1 else ""
        notes.append(
            f"Repeated seeds: {row.label(table.key_names)} {col} has {stat.runs} runs, {shared}, "
            f"counted as n={stat.n}{more}: runs that share a seed are one sample, so they are averaged first."
        )
    if metric == "macro":
        lacking = sum(_number(r.get(METRICS["macro"])) is None for r in runs)
        if lacking:
            notes.append(
                f"macro accuracy is not recorded for {lacking} of {len(runs)} runs (trained before "
                "translearn recorded it): their cells show n/a; retrain them to compare."
            )
        if reference:
            notes.append("2017 numbers are plain accuracy, so they are left out of a macro table.")
    if table.gaps:
        notes.append(
            f"Gaps: difference of means; beyond spread when it exceeds {SPREAD_FACTOR:g} standard errors of "
            "the difference, sqrt(s1²/n1 + s2²/n2); no spread when a side has one seed."
        )
    return notes


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


# --- rendering -------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


def _format_acc(stat: Stat | None, runs: int) -> str:
    if not runs:
        return ""
    return "n/a" if stat is None else stat.text()


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


def _bullets(items: Sequence[str], prefix: str, width: int) -> list[str]:
    return [
        line
        for item in items
        for line in textwrap.wrap(item, width, initial_indent=prefix, subsequent_indent=" " * len(prefix))
    ]


def table_with_notes(
    table: Table, found: Collection | None = None, markdown: bool = False, width: int = WIDTH
) -> str:
    """Table, gaps, warnings, notes and the cells that are not in it: the terminal's output and table.md."""
    lines = [table.to_markdown(width)]
    if table.gaps:
        lines += ["", "Gaps the study reads:", "", table.gaps_markdown(width)]
    if table.warnings:
        lines += ["", *_bullets(table.warnings, "warning: ", width)]
    lines += ["", *_bullets(table.notes(), "- ", width), *_problems(found, markdown)]
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
