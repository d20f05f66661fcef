"""``python -m translearn.data prepare DATASET --root DIR [--download] [KEY=VALUE ...]``.

Fetches the dataset where that is possible, verifies every file, writes the index training reads, and
prints the report. Extra ``KEY=VALUE`` overrides are the same as for training (``dataset.classes=all``,
``dataset.split=random``, ``paths.cache_dir=DIR``), so the index prepared here is the one a run with
those overrides uses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from translearn.errors import OneLineParser, UserError, exit_with
from translearn.log import log

DATASETS = ("hymenoptera", "simpsons", "caltech256", "dogs_vs_cats", "imagefolder", "shapes")
USAGE = "python -m translearn.data prepare DATASET [--root DIR] [--download] [dataset.KEY=VALUE ...]"
OVERRIDES_HELP = """\
KEY=VALUE overrides, as for training (the index prepared here is the one a run with the same keys reads):
  dataset.KEY=VALUE    any key of the dataset's config, e.g.
                         dataset.classes=all | dataset.classes=[ants,bees]   which classes to keep
                         dataset.top_n=10                  the 10 selected classes with the most images
                         dataset.split=random dataset.val_fraction=0.2 dataset.test_fraction=0.1
                         dataset.exclude_clutter=true      (caltech256)  dataset.test_set=false (simpsons)
  paths.cache_dir=DIR  where the index and report go (under index/); paths.data_dir=DIR: the default root
  seed=N               seeds split=random, as in training
Every key of a dataset: python -m translearn.train dataset=DATASET --cfg job --package dataset"""


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        usage_hint=USAGE,
        prog="python -m translearn.data",
        description="Fetch (where possible), verify and index a dataset for translearn.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    prep = sub.add_parser(
        "prepare",
        help="download (optional), verify every file, write the index and report; KEY=VALUE overrides "
        "(dataset.classes=all) as for training",
        usage_hint=USAGE,
        usage="%(prog)s DATASET [--root DIR] [--download] [--reverify] [dataset.KEY=VALUE ...]",
        epilog=OVERRIDES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    prep.add_argument("dataset", help=f"one of: {', '.join(DATASETS)}")
    prep.add_argument("--root", help="where the data lives (default: the dataset config's root)")
    prep.add_argument("--download", action="store_true", help="fetch the data into --root first, if missing")
    prep.add_argument("--reverify", action="store_true", help="decode every file again, ignoring the cache")
    # KEY=VALUE config overrides (dataset.classes=all) are what parse_known_args leaves over: as an
    # optional positional, argparse listed them as "required" when the dataset was missing.
    return p


def prepare(dataset: str, root: str | None, download: bool, reverify: bool, overrides: list[str]) -> int:
    """Compose the dataset's config as training would, then download, verify and index it."""
    from hydra.errors import HydraException
    from hydra.utils import get_class
    from omegaconf.errors import OmegaConfBaseException

    from translearn.config import check_keys, check_nested_keys, compose_config, instantiate, one_line
    from translearn.data.prepare import PreparedDataModule

    check_prepare_keys(overrides)
    extra = [f"dataset.root={Path(root).expanduser().absolute()}"] if root else []
    command = [f"dataset={dataset}", *extra, *overrides]
    try:
        cfg = compose_config(command)
        check_keys("dataset", cfg.dataset)  # +dataset.clases=all: the likely key, not a TypeError
        target = get_class(cfg.dataset._target_)
        data_root = Path(str(cfg.dataset.root)).expanduser()
    except (HydraException, OmegaConfBaseException) as exc:
        check_nested_keys(command, str(exc), None, "train")  # dataset.splt=x: "did you mean dataset.split?"
        raise UserError(one_line(exc)) from None
    if download:
        if hasattr(target, "download"):
            target.download(data_root)
        else:
            log.info(f"{dataset} is drawn on the fly; nothing to download")
    datamodule = instantiate(cfg.dataset)
    if not isinstance(datamodule, PreparedDataModule):
        datamodule.prepare_data()
        print(f"translearn: {dataset} is ready under {data_root}")
        return 0
    result = datamodule.prepare(reverify=reverify)
    print(datamodule.report(result), end="")
    print(f"translearn: {datamodule.summary(result)}")
    return 0


def check_prepare_keys(overrides: list[str]) -> None:
    """Only keys the index depends on: ``strategy=freeze`` was accepted and did nothing.

    The dataset's keys, where the data and the index live (``paths.*``), and ``seed``, which
    ``dataset.seed`` follows (``split=random``).
    """
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key == "dataset":
            raise UserError(f"{override}: give the dataset as prepare's first argument (prepare DATASET ...)")
        if not (key.startswith(("dataset.", "paths.")) or key == "seed"):
            raise UserError(
                f"prepare takes dataset.* keys only (and paths.*, seed), not {override}: the index depends "
                "on nothing else; training's keys go to python -m translearn.train"
            )


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    # Overrides may follow the options (prepare X --root DIR dataset.classes=all); argparse leaves them over.
    args, extra = cli.parse_known_args(argv)
    unknown = [a for a in extra if "=" not in a or a.startswith("-")]
    if unknown:
        cli.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = extra
    try:
        return prepare(args.dataset, args.root, args.download, args.reverify, args.overrides)
    except UserError as exc:
        exit_with(str(exc))


if __name__ == "__main__":
    sys.exit(main())
