"""The probe and the rungs, run as ``python -m translearn.train -m ...`` sweeps into one advise folder.

Layout of ``advise.dir``::

    advise_state.json          settings, measured costs, each rung's plan once decided, time spent
    probe/gradients.json       the relative gradient norms and the step timing (translearn.advise.probe)
    probe/linear/              the linear probe: a one-cell sweep of strategy=freeze
    rung<i>/<family>/          a sweep per family of the rung's candidates (plain, first_k, surgical, lp_ft)
    rung<i>/<family>.log       that command's output
    advice.md, advice.json, advice.png

Every cell is a translearn run folder, so ``python -m translearn.report DIR`` reads the whole search.

Reuse: a rung at the epochs of the rung before it (epochs capped at ``advise.max_epochs``, more seeds)
would train the seeds those rungs trained again, with exactly the same overrides (candidate, epochs,
crops, seed): the very same runs. Its plan lists them as ``reused``, its sweeps train only the other
seeds, and its results (:func:`rung_cells`) are its own runs plus the reused ones, each seed once.

Resume: a rung's plan (candidates, epochs, seeds) is written to the state before its first command
starts, so rerunning the command with ``advise.dir=DIR`` replays exactly the same sweeps with
``sweep.resume=true``: finished cells are skipped (a command whose cells are all complete is not even
started), interrupted ones continue from their last checkpoint, and only then are new rungs planned,
against what is left of the budget (the time of earlier sessions counts). The settings that shape the
search must match the ones the folder was started with; the budget, the launcher and ``advise.parallel``
may change.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from translearn.advise.candidates import Candidate, commands_for, crop_views
from translearn.advise.plan import Costs, Rung, calibrate, first_epochs, fit, next_rung
from translearn.advise.probe import GradientProbe, measure_gradients
from translearn.errors import UserError
from translearn.log import log
from translearn.storage import write_json

STATE_FILE = "advise_state.json"
VERSION = 1


@dataclass
class Cell:
    """One finished run of the search: which candidate it was, and its metrics.json."""

    candidate: Candidate
    metrics: dict[str, Any]


@dataclass
class Request:
    """A validated advise command (``translearn.advise.cli`` builds it)."""

    cfg: Any  # the composed advise config (train config + the advise node)
    folder: Path
    train_overrides: list[str]  # passed to every train command: the user's, plus the launcher
    settings: dict[str, Any]  # what shapes the search; must match on resume
    budget_seconds: float
    parallel: int
    started: float  # time.monotonic() when the command began
    user_overrides: list[str] = field(default_factory=list)  # as typed, for the final command


@dataclass
class State:
    """``advise_state.json``: written after every step, so an interrupted search resumes where it stood."""

    folder: Path
    data: dict[str, Any] = field(default_factory=dict)
    session_start: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, folder: Path, settings: dict[str, Any], started: float) -> State:
        path = folder / STATE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise UserError(
                    f"{path} is unreadable ({exc}); it holds the search's plan, so choose another advise.dir"
                ) from None
            stored = data.get("settings") or {}
            changed = [k for k in sorted(set(stored) | set(settings)) if stored.get(k) != settings.get(k)]
            if changed:
                key = changed[0]
                raise UserError(
                    f"advise.dir={folder} holds a search started with other settings ({key}: "
                    f"{_show(stored.get(key))}, now {_show(settings.get(key))}); rerun its own command "
                    "to resume it, or choose another advise.dir"
                )
            log.info(f"resuming the search in {folder}")
            return cls(folder, data, started)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise UserError(
                f"advise.dir={folder} already holds something that is not an advise search; "
                "choose a new or empty folder"
            )
        folder.mkdir(parents=True, exist_ok=True)
        state = cls(folder, {"version": VERSION, "settings": settings, "spent_seconds": 0.0, "rungs": []})
        state.save()
        return state

    def spent(self) -> float:
        """Seconds of the budget used: earlier sessions, plus this one so far."""
        return float(self.data.get("spent_seconds", 0.0)) + time.monotonic() - self.session_start

    def save(self) -> None:
        self.data["spent_seconds"] = self.spent()
        self.session_start = time.monotonic()
        write_json(self.folder / STATE_FILE, self.data)


def _show(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value) or "(none)"
    return str(value)


def run_sweep(
    request: Request, sweep_dir: Path, overrides: Sequence[str], expected: int, label: str
) -> float | None:
    """One ``translearn.train -m`` command; returns its wall seconds, None when its cells were all done."""
    from translearn.rundir import COMPLETE
    from translearn.sweep import sweep_cells

    cells = sweep_cells(sweep_dir)
    if len(cells) >= expected and all(c.status == COMPLETE for c in cells):
        return None
    args = [*request.train_overrides, *overrides, f"hydra.sweep.dir={sweep_dir}", "sweep.resume=true"]
    command = [sys.executable, "-m", "translearn.train", "-m", *args]
    log_path = sweep_dir.with_name(sweep_dir.name + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log.info(f"{label}: {expected} cell(s), output in {log_path}")
    start = time.monotonic()
    with open(log_path, "a") as out:
        out.write(f"$ {shlex.join(command)}\n")
        out.flush()
        proc = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
    wall = time.monotonic() - start
    if proc.returncode == 130:
        raise KeyboardInterrupt
    if proc.returncode != 0:
        reason = _last_error(log_path)
        if not sweep_cells(sweep_dir):  # refused before any cell: the command itself is wrong
            raise UserError(f"{label} could not start: {reason} (see {log_path})")
        short = reason if len(reason) <= 160 else reason[:159] + "…"
        log.warning(f"{label}: some cells failed ({short}); see {log_path}")
    return wall


def _last_error(log_path: Path) -> str:
    prefix = "translearn: error: "
    try:
        lines = [ln[len(prefix) :] for ln in log_path.read_text().splitlines() if ln.startswith(prefix)]
    except OSError:
        lines = []
    return lines[-1] if lines else "it exited with an error"


def read_cells(folder: Path) -> tuple[list[Cell], list[str]]:
    """The finished runs under ``folder`` as candidates with metrics, and why the other cells have none."""
    from translearn.report.collect import collect
    from translearn.report.recipe import read_config

    if not folder.is_dir():
        return [], []
    found = collect([folder], warn=None, require_runs=False)
    cells = []
    for run in found.runs:
        config = read_config(Path(run["metrics_path"]).parent)
        cells.append(Cell(Candidate.from_run(run, config), run))
    return cells, [f"{i.path.name}: {i.reason}" for i in found.incomplete]


def rung_cells(folder: Path, plans: Sequence[dict[str, Any]], index: int) -> list[Cell]:
    """Rung ``index``'s results: its own runs, plus the seeds it reused from earlier rungs at its epochs
    (its sweeps did not train them again); each candidate and seed once."""
    plan = plans[index]
    reused = set(plan.get("reused") or [])
    members = set(plan["candidates"])
    found = list(read_cells(folder / f"rung{index}")[0])
    for earlier in range(index - 1, -1, -1):  # the nearest first; rungs at the same epochs are adjacent
        if not reused or plans[earlier]["epochs"] != plan["epochs"]:
            break
        for cell in read_cells(folder / f"rung{earlier}")[0]:
            if cell.candidate.key in members and cell.metrics.get("seed") in reused:
                found.append(cell)
    out, seen = [], set()
    for cell in found:
        seed = cell.metrics.get("seed")
        if seed is not None and (cell.candidate, seed) in seen:
            continue
        seen.add((cell.candidate, seed))
        out.append(cell)
    return out


def rank_cells(cells: Sequence[Cell], metric: str) -> list[tuple[Candidate, float]]:
    """Candidates by their mean ``metric`` over seeds, best first; ties go to fewer trainable parameters."""
    by: dict[Candidate, dict[Any, list[float]]] = {}
    params: dict[Candidate, float] = {}
    for cell in cells:
        value = cell.metrics.get(metric)
        if value is None:
            continue
        by.setdefault(cell.candidate, {}).setdefault(cell.metrics.get("seed"), []).append(float(value))
        params[cell.candidate] = float(cell.metrics.get("trainable_params") or 0)
    means = {c: statistics.fmean(statistics.fmean(v) for v in seeds.values()) for c, seeds in by.items()}
    return sorted(means.items(), key=lambda item: (-item[1], params[item[0]], item[0].key))


class Search:
    """The probe, then rung after rung until the schedule ends or the budget would be exceeded."""

    def __init__(self, request: Request, state: State):
        self.request = request
        self.state = state
        self.settings = request.settings
        self.folder = request.folder

    # --- the budget ----------------------------------------------------------------------------------

    def remaining(self) -> float:
        return self.request.budget_seconds - self.state.spent()

    def _too_small(self, what: str, needed: float) -> UserError:
        minimum = max(0.1, math.ceil((self.state.spent() + needed) / 6) / 10)  # minutes, rounded up
        budget = self.request.budget_seconds / 60
        return UserError(
            f"advise.budget_minutes={budget:g} is too small for {what} (about {needed / 60:.1f} more "
            f"minutes after {self.state.spent() / 60:.1f} spent); the minimum is {minimum:.1f} minutes"
        )

    # --- the probe -----------------------------------------------------------------------------------

    def probe(self, imports_seconds: float) -> tuple[GradientProbe, dict[str, Any]]:
        """The gradient probe in this process, then the linear probe as a one-cell sweep; both kept."""
        data = self.state.data
        if "gradients" not in data:
            # The minimum before anything is measured: this process's own start, as much again for the
            # linear probe's command, and a few seconds of batches.
            estimate = 3 * imports_seconds + 10
            if self.remaining() < estimate:
                raise self._too_small("even the probe", estimate)
            gradients = measure_gradients(self.request.cfg, int(self.settings["probe_batches"]))
            data["gradients"] = gradients.as_dict()
            write_json(self.folder / "probe" / "gradients.json", data["gradients"])
            self.state.save()
        gradients = GradientProbe.from_dict(data["gradients"])
        log.info(
            "relative gradient norms ‖g‖/‖w‖ per stage: "
            + ", ".join(f"{n} {r:.2e}" for n, r in zip(gradients.stages, gradients.rgn, strict=True))
        )
        if "linear" not in data:
            epochs = int(self.settings["probe_epochs"])
            estimate = 2 * imports_seconds + gradients.build_seconds + epochs * gradients.epoch_seconds()
            if self.remaining() < estimate:
                raise self._too_small("the linear probe", estimate)
            sweep_dir = self.folder / "probe" / "linear"
            overrides = ["strategy=freeze", f"trainer.max_epochs={epochs}", f"seed={self.settings['seed']}"]
            wall = run_sweep(self.request, sweep_dir, overrides, 1, "probe: linear probe (strategy=freeze)")
            cells, failed = read_cells(sweep_dir)
            if not cells:
                raise UserError(f"the linear probe failed: {failed[0] if failed else 'no result'}")
            m = cells[0].metrics
            data["linear"] = {
                "wall": wall,
                **{
                    k: m.get(k)
                    for k in (
                        "best_val_acc", "best_val_acc_macro", "epochs", "train_seconds", "cache_seconds",
                        "test_seconds", "val_seconds", "feature_cache", "trainable_params", "stage_names",
                    )
                },
                self.settings["metric"]: m.get(self.settings["metric"]),
            }  # fmt: skip
            self.state.save()
        return gradients, data["linear"]

    def initial_costs(self, gradients: GradientProbe, linear: dict[str, Any]) -> Costs:
        """Costs before any rung: the linear probe's command prices start-up and the fixed part of a cell,
        the gradient probe's step time a fine-tuning epoch."""
        train = float(linear.get("train_seconds") or 0.0)
        cell = gradients.build_seconds + float(linear.get("cache_seconds") or 0.0)
        cell += float(linear.get("test_seconds") or 0.0)
        wall = float(linear.get("wall") or 0.0)
        startup = max(1.0, wall - train - cell)
        epochs = max(1, int(linear.get("epochs") or 1))
        return Costs(
            startup=startup,
            cell=cell,
            epoch=max(gradients.epoch_seconds(), train / epochs),
            per_epoch={"freeze": train / epochs},
            parallel=self.request.parallel,
        )

    # --- the rungs -----------------------------------------------------------------------------------

    def run(self, candidates: list[Candidate]) -> None:
        """Replay the rungs already planned, then plan and run new ones while the budget allows."""
        data = self.state.data
        costs = Costs.from_dict(data["costs"])
        costs.parallel = self.request.parallel
        eta, seeds_max = int(self.settings["eta"]), int(self.settings["seeds"])
        max_epochs = int(self.settings["max_epochs"])
        least = max(c.min_epochs() for c in candidates)
        if not data["rungs"]:
            needed = costs.rung(candidates, least, 1) * costs.margin
            if self.remaining() < needed:
                raise self._too_small(
                    f"one pass over the {len(candidates)} candidates (rung 0, {least} epoch(s) each)", needed
                )
            epochs = self.settings["epochs"] or first_epochs(
                candidates, costs, self.remaining(), eta, max_epochs, seeds_max, least
            )
            rung = fit(Rung(0, len(candidates), int(epochs), 1), candidates, costs, self.remaining())
            if rung is None:
                needed = costs.rung(candidates, int(epochs), 1) * costs.margin
                raise self._too_small(f"rung 0 at advise.epochs={epochs}", needed)
            self._record(rung, candidates, costs)
        index = 0
        while True:
            plan = data["rungs"][index]
            rung = Rung(index, len(plan["candidates"]), plan["epochs"], plan["seeds"])
            members = [Candidate.parse(k) for k in plan["candidates"]]
            costs = self._run_rung(rung, members, costs)
            if index + 1 < len(data["rungs"]):
                index += 1
                continue
            planned = next_rung(rung, eta, max_epochs, seeds_max)
            ranked = rank_cells(rung_cells(self.folder, data["rungs"], index), self.settings["metric"])
            if planned is None:
                self._stop(
                    f"the schedule is complete (epochs at advise.max_epochs={max_epochs} or seeds at "
                    f"advise.seeds={seeds_max})"
                )
                return
            if len(ranked) < 2:
                self._stop(f"fewer than two candidates finished rung {index}")
                return
            survivors = [c for c, _ in ranked[: planned.size]]
            planned = Rung(planned.index, len(survivors), planned.epochs, planned.seeds)
            done = self._done(survivors, planned.epochs, index)
            fitted = fit(planned, survivors, costs, self.remaining(), prev=rung, done=done)
            if fitted is None:
                need = costs.rung(survivors, planned.epochs, 1) * costs.margin
                self._stop(
                    f"the budget: rung {planned.index} ({len(survivors)} candidates × {planned.epochs} "
                    f"epochs) needs about {need / 60:.1f} minutes, {max(0.0, self.remaining()) / 60:.1f} left"
                )
                return
            self._record(fitted, survivors, costs, done)
            index += 1

    def _seeds(self, count: int) -> list[int]:
        """The seeds of a rung of ``count`` seeds: always the first ones, so rungs share them."""
        return [int(self.settings["seed"]) + s for s in range(count)]

    def _done(self, members: Sequence[Candidate], epochs: int, last: int) -> int:
        """How many of the first seeds every member already trained, at ``epochs``, in rungs up to ``last``:
        those runs are the ones a rung at ``epochs`` would train, so it reuses them (a failed or
        unfinished run is not reused: its seed is trained again)."""
        metric = self.settings["metric"]
        trained: dict[str, set[Any]] = {}
        for index in range(last + 1):
            if self.state.data["rungs"][index]["epochs"] != epochs:
                continue
            for cell in read_cells(self.folder / f"rung{index}")[0]:
                if cell.metrics.get(metric) is not None:
                    trained.setdefault(cell.candidate.key, set()).add(cell.metrics.get("seed"))
        done = 0
        for seed in self._seeds(int(self.settings["seeds"])):
            if not all(seed in trained.get(c.key, ()) for c in members):
                break
            done += 1
        return done

    def _record(self, rung: Rung, members: Sequence[Candidate], costs: Costs, done: int = 0) -> None:
        self.state.data["rungs"].append(
            {
                "index": rung.index,
                "epochs": rung.epochs,
                "seeds": rung.seeds,
                "reused": self._seeds(done),  # trained by earlier rungs at these epochs: not run again
                "candidates": [c.key for c in members],
                "estimate": round(costs.rung(members, rung.epochs, rung.seeds - done), 1),
                "wall": None,
            }
        )
        self.state.data.pop("stopped", None)
        self.state.save()

    def _stop(self, reason: str) -> None:
        self.state.data["stopped"] = reason
        self.state.save()
        log.info(f"search ends: {reason}")

    def _run_rung(self, rung: Rung, members: Sequence[Candidate], costs: Costs) -> Costs:
        """Every family's sweep of one rung, over the seeds it does not reuse; the costs come back
        calibrated on what ran."""
        plan = self.state.data["rungs"][rung.index]
        reused = set(plan.get("reused") or [])
        seeds = [s for s in self._seeds(rung.seeds) if s not in reused]
        sweep = [f"trainer.max_epochs={rung.epochs}", f"seed={','.join(map(str, seeds))}"]
        sweep += crop_views(self.request.user_overrides, rung.epochs)
        commands = commands_for(members, rung.epochs)
        word = "seed" if len(reused) == 1 else "seeds"
        also = f" ({word} {', '.join(map(str, sorted(reused)))} reused from earlier rungs)" if reused else ""
        wall, ran = 0.0, 0
        for family, overrides in commands:
            n = sum(c.family == family for c in members) * len(seeds)
            took = run_sweep(
                self.request,
                self.folder / f"rung{rung.index}" / family,
                [*overrides, *sweep],
                n,
                f"rung {rung.index}: {family} × {len(seeds)} new seed(s) × {rung.epochs} epoch(s){also}",
            )
            if took is not None:
                wall, ran = wall + took, ran + 1
            self.state.save()
        cells, failed = read_cells(self.folder / f"rung{rung.index}")
        if not cells:
            raise UserError(
                f"every cell of rung {rung.index} failed ({failed[0] if failed else 'no results'}); "
                f"see the logs in {self.folder / f'rung{rung.index}'}"
            )
        if ran:
            plan["wall"] = round((plan.get("wall") or 0.0) + wall, 1)
        if ran == len(commands):  # a rung run whole in this session prices the next one
            timing = [(c.candidate.key, _seconds(c), int(c.metrics.get("epochs") or 1)) for c in cells]
            costs = calibrate(costs, wall, ran, timing)
            self.state.data["costs"] = costs.as_dict()
        self.state.save()
        return costs


def _seconds(cell: Cell) -> float:
    return float(cell.metrics.get("train_seconds") or 0.0)


def start(request: Request, candidates_of: Any, imports_seconds: float) -> tuple[Search, list[Candidate]]:
    """Open (or resume) the folder, probe, and fix the candidates and the first costs."""
    state = State.open(request.folder, request.settings, request.started)
    search = Search(request, state)
    gradients, linear = search.probe(imports_seconds)
    data = state.data
    if "costs" not in data:
        data["costs"] = search.initial_costs(gradients, linear).as_dict()
    candidates = candidates_of(len(gradients.stages))
    data["candidates"] = [c.key for c in candidates]
    state.save()
    return search, candidates
