"""Writing the report folder: results.csv, table.md and the plots, and nothing else.

A small manifest marks the folder as the report's own, so a rerun may replace its files; a same-named
file the report did not write is kept unless ``force`` says otherwise. Everything that can be wrong with
the request (no runs, a first_k plot of a sweep without k, a confusion matrix of a run without one) is
found before the folder is touched, so a failed command writes nothing.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from translearn.errors import UserError
from translearn.report.collect import Collection, collect, warn_on_stderr
from translearn.report.logs import Confusion, cell_curves, read_confusion
from translearn.report.plots import (
    accuracy_figure,
    confusion_figure,
    curves_figure,
    first_k_figure,
    first_k_series,
    params_figure,
)
from translearn.report.table import Table, results_csv, summarize, table_markdown
from translearn.storage import write_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What the report writes into its folder; nothing else there is ever replaced or deleted.
CSV_FILE, TABLE_FILE = "results.csv", "table.md"
ACC_PLOT, PARAMS_PLOT = "accuracy.png", "accuracy_vs_params.png"
CURVES_PLOT, FIRST_K_PLOT = "curves.png", "first_k.png"
PLOTS = {"accuracy": ACC_PLOT, "params": PARAMS_PLOT, "curves": CURVES_PLOT, "first_k": FIRST_K_PLOT}
REPORT_FILES = (CSV_FILE, TABLE_FILE, ACC_PLOT, PARAMS_PLOT, CURVES_PLOT, FIRST_K_PLOT)
MANIFEST = ".translearn-report.json"  # marks a folder as the report's own, so rewriting it is expected


@dataclass
class Report:
    """What ``write_report`` found, built and wrote."""

    found: Collection
    table: Table
    out: Path
    files: list[Path]
    markdown: str
    notes: list[str] = field(default_factory=list)  # one line each: what a plot left out, and why


def confusion_png(folder: Path, split: str = "val") -> str:
    """The file name of a run's confusion plot: ``confusion_<run folder>_<split>.png``, safe characters."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", folder.resolve().name).strip("_") or "run"
    return f"confusion_{name}_{split}.png"


def _prepare_out(out: Path, force: bool, names: Sequence[str]) -> None:
    """Create the output folder, refusing to replace same-named files the report did not write."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; choose a folder for the report")
    if out.is_dir() and not force and not (out / MANIFEST).is_file():
        theirs = [name for name in names if (out / name).exists()]
        if theirs:
            raise UserError(
                f"{out} already holds {', '.join(theirs)}, not written by translearn.report; choose another "
                "folder with --out, or pass --force to replace those files"
            )
    out.mkdir(parents=True, exist_ok=True)


def _plan_plots(
    table: Table, only: Sequence[str] | None
) -> tuple[dict[str, Callable[[], Figure]], list[str]]:
    """The figures to draw, by file name, and notes on what they leave out; UserError for a bad request."""
    unknown = [p for p in only or () if p not in PLOTS]
    if unknown:
        raise UserError(f"unknown plot {unknown[0]!r}; choose from {', '.join(PLOTS)}")
    wanted = list(PLOTS) if only is None else list(dict.fromkeys(only))
    plans: dict[str, Callable[[], Figure]] = {}
    notes: list[str] = []
    if "accuracy" in wanted:
        plans[ACC_PLOT] = lambda: accuracy_figure(table)
    if "params" in wanted:
        plans[PARAMS_PLOT] = lambda: params_figure(table)
    if "first_k" in wanted:
        if first_k_series(table):
            plans[FIRST_K_PLOT] = lambda: first_k_figure(table)
        elif only is not None:  # asked for by name: say why there is none
            raise UserError(
                "--plot first_k needs strategy=first_k runs with strategy.k, and these runs have none; sweep "
                "-m strategy=first_k strategy.k=0,1,2,3,4,5, or drop --plot first_k"
            )
    if "curves" in wanted:
        curves, missing = cell_curves(table)
        if curves:
            plans[CURVES_PLOT] = lambda: curves_figure(table, curves)
        elif only is not None and "curves" in only:
            raise UserError(
                "--plot curves needs runs that logged (csv/metrics.csv or tensorboard/ in the run folder), "
                "and none of these did; train with logger=csv (the default), or drop --plot curves"
            )
        if missing:
            first = Path(str(missing[0].get("metrics_path", "?"))).parent
            total = len(missing) + sum(map(len, curves.values()))
            notes.append(
                f"{CURVES_PLOT}: {len(missing)} of {total} runs have no "
                f"csv/metrics.csv or tensorboard/ log and are left out (e.g. {first})"
            )
    return plans, notes


def _png(fig: Figure) -> bytes:
    png = io.BytesIO()
    fig.savefig(png, format="png")
    return png.getvalue()


def write_report(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    reference: bool = True,
    plots: bool = True,
    force: bool = False,
    warn: Callable[[str], None] | None = warn_on_stderr,
    metric: str = "micro",
    only: Sequence[str] | None = None,
    confusion: Sequence[str | os.PathLike[str]] = (),
    confusion_split: str = "val",
) -> Report:
    """Collect, tabulate and write results.csv, table.md and the plots into ``out``.

    ``only`` names the plots to draw (``PLOTS`` keys; default: every plot these runs can make, first_k
    only for sweeps over k); ``confusion`` lists run folders whose ``confusion_<split>.csv`` to draw.
    """
    found = collect(paths, warn=warn)
    sources = [Path(p).expanduser() for p in paths]
    first = sources[0] if sources[0].is_dir() else sources[0].parent
    out_dir = Path(out).expanduser() if out is not None else first / "report"
    table = summarize(found.runs, reference=reference, metric=metric)
    plans, notes = _plan_plots(table, only) if plots else ({}, [])
    matrices: dict[str, tuple[Confusion, str]] = {}
    for folder in map(Path, confusion):
        folder = folder.expanduser()
        matrices[confusion_png(folder, confusion_split)] = (
            read_confusion(folder, confusion_split),
            f"{folder.name} ({confusion_split})",
        )
    names = [CSV_FILE, TABLE_FILE, *plans, *matrices]
    _prepare_out(out_dir, force, names)
    manifest: dict[str, Any] = {
        "written_by": "translearn.report",
        "files": names,
        "inputs": [str(s) for s in sources],
    }
    # The manifest goes first, so a report stopped half-way can still be rewritten without --force.
    (out_dir / MANIFEST).write_text(json.dumps({**manifest, "time": time.time()}, indent=2) + "\n")
    markdown = table_markdown(table, found, sources)
    write_atomic(out_dir / CSV_FILE, results_csv(found.runs))
    write_atomic(out_dir / TABLE_FILE, markdown)
    for name, make in plans.items():
        write_atomic(out_dir / name, _png(make()))
    for name, (matrix, title) in matrices.items():
        write_atomic(out_dir / name, _png(confusion_figure(matrix, title)))
    return Report(found, table, out_dir, [out_dir / n for n in names], markdown, notes)
