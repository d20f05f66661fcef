"""The report's two figures: accuracy per row and strategy, and accuracy against trainable parameters.

matplotlib is imported inside the functions, so ``import translearn.report`` stays quick for code that
only wants the runs or the table; the figures are bare ``Figure`` objects that never touch pyplot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from translearn.report.table import REFERENCE_FREEZE_BN, Table

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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
