"""launcher=slurm composes with every trainer preset and asks SLURM only for counts it can grant."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from translearn.config import CONFIG_DIR, compose_config, validate_command_line
from translearn.errors import UserError

PRESETS = sorted(p.stem for p in (CONFIG_DIR / "trainer").glob("*.yaml"))
# What each preset asks of SLURM per cell: (nodes, tasks per node, GPUs per node; None = no GPU request).
EXPECTED = {
    "auto": (1, 1, 1),
    "default": (1, 1, 1),
    "gpu": (1, 1, 1),
    "cpu": (1, 1, None),
    "ddp_cpu": (1, 2, None),
    "ddp": (2, 4, 4),  # with trainer.devices=4 trainer.num_nodes=2, as a cluster user types it
}


def slurm_request(*overrides: str) -> tuple:
    cfg = compose_config(["launcher=slurm", *overrides], return_hydra_config=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    return launcher["nodes"], launcher["tasks_per_node"], launcher["gpus_per_node"]


def test_every_trainer_preset_is_listed() -> None:
    assert set(PRESETS) == set(EXPECTED)


@pytest.mark.parametrize("preset", PRESETS)
def test_slurm_composes_with_every_trainer_preset_into_positive_counts(preset: str) -> None:
    extra = ["trainer.devices=4", "trainer.num_nodes=2"] if preset == "ddp" else []
    nodes, tasks, gpus = slurm_request(f"trainer={preset}", *extra)
    assert (nodes, tasks, gpus) == EXPECTED[preset]
    assert all(isinstance(n, int) and n >= 1 for n in (nodes, tasks))
    assert gpus is None or (isinstance(gpus, int) and gpus == tasks)  # one GPU per task, or none on the CPU
    info = validate_command_line(["-m", "launcher=slurm", f"trainer={preset}", *extra, "seed=0,1"])
    assert info.multirun


def test_a_device_list_asks_for_one_task_per_listed_device() -> None:
    assert slurm_request("trainer=gpu", "trainer.devices=[0,1]") == (1, 2, 2)
    assert slurm_request("trainer=gpu", "trainer.devices='0,1,2'") == (1, 3, 3)


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer=ddp"],  # devices: -1, every GPU of the machine
        ["trainer=gpu", "trainer.devices=auto"],
        ["trainer=ddp", "trainer.devices=0"],
    ],
    ids=["ddp-minus-one", "auto", "zero"],
)
def test_slurm_with_an_uncounted_device_number_is_one_line_before_submitting(overrides: list[str]) -> None:
    with pytest.raises(UserError) as err:
        validate_command_line(["-m", "launcher=slurm", *overrides, "strategy=finetune,freeze"])
    message = str(err.value)
    assert "\n" not in message and "launcher=slurm" in message and "trainer.devices=" in message


def test_slurm_with_no_nodes_is_one_line() -> None:
    with pytest.raises(UserError, match=r"trainer.num_nodes >= 1"):
        validate_command_line(["-m", "launcher=slurm", "trainer=gpu", "trainer.num_nodes=0", "seed=0,1"])


def test_slurm_without_the_submitit_plugin_is_one_line_naming_the_extra(monkeypatch) -> None:
    from hydra.core.config_store import ConfigStore

    with pytest.raises(UserError, match=r"unknown hydra/launcher 'submitit_slrm'"):  # a typo stays a typo
        validate_command_line(["-m", "hydra/launcher=submitit_slrm", "seed=0,1"])
    for name in ("submitit_slurm.yaml", "submitit_local.yaml"):  # what an install without the plugin has
        monkeypatch.delitem(ConfigStore.instance().repo["hydra"]["launcher"], name)
    with pytest.raises(UserError, match=r"needs hydra-submitit-launcher, .*'translearn\[slurm\]'"):
        validate_command_line(["-m", "launcher=slurm", "trainer=gpu", "seed=0,1"])
