"""The report's figures, drawn from a Table (and, for curves and confusion, from what runs logged).

- ``accuracy_figure``: grouped bars per dataset (× setup), rgb and gray side by side for each strategy.
- ``params_figure``: accuracy against trainable parameters.
- ``first_k_figure``: the layer-wise transfer curve, accuracy against k for ``strategy=first_k``, with the
  finetune and from-scratch levels of the same dataset × colour × recipe as horizontal lines.
- ``curves_figure``: validation accuracy by epoch, one panel per row, one line per strategy.
- ``confusion_figure``: one run's confusion matrix, coloured by row (recall), counts written in.

matplotlib is imported inside the functions, so ``import translearn.report`` stays quick for code that
only wants the runs or the table; the figures are bare ``Figure`` objects that never touch pyplot.
Error bars are the std over distinct seeds, and none where a cell has one seed.
"""

from __future__ import annotations

import math
import re
import statistics
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from translearn.errors import UserError
from translearn.report.logs import Confusion, Curve
from translearn.report.table import REFERENCE_FREEZE_BN, Row, Table

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.text import Text

# The accuracy bars' group labels (dataset and setup), wrapped at this many characters a line: one long
# line (a long dataset name and a path) was wider than the figure, and the layout squeezed the axes away.
TICK_CHARS = 24


def _figure(width: float, height: float) -> Figure:
    # A bare Figure draws with Agg and never touches pyplot's global state or a display.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained", dpi=110)


def _colors(columns: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {c: cmap(i % 10) for i, c in enumerate(columns)}


def _fit_titles(fig: Figure, titles: Sequence[Text]) -> None:
    """Wrap each title to the width it has: an axes title to its axes, a figure title to the figure.

    Constrained layout makes room above a title but never narrows it, so a long one (a dataset × setup
    label, or "rgb vs gray side by side" over an axes that its legend narrows) ran past the figure's edge
    and over the next panel's title. Measured, since an axes' width depends on its legend and labels.
    """
    original = {id(t): t.get_text() for t in titles}
    for _ in range(4):
        fig.draw_without_rendering()  # lays the figure out, so the extents below are the drawn ones
        fits = True
        for text in titles:
            room = 0.98 * (text.axes.bbox.width if text.axes is not None else fig.bbox.width)
            have = text.get_window_extent().width
            if have <= room:
                continue
            longest = max(len(line) for line in text.get_text().splitlines())
            text.set_text(textwrap.fill(original[id(text)], max(8, int(longest * room / have))))
            fits = False
        if fits:
            return


def _legend(ax: Axes, **kwargs: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False, **kwargs)


def _groups(table: Table) -> tuple[list[tuple[str, ...]], list[str], dict[tuple[Any, ...], Row]]:
    """Rows regrouped for side-by-side bars: groups (dataset × setup), shades (rgb, gray ...), cells."""
    setup_keys = [k for k in table.setup_keys if k != "gray_mode"]
    groups: list[tuple[str, ...]] = []
    shades: list[str] = []
    cells: dict[tuple[Any, ...], Row] = {}
    for row in table.rows:
        group = (str(row.key["dataset"]), *(f"{k}={row.cell(k)}" for k in setup_keys if k not in row.lacks))
        shade = str(row.key["color"])
        if row.key["color"] == "gray" and "gray_mode" in table.key_names:
            shade += f" {row.key['gray_mode']}"
        groups += [group] if group not in groups else []
        shades += [shade] if shade not in shades else []
        cells[group, shade] = row
    shades.sort(key=lambda s: (not s.startswith("rgb"), s))  # rgb first, as the 2017 table reads
    return groups, shades, cells


def accuracy_figure(table: Table) -> Figure:
    """Grouped bars: the table's accuracy per dataset, rgb and gray side by side per strategy, 2017 marked."""
    cols = table.columns
    groups, shades, cells = _groups(table)
    slots = max(1, len(cols) * len(shades))
    fig = _figure(max(6.0, 3.0 + len(groups) * (0.22 * slots + 0.6)), 4.8)
    ax = fig.add_subplot()
    width = 0.8 / slots
    colors = _colors(cols)
    hatches = ["", "//", "..", "xx", "\\\\"]
    labelled: set[str] = set()
    ref_labelled = False
    for i, group in enumerate(groups):
        for j, col in enumerate(cols):
            for s, shade in enumerate(shades):
                row = cells.get((group, shade))
                stat = row.acc.get(col) if row else None
                if row is None or stat is None or stat.mean is None:
                    continue
                x = i - 0.4 + width * (j * len(shades) + s + 0.5)
                label = col if col not in labelled else None
                labelled.add(col)
                ax.bar(
                    [x], [stat.mean], width, yerr=[stat.std if stat.std is not None else math.nan], capsize=2,
                    color=colors[col], alpha=1.0 if s == 0 else 0.55, hatch=hatches[s % len(hatches)],
                    edgecolor="white" if s == 0 else "black", linewidth=0.4, label=label,
                )  # fmt: skip
                for strategy, value in row.reference.items():
                    if table.reference_on.get(strategy) != col:
                        continue
                    label = None if ref_labelled else f"2017 study (its freeze: bn={REFERENCE_FREEZE_BN})"
                    ax.hlines(value, x - width / 2, x + width / 2, colors="black", linewidth=2.0, label=label)
                    ax.plot([x], [value], marker="D", markersize=3.5, color="black")
                    ref_labelled = True
    handles, _ = ax.get_legend_handles_labels()
    if len(shades) > 1:  # one proxy per colour mode: the hatch says which bar of a pair is which
        from matplotlib.patches import Patch

        handles += [
            Patch(facecolor="lightgray", hatch=hatches[s % len(hatches)], edgecolor="black", label=shade)
            for s, shade in enumerate(shades)
        ]
    labels = [textwrap.fill(" ".join(g), TICK_CHARS) for g in groups]
    ax.set_xticks(range(len(groups)), labels, rotation=15, ha="right")
    ax.set_ylim(0.0, 1.0)
    ax.set_ylabel(table.metric)
    title = ax.set_title(
        "Accuracy per dataset and strategy" + (", rgb vs gray side by side" if len(shades) > 1 else "")
    )
    ax.grid(axis="y", alpha=0.3)
    _legend(ax, handles=handles)
    _fit_titles(fig, [title])
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
    ax.set_ylabel(table.metric)
    ax.set_title("Accuracy vs trainable parameters")
    ax.grid(alpha=0.3, which="both")
    _legend(ax, handles=handles)
    return fig


# --- first_k: the layer-wise transfer curve ---------------------------------------------------------


def _levels(table: Table, row: Row) -> dict[str, Any]:
    """The finetune level of this row, and the scratch level (weights=none) of the same recipe."""
    levels: dict[str, Any] = {}
    finetune = row.acc.get("finetune")
    if row.key.get("weights") != "none" and finetune and finetune.mean is not None:
        levels["finetune"] = finetune
    others = [k for k in table.key_names if k != "weights"]
    for other in table.rows:
        if other.key.get("weights") == "none" and all(str(other.key[k]) == str(row.key[k]) for k in others):
            scratch = other.acc.get("finetune")
            if scratch and scratch.mean is not None:
                levels["scratch"] = scratch
    return levels


def first_k_series(table: Table) -> list[dict[str, Any]]:
    """The curves of first_k_figure as data: label, k, mean, std, n per point, and the levels."""
    series = []
    for row in table.rows:
        variants: dict[str, list[str]] = {}
        for col in table.columns:
            if col in table.k_of and col in row.acc and row.acc[col].mean is not None:
                variant = " ".join(p for p in col.split()[1:] if not p.startswith("k="))
                variants.setdefault(variant, []).append(col)
        for variant, cols in variants.items():
            cols.sort(key=lambda c: table.k_of[c])
            stages = next((row.stage_names[c] for c in cols if c in row.stage_names), None)
            points = [(table.k_of[c], row.acc[c], "first_k") for c in cols]
            if not variant:  # finetune is k=0 and freeze is k=every stage: the curve's two ends
                ends = [(0, "finetune")] + ([(len(stages), "freeze")] if stages else [])
                for k, name in ends:
                    stat = row.acc.get(name)
                    if k not in {p[0] for p in points} and stat is not None and stat.mean is not None:
                        points.append((k, stat, name))
                points.sort(key=lambda p: p[0])
            series.append(
                {
                    "label": " ".join(p for p in (row.label(table.key_names), variant) if p),
                    "k": [k for k, _, _ in points],
                    "mean": [stat.mean for _, stat, _ in points],
                    "std": [stat.std for _, stat, _ in points],
                    "n": [stat.n for _, stat, _ in points],
                    "strategy": [name for _, _, name in points],
                    "stage_names": stages,
                    "levels": _levels(table, row),
                }
            )
    return series


def first_k_figure(table: Table) -> Figure:
    """Accuracy against k (stages 1..k frozen), mean ± std over seeds, one line per dataset × colour."""
    series = first_k_series(table)
    if not series:
        raise UserError(
            "no strategy=first_k runs with strategy.k in these runs, so there is no first_k plot; sweep "
            "-m strategy=first_k strategy.k=0,1,2,3,4,5 (or leave the first_k plot out)"
        )
    fig = _figure(9.0, 6.0 + 0.25 * len(series))
    ax = fig.add_subplot()
    colors = _colors([s["label"] for s in series])
    for s in series:
        color = colors[s["label"]]
        ax.errorbar(
            s["k"], s["mean"], yerr=[v if v is not None else math.nan for v in s["std"]],
            marker="o", capsize=3, color=color, label=s["label"],
        )  # fmt: skip
        for name, style, says in (
            ("finetune", "--", "finetune (dashed)"),
            ("scratch", ":", "from scratch (dotted)"),
        ):
            level = s["levels"].get(name)
            if level is not None:
                where = s["label"]
                if name == "scratch":  # the level of the weights=none row, not this row's weights
                    where = re.sub(r"weights=\S+", "weights=none", where)
                label = f"{where}: {says} {level.text()}"
                ax.axhline(level.mean, color=color, linestyle=style, linewidth=1.2, alpha=0.8, label=label)
    ks = sorted({k for s in series for k in s["k"]})
    stages = next((s["stage_names"] for s in series if s["stage_names"]), None)

    def tick(k: int) -> str:
        if not stages:
            return str(k)
        ends = {0: "none\n(finetune)", len(stages): f"{stages[-1]}\n(freeze)"}
        return f"{k}\n{ends.get(k) or stages[min(k, len(stages)) - 1]}"

    ax.set_xticks(ks, [tick(k) for k in ks])
    ax.set_xlabel(
        "k: stages 1..k frozen (the last frozen stage below)" if stages else "k: stages 1..k frozen"
    )
    ax.set_ylabel(table.metric)
    ax.set_title("Layer-wise transfer: accuracy vs frozen stages")
    ax.grid(alpha=0.3)
    # Below the axes, in one column: the labels are long (dataset, colour, recipe, level) and the curve
    # needs the width. "outside" makes the constrained layout leave room: a legend anchored below the
    # axes in two columns was cut at both edges.
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", fontsize="small", frameon=False)
    return fig


# --- curves -----------------------------------------------------------------------------------------


def _mean_curve(curves: Sequence[Curve]) -> tuple[list[int], list[float], list[float]]:
    by_epoch: dict[int, list[float]] = {}
    for curve in curves:
        for epoch, value in zip(curve.epochs, curve.values, strict=True):
            by_epoch.setdefault(epoch, []).append(value)
    epochs = sorted(by_epoch)
    means = [statistics.fmean(by_epoch[e]) for e in epochs]
    stds = [statistics.stdev(by_epoch[e]) if len(by_epoch[e]) > 1 else 0.0 for e in epochs]
    return epochs, means, stds


def curves_figure(table: Table, curves: dict[tuple[int, str], list[Curve]]) -> Figure:
    """Validation accuracy by epoch: a panel per row, a line per strategy (mean over runs, ± std band)."""
    rows = sorted({i for i, _ in curves})
    if not rows:
        raise UserError(
            "no run logged a validation curve (csv/metrics.csv or tensorboard/), so there is no curves plot"
        )
    ncols = min(3, len(rows))
    nrows = math.ceil(len(rows) / ncols)
    fig = _figure(4.2 * ncols + 2.0, 3.2 * nrows)
    colors = _colors(table.columns)
    axes = [fig.add_subplot(nrows, ncols, p + 1) for p in range(len(rows))]
    for ax, i in zip(axes, rows, strict=True):
        row = table.rows[i]
        for col in table.columns:
            if (i, col) not in curves:
                continue
            epochs, means, stds = _mean_curve(curves[i, col])
            ax.plot(
                epochs,
                means,
                marker="o",
                markersize=3,
                color=colors[col],
                label=table.strategy_text(row, col),
            )
            if any(stds):
                low = [m - s for m, s in zip(means, stds, strict=True)]
                high = [m + s for m, s in zip(means, stds, strict=True)]
                ax.fill_between(epochs, low, high, color=colors[col], alpha=0.15)
        ax.set_title(row.label(table.key_names), fontsize="medium")
        ax.set_xlabel("epoch")
        ax.set_ylabel("val/acc")
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    # One legend for every panel: the last panel alone may hold one strategy (scratch is finetune only).
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    fig.legend(list(seen.values()), list(seen), loc="outside right upper", fontsize="small", frameon=False)
    title = fig.suptitle("Validation accuracy by epoch (mean over runs, band: ± std)")
    _fit_titles(fig, [title, *(ax.title for ax in axes)])
    return fig


# --- confusion --------------------------------------------------------------------------------------


def confusion_figure(confusion: Confusion, title: str = "") -> Figure:
    """The matrix coloured by row-normalised counts (each true class's recall), counts written in."""
    k = len(confusion.classes)
    side = min(16.0, max(4.5, 0.45 * k + 2.5))
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    norm = []
    for row in confusion.counts:
        total = sum(row)
        norm.append([c / total if total else 0.0 for c in row])
    image = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of the true class")
    if k <= 30:
        for r in range(k):
            for c in range(k):
                count = confusion.counts[r][c]
                if count:
                    ax.text(c, r, str(count), ha="center", va="center", fontsize="small",
                            color="white" if norm[r][c] > 0.5 else "black")  # fmt: skip
    if k <= 60:
        ax.set_xticks(range(k), confusion.classes, rotation=60, ha="right", fontsize="small")
        ax.set_yticks(range(k), confusion.classes, fontsize="small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    acc = confusion.accuracy
    ax.set_title(f"{title}{'  ' if title else ''}accuracy {acc:.4f}" if acc is not None else title)
    return fig
