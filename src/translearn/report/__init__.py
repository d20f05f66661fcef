"""The results table and plots of sweeps: ``python -m translearn.report DIR [DIR ...]``.

Each DIR may be a run directory, a sweep directory, a folder of sweeps, or a ``metrics.json`` itself.
Every ``metrics.json`` below them becomes one run, with its recipe read from ``.hydra/config.yaml``
(``recipe``); cells that left ``failure.json`` (or never finished) are listed apart with their reason
(``collect``). The study table (``table``) has a line per dataset × colour × recipe × strategy: runs with
different recipes are never averaged, n counts distinct seeds (``stats``), the finetune − freeze and
rgb − gray gaps are read against their spread, and caveats (still improving, selected on the reported
split: ``checks``) come with it. ``plots`` draws it, with the run logs of ``logs`` (curves, confusion
matrices), and ``write`` puts results.csv, table.md and the PNGs into ``--out`` (default
``<first DIR>/report/``), touching nothing else there.

The same steps are importable, e.g. in notebooks/results.ipynb::

    runs = load_runs("outputs/sweeps/2024-...")      # list of metrics dicts
    table = summarize(runs, metric="micro")            # Table; to_markdown(), gaps, warnings, records()
    fig = accuracy_figure(table)                       # a matplotlib Figure; also first_k_figure(table),
    curves, missing = cell_curves(table)               #   curves_figure(table, curves) and
    fig = confusion_figure(read_confusion(run_dir))    #   confusion_figure(...)
"""

from translearn.report.checks import caveats
from translearn.report.collect import (
    NUMERIC_KEYS,
    PRUNED_DIRS,
    REQUIRED_KEYS,
    Collection,
    Incomplete,
    collect,
    load_runs,
    read_metrics,
    run_folder,
)
from translearn.report.logs import Confusion, Curve, best_epoch, cell_curves, read_confusion, read_curve
from translearn.report.plots import (
    accuracy_figure,
    confusion_figure,
    curves_figure,
    first_k_figure,
    first_k_series,
    params_figure,
)
from translearn.report.recipe import RECIPE_KEYS, read_recipe
from translearn.report.stats import Gap, Stat, compare
from translearn.report.table import (
    ACC,
    CSV_FIRST,
    METRICS,
    REFERENCE_BACKBONE,
    REFERENCE_FREEZE_BN,
    REFERENCE_STRATEGIES,
    REFERENCE_WEIGHTS,
    ROW_EXTRAS,
    STRATEGY_ORDER,
    Row,
    Table,
    k_label,
    load_reference,
    results_csv,
    strategy_label,
    summarize,
    table_markdown,
    table_with_notes,
)
from translearn.report.write import (
    ACC_PLOT,
    CSV_FILE,
    CURVES_PLOT,
    FIRST_K_PLOT,
    MANIFEST,
    PARAMS_PLOT,
    PLOTS,
    REPORT_FILES,
    TABLE_FILE,
    Report,
    confusion_png,
    write_report,
)

__all__ = [
    "ACC",
    "ACC_PLOT",
    "CSV_FILE",
    "CSV_FIRST",
    "CURVES_PLOT",
    "FIRST_K_PLOT",
    "MANIFEST",
    "METRICS",
    "NUMERIC_KEYS",
    "PARAMS_PLOT",
    "PLOTS",
    "PRUNED_DIRS",
    "RECIPE_KEYS",
    "REFERENCE_BACKBONE",
    "REFERENCE_FREEZE_BN",
    "REFERENCE_STRATEGIES",
    "REFERENCE_WEIGHTS",
    "REPORT_FILES",
    "REQUIRED_KEYS",
    "ROW_EXTRAS",
    "STRATEGY_ORDER",
    "TABLE_FILE",
    "Collection",
    "Confusion",
    "Curve",
    "Gap",
    "Incomplete",
    "Report",
    "Row",
    "Stat",
    "Table",
    "accuracy_figure",
    "best_epoch",
    "caveats",
    "cell_curves",
    "collect",
    "compare",
    "confusion_figure",
    "confusion_png",
    "curves_figure",
    "first_k_figure",
    "first_k_series",
    "k_label",
    "load_reference",
    "load_runs",
    "params_figure",
    "read_confusion",
    "read_curve",
    "read_metrics",
    "read_recipe",
    "results_csv",
    "run_folder",
    "strategy_label",
    "summarize",
    "table_markdown",
    "table_with_notes",
    "write_report",
]
