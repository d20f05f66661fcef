"""Config composition: every YAML composes and instantiates; bad command lines fail in one line, early."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.utils import get_class, instantiate

from helpers import assert_user_error, run_cli
from translearn.config import CONFIG_DIR, compose_config, expand_sweep, validate_command_line
from translearn.errors import UserError

GROUPS = ["dataset", "strategy", "model", "trainer", "logger", "callbacks", "paths", "experiment", "debug"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in options(g)])
def test_every_yaml_composes_and_instantiates(group: str, option: str, compose_cfg, tmp_path: Path) -> None:
    overrides = [f"{group}={option}"]
    if group == "trainer" and option in ("gpu", "ddp"):  # CI has no GPU: check the preset on the CPU
        overrides += ["trainer.accelerator=cpu", "trainer.devices=1"]
    if group == "experiment":
        overrides += ["dataset.root=" + str(tmp_path)]
    cfg = compose_cfg(*overrides)
    node = {"dataset": "dataset", "experiment": "dataset"}.get(group, group)
    if group in ("strategy", "trainer"):
        assert isinstance(instantiate(cfg[node]), get_class(cfg[node]._target_))
    elif group in ("logger", "callbacks"):
        for sub in (cfg.get(node) or {}).values():
            assert isinstance(instantiate(sub), get_class(sub._target_))
    elif group == "debug":
        trainer = instantiate(cfg.trainer)
        assert trainer.max_epochs == 1 and (trainer.fast_dev_run or trainer.limit_train_batches == 2)
    elif group == "model":
        model = instantiate(cfg.model, policy=instantiate(cfg.strategy), num_classes=3, in_chans=1)
        assert model.net.head.out_features == 3
    elif group == "paths":
        assert Path(cfg.paths.data_dir).is_absolute()
    else:
        assert cfg.dataset._target_.startswith("translearn.data.")


def test_the_dataset_shape_is_read_from_the_data_not_typed_in_the_config(compose_cfg) -> None:
    cfg = compose_cfg("dataset.color=gray", "dataset.gray_mode=adapt")
    assert "num_classes" not in cfg.model and "in_chans" not in cfg.model
    data = instantiate(cfg.dataset)
    assert (data.num_classes, data.in_chans) == (5, 1)
    assert instantiate(compose_cfg("dataset.color=gray").dataset).in_chans == 3


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("dataset=nope", ("unknown dataset 'nope'", "shapes")),
        ("strategy=no_such_policy", ("unknown strategy", "finetune", "first_k", "gradual")),
        ("trainer=tpu9", ("unknown trainer", "ddp_cpu")),
        ("logger=mlflow", ("unknown logger", "wandb")),
        ("model.backbone=resnet19", ("unknown backbone 'resnet19'", "resnet18")),
        ("dataset.color=sepia", ("dataset.color", "gray")),
        ("strategy.bn=sometimes", ("strategy.bn",)),
        ("no_such_key=1", ("no_such_key",)),
        ("model.weights=/no/such/file.pt", ("model.weights",)),
    ],
)
def test_bad_overrides_are_one_line_user_errors(override: str, fragments: tuple[str, ...]) -> None:
    with pytest.raises(UserError) as err:
        validate_command_line([override])
    message = str(err.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_a_sweep_is_validated_cell_by_cell_before_anything_runs() -> None:
    assert len(expand_sweep(["strategy=finetune,freeze", "dataset.color=rgb,gray", "seed=1"])) == 4
    with pytest.raises(UserError, match="unknown strategy 'frieze'"):
        validate_command_line(["-m", "strategy=finetune,frieze"])


def test_existing_run_dir_is_not_overwritten_without_ckpt_path(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(UserError, match="ckpt_path=last"):
        validate_command_line([f"hydra.run.dir={tmp_path}"])
    validate_command_line([f"hydra.run.dir={tmp_path}", "ckpt_path=last"])


@pytest.mark.parametrize(
    "mine",
    ["train.log", "csv/metrics.csv", "confusion_val.csv", "tensorboard/events", "wandb/run", "failure.json",
     ".hydra/config.yaml"],
)  # fmt: skip
def test_a_folder_holding_what_a_run_writes_is_not_trained_into(mine: str, tmp_path: Path) -> None:
    """hydra.run.dir=userdir replaced the user's csv/metrics.csv and confusion_val.csv and appended to
    train.log, with only a Lightning warning; nothing a user has is overwritten without being asked."""
    (tmp_path / mine).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / mine).write_text("the user's")
    top = mine.split("/")[0] + ("/" if "/" in mine else "")
    with pytest.raises(UserError) as err:
        validate_command_line(["debug=tiny", f"hydra.run.dir={tmp_path}"])
    message = str(err.value)
    assert "\n" not in message and f"already holds {top}" in message and "hydra.run.dir" in message, message


def test_an_empty_folder_or_one_of_other_files_is_trained_into(tmp_path: Path) -> None:
    validate_command_line(["debug=tiny", f"hydra.run.dir={tmp_path}"])
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "data").mkdir()
    validate_command_line(["debug=tiny", f"hydra.run.dir={tmp_path}"])


def test_a_run_that_stopped_before_its_first_checkpoint_is_started_afresh_in_its_folder(
    tmp_path: Path,
) -> None:
    """Its Ctrl-C line says "rerun the command to start again": the folder holds only translearn's files."""
    from omegaconf import OmegaConf

    cfg = compose_config(["debug=tiny", f"hydra.run.dir={tmp_path}", f"paths.output_dir={tmp_path}"])
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (tmp_path / "train.log").write_text("translearn: started\n")
    (tmp_path / "csv").mkdir()
    validate_command_line(["debug=tiny", f"hydra.run.dir={tmp_path}"])  # no error: a run's own files
    (tmp_path / ".hydra" / "config.yaml").write_text("job: mine\n")  # another program's Hydra record
    with pytest.raises(UserError, match="already holds"):
        validate_command_line(["debug=tiny", f"hydra.run.dir={tmp_path}"])


def test_a_resume_a_ddp_rank_and_a_launchers_cell_still_enter_a_used_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a failed run leaves (no checkpoint): resumable with ckpt_path, re-entered by DDP ranks, and
    rerun by translearn's launcher when a sweep resumes (it passes ++sweep.cell)."""
    for name in (".hydra/config.yaml", "train.log", "failure.previous.json", "cell.log", "csv/metrics.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    out = f"hydra.run.dir={tmp_path}"
    validate_command_line(["debug=tiny", out, "ckpt_path=last"])
    validate_command_line(["debug=tiny", out, '++sweep.cell="0_seed=0"'])
    monkeypatch.setenv("LOCAL_RANK", "1")
    validate_command_line(["debug=tiny", out])
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("SLURM_PROCID", "1")  # an srun task of rank 1: started with no LOCAL_RANK
    validate_command_line(["debug=tiny", out])


@pytest.mark.cli
def test_the_cli_refuses_a_user_folder_and_leaves_its_files_alone(tmp_path: Path) -> None:
    user = tmp_path / "userdir"
    files = {
        "train.log": "my notes",
        "csv/metrics.csv": "epoch,acc\n0,0.9\n",
        "confusion_val.csv": "true,a\n",
    }
    for name, text in files.items():
        (user / name).parent.mkdir(parents=True, exist_ok=True)
        (user / name).write_text(text)
    proc = run_cli("debug=tiny", f"hydra.run.dir={user}")
    assert_user_error(proc, "already holds", "confusion_val.csv", "csv/", "train.log", "hydra.run.dir")
    assert proc.returncode == 2
    assert {n: (user / n).read_text() for n in files} == files
    assert sorted(p.name for p in user.iterdir()) == ["confusion_val.csv", "csv", "train.log"]


def test_unwritable_output_dir_is_a_user_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(UserError, match="cannot write the run directory"):
        validate_command_line([f"hydra.run.dir={blocker}/run"])
    # A sweep's folder is named as such, with its key (it said "run directory ... hydra.run.dir").
    with pytest.raises(UserError, match=r"cannot write the sweep folder .* pass hydra\.sweep\.dir=DIR"):
        validate_command_line(["-m", "debug=tiny", f"hydra.sweep.dir={blocker}/sweep", "seed=0,1"])
    before = sorted(p.name for p in tmp_path.iterdir())
    validate_command_line([f"hydra.run.dir={tmp_path}/run"])  # the probe leaves nothing behind
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_folder_no_file_can_be_created_in_is_a_user_error_even_for_root() -> None:
    """os.access answers yes to root everywhere: /proc passed the check and Hydra's mkdir gave a traceback."""
    with pytest.raises(UserError, match="cannot write the run directory /proc/translearn-test"):
        validate_command_line(["hydra.run.dir=/proc/translearn-test"])


def test_user_config_dir_is_searched(tmp_path: Path) -> None:
    (tmp_path / "strategy").mkdir()
    (tmp_path / "strategy" / "mine.yaml").write_text(
        "_target_: translearn.strategies.FirstK\nk: 3\nbn: train\n"
    )
    cfg = compose_config(["strategy=mine"], config_dir=str(tmp_path))
    assert cfg.strategy.k == 3
    validate_command_line(["--config-dir", str(tmp_path), "strategy=mine"])


@pytest.mark.cli
@pytest.mark.slow
def test_cli_user_error_prints_one_line_and_no_traceback(tmp_path: Path) -> None:
    proc = run_cli("strategy=no_such_policy", f"hydra.run.dir={tmp_path}/run")
    assert_user_error(proc, "unknown strategy 'no_such_policy'", "finetune")
    assert proc.returncode == 2
    assert not (tmp_path / "run").exists(), "nothing is created for a command that cannot run"


@pytest.mark.cli
@pytest.mark.slow
def test_cli_help_lists_the_groups() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for word in ("dataset:", "strategy:", "trainer:", "ddp_cpu", "first_k", "ckpt_path=last"):
        assert word in proc.stdout, word
    datasets = next(line for line in proc.stdout.splitlines() if line.startswith("dataset: "))
    assert "_base" not in datasets and "imagefolder" in datasets  # shared keys, not a choice
    assert "model/optimizer: adamw, sgd" in proc.stdout


@pytest.mark.cli
@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--help"], "dataset:"),
        (["stratgy=freeze"], "unknown key stratgy"),
        (["strategy=nope"], "unknown strategy 'nope'"),
        (["dataset.color=blue"], "dataset.color must be one of rgb, gray"),
        (["model.optimizer.lr=-1"], "model.optimizer.lr must be > 0"),
        (["trainer.max_epochs=0"], "trainer.max_epochs must be >= 1"),
        (["--cfg", "job", "strategy=freeze"], "cache_features: auto"),  # prints the config, runs nothing
    ],
)
def test_help_and_a_mistyped_command_are_answered_without_loading_torch(
    args: list[str], said: str, tmp_path: Path
) -> None:
    """torch, torchvision and Lightning took 3 of the 4-5 s these answers took (9 s on a busy machine)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "translearn.train", *args, f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert said in proc.stdout + proc.stderr, proc.stderr[-2000:]
    loaded = {
        ln.rsplit("|", 1)[1].strip() for ln in proc.stderr.splitlines() if ln.startswith("import time:")
    }
    assert loaded, "no -X importtime lines: the check would pass for nothing"
    assert not loaded & {"torch", "torchvision", "pytorch_lightning", "lightning_fabric"}


@pytest.mark.parametrize(
    ("launcher", "target"),
    [("local", "TranslearnLauncher"), ("gpus", "TranslearnLauncher"), ("slurm", "SlurmLauncher")],
)
def test_launchers_compose(launcher: str, target: str) -> None:
    cfg = compose_config(
        [f"launcher={launcher}", "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2"],
        return_hydra_config=True,
    )
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":  # one task per GPU on every node: what Lightning's SLURM DDP expects
        assert (
            cfg.hydra.launcher.nodes,
            cfg.hydra.launcher.tasks_per_node,
            cfg.hydra.launcher.gpus_per_node,
        ) == (2, 8, 8)
    if launcher == "gpus":
        assert cfg.hydra.launcher.devices == "auto"


def test_sweep_of_the_2017_grid_expands_to_sixteen_cells(tmp_path: Path) -> None:
    cfg = compose_config(["experiment=seed2017_grid"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert len(expand_sweep([f"{k}={v}" for k, v in params.items()])) == 16
    assert cfg.strategy.bn == "train" and cfg.model.weights == "IMAGENET1K_V1"


# --- W&B: online or offline, decided by W&B's own credential lookup -------------------------------

KEY = "k" * 40  # a well-formed API key (W&B checks the format, not the account, without a network)


@pytest.fixture
def wandb_home(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    """No credentials anywhere W&B looks (environment, netrc, settings files), and a fresh W&B singleton."""
    import wandb

    for var in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / ".netrc"))
    wandb.teardown()  # the singleton caches the base URL it read from the environment
    yield tmp_path
    wandb.teardown()


def test_wandb_is_offline_without_credentials_and_online_with_a_key(wandb_home: Path, monkeypatch) -> None:
    from translearn.config import wandb_offline

    assert wandb_offline() is True
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert wandb_offline() is False
    monkeypatch.setenv("WANDB_MODE", "offline")  # WANDB_MODE decides whatever the credentials
    assert wandb_offline() is True
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_offline() is True
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_offline() is False


@pytest.mark.slow
def test_logger_wandb_without_credentials_trains_and_logs_offline(wandb_home: Path, compose_cfg) -> None:
    """The credential lookup loaded W&B's process-wide settings, which then missed Lightning's offline
    switch (WANDB_MODE=dryrun, set when the run starts): wandb.init demanded a login and training died.
    (The fixture's monkeypatch puts back the WANDB_MODE that Lightning overwrites.)"""
    import wandb

    from translearn.train import run

    out = wandb_home / "run"
    metrics = run(compose_cfg("logger=wandb", "strategy=freeze", run_dir=out))
    assert metrics["status"] == "complete"
    assert len(list((out / "wandb").glob("offline-run-*"))) == 1
    assert wandb.run is None


def test_wandb_reads_the_netrc_entry_of_the_host_it_is_configured_for(wandb_home: Path, monkeypatch) -> None:
    """A self-hosted server (WANDB_BASE_URL) logs online with its `wandb login --host` key, not another's."""
    import wandb

    from translearn.config import wandb_offline

    (wandb_home / ".netrc").write_text(f"machine wandb.example.org\n  login user\n  password {KEY}\n")
    assert wandb_offline() is True  # the key is for another server than W&B's default
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.org")
    wandb.teardown()
    assert wandb_offline() is False


def test_wandb_log_model_offline_is_one_line_and_reaches_lightning_online(
    wandb_home: Path, monkeypatch
) -> None:
    """Lightning cannot upload checkpoints from an offline run: said before anything runs, with the fix."""
    from hydra.utils import instantiate as hydra_instantiate

    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(UserError, match=r"logger.wandb.log_model=true uploads checkpoints.*log_model=false"):
        validate_command_line(["logger=wandb", "logger.wandb.log_model=true"])
    validate_command_line(["logger=wandb"])  # the default, false, is fine offline

    monkeypatch.setenv("WANDB_MODE", "online")  # no run starts: the logger is only built, not used
    cfg = compose_config(["logger=wandb", "logger.wandb.log_model=true"], return_hydra_config=True)
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    logger = hydra_instantiate(cfg.logger.wandb)
    assert logger._log_model is True and logger._offline is False
    assert logger._wandb_init["job_type"] == "train"
    assert logger._wandb_init["config"] == {"strategy_name": "finetune"}  # a plain dict, not a DictConfig


def test_a_sweep_resume_without_its_folder_is_refused() -> None:
    """The default sweep folder is a new timestamp: sweep.resume=true alone trained every cell again."""
    with pytest.raises(UserError, match=r"sweep.resume=true needs the folder .* add hydra.sweep.dir=DIR"):
        validate_command_line(["-m", "debug=tiny", "strategy=finetune,freeze", "sweep.resume=true"])


# --- paths on the command line ------------------------------------------------------------------------


def test_path_overrides_expand_tilde_and_record_absolute_data_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hydra.run.dir='~/run' was created as ./~/run; dataset.root=data recorded as typed, so the report
    averaged two folders called data as one dataset, and eval from elsewhere could not find it."""
    from translearn.config import paths_expanded

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TRANSLEARN_OUTPUTS", "~/runs")
    monkeypatch.chdir(tmp_path)
    home, here = tmp_path / "home", tmp_path
    given = [
        "-m", "hydra.run.dir=~/a", "hydra.sweep.dir='~/b c'", "dataset.root=data", "+dataset.root=d/é x",
        "model.weights=w.pth", "model.weights=imagenet", "dataset.root=/abs", "dataset.root=a,b", "seed=1",
        "paths.cache_dir=~/cache", "ckpt_path=last",
    ]  # fmt: skip
    assert paths_expanded(given) == [
        "-m", f"hydra.run.dir={home}/a", f"hydra.sweep.dir='{home}/b c'", f"dataset.root={here}/data",
        f"+dataset.root='{here}/d/é x'", f"model.weights={here}/w.pth", "model.weights=imagenet",
        "dataset.root=/abs", f"dataset.root={here}/a,{here}/b", "seed=1", f"paths.cache_dir={home}/cache",
        "ckpt_path=last",
    ]  # fmt: skip
    assert __import__("os").environ["TRANSLEARN_OUTPUTS"] == f"{home}/runs"


@pytest.mark.cli
def test_a_tilde_run_dir_is_under_home_and_a_second_run_there_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from omegaconf import OmegaConf

    import publishers

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    publishers.imagefolder(work / "data")
    monkeypatch.setenv("HOME", str(home))
    args = ["debug=tiny", "dataset=imagefolder", "dataset.root=data", "hydra.run.dir=~/myrun"]
    first = run_cli(*args, cwd=work)
    assert first.returncode == 0, first.stderr[-2000:]
    assert (home / "myrun" / "metrics.json").is_file() and not (work / "~").exists()
    recorded = OmegaConf.load(home / "myrun" / ".hydra" / "config.yaml").dataset.root
    assert recorded == str(work / "data")
    assert_user_error(run_cli(*args, "seed=2", cwd=work), "already holds a run")
