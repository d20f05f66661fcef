"""The results table and plots of sweeps: ``python -m translearn.report DIR [DIR ...]``.

Each DIR may be a run directory, a sweep directory, a folder of sweeps, or a ``metrics.json`` itself.
Every ``metrics.json`` below them becomes one run; cells that left ``failure.json`` (or never finished)
are listed apart with their reason (``collect``). The study table (``table``) has one row per dataset ×
colour and one column per strategy, with the 2017 study's numbers beside the columns they are
comparable to; ``plots`` draws it and ``write`` puts results.csv, table.md, accuracy.png and
accuracy_vs_params.png into ``--out`` (default ``<first DIR>/report/``), touching nothing else there.

The same steps are importable, e.g. in notebooks/results.ipynb::

    runs = load_runs("outputs/sweeps/2024-...")      # list of metrics dicts
    table = summarize(runs)                            # Table; table.to_markdown(), table.records()
    fig = accuracy_figure(table)                       # a matplotlib Figure
"""

from translearn.report.collect import (
    NUMERIC_KEYS,
    PRUNED_DIRS,
    REQUIRED_KEYS,
    Collection,
    Incomplete,
    collect,
    load_runs,
    read_metrics,
)
from translearn.report.plots import accuracy_figure, params_figure
from translearn.report.table import (
    ACC,
    CSV_FIRST,
    REFERENCE_BACKBONE,
    REFERENCE_FREEZE_BN,
    REFERENCE_STRATEGIES,
    REFERENCE_WEIGHTS,
    ROW_EXTRAS,
    STRATEGY_ORDER,
    Row,
    Stat,
    Table,
    load_reference,
    results_csv,
    strategy_label,
    summarize,
    table_markdown,
)
from translearn.report.write import (
    ACC_PLOT,
    CSV_FILE,
    MANIFEST,
    PARAMS_PLOT,
    REPORT_FILES,
    TABLE_FILE,
    Report,
    write_report,
)

__all__ = [
    "ACC",
    "ACC_PLOT",
    "CSV_FILE",
    "CSV_FIRST",
    "MANIFEST",
    "NUMERIC_KEYS",
    "PARAMS_PLOT",
    "PRUNED_DIRS",
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
    "Incomplete",
    "Report",
    "Row",
    "Stat",
    "Table",
    "accuracy_figure",
    "collect",
    "load_reference",
    "load_runs",
    "params_figure",
    "read_metrics",
    "results_csv",
    "strategy_label",
    "summarize",
    "table_markdown",
    "write_report",
]
