"""Caveats that change how a table should be read, each one line: the report's honest statistics.

- **Still improving.** When most runs reached their best validation accuracy in their last epoch, the
  training was cut short and a ranking of strategies may only rank how fast they learn. metrics.json's
  ``best_epoch`` (0-based) and ``epochs`` say so; older runs fall back to ``csv/metrics.csv``. One-epoch
  runs say nothing about it and are not counted.
- **Selected and reported on one split.** best_val_acc is the maximum over epochs of the validation
  accuracy, so it is chosen on the very numbers it reports: optimistic, the more so the more epochs and
  the smaller the split. A run with a test split reports test_acc of the checkpoint chosen on val.
- **Different inputs.** Strategies that read cached eval-transform features trained without augmentation;
  beside strategies that trained on random crops, the table compares augmentation as well as freezing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from translearn.report.collect import run_folder
from translearn.report.logs import best_epoch


def still_improving(runs: Sequence[dict[str, Any]]) -> str | None:
    """A warning when more than half the runs (of those whose best epoch is known) peaked last."""
    known = last = 0
    for run in runs:
        found = best_epoch(run, run_folder(run))
        if found is None or found[1] < 2:
            continue
        known += 1
        last += found[0] >= found[1] - 1
    if not known or 2 * last <= known:
        return None
    return (
        f"{last} of {known} runs reached their best validation accuracy in their last epoch: they were still "
        "improving, so the table may rank how fast strategies learn rather than where they end; train "
        "longer (trainer.max_epochs=...)"
    )


def _has_test_split(run: dict[str, Any]) -> bool:
    sizes = run.get("split_sizes")
    if isinstance(sizes, dict) and sizes.get("test") is not None:
        return bool(sizes["test"])
    return run.get("test_acc") is not None


def same_split(runs: Sequence[dict[str, Any]], metric: str) -> str | None:
    """A warning when accuracy was selected and reported on the validation split with no test split."""
    without = sum(not _has_test_split(r) for r in runs)
    if not without or not metric.startswith("best_val"):
        return None
    return (
        f"{without} of {len(runs)} runs have no test split: {metric} is selected (best epoch) and reported "
        "on the same validation split, so it is optimistic; compare strategies on a held-out test split "
        "(test_acc in results.csv) where you can"
    )


def mixed_inputs(runs: Sequence[dict[str, Any]]) -> str | None:
    """A warning when strategies trained on different inputs: augmented crops beside cached eval views.

    The feature cache's default (``strategy.cache_views=1``) trains a frozen prefix's strategies on the eval
    transform, while finetune trains on random crops: a table of both compares augmentation as well as
    freezing. Runs without ``train_inputs`` (older ones) say nothing and are not counted.
    """
    by_inputs: dict[str, set[str]] = {}
    for run in runs:
        if run.get("train_inputs"):
            by_inputs.setdefault(str(run["train_inputs"]), set()).add(str(run.get("strategy")))
    if len(by_inputs) < 2:
        return None
    seen = "; ".join(f"{inputs}: {', '.join(sorted(names))}" for inputs, names in sorted(by_inputs.items()))
    return (
        f"the strategies trained on different inputs ({seen}), so the table compares augmentation as well "
        "as frozen layers; for like with like set strategy.cache_views to trainer.max_epochs (the cache "
        "stores the very crops) or strategy.cache_features=false"
    )


def caveats(runs: Sequence[dict[str, Any]], metric: str) -> list[str]:
    """Every caveat that applies to these runs."""
    return [w for w in (still_improving(runs), same_split(runs, metric), mixed_inputs(runs)) if w]
