"""Statistics over seeds: a cell's mean ± std with n counting distinct seeds, and gaps between two cells.

Pitfalls this module exists for:

- **Repeated seeds are one sample.** Five runs with ``seed=0`` are the same experiment five times (up to
  GPU non-determinism), not five independent draws: they are averaged first and count as n=1.
- **A gap needs its spread.** A difference of means says nothing until it is set against how much the
  means move between seeds: a gap is *beyond the spread* when it exceeds twice its standard error,
  ``2·sqrt(s1²/n1 + s2²/n2)`` (about a 95% band for normal noise), and has *no spread* when a side has
  n=1. That is a reading aid, not a significance test: a handful of seeds gives a rough std.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

SPREAD_FACTOR = 2.0  # a gap is "beyond the spread" past this many standard errors of the difference


@dataclass
class Stat:
    """One table cell: a value per run, summarised per distinct seed as mean ± sample std."""

    values: list[float] = field(default_factory=list)
    seeds: list[Any] = field(default_factory=list)  # parallel to values; None: unknown, counted apart

    def add(self, value: float, seed: Any = None) -> None:
        self.values.append(float(value))
        self.seeds.append(seed)

    def per_seed(self) -> list[float]:
        """One value per distinct seed (the mean of its runs); runs with an unknown seed stand alone."""
        groups: dict[Any, list[float]] = {}
        for i, value in enumerate(self.values):
            seed = self.seeds[i] if i < len(self.seeds) else None
            groups.setdefault(("seed", seed) if seed is not None else ("run", i), []).append(value)
        return [statistics.fmean(g) for g in groups.values()]

    @property
    def runs(self) -> int:
        return len(self.values)

    @property
    def n(self) -> int:
        """Distinct seeds: the number of independent samples."""
        return len(self.per_seed())

    @property
    def repeated(self) -> dict[Any, int]:
        """The seeds that more than one run used, with how many runs used each."""
        seen: dict[Any, int] = {}
        for seed in self.seeds:
            if seed is not None:
                seen[seed] = seen.get(seed, 0) + 1
        return {s: count for s, count in seen.items() if count > 1}

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.per_seed()) if self.values else None

    @property
    def std(self) -> float | None:
        samples = self.per_seed()
        return statistics.stdev(samples) if len(samples) > 1 else None

    @property
    def sem(self) -> float | None:
        """Standard error of the mean (std / sqrt(n)); None for one seed."""
        return None if self.std is None else self.std / math.sqrt(self.n)

    def text(self) -> str:
        """``0.9400 ± 0.0141 (n=2)``; ``(n=1 of 5 runs)`` where seeds repeat; ``n/a`` without values."""
        if self.mean is None:
            return "n/a"
        n = f"n={self.n}" + (f" of {self.runs} runs" if self.runs > self.n else "")
        spread = f" ± {self.std:.4f}" if self.std is not None else ""
        return f"{self.mean:.4f}{spread} ({n})"


@dataclass(frozen=True)
class Gap:
    """``a − b`` for two cells the study compares, e.g. finetune − freeze, or rgb − gray."""

    name: str  # "finetune − freeze", "rgb − gray (finetune)"
    where: str  # the row it belongs to, e.g. "hymenoptera rgb"
    diff: float
    se: float | None  # standard error of the difference; None when a side has n=1

    @property
    def verdict(self) -> str:
        if self.se is None:
            return "no spread (n=1 on a side)"
        return "beyond spread" if abs(self.diff) > SPREAD_FACTOR * self.se else "within spread"

    @property
    def beyond_spread(self) -> bool:
        return self.verdict == "beyond spread"

    def sentence(self) -> str:
        """One line: ``hymenoptera rgb: finetune − freeze = +0.0300 (beyond spread, 2 SE = 0.0120)``."""
        band = "" if self.se is None else f", 2 SE = {SPREAD_FACTOR * self.se:.4f}"
        return f"{self.where}: {self.name} = {self.diff:+.4f} ({self.verdict}{band})"


def compare(name: str, where: str, a: Stat, b: Stat) -> Gap | None:
    """The gap ``a − b``, or None when a side has no value."""
    if a.mean is None or b.mean is None:
        return None
    se = None if a.sem is None or b.sem is None else math.sqrt(a.sem**2 + b.sem**2)
    return Gap(name, where, a.mean - b.mean, se)
