"""translearn.advise: the search space, the budgeted schedule, the noise-aware decision, and one real
search at toy size (probe, rungs, answer, resume, and the report reading its folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from helpers import assert_user_error
from translearn.advise import answer, cli, plan, search
from translearn.advise.candidates import Candidate, candidates_for, commands_for
from translearn.advise.cli import main, validate
from translearn.advise.probe import GradientProbe
from translearn.advise.search import STATE_FILE, State, rank_cells, read_cells
from translearn.config import compose_config, expand_sweep
from translearn.errors import UserError
from translearn.report.stats import Stat

RESNET18_STAGES = ["stem", "layer1", "layer2", "layer3", "layer4"]

# --- the search space ---------------------------------------------------------------------------------


def test_candidates_cover_each_policy_once_and_drop_the_surgical_stage_first_k_already_trains() -> None:
    keys = [c.key for c in candidates_for(5)]
    assert keys == [
        "freeze", "first_k k=1", "first_k k=2", "first_k k=3", "first_k k=4",
        "surgical [1]", "surgical [2]", "surgical [3]", "surgical [4]", "finetune", "lp_ft", "auto_rgn",
    ]  # fmt: skip
    assert "surgical [5]" in [c.key for c in candidates_for(5, ["surgical"])]  # no first_k k=4 then
    assert Candidate("first_k", k=3).trains(RESNET18_STAGES) == "layer3–layer4 and the head"
    assert Candidate("freeze").trains(RESNET18_STAGES) == "the head only"
    assert all(Candidate.parse(c.key) == c for c in candidates_for(5))


def test_a_rung_is_one_sweep_per_family_and_hydra_expands_surgical_stage_lists() -> None:
    members = [Candidate("freeze"), Candidate("surgical", stages=(2,)), Candidate("surgical", stages=(3,))]
    members += [Candidate("finetune"), Candidate("lp_ft")]
    commands = dict(commands_for(members, epochs=6))
    assert commands == {
        "plain": ["strategy=freeze,finetune"],
        "surgical": ["strategy=surgical", "strategy.stages=[2],[3]"],
        "lp_ft": ["strategy=lp_ft", "strategy.probe_epochs=3"],
    }
    cells = expand_sweep(commands["surgical"])
    assert [c[1] for c in cells] == ["strategy.stages=[2]", "strategy.stages=[3]"]
    assert list(compose_config(cells[1]).strategy.stages) == [3]


# --- the schedule against a budget (synthetic costs, no training) ---------------------------------------


def _costs(**kw: Any) -> plan.Costs:
    return plan.Costs(**{"startup": 10.0, "cell": 2.0, "epoch": 1.0, **kw})


def test_the_schedule_keeps_the_top_third_trains_it_eta_times_longer_with_one_more_seed() -> None:
    rungs = plan.schedule(14, first_epochs=2, eta=3, max_epochs=15, max_seeds=3)
    assert [(r.size, r.epochs, r.seeds) for r in rungs] == [(14, 2, 1), (5, 6, 2), (2, 15, 3)]
    # capped epochs and seeds would only retrain the same runs: the schedule ends there
    assert plan.next_rung(rungs[-1], eta=3, max_epochs=15, max_seeds=3) is None
    assert [r.size for r in plan.schedule(40, 1, 3, 10**6, 10)[:5]] == [40, 14, 5, 2, 2]


def test_a_rung_costs_a_start_per_family_plus_its_cells_shared_over_parallel_slots() -> None:
    members = candidates_for(5, ["freeze", "first_k"])  # 2 families, 5 candidates
    one = _costs().rung(members, epochs=3, seeds=2)
    assert one == pytest.approx(2 * 10 + 5 * 2 * (2 + 3 * 1.0))
    eight = _costs(parallel=8).rung(members, epochs=3, seeds=2)
    assert eight == pytest.approx(2 * 10 + 2 * (2 + 3) / 2 + 8 * (2 + 3) / 8)  # every cell has its slot


def test_a_rung_over_budget_is_shrunk_to_fewer_seeds_and_never_started_when_one_seed_does_not_fit() -> None:
    members = candidates_for(5, ["first_k"])[:2]
    costs = _costs()  # 1 command: 10 s + 2 candidates x seeds x (2 + 5 epochs)
    planned = plan.Rung(1, 2, 5, 3)
    per_seed = 2 * 7
    margin = costs.margin  # FIRST_SAFETY: no rung has priced the cells yet
    assert margin == plan.FIRST_SAFETY > plan.SAFETY
    assert plan.fit(planned, members, costs, remaining=(10 + 3 * per_seed) * margin).seeds == 3
    assert plan.fit(planned, members, costs, remaining=(10 + 2 * per_seed) * margin).seeds == 2
    assert plan.fit(planned, members, costs, remaining=(10 + per_seed) * margin - 1) is None
    # one seed at the previous rung's epochs would retrain its runs: not worth starting
    assert plan.fit(plan.Rung(2, 2, 5, 2), members, costs, 1e9, prev=plan.Rung(1, 2, 5, 2)) is None


def test_a_rung_at_the_epochs_of_the_one_before_is_priced_at_its_new_seeds_only() -> None:
    members = candidates_for(5, ["first_k"])[:2]
    costs = _costs()
    per_seed = 2 * 7  # 2 candidates x (2 + 5 epochs)
    prev, planned = plan.Rung(1, 2, 5, 2), plan.Rung(2, 2, 5, 3)
    room = (10 + per_seed) * costs.margin  # one seed's cells and a start
    assert plan.fit(planned, members, costs, room, prev=prev) is None  # all 3 seeds priced: nothing fits
    assert plan.fit(planned, members, costs, room, prev=prev, done=2).seeds == 3  # seeds 0 and 1 reused
    rungs = plan.schedule(6, first_epochs=5, eta=3, max_epochs=5, max_seeds=3)
    assert [(r.size, r.epochs, r.seeds) for r in rungs] == [(6, 5, 1), (2, 5, 2), (2, 5, 3)]
    first_k = candidates_for(7, ["first_k"])  # 6 candidates, one command
    total = plan.schedule_cost(rungs, costs, first_k, families=1)
    assert total == pytest.approx(costs.rung(first_k, 5, 1) + 2 * costs.typical(2, 5, 1, families=1))


def test_rung_zero_gets_the_most_epochs_whose_whole_schedule_fits() -> None:
    members = candidates_for(5)
    costs = _costs(per_epoch={"freeze": 0.1})
    budget = 350.0
    r = plan.first_epochs(members, costs, budget, eta=3, max_epochs=15, max_seeds=3, least=2)

    def total(epochs: int) -> float:
        rungs = plan.schedule(len(members), epochs, 3, 15, 3)
        return plan.schedule_cost(rungs, costs, members, families=4) * costs.margin

    assert 2 <= r < 15 and total(r) <= budget < total(r + 1)
    assert plan.first_epochs(members, costs, 1.0, 3, 15, 3, least=2) == 2  # nothing fits: the least


def test_calibration_prices_each_candidate_by_its_own_seconds_per_epoch() -> None:
    cells = [("freeze", 1.0, 2), ("finetune", 8.0, 2), ("finetune", 12.0, 2)]
    tight = plan.calibrate(_costs(), wall=40.0, commands=2, cells=cells)
    assert tight.per_epoch == {"freeze": 0.5, "finetune": 5.0}
    # 21 s of training and 2 starts of 10 s exceed 40 s: the starts shrink to what is left, cells cost 0
    assert (tight.startup, tight.cell) == (9.5, 0.0)
    roomy = plan.calibrate(_costs(), wall=60.0, commands=2, cells=cells)
    assert roomy.startup == 10.0 and roomy.cell == pytest.approx((60 - 21 - 20) / 3)
    assert roomy.margin == plan.SAFETY  # measured costs need less room than the probe's snapshot


# --- the rungs, with every train command faked (no training) ---------------------------------------------

SCORES = {"freeze": 0.5, "first_k k=1": 0.6, "first_k k=2": 0.7, "first_k k=3": 0.8}


class FakeTraining:
    """Stands in for ``translearn.train -m``: records every cell a rung's commands would train, and keeps a
    finished run (metrics.json as read_cells returns it) for each."""

    def __init__(self) -> None:
        self.trained: list[tuple[str, int, int]] = []  # (candidate, seed, epochs), one per cell run
        self.runs: dict[Path, list[search.Cell]] = {}  # by sweep folder

    def run_sweep(self, _: Any, sweep_dir: Path, overrides: list[str], expected: int, label: str) -> float:
        cells = expand_sweep(list(overrides))
        assert len(cells) == expected, label
        for cell in cells:
            o = dict(x.split("=", 1) for x in cell)
            candidate = Candidate(o["strategy"], k=int(o["strategy.k"]) if "strategy.k" in o else None)
            seed, epochs = int(o["seed"]), int(o["trainer.max_epochs"])
            self.trained.append((candidate.key, seed, epochs))
            metrics = {
                "seed": seed, "epochs": epochs, "train_seconds": 2.0 * epochs, "trainable_params": 1000,
                "best_val_acc": SCORES[candidate.key] + 0.01 * seed, "split_sizes": {"val": 100},
            }  # fmt: skip
            self.runs.setdefault(sweep_dir, []).append(search.Cell(candidate, metrics))
        return 1.0

    def read_cells(self, folder: Path) -> tuple[list[search.Cell], list[str]]:
        return [c for d, cells in self.runs.items() if d.is_relative_to(folder) for c in cells], []


def _fake_search(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> tuple[FakeTraining, search.Search]:
    """A whole search of 4 candidates (freeze, first_k k=1..3) on fake training, the budget no limit."""
    fake = FakeTraining()
    monkeypatch.setattr(search, "run_sweep", fake.run_sweep)
    monkeypatch.setattr(search, "read_cells", fake.read_cells)
    settings = {"seed": 0, "eta": 3, "metric": "best_val_acc", "overrides": [], **settings}
    cfg = OmegaConf.create(
        {"dataset": {"name": "toy", "color": "rgb"}, "model": {"backbone": "x", "weights": 0}}
    )
    request = search.Request(cfg, tmp_path, [], settings, 1e9, 1, started=0.0)
    state = State.open(tmp_path, settings, started=0.0)
    state.data["costs"] = _costs().as_dict()
    run = search.Search(request, state)
    run.run(candidates_for(4, ["freeze", "first_k"]))
    return fake, run


def _twice(trained: list[tuple[str, int, int]]) -> dict[tuple[str, int, int], int]:
    """The (candidate, seed, epochs) cells trained more than once, with how often."""
    return {cell: n for cell, n in Counter(trained).items() if n > 1}


def _ranking(run: search.Search) -> dict[str, answer.Entry]:
    """The answer's entries by candidate, as advise builds them from the rungs' runs."""
    gradients = GradientProbe(["stem", "a", "b", "c"], [1.0] * 4, 1.0, 1, 0.1, 0.1, 0.0, 2, 1, 8, 2, "cpu")
    advice = cli.build_advice(run, candidates_for(4, ["freeze", "first_k"]), gradients)
    return {e.key: e for e in advice.ranked}


def test_a_rung_at_the_epochs_of_an_earlier_one_reuses_its_seeds_and_trains_only_the_new_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rung 0 already at advise.max_epochs: rungs 1 and 2 only add seeds, at the very same settings
    fake, run = _fake_search(tmp_path, monkeypatch, epochs=3, max_epochs=3, seeds=3)
    rungs = json.loads((tmp_path / STATE_FILE).read_text())["rungs"]
    shape = [(4, 3, 1), (2, 3, 2), (2, 3, 3)]  # (candidates, epochs, seeds) of each rung
    assert [(len(r["candidates"]), r["epochs"], r["seeds"]) for r in rungs] == shape
    top = ["first_k k=3", "first_k k=2"]
    assert rungs[2]["candidates"] == top
    assert _twice(fake.trained) == {}  # retraining the earlier seeds made it 4 + 4 + 6 = 14 cells, not 8
    assert set(fake.trained) == {(k, 0, 3) for k in SCORES} | {(k, s, 3) for k in top for s in (1, 2)}
    assert [r["reused"] for r in rungs] == [[], [0], [0, 1]]
    ranking = _ranking(run)
    for key in top:  # the answer counts each seed once: the reused runs and the new one
        assert (ranking[key].rung, ranking[key].epochs) == (2, 3)
        assert ranking[key].stat.n == ranking[key].stat.runs == 3
        assert ranking[key].stat.mean == pytest.approx(SCORES[key] + 0.01)
    assert (ranking["freeze"].rung, ranking["freeze"].stat.runs) == (0, 1)


def test_a_rung_at_more_epochs_retrains_every_seed_since_shorter_runs_are_no_substitute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rung 0 trains 1 epoch and rung 1 three (another schedule): seed 0 is trained again at 3 epochs;
    # rung 2, at 3 epochs too, reuses rung 1's seeds 0 and 1 and trains seed 2 only
    fake, run = _fake_search(tmp_path, monkeypatch, epochs=1, max_epochs=3, seeds=3)
    top = ["first_k k=3", "first_k k=2"]
    assert _twice(fake.trained) == {}
    assert set(fake.trained) == {(k, 0, 1) for k in SCORES} | {(k, s, 3) for k in top for s in (0, 1, 2)}
    rungs = json.loads((tmp_path / STATE_FILE).read_text())["rungs"]
    assert [r["reused"] for r in rungs] == [[], [], [0, 1]]
    entry = _ranking(run)["first_k k=3"]
    assert (entry.rung, entry.epochs, entry.stat.n, entry.stat.runs) == (2, 3, 3, 3)


# --- the decision: within the noise, or not ------------------------------------------------------------


def _entry(key: str, values: list[float], trainable: float, rung: int = 1, epochs: int = 6) -> answer.Entry:
    stat = Stat()
    for seed, v in enumerate(values):
        stat.add(v, seed)
    return answer.Entry(Candidate.parse(key), rung, epochs, stat, trainable=trainable, seconds=1.0)


def test_a_lead_beyond_two_standard_errors_is_recommended_as_is() -> None:
    ranked = answer.rank(
        [
            _entry("freeze", [0.70, 0.71, 0.72], 2_565),
            _entry("first_k k=3", [0.81, 0.80, 0.82], 8_000_000),
            _entry("finetune", [0.74, 0.72, 0.76], 11_000_000, rung=0, epochs=2),
        ]
    )
    decision = answer.decide(ranked)
    assert decision.chosen.key == "first_k k=3" and not decision.within_noise
    assert "leads the runner-up, freeze, by +0.100, beyond the noise (over seeds, 2 standard errors of" in (
        decision.noise_sentence()
    )
    sentence = answer.recommendation(decision, ranked, RESNET18_STAGES, epochs=15)
    assert sentence.startswith("Retrain layer3–layer4 and the head (`strategy=first_k strategy.k=3`): 0.810")
    assert sentence.endswith("vs finetune 0.740 ± 0.020 (n=3, 2 epochs), dropped after rung 0.")


def test_candidates_within_the_noise_are_said_to_be_and_the_cheapest_is_recommended() -> None:
    ranked = answer.rank(
        [
            _entry("first_k k=4", [0.80, 0.84], 8_000_000),
            _entry("freeze", [0.79, 0.81], 2_565),
            _entry("surgical [5]", [0.78, 0.83], 8_000_000),
            _entry("finetune", [0.60, 0.61], 11_000_000),
        ]
    )
    decision = answer.decide(ranked)
    assert decision.top.key == "first_k k=4" and decision.chosen.key == "freeze"
    assert decision.within_noise and {e.key for e in decision.tied} == {"freeze", "surgical [5]"}
    text = decision.noise_sentence()
    assert "first_k k=4, surgical [5] and freeze are within the noise" in text  # in ranking order
    assert "the cheapest, freeze, is recommended" in text and "standard errors" in text


def test_one_seed_is_judged_by_the_validation_sets_sampling_noise_or_else_called_a_tie() -> None:
    def decide(top: float, other: float, images: int | None) -> answer.Decision:
        a, b = _entry("finetune", [top], 11e6), _entry("freeze", [other], 2565)
        a.val_images = b.val_images = images
        return answer.decide(answer.rank([a, b]))

    # 200 images at p ~ 0.6: one run's accuracy is uncertain by ~0.035, a gap by ~0.07 (2 SE ~ 0.14)
    close = decide(0.62, 0.55, 200)
    assert close.within_noise and close.chosen.key == "freeze"
    assert "one seed, judged by the sampling noise of 200 validation images" in close.noise_sentence()
    far = decide(0.62, 0.33, 200)
    assert not far.within_noise and far.chosen.key == "finetune"
    unknown = decide(0.9, 0.5, None)  # no split size to judge by: one seed is a tie
    assert unknown.within_noise and "a single seed gives no spread" in unknown.noise_sentence()


def test_a_long_tie_names_the_first_few_and_counts_the_rest() -> None:
    tied = [_entry(f"first_k k={k}", [0.6], 8e6 - k) for k in range(1, 5)]
    tied += [_entry(f"surgical [{i}]", [0.6], 1e5 * i) for i in range(1, 4)]
    text = answer.decide(answer.rank(tied)).noise_sentence()
    assert "and 3 more are within the noise" in text and "the cheapest, surgical [1]" in text


# --- bad input: one line, before any work ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["advise.budget_minuts=3"], ("advise.budget_minuts",)),
        (["advise.budget_minutes=0"], ("advise.budget_minutes must be",)),
        (["advise.budget_minutes=soon"], ("advise.budget_minutes",)),
        (["strategy=freeze"], ("advise sets strategy itself", "drop strategy=freeze")),
        (["hydra.sweep.dir=/tmp/x"], ("advise.dir=DIR",)),
        (["seed=0,1"], ("one value per key",)),
        (["-m"], ("-m is not an option",)),
        (["dataset=nope"], ("unknown dataset 'nope'",)),
        (["model.backbone=resnet19"], ("resnet19",)),
        (["advise.candidates=[freeze,gradual]"], ("advise.candidates", "gradual")),
        (["advise.eta=1"], ("advise.eta must be an integer >= 2",)),
        (["advise.epochs=1"], ("advise.epochs must be an integer >= 2",)),  # lp_ft needs 2
        (["optimized_metric=train_seconds"], ("validation accuracy",)),
        # advise's own keys: Hydra's "+advise.budget_minute=1" hint, and that ran a 30-minute search
        (
            ["advise.budget_minute=1"],
            ("unknown key advise.budget_minute", "did you mean advise.budget_minutes?"),
        ),
        (
            ["+advise.budget_minute=1"],
            ("unknown key advise.budget_minute", "did you mean advise.budget_minutes?"),
        ),
        (["++advise.seed=2"], ("unknown key advise.seed", "did you mean advise.seeds?")),
        # train's keys, checked as train checks them: +stratgy was found only after the probe had run
        (["+stratgy=freeze"], ("unknown key stratgy", "did you mean strategy?")),
        (["stratgy=freeze"], ("unknown key stratgy", "did you mean strategy?")),
        (["trainer.max_epoch=1"], ("unknown key trainer.max_epoch", "did you mean trainer.max_epochs?")),
        (["strategy.cache_features=maybe"], ("strategy.cache_features must be auto, true or false",)),
    ],
)
def test_bad_advise_overrides_are_one_line_errors(args: list[str], fragments: tuple[str, ...]) -> None:
    with pytest.raises(UserError) as caught:
        validate(args, started=0.0)
    message = str(caught.value)
    assert "\n" not in message and all(f in message for f in fragments), message


def test_a_folder_started_with_other_settings_is_not_resumed_and_a_foreign_one_not_written(
    tmp_path: Path,
) -> None:
    State.open(tmp_path / "a", {"eta": 3, "overrides": ["debug=tiny"]}, started=0.0)
    with pytest.raises(UserError, match="other settings \\(eta: 3, now 2\\)"):
        State.open(tmp_path / "a", {"eta": 2, "overrides": ["debug=tiny"]}, started=0.0)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an advise search"):
        State.open(tmp_path / "b", {}, started=0.0)


@pytest.mark.cli
def test_a_budget_too_small_for_the_probe_is_one_line_naming_the_minimum(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "translearn.advise", "debug=tiny", "advise.budget_minutes=0.01",
         f"advise.dir={tmp_path / 'advice'}"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    line = assert_user_error(proc, "advise.budget_minutes=0.01 is too small for even the probe", "minimum is")
    minimum = float(line.split("minimum is ")[1].split()[0])
    assert minimum > 0.01


# --- one real search at toy size ---------------------------------------------------------------------------

TOY = [
    "debug=tiny",  # 32 px, 2 batches an epoch, no pretrained weights
    "model.backbone=squeezenet1_1",  # 4 stages, 0.7 M parameters: small checkpoints, quick cells
    "advise.candidates=[freeze,first_k]",  # 4 candidates (freeze, k=1..3), 2 sweeps in rung 0
    "strategy.cache_features=false",  # every policy takes it; at 2 batches a cache costs more than it saves
    "advise.epochs=1",
    "advise.max_epochs=2",
    "advise.seeds=2",
    "advise.budget_minutes=60",  # a cap, not a target: the schedule ends first (epochs and seeds capped)
]


def _cells(folder: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("metrics.json")}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("advise")
    folder = root / "advice"
    main([*TOY, f"advise.dir={folder}"])
    yield {"folder": folder, "state": json.loads((folder / STATE_FILE).read_text())}
    shutil.rmtree(root, ignore_errors=True)  # the runs' checkpoints


@pytest.mark.slow
def test_the_probe_reports_one_relative_gradient_norm_per_stage(toy: dict[str, Any]) -> None:
    probe = json.loads((toy["folder"] / "advice.json").read_text())["probe"]
    assert probe["stages"][0] == "stem" and len(probe["stages"]) == 4
    assert len(probe["rgn"]) == 4 and all(r > 0 for r in probe["rgn"]) and max(probe["relative"]) == 1.0
    assert probe["linear"]["epochs"] == 1 and probe["linear"]["best_val_acc"] is not None


@pytest.mark.slow
def test_rung_zero_trains_every_candidate_once_and_later_rungs_only_the_top_third_for_longer(
    toy: dict[str, Any],
) -> None:
    folder, rungs = toy["folder"], toy["state"]["rungs"]
    everyone = [c.key for c in candidates_for(4, ["freeze", "first_k"])]
    zero, _ = read_cells(folder / "rung0")
    assert sorted(c.candidate.key for c in zero) == sorted(everyone)  # each once, one seed
    assert {c.metrics["epochs"] for c in zero} == {1} and rungs[0]["seeds"] == 1
    assert len(rungs) == 2  # then epochs (2) and seeds (2) are capped: the schedule is complete
    top = [c.key for c, _ in rank_cells(zero, "best_val_acc")][: plan.next_size(4, 3)]
    assert rungs[1]["candidates"] == top and (rungs[1]["epochs"], rungs[1]["seeds"]) == (2, 2)
    one, _ = read_cells(folder / "rung1")
    assert sorted(c.candidate.key for c in one) == sorted(top * 2)
    assert {c.metrics["epochs"] for c in one} == {2} and {c.metrics["seed"] for c in one} == {0, 1}
    assert "schedule is complete" in toy["state"]["stopped"]
    # like for like: a cached candidate would store one random crop per epoch, never the eval transform
    for cells, epochs in ((zero, 1), (one, 2)):
        for cell in cells:
            config = OmegaConf.load(Path(cell.metrics["run_dir"]) / ".hydra" / "config.yaml")
            assert config.strategy.cache_views == epochs and cell.metrics["train_inputs"] == "random crops"


@pytest.mark.slow
def test_the_recommendation_names_a_ranked_candidate_and_its_command_composes(toy: dict[str, Any]) -> None:
    advice = json.loads((toy["folder"] / "advice.json").read_text())
    rec, ranking = advice["recommendation"], advice["ranking"]
    assert rec["candidate"] in [r["candidate"] for r in ranking]
    assert ranking[0]["rung"] == 1 and {r["rung"] for r in ranking[:2]} == {1}
    cfg = compose_config(rec["overrides"])
    assert cfg.strategy._target_.endswith(("Freeze", "FirstK")) and cfg.trainer.max_epochs == 2
    assert rec["command"].startswith("python -m translearn.train debug=tiny model.backbone=squeezenet1_1 ")
    assert rec["command"].endswith(" trainer.max_epochs=2 strategy.cache_views=2")
    assert rec["command"].endswith(f"{' '.join(rec['overrides'][2:])}")
    noise = "within the noise" if rec["within_noise"] else "beyond the noise"
    md = (toy["folder"] / "advice.md").read_text()
    assert rec["sentence"] in md and noise in md and rec["command"] in md
    assert (toy["folder"] / "advice.png").stat().st_size > 10_000


@pytest.mark.slow
def test_rerunning_the_same_command_resumes_and_trains_nothing_new(toy: dict[str, Any], capsys) -> None:
    folder = toy["folder"]
    before = _cells(folder)
    logs = {p: p.stat().st_size for p in folder.rglob("*.log")}
    main([*TOY, f"advise.dir={folder}"])
    assert _cells(folder) == before and len(before) == 1 + 4 + 4
    assert {p: p.stat().st_size for p in folder.rglob("*.log")} == logs  # no train command started
    out = capsys.readouterr().out
    assert "resuming the search" in out and "Retrain" in out


@pytest.mark.slow
def test_the_report_reads_the_whole_advise_folder(toy: dict[str, Any]) -> None:
    from translearn.report import collect

    found = collect([toy["folder"]], warn=None)
    assert len(found.runs) == 1 + 4 + 4 and not found.incomplete
