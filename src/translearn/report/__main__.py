"""``python -m translearn.report DIR [DIR ...]``: print the study table and write the report folder.

Bad input (a missing folder, no runs, a bad option, a first_k plot of a sweep without k, a confusion
matrix of a run that has none) is one ``translearn: error:`` line and exit code 2, like every translearn
command, and writes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from translearn.errors import OneLineParser, UserError, exit_with
from translearn.report.table import METRICS, table_with_notes
from translearn.report.write import PLOTS, write_report


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, write the report, and print the table and what was written."""
    parser = OneLineParser(
        usage_hint="python -m translearn.report DIR [DIR ...] [--out DIR] [--metric micro|macro] "
        "[--plot NAME] [--confusion RUN_DIR]",
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
    parser.add_argument(
        "--metric",
        choices=list(METRICS),
        default="micro",
        help="micro: accuracy over all images (best_val_acc); macro: balanced accuracy (best_val_acc_macro)",
    )
    parser.add_argument(
        "--plot",
        action="append",
        choices=list(PLOTS),
        metavar="NAME",
        help=f"draw only this plot (repeatable): {', '.join(PLOTS)}; default: every plot the runs allow",
    )
    parser.add_argument(
        "--confusion",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="also draw this run's confusion matrix (repeatable), from its confusion_<split>.csv",
    )
    parser.add_argument("--confusion-split", choices=["val", "test"], default="val", help="default: val")
    args = parser.parse_args(argv)
    if args.no_plots and args.plot:
        parser.error("--no-plots and --plot contradict each other; pass one of them")
    try:
        report = write_report(
            args.dirs,
            out=args.out,
            reference=not args.no_reference,
            plots=not args.no_plots,
            force=args.force,
            metric=args.metric,
            only=args.plot,
            confusion=args.confusion,
            confusion_split=args.confusion_split,
        )
    except UserError as exc:
        exit_with(str(exc))
    print(table_with_notes(report.table, report.found))
    print()
    n_runs, n_bad = len(report.found.runs), len(report.found.incomplete)
    without = f", {n_bad} cell(s) without a result" if n_bad else ""
    print(f"translearn: {n_runs} run(s) in the table{without}")
    for note in report.notes:
        print(f"translearn: {note}")
    for path in report.files:
        print(f"translearn: wrote {path}")


if __name__ == "__main__":
    main()
