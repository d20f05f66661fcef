"""hparams_search=optuna: a study through Hydra's Optuna sweeper, each trial a cell of the sweep folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from helpers import TINY
from translearn.config import compose_config, validate_command_line
from translearn.errors import UserError
from translearn.sweep import sweep_cells

pytest.importorskip("optuna", reason="pip install 'translearn[optuna]'")


def test_the_optuna_preset_maximizes_optimized_metric_with_a_seeded_tpe_search() -> None:
    cfg = compose_config(["hparams_search=optuna", "seed=7"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and cfg.optimized_metric == "val/acc_best"
    assert (sweeper.direction, sweeper.n_trials, sweeper.storage) == ("maximize", 20, None)
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler" and sweeper.sampler.seed == 7
    assert {"model.optimizer.lr", "strategy", "strategy.lr_decay"} <= set(sweeper.params)
    assert sweeper.max_failure_rate == 1.0  # a failed trial never ends the study
    # Every strategy the search space names is validated before the first trial.
    validate_command_line(["-m", "hparams_search=optuna", *TINY])


def test_a_study_without_optuna_installed_is_one_line_naming_the_extra(monkeypatch) -> None:
    from hydra.core.config_store import ConfigStore

    monkeypatch.setitem(sys.modules, "optuna", None)  # the sweeper plugin is there, Optuna is not
    with pytest.raises(UserError, match=r"needs optuna, .*pip install 'translearn\[optuna\]'") as err:
        validate_command_line(["-m", "hparams_search=optuna"])
    assert "\n" not in str(err.value)
    # Without the plugin, Hydra has no hydra/sweeper=optuna to compose: one line naming the extra.
    monkeypatch.delitem(ConfigStore.instance().repo["hydra"]["sweeper"], "optuna.yaml")
    with pytest.raises(UserError, match=r"needs hydra-optuna-sweeper, .*pip install 'translearn\[optuna\]'"):
        validate_command_line(["-m", "hparams_search=optuna"])


def test_a_study_without_m_is_one_line() -> None:
    with pytest.raises(UserError, match="add -m"):
        validate_command_line(["hparams_search=optuna", *TINY])


@pytest.mark.cli
@pytest.mark.slow
def test_a_three_trial_study_returns_each_cells_metric_and_survives_a_failed_trial(tmp_path: Path) -> None:
    """Trials with trainer.precision=bf17 fail in the cell (Lightning refuses it when the Trainer is built;
    an out-of-range strategy.k is refused before the study starts); the study records them failed, goes
    on, and its best value is the best complete cell's val/acc_best, read from the cell's own metrics.json."""
    import optuna

    sweep, storage = tmp_path / "study", f"sqlite:///{tmp_path / 'study.db'}"
    proc = subprocess.run(
        [
            sys.executable, "-m", "translearn.train", "-m", "hparams_search=optuna", *TINY,
            "hydra.sweeper.n_trials=3", "hydra.sweeper.params.strategy=first_k",
            "trainer.precision=choice(32-true,bf17)",
            f"hydra.sweeper.storage={storage}", "hydra.sweeper.study_name=t", f"hydra.sweep.dir={sweep}",
        ],
        capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    cells = sweep_cells(sweep)
    assert len(cells) == 3, proc.stdout[-3000:] + proc.stderr[-3000:]
    complete = {c.name: c.metrics() for c in cells if c.metrics() is not None}
    failed = [c.name for c in cells if c.failure() is not None]
    assert complete and failed, "the seeded sampler must draw both precisions for this test to mean much"
    assert all("bf17" in name for name in failed) and not any("bf17" in n for n in complete)
    assert all("Precision 'bf17' is invalid" in c.failure()["reason"] for c in cells if c.name in failed)

    study = optuna.load_study(study_name="t", storage=storage)
    states = {t.number: t.state.name for t in study.trials}
    assert len(states) == 3
    for cell in cells:  # trial i is cell i: one trial per launch
        index = int(cell.name.split("_", 1)[0])
        if cell.name in complete:
            assert states[index] == "COMPLETE"
            assert study.trials[index].value == complete[cell.name]["best_val_acc"]
        else:
            assert states[index] == "FAIL"

    result = OmegaConf.load(sweep / "optimization_results.yaml")
    best = max(m["best_val_acc"] for m in complete.values())
    assert result.best_value == best and result.best_params["trainer.precision"] == "32-true"
    assert proc.returncode == 1  # as for a grid: a failed cell makes the exit code 1
    assert f"{len(complete)} of 3 cells complete" in proc.stdout
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("best ")]
    assert f"val/acc_best={best}" in line and any(name in line for name in complete)
