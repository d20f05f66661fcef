"""Split rules: which indexed file goes to train, val or test. Deterministic, stratified (per class).

* ``seed2017``: the 2017 study's rule. Per class, files sorted by name (numbers compared as numbers,
  so ``cat.2`` < ``cat.10``; on zero-padded names such as Simpsons' ``pic_0042`` or Caltech's
  ``042_0042`` this is plain sorting), the first ``round(0.8·n)`` go to train and the rest to val.
  ``0.8·n`` never ends in .5, so the rounding has no tie to break. Per-class rounding, not a global
  80%, is what reproduces the study's numbers: on the 20 Simpsons characters' per-class counts it gives
  train 15638 / val 3910 (a global 80% of 19548 would give 15638.4, floor per class 15629, ceil 15648),
  and on Dogs vs Cats' 12500 images per class it gives 10000 / 2500.
* ``random``: per class, files in a seeded random order; ``round(val_fraction·n)`` to val,
  ``round(test_fraction·n)`` to test, the rest to train. Each file's place in the order is a hash of
  ``(seed, class name, file path)``, so adding or removing one class never changes another, and adding or
  removing one file moves at most the one or two files at its class's split boundaries.
* ``folders``: the split the publisher (or the user) made with train/val/test folders.

Files whose split is fixed by the layout (e.g. the Simpsons test set) keep it under every rule.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from translearn.errors import UserError

SPLIT_RULES = ("seed2017", "random", "folders")
# The 2017 rule keeps 4/5 of each class for training.
SEED2017_TRAIN = (4, 5)


@dataclass(frozen=True)
class Entry:
    """One image found in the layout: its path relative to the root, its class, and a fixed split if any."""

    rel: str
    cls: str
    split: str | None = None


def natural_key(text: str) -> list:
    """Sort key comparing digit runs as numbers: ``cat.2.jpg`` before ``cat.10.jpg``."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", text)]


def seed2017_train_count(n: int) -> int:
    """``round(0.8·n)`` in integer arithmetic (half up; 0.8·n is never a tie)."""
    num, den = SEED2017_TRAIN
    return (2 * num * n + den) // (2 * den)


def _by_class(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(entry.cls, []).append(entry)
    for members in groups.values():
        members.sort(key=lambda e: natural_key(e.rel))
    return groups


def _rank(seed: int, cls: str, rel: str) -> bytes:
    return hashlib.sha256(f"{seed}:{cls}:{rel}".encode()).digest()


def _check_fractions(val_fraction: float, test_fraction: float) -> None:
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise UserError(
            f"dataset.val_fraction={val_fraction} and dataset.test_fraction={test_fraction} must each be "
            "in [0, 1) and sum to less than 1"
        )
    if val_fraction == 0:
        raise UserError("dataset.val_fraction must be > 0: training needs a validation split")


def assign_splits(
    entries: Sequence[Entry],
    rule: str,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> dict[str, list[Entry]]:
    """Split ``entries`` by ``rule``; entries with a fixed ``split`` keep it. Returns split → entries."""
    if rule not in SPLIT_RULES:
        raise UserError(f"dataset.split must be one of {', '.join(SPLIT_RULES)}, got '{rule}'")
    out: dict[str, list[Entry]] = {"train": [], "val": [], "test": []}
    free = []
    for entry in entries:
        if entry.split is not None:
            out[entry.split].append(entry)
        else:
            free.append(entry)
    if free and rule == "folders":
        raise UserError(
            "dataset.split=folders needs train/ and val/ folders in the layout; use dataset.split=random "
            "or seed2017 for a dataset without them"
        )
    if rule == "random":
        _check_fractions(val_fraction, test_fraction)
    for cls, members in sorted(_by_class(free).items()):
        n = len(members)
        if rule == "seed2017":
            n_train = seed2017_train_count(n)
            out["train"] += members[:n_train]
            out["val"] += members[n_train:]
            continue
        # A seeded order of each file by its own hash, not a shuffle of the list: a file added to or
        # removed from a class moves at most the files at the split boundaries. A shuffle's permutation
        # depends on n: one added file moved 58 of its class's 500 between train and val, and eval of an
        # earlier run then scored images it had trained on (audit 7).
        shuffled = sorted(members, key=lambda e: _rank(seed, cls, e.rel))
        n_test = round(n * test_fraction)
        n_val = round(n * val_fraction)
        if n >= 2:  # every class with two images gets one into val and keeps one for training
            n_val = min(max(n_val, 1), n - 1)
            n_test = min(n_test, n - n_val - 1)
        out["test"] += shuffled[:n_test]
        out["val"] += shuffled[n_test : n_test + n_val]
        out["train"] += shuffled[n_test + n_val :]
    for split in out:
        out[split].sort(key=lambda e: natural_key(e.rel))
    return out
