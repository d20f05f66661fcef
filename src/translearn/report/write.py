"""Writing the report folder: results.csv, table.md and the plots, and nothing else.

A small manifest marks the folder as the report's own, so a rerun may replace its files; a same-named
file the report did not write is kept unless ``force`` says otherwise.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from translearn.errors import UserError
from translearn.report.collect import Collection, collect, warn_on_stderr
from translearn.report.plots import accuracy_figure, params_figure
from translearn.report.table import Table, results_csv, summarize, table_markdown
from translearn.storage import write_atomic

# What the report writes into its folder; nothing else there is ever replaced or deleted.
CSV_FILE, TABLE_FILE = "results.csv", "table.md"
ACC_PLOT, PARAMS_PLOT = "accuracy.png", "accuracy_vs_params.png"
REPORT_FILES = (CSV_FILE, TABLE_FILE, ACC_PLOT, PARAMS_PLOT)
MANIFEST = ".translearn-report.json"  # marks a folder as the report's own, so rewriting it is expected


@dataclass
class Report:
    """What ``write_report`` found, built and wrote."""

    found: Collection
    table: Table
    out: Path
    files: list[Path]
    markdown: str


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


def write_report(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str] | None = None,
    reference: bool = True,
    plots: bool = True,
    force: bool = False,
    warn: Callable[[str], None] | None = warn_on_stderr,
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
