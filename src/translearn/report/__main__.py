"""``python -m translearn.report DIR [DIR ...]``: print the study table and write the report folder.

Bad input (a missing folder, no runs, a bad option) is one ``translearn: error:`` line and exit code 2,
like every translearn command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import NoReturn

from translearn.errors import UserError, exit_with
from translearn.report.table import table_with_notes
from translearn.report.write import write_report


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, like every translearn error
        exit_with(f"{message} (usage: python -m translearn.report DIR [DIR ...] [--out DIR])")


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, write the report, and print the table and what was written."""
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
    print(table_with_notes(report.table, report.found))
    print()
    n_runs, n_bad = len(report.found.runs), len(report.found.incomplete)
    without = f", {n_bad} cell(s) without a result" if n_bad else ""
    print(f"translearn: {n_runs} run(s) in the table{without}")
    for path in report.files:
        print(f"translearn: wrote {path}")


if __name__ == "__main__":
    main()
