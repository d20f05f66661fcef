"""The entry point end to end on the embedded data: run directory, metrics.json, resume, user errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import TINY, assert_user_error, run_cli
from translearn.train import run

CONTRACT_KEYS = [
    "dataset",
    "color",
    "strategy",
    "backbone",
    "weights",
    "seed",
    "epochs",
    "best_val_acc",
    "val_acc",
    "test_acc",
    "train_seconds",
    "trainable_params",
    "total_params",
    "best_val_acc_macro",
    "test_acc_macro",
    "train_img_per_s",
]


@pytest.mark.slow
def test_run_writes_the_contract_run_directory(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("strategy=freeze", "trainer.max_epochs=2")
    metrics = run(cfg)
    out = Path(cfg.paths.output_dir)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == metrics
    assert all(key in saved for key in CONTRACT_KEYS)
    assert saved["dataset"] == "shapes" and saved["strategy"] == "freeze" and saved["epochs"] == 2
    assert saved["trainable_params"] == 512 * 5 + 5 and saved["total_params"] > 11_000_000
    assert 0.0 <= saved["best_val_acc"] <= 1.0 and saved["test_acc"] is not None
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert list((out / "checkpoints").glob("best-epoch*.ckpt"))
    state = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    assert "net.model.fc.weight" in state and "net.model.layer4.1.bn2.running_mean" in state
    assert (out / "csv" / "metrics.csv").is_file()
    assert (out / "confusion_val.csv").is_file() and (out / "confusion_test.csv").is_file()


@pytest.mark.slow
def test_resume_after_a_crash_matches_an_uninterrupted_run(compose_cfg, tmp_path: Path) -> None:
    common = ["strategy=first_k", "strategy.k=3", "trainer.max_epochs=3", "model.scheduler.step_size=2"]
    straight = run(compose_cfg(*common, run_dir=tmp_path / "straight"))

    crash = "+callbacks.crash={_target_:fakes.CrashAtEpoch,epoch:2}"
    cfg = compose_cfg(*common, crash, run_dir=tmp_path / "cut")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(cfg)
    assert (tmp_path / "cut" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp_path / "cut" / "metrics.json").exists()

    resumed = run(compose_cfg(*common, "ckpt_path=last", run_dir=tmp_path / "cut"))
    for key in ("epochs", "best_val_acc", "val_acc", "val_loss", "test_acc"):
        assert resumed[key] == straight[key], key
    assert (
        resumed["train_samples"] == straight["train_samples"] == 3 * 2 * 8
    )  # the epochs before the cut count
    a_ckpt = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=True)
    b_ckpt = torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=True)
    assert a_ckpt["global_step"] == b_ckpt["global_step"] == 6  # last.ckpt is the end of training, in both
    a, b = a_ckpt["state_dict"], b_ckpt["state_dict"]
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"resumed weights differ from the uninterrupted run: {differ[:5]}"


@pytest.mark.slow
def test_metrics_record_the_normalisation_the_images_really_got(compose_cfg, tmp_path: Path) -> None:
    """gray + adapt feeds one luma channel normalised with luma statistics; preprocessing keeps the
    weights' RGB values, so metrics.json's normalize must say what was applied. Read back from the eval
    transform itself: two flat images give two outputs, hence mean and std."""
    from PIL import Image

    from translearn.config import instantiate

    cfg = compose_cfg("dataset.color=gray", "dataset.gray_mode=adapt", "strategy=freeze")
    metrics = run(cfg)
    data = instantiate(cfg.dataset, _partial_=True)(preprocessing=None)
    transform = data.transform(train=False)
    low, high = (transform(Image.new("RGB", (40, 40), (v, v, v)))[0, 0, 0].item() for v in (51, 204))
    std = (204 - 51) / 255 / (high - low)
    mean = 51 / 255 - low * std
    assert metrics["normalize"]["mean"] == [pytest.approx(mean, abs=1e-5)]
    assert metrics["normalize"]["std"] == [pytest.approx(std, abs=1e-5)]
    assert len(metrics["preprocessing"]["mean"]) == 3  # the weights' own, as the checkpoint keeps them


@pytest.mark.slow
def test_fast_dev_run_records_no_result(compose_cfg, tmp_path: Path) -> None:
    """debug=fast_dev_run is a smoke check: it wrote a 'complete' metrics.json (best_val_acc 0.0) that
    a later report over the folder counted as a run, and csv/hparams.yaml."""
    out = tmp_path / "fdr"
    metrics = run(compose_cfg("+trainer.fast_dev_run=true", run_dir=out))
    assert metrics["epochs"] == 1
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [], written


@pytest.mark.slow
def test_pretrained_start_is_used_when_given(compose_cfg, tmp_path: Path) -> None:
    from translearn.backbones import build_backbone

    source = build_backbone("resnet18", num_classes=5, weights="none")
    torch.save(source.model.state_dict(), tmp_path / "w.pt")
    cfg = compose_cfg("strategy=freeze", f"model.weights={tmp_path / 'w.pt'}", "trainer.max_epochs=1")
    run(cfg)
    state = torch.load(Path(cfg.paths.output_dir) / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert torch.equal(state["net.model.layer3.0.conv1.weight"], source.model.layer3[0].conv1.weight)


@pytest.mark.cli
@pytest.mark.slow
def test_cli_tiny_run_exits_zero_and_prints_metrics_without_lightnings_noise(tmp_path: Path) -> None:
    proc = run_cli(*TINY, "strategy=first_k", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best_val_acc=" in proc.stdout and f"run directory {tmp_path}/run" in proc.stdout
    # Lightning's advert, its own pytree deprecation, its "best" ambiguity warning and its alarm at the
    # frozen BatchNorm layers in eval mode are not the user's.
    noise = ("💡 Tip", "LeafSpec", "multiple `ModelCheckpoint`", "in eval mode at the start of training")
    assert [n for n in noise if n in proc.stdout + proc.stderr] == []
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(key in metrics for key in CONTRACT_KEYS)
    assert (tmp_path / "run" / ".hydra" / "config.yaml").is_file()
    assert (tmp_path / "run" / ".hydra" / "overrides.yaml").is_file()


@pytest.mark.cli
@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["strategy=first_k", "strategy.k=9"], ("strategy.k=9 is out of range", "0..5")),
        (
            ["model.weights=imagenet"],
            (
                "ResNet18_Weights.IMAGENET1K_V1 weights are not cached",
                "model.weights=none",
                "python -m translearn.weights fetch resnet18:IMAGENET1K_V1",
            ),
        ),
        (["model.weights=WRONG"], ("does not fit resnet18",)),
    ],
    ids=["k-out-of-range", "imagenet-offline", "mismatched-weights"],
)
def test_cli_runtime_user_errors_are_one_line(
    tmp_path: Path, args: list[str], fragments: tuple[str, ...]
) -> None:
    if "model.weights=WRONG" in args:
        import torchvision

        torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "r34.pt")
        args = [f"model.weights={tmp_path / 'r34.pt'}"]
    proc = run_cli(*TINY, *args, f"hydra.run.dir={tmp_path}/run")
    assert_user_error(proc, *fragments)


@pytest.mark.slow
def test_a_resumed_run_continues_its_wandb_run(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    out = tmp_path / "run"
    run(compose_cfg("logger=wandb", "strategy=freeze", run_dir=out))
    stored = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["wandb_run_id"]
    (first,) = (out / "wandb").glob("offline-run-*")
    assert first.name.endswith(stored)

    run(compose_cfg("logger=wandb", "strategy=freeze", "trainer.max_epochs=2", "ckpt_path=last", run_dir=out))
    runs = sorted((out / "wandb").glob("offline-run-*"))
    # Each folder holds run-<id>.wandb; its name ends in the id, or in "<id>-1" when both runs started in
    # the same second (W&B names folders by the second).
    assert len(runs) == 2 and all((r / f"run-{stored}.wandb").is_file() for r in runs), [r.name for r in runs]


@pytest.mark.slow
def test_timm_first_k_run(compose_cfg, tmp_path: Path) -> None:
    from translearn.train import run

    cfg = compose_cfg("model.library=timm", "model.backbone=resnet18", "strategy=first_k", "strategy.k=2")
    metrics = run(cfg)
    assert metrics["library"] == "timm" and metrics["strategy"] == "first_k" and metrics["k"] == 2
    # k=2 freezes timm's stem (conv1 9,408 + bn1 128) and layer1 (2 blocks x (2 x 36,864 + 2 x 128)).
    assert metrics["frozen_params"] == 9_408 + 128 + 2 * (2 * 36_864 + 2 * 128)
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_metrics_say_where_the_time_went(compose_cfg, tmp_path: Path) -> None:
    """train_img_per_s counts the training samples only (2 batches of 8 per epoch), val_seconds apart."""
    cfg = compose_cfg("trainer.max_epochs=2", "trainer.num_sanity_val_steps=2")
    metrics = run(cfg)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["train_img_per_s"] == metrics["train_img_per_s"] > 0 and saved["val_seconds"] > 0
    assert saved["train_samples"] == 2 * 2 * 8  # epochs x batches x batch size; the sanity check not counted
    # train_seconds also holds validation, checkpoints and setup: the training-only rate is higher.
    assert metrics["train_img_per_s"] > 32 / metrics["train_seconds"]


@pytest.mark.slow
def test_macro_accuracy_and_confusion_matrices_come_from_the_best_checkpoint(
    compose_cfg, tmp_path: Path
) -> None:
    import csv

    full = ("trainer.limit_val_batches=null", "trainer.limit_test_batches=null")  # every class present
    cfg = compose_cfg("strategy=freeze", "trainer.max_epochs=3", *full)
    metrics = run(cfg)
    out = Path(cfg.paths.output_dir)
    names = metrics["class_names"]
    assert len(names) == metrics["num_classes"] == 5
    assert metrics["stage_names"] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    best = next((out / "checkpoints").glob("best-epoch*.ckpt"))
    assert metrics["best_epoch"] == int(best.stem.removeprefix("best-epoch"))

    def read(split: str) -> torch.Tensor:
        rows = list(csv.reader((out / f"confusion_{split}.csv").open()))
        assert rows[0] == ["true", *names] and [r[0] for r in rows[1:]] == names  # by name, not index
        return torch.tensor([[int(n) for n in r[1:]] for r in rows[1:]], dtype=torch.float64)

    val = read("val")
    assert val.sum() == metrics["split_sizes"]["val"]  # the whole val split, once
    # The matrix is the best epoch's: its micro accuracy is best_val_acc, its mean recall the macro one.
    assert val.trace() / val.sum() == pytest.approx(metrics["best_val_acc"], abs=1e-6)
    recall = val.diag() / val.sum(dim=1)
    assert recall.mean() == pytest.approx(metrics["best_val_acc_macro"], abs=1e-6)
    test = read("test")
    assert test.sum() == metrics["split_sizes"]["test"]
    assert test.trace() / test.sum() == pytest.approx(metrics["test_acc"], abs=1e-6)
    assert test.diag().div(test.sum(dim=1)).mean() == pytest.approx(metrics["test_acc_macro"], abs=1e-6)
    assert metrics["val_acc_macro"] is not None


@pytest.mark.slow
def test_the_step_loss_reaches_the_log_on_lightnings_steps_and_epoch_values_once(
    compose_cfg, tmp_path: Path
) -> None:
    """Epoch values are logged once at the epoch's end; the step loss only on the steps a logger writes."""
    import csv

    run(compose_cfg("trainer.limit_train_batches=4", "trainer.log_every_n_steps=2"))
    with open(tmp_path / "run" / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))

    def steps(key: str) -> list[int]:
        return [int(r["step"]) for r in rows if r.get(key)]

    assert steps("train/loss_step") == [1, 3]  # (step + 1) % log_every_n_steps == 0, as Lightning writes
    assert len(steps("train/loss_epoch")) == len(steps("train/acc")) == 1
    assert len(steps("val/acc")) == len(steps("val/loss")) == 1 and len(steps("test/acc")) == 1
    [epoch] = [r for r in rows if r.get("train/acc")]
    assert 0.0 <= float(epoch["train/acc"]) <= 1.0 and float(epoch["train/loss_epoch"]) > 0


@pytest.mark.parametrize(
    ("targets", "predicted", "expected"),
    [
        # One class present, 14 of 16 right, two stray predictions into classes with no samples: 0.875.
        # torchmetrics' macro accuracy read 0.2917, averaging in the absent classes at recall 0.
        ([0] * 16, [0] * 14 + [1, 2], 14 / 16),
        ([0] * 8 + [3] * 8, [0] * 8 + [3] * 4 + [1] * 4, (1.0 + 0.5) / 2),
        ([0, 1, 2, 3], [0, 1, 2, 3], 1.0),
    ],
)
def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present(
    targets: list[int], predicted: list[int], expected: float
) -> None:
    from translearn.module import split_metrics

    metrics = split_metrics(4, "val/")
    logits = torch.nn.functional.one_hot(torch.tensor(predicted), 4).float()
    metrics.update(logits, torch.tensor(targets))
    assert metrics.compute()["val/acc_macro"].item() == pytest.approx(expected)


def test_one_live_run_per_run_folder(tmp_path: Path) -> None:
    """Two runs started at once into one hydra.run.dir both exited 0 over one mixed folder (metrics of one
    seed, overrides of the other). The second is refused while the first holds the folder."""
    from translearn.errors import RunRefused
    from translearn.rundir import RunLock

    first, second = RunLock(tmp_path / "run"), RunLock(tmp_path / "run")
    first.acquire()
    with pytest.raises(RunRefused, match=r"another run \(pid \d+ on .*\) is training in .*run"):
        second.acquire()
    first.release()
    assert not (tmp_path / "run" / RunLock.NAME).exists()
    second.acquire()  # free again
    second.release()


@pytest.mark.cli
def test_a_run_into_a_folder_another_run_holds_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    hold = (
        "import sys, time; from pathlib import Path; from translearn.rundir import RunLock; "
        "lock = RunLock(Path(sys.argv[1])); lock.acquire(); print('held', flush=True); time.sleep(120)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        proc = run_cli(*TINY, f"hydra.run.dir={tmp_path / 'run'}")
        assert_user_error(proc, "another run (pid", "is training in", "choose another hydra.run.dir")
        assert not (tmp_path / "run" / "metrics.json").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run_cli(*TINY, f"hydra.run.dir={tmp_path / 'run'}").returncode == 0  # a killed holder frees it


def test_sigterm_stops_a_run_as_ctrl_c_does() -> None:
    """Outside Lightning's fit (a feature-cache build, the test pass) SIGTERM killed the run with exit 143,
    no word and the build's partial left behind; as Ctrl-C, it runs the same interruption path."""
    import os
    import signal

    from translearn.train import _sigterm_interrupts

    before = signal.getsignal(signal.SIGTERM)
    try:
        _sigterm_interrupts()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.1)  # the handler runs on the next bytecode; this gives it one
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.cli
def test_changed_data_refuses_a_resume_and_warns_an_eval(tmp_path: Path) -> None:
    """A file added to an image folder re-split its class: a resume went on with another val set (its
    best_val_acc a maximum over two, the second holding training images) and eval scored the new one as
    the run's own, without a word. The run's checkpoints and metrics.json record the index's digest."""
    import shutil
    import subprocess
    import sys

    import publishers

    data = publishers.imagefolder(tmp_path / "data", {"a": 12, "b": 12})
    run_dir = tmp_path / "run"
    args = [*TINY, "dataset=imagefolder", f"dataset.root={data}", f"hydra.run.dir={run_dir}"]
    assert run_cli(*args).returncode == 0
    written = json.loads((run_dir / "metrics.json").read_text())
    recorded = written["index_digest"]
    assert written["num_workers"] == 0  # debug=tiny's, recorded as resolved (auto is resolved too)
    assert (
        recorded
        and torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["translearn_index"]
        == recorded
    )
    shutil.copy(data / "a" / "img_0.jpg", data / "b" / "extra.jpg")
    refused = run_cli(*args, "ckpt_path=last", "trainer.max_epochs=2")
    assert_user_error(refused, "the data changed since", f"dataset index {recorded} then")
    evaluated = subprocess.run(
        [sys.executable, "-m", "translearn.eval", str(run_dir)], capture_output=True, text=True, timeout=300
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert "the data changed since the run trained" in evaluated.stderr, evaluated.stderr[-2000:]
    # A checkpoint saved before the digest was kept: split=random places files otherwise since, so the
    # resume goes on, saying that its epochs validate on another split.
    (data / "b" / "extra.jpg").unlink()
    last = run_dir / "checkpoints" / "last.ckpt"
    state = torch.load(last, weights_only=False)
    del state["translearn_index"]
    torch.save(state, last)
    resumed = run_cli(*args, "ckpt_path=last", "trainer.max_epochs=2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "saved before translearn recorded which file is in which split" in resumed.stderr


@pytest.mark.parametrize(("procid", "locks"), [("0", True), ("1", False)])
def test_only_rank_0_of_an_srun_job_takes_the_run_folder(
    procid: str, locks: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """srun starts every task of a DDP run with the same command (SLURM_PROCID 1.. and no LOCAL_RANK
    yet): a task of rank 1 ran into rank 0's lock, 'another run is training', and the job broke."""
    import sys

    from translearn import train
    from translearn.rundir import RunLock

    taken = []
    monkeypatch.setenv("SLURM_PROCID", procid)
    monkeypatch.setattr(RunLock, "acquire", lambda self: taken.append(self.path))
    monkeypatch.setattr(train, "_hydra_main", lambda: None)
    monkeypatch.setattr(train, "_sigterm_interrupts", lambda: None)  # not in pytest's own process
    monkeypatch.setattr(sys, "argv", ["translearn.train", *TINY, f"hydra.run.dir={tmp_path / 'run'}"])
    train.main()
    assert bool(taken) == locks, taken
