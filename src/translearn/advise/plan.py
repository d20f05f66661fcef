"""Successive halving against a wall-clock budget: the shape of the rungs and what each one costs.

Rung 0 trains every candidate for r epochs with one seed; each later rung keeps the best 1/eta (at least 2,
so the answer always compares two), trains them eta times longer (up to ``max_epochs``) with one more seed
(up to ``seeds``). Pure arithmetic: no training here, so it is tested on synthetic costs.

Pitfalls:

* A rung that repeats the previous one's epochs with no more seeds would retrain the very same runs
  (training is deterministic per seed): the schedule ends there. One that repeats its epochs with more
  seeds trains only the new seeds: the earlier ones are the very same runs, reused, so it is priced at
  its new seeds alone (``fit``'s ``done``; ``schedule_cost``). At more epochs nothing is reused: a
  shorter run is another run (fewer epochs to its best accuracy; the cached crops, LP-FT's probe epochs
  and a cosine schedule all follow ``trainer.max_epochs``), not a substitute.
* Costs are estimates (the probe's timing, then the cells' own ``train_seconds``); a rung is started only
  if its estimate times a margin fits what is left (``FIRST_SAFETY`` while only the probe has been timed:
  on a shared machine a snapshot can be off several-fold; ``SAFETY`` once a rung has priced the cells),
  and one that does not fit is first shrunk to fewer seeds before the search stops.
* The budget is wall-clock time, so on ``launcher=gpus`` with 8 slots a rung's cells cost an eighth
  (``parallel``).
* Each command pays an interpreter start (``startup``) however few cells it runs; a rung runs one command
  per family of its candidates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from translearn.advise.candidates import Candidate, commands_for

SAFETY = 1.2  # a rung starts only if its estimated cost times this fits in the budget left ...
FIRST_SAFETY = 1.5  # ... or times this while the costs are the probe's alone (no rung has run yet)


@dataclass(frozen=True)
class Rung:
    """One rung of the schedule: how many candidates, for how many epochs, over how many seeds."""

    index: int
    size: int
    epochs: int
    seeds: int


@dataclass
class Costs:
    """Seconds, measured by the probe and refined after every rung."""

    startup: float  # per train command, before its first cell: interpreter, imports, checks, data index
    cell: float  # per cell besides its epochs: model, feature cache, test, checkpoints
    epoch: float  # per epoch of a candidate not measured yet (a full forward and backward epoch)
    per_epoch: dict[str, float] = field(default_factory=dict)  # measured, by candidate key
    parallel: int = 1  # cells that run at once (launcher=gpus: GPU slots)
    measured: bool = False  # refined by a rung's own cells (calibrate), not only the probe's snapshot

    @property
    def margin(self) -> float:
        """How much room an estimate needs: more while it rests on the probe alone."""
        return SAFETY if self.measured else FIRST_SAFETY

    def epoch_of(self, key: str) -> float:
        return self.per_epoch.get(key, self.epoch)

    def command(self, epoch_seconds: Sequence[float], epochs: int, seeds: int) -> float:
        """One train command sweeping cells whose epochs cost ``epoch_seconds``, ``seeds`` seeds each."""
        cells = len(epoch_seconds) * seeds
        if not cells:
            return 0.0
        work = sum(self.cell + epochs * e for e in epoch_seconds) * seeds
        return self.startup + work / min(max(1, self.parallel), cells)

    def rung(self, candidates: Sequence[Candidate], epochs: int, seeds: int) -> float:
        """The estimated wall-clock seconds of a rung of these candidates."""
        by_family: dict[str, list[float]] = {}
        for c in candidates:
            by_family.setdefault(c.family, []).append(self.epoch_of(c.key))
        return sum(self.command(e, epochs, seeds) for e in by_family.values())

    def typical(self, size: int, epochs: int, seeds: int, families: int) -> float:
        """A rung of ``size`` candidates not chosen yet: the mean epoch cost, ``families`` commands."""
        known = list(self.per_epoch.values()) or [self.epoch]
        mean = sum(known) / len(known)
        commands = max(1, min(size, families))
        shares = [len(range(i, size, commands)) for i in range(commands)]  # candidates per command
        return sum(self.command([mean] * n, epochs, seeds) for n in shares)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Costs:
        return cls(**data)


def next_size(size: int, eta: int) -> int:
    """The top 1/eta of a rung, at least 2."""
    return max(2, math.ceil(size / eta))


def next_rung(prev: Rung, eta: int, max_epochs: int, max_seeds: int) -> Rung | None:
    """The rung after ``prev``, or None where it would retrain the same runs (epochs and seeds capped)."""
    epochs = min(prev.epochs * eta, max_epochs)
    seeds = min(prev.seeds + 1, max_seeds)
    if prev.size < 2 or (epochs <= prev.epochs and seeds <= prev.seeds):
        return None
    return Rung(prev.index + 1, min(prev.size, next_size(prev.size, eta)), epochs, seeds)


def schedule(size: int, first_epochs: int, eta: int, max_epochs: int, max_seeds: int) -> list[Rung]:
    """The whole schedule if the budget were no limit."""
    rungs = [Rung(0, size, min(first_epochs, max_epochs), 1)]
    while (nxt := next_rung(rungs[-1], eta, max_epochs, max_seeds)) is not None:
        rungs.append(nxt)
    return rungs


def new_seeds(rung: Rung, prev: Rung | None) -> int:
    """The seeds ``rung`` trains: those ``prev`` trained at the same epochs are reused, not retrained."""
    if prev is not None and prev.epochs == rung.epochs:
        return max(0, rung.seeds - prev.seeds)
    return rung.seeds


def schedule_cost(rungs: Sequence[Rung], costs: Costs, first: Sequence[Candidate], families: int) -> float:
    """Estimated seconds of a whole schedule: rung 0 of ``first`` exactly, later rungs typically (at
    their new seeds only)."""
    total, prev = 0.0, None
    for rung in rungs:
        if rung.index == 0:
            total += costs.rung(first, rung.epochs, rung.seeds)
        else:
            total += costs.typical(rung.size, rung.epochs, new_seeds(rung, prev), families)
        prev = rung
    return total


def first_epochs(
    candidates: Sequence[Candidate],
    costs: Costs,
    remaining: float,
    eta: int,
    max_epochs: int,
    max_seeds: int,
    least: int,
) -> int:
    """Rung 0's epochs: the most (up to ``max_epochs``) whose whole schedule fits, else ``least``."""
    families = len(commands_for(candidates, least))
    for epochs in range(max_epochs, least, -1):
        rungs = schedule(len(candidates), epochs, eta, max_epochs, max_seeds)
        if schedule_cost(rungs, costs, candidates, families) * costs.margin <= remaining:
            return epochs
    return least


def fit(
    planned: Rung,
    candidates: Sequence[Candidate],
    costs: Costs,
    remaining: float,
    prev: Rung | None = None,
    done: int = 0,
) -> Rung | None:
    """``planned`` with as many of its seeds as the budget left allows; None if not even one seed fits
    (or the seeds that fit would only repeat ``prev``'s runs). ``done``: its first seeds, already trained
    at its epochs by earlier rungs, are reused: only the others are priced."""
    for seeds in range(planned.seeds, done, -1):
        if prev is not None and planned.epochs <= prev.epochs and seeds <= prev.seeds:
            return None
        if costs.rung(candidates, planned.epochs, seeds - done) * costs.margin <= remaining:
            return replace(planned, seeds=seeds)
    return None


def calibrate(costs: Costs, wall: float, commands: int, cells: Sequence[tuple[str, float, int]]) -> Costs:
    """Costs refined by a rung that ran: ``cells`` are (candidate key, train_seconds, epochs) of its runs.

    Each candidate's seconds per epoch become its own cells' mean; the rest of the rung's wall time,
    beyond the commands' start-up, is spread over the cells as their fixed cost.
    """
    if not cells:
        return costs
    per_key: dict[str, list[float]] = {}
    for key, seconds, epochs in cells:
        per_key.setdefault(key, []).append(seconds / max(1, epochs))
    per_epoch = {**costs.per_epoch, **{k: sum(v) / len(v) for k, v in per_key.items()}}
    parallel = max(1, costs.parallel)
    overhead = wall - sum(s for _, s, _ in cells) / min(parallel, len(cells))
    startup, cell = costs.startup, costs.cell
    if overhead < commands * startup:
        startup, cell = max(0.0, overhead) / max(1, commands), 0.0
    else:
        cell = (overhead - commands * startup) * min(parallel, len(cells)) / len(cells)
    return replace(costs, startup=startup, cell=cell, per_epoch=per_epoch, measured=True)
