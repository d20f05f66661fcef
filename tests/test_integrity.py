"""Faults that must lose nothing: kills during a save, corrupt checkpoints, resumes of finished or
interrupted runs, and the run folder's one model of its own state.

Each fault is caused the way it happens to a user: a process killed with a signal, a file cut short, a
command rerun.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from collections import OrderedDict
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from helpers import TINY, assert_user_error, run_cli
from translearn.checkpoints import AtomicCheckpointIO
from translearn.errors import UserError
from translearn.rundir import COMPLETE, FAILED, INTERRUPTED, PENDING, RunDir, readable_checkpoint
from translearn.train import run


@pytest.mark.cli
def test_a_kill_during_a_checkpoint_save_leaves_the_previous_one_whole(tmp_path: Path) -> None:
    """A process saving 60 MB checkpoints in a loop, SIGKILLed at staggered moments: last.ckpt loads."""
    target = tmp_path / "checkpoints" / "last.ckpt"
    script = textwrap.dedent(
        f"""
        import torch, sys
        from translearn.checkpoints import AtomicCheckpointIO
        io = AtomicCheckpointIO()
        i = 0
        while True:
            w = torch.full((15_000_000,), float(i))
            io.save_checkpoint({{"state_dict": {{"w": w}}, "i": i}}, {str(target)!r})
            i += 1
            print(i, flush=True)
        """
    )
    for delay in (0.35, 0.6, 0.85):
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        first = proc.stdout.readline()  # one save finished: from here on a previous checkpoint exists
        assert first.strip() == "1", "the saving process died before its first save (see its stderr)"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert readable_checkpoint(target) is None
        state = torch.load(target, weights_only=True)
        assert torch.all(state["state_dict"]["w"] == state["i"])  # one save, whole, not a mix of two
    leftovers = [p.name for p in target.parent.iterdir() if p.name != "last.ckpt"]
    assert all(name.endswith(".partial") for name in leftovers)  # at most the killed save's temp file
    assert RunDir(tmp_path).checkpoint_files() == [target]  # which is never taken for a checkpoint


class _CtrlC:
    """Pickled inside torch.save: presses Ctrl-C in the middle of the save."""

    def __reduce__(self) -> tuple:
        os.kill(os.getpid(), signal.SIGINT)
        return (OrderedDict, ((("at", 7),),))  # a type weights_only loading accepts


def test_a_ctrl_c_during_a_checkpoint_save_lands_after_it_and_the_file_is_whole(tmp_path: Path) -> None:
    """torch.save's zip writer turned a Ctrl-C inside its write into RuntimeError("unexpected pos"): a
    traceback, the run recorded as failed instead of interrupted, and this save lost."""
    target = tmp_path / "checkpoints" / "last.ckpt"
    weights = torch.arange(100_000, dtype=torch.float32)
    with pytest.raises(KeyboardInterrupt):
        AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": weights}, "at": _CtrlC()}, target)
    state = torch.load(target, weights_only=True)
    assert state["at"] == {"at": 7} and torch.equal(state["state_dict"]["w"], weights)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


@pytest.mark.cli
def test_ctrl_c_ends_a_run_as_interrupted_with_the_command_that_resumes_it(tmp_path: Path) -> None:
    """Lightning answers Ctrl-C with sys.exit(1): the run ended with exit code 1 and no word on resuming."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "translearn.train", *TINY, "trainer.max_epochs=50", f"hydra.run.dir={out}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.time() + 120
    while not (out / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, text[-3000:]
    assert (
        f"training interrupted; resume with the same command plus ckpt_path=last hydra.run.dir={out}" in text
    )
    assert "Traceback" not in text
    assert RunDir(out).status == INTERRUPTED and not (out / "failure.json").exists()


def test_checkpoints_load_with_weights_only_whatever_the_caller_asks(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "x": Payload()}, path)
    with pytest.raises(Exception, match=r"[Ww]eights only load failed|Unsupported global"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)
    assert readable_checkpoint(path) is not None


def _cut(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


@pytest.mark.slow
@pytest.mark.cli
def test_a_corrupt_last_ckpt_resumes_from_the_newest_good_one_or_says_what_to_do(
    compose_cfg, tmp_path: Path
) -> None:
    """A run cut after 2 epochs, its last.ckpt cut to a third (a copy cut short); resumed from the CLI."""
    common = ["strategy=freeze", "trainer.max_epochs=3", "strategy.cache_features=false"]
    crash = "+callbacks.crash={_target_:fakes.CrashAtEpoch,epoch:2}"
    out = tmp_path / "cut"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose_cfg(*common, crash, run_dir=out))
    assert RunDir(out).status == INTERRUPTED
    _cut(out / "checkpoints" / "last.ckpt")
    resumed = run_cli(*TINY, *common, "ckpt_path=last", f"hydra.run.dir={out}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "last.ckpt is unreadable" in resumed.stderr and "resuming from best-epoch" in resumed.stderr
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 3

    other = tmp_path / "other"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose_cfg(*common, crash, run_dir=other))
    for ckpt in (other / "checkpoints").glob("*.ckpt"):
        _cut(ckpt)
    refused = run_cli(*TINY, *common, "ckpt_path=last", f"hydra.run.dir={other}")
    assert_user_error(refused, "last.ckpt is unreadable", "no other checkpoint is good; move it away")


@pytest.mark.slow
def test_resuming_a_finished_run_changes_nothing(compose_cfg, tmp_path: Path, capsys) -> None:
    out = tmp_path / "done"
    first = run(compose_cfg("strategy=freeze", run_dir=out))
    before = (out / "metrics.json").read_bytes()
    again = run(compose_cfg("strategy=freeze", "ckpt_path=last", run_dir=out))
    assert again == first and (out / "metrics.json").read_bytes() == before
    assert "is already complete (metrics.json); nothing to resume" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.cli
def test_a_refused_or_empty_resume_leaves_the_runs_record_alone_and_an_accepted_one_updates_it(
    tmp_path: Path,
) -> None:
    """Hydra writes .hydra/ when a job starts: a refused resume rewrote the finished run's config (then
    the report read the wrong recipe, eval the wrong colour mode) and left a failure.json beside its
    metrics.json; a resume with nothing to train rewrote it with whatever was on the command line."""
    out = tmp_path / "run"
    first = run_cli(*TINY, "strategy=freeze", "dataset.color=gray", f"hydra.run.dir={out}")
    assert first.returncode == 0, first.stderr[-2000:]
    record = {p.name: p.read_bytes() for p in [*(out / ".hydra").iterdir(), out / "metrics.json"]}

    # Other settings on a finished run used to be answered "nothing to resume" with its results.
    refused = run_cli(*TINY, "strategy=finetune", "ckpt_path=last", f"hydra.run.dir={out}")
    assert_user_error(refused, "belongs to a different run", "dataset.color=gray in the run, rgb now")
    refused = run_cli(*TINY, "strategy=freeze", "dataset.color=gray", "model.optimizer.lr=0.5",
                      "ckpt_path=last", f"hydra.run.dir={out}")  # fmt: skip
    assert_user_error(refused, "belongs to a different run", "model.optimizer.lr=0.001 in the run, 0.5 now")
    empty = run_cli(*TINY, "strategy=freeze", "dataset.color=gray", "ckpt_path=last", f"hydra.run.dir={out}")
    assert empty.returncode == 0 and "nothing to resume" in empty.stderr + empty.stdout
    assert {p.name: p.read_bytes() for p in [*(out / ".hydra").iterdir(), out / "metrics.json"]} == record
    assert not (out / "failure.json").exists() and RunDir(out).status == COMPLETE

    longer = run_cli(*TINY, "strategy=freeze", "dataset.color=gray", "trainer.max_epochs=2",
                     "ckpt_path=last", f"hydra.run.dir={out}")  # fmt: skip
    assert longer.returncode == 0, longer.stderr[-2000:]
    assert "max_epochs: 2" in (out / ".hydra" / "config.yaml").read_text()
    assert "ckpt_path=last" in (out / ".hydra" / "overrides.yaml").read_text()
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_a_finished_run_that_lost_its_metrics_json_resumes_to_the_same_results(
    compose_cfg, tmp_path: Path
) -> None:
    """last.ckpt at max_epochs, no metrics.json: the resumed fit trains nothing, then tests and writes.

    Lightning's CSV writer knew only the test keys then and failed rewriting the earlier rows ("dict
    contains fields not in fieldnames"); the history merge now tells it the file's keys.
    """
    out = tmp_path / "done"
    first = run(compose_cfg("strategy=freeze", run_dir=out))
    (out / "metrics.json").unlink()
    again = run(compose_cfg("strategy=freeze", "ckpt_path=last", run_dir=out))
    assert again["best_val_acc"] == first["best_val_acc"] and again["test_acc"] == first["test_acc"]
    with open(out / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows if r.get("val/acc")] == ["0"]  # the earlier epoch, once
    assert [r for r in rows if r.get("test/acc")]


@pytest.mark.slow
def test_a_csv_log_with_rows_longer_than_its_header_still_resumes(compose_cfg, tmp_path: Path) -> None:
    """A run interrupted while Lightning's CSV writer rewrote its file under a longer header leaves rows
    longer than the header; the resume's merge then sorted None (DictReader's key for the extra values)
    among the column names and failed: "'<' not supported between instances of 'NoneType' and 'str'"."""
    out = tmp_path / "done"
    first = run(compose_cfg("strategy=freeze", run_dir=out))
    log = out / "csv" / "metrics.csv"
    header = log.read_text().splitlines()[0].split(",")
    with open(log, "a") as f:
        f.write(",".join(["0"] * (len(header) + 2)) + "\n")  # two values more than the header names
    (out / "metrics.json").unlink()
    again = run(compose_cfg("strategy=freeze", "ckpt_path=last", run_dir=out))
    assert again["best_val_acc"] == first["best_val_acc"] and again["test_acc"] == first["test_acc"]
    with open(log, newline="") as f:
        assert None not in csv.DictReader(f).fieldnames


@pytest.mark.slow
def test_ctrl_c_during_the_test_pass_is_an_interruption_not_a_failure(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    """Lightning answers a KeyboardInterrupt in test() with sys.exit(1), as in fit(): a sweep cell Ctrl-C'd
    during its test pass ended with exit code 1 instead of 130, the code that says "interrupted"."""
    from translearn.module import TransferModule

    def interrupted(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(TransferModule, "test_step", interrupted)
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(compose_cfg("strategy=freeze", run_dir=tmp_path / "run"))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C once it has one


@pytest.mark.slow
def test_resume_with_loader_workers_is_exact_and_keeps_time_and_logs(compose_cfg, tmp_path: Path) -> None:
    """num_workers=2 (persistent): the resumed run equals the uninterrupted one, bit for bit."""
    common = [
        "strategy=first_k", "strategy.k=3", "trainer.max_epochs=3", "dataset.num_workers=2",
        "trainer.log_every_n_steps=1",
    ]  # fmt: skip
    straight = run(compose_cfg(*common, run_dir=tmp_path / "straight"))
    crash = "+callbacks.crash={_target_:fakes.CrashAtEpoch,epoch:2}"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose_cfg(*common, crash, run_dir=tmp_path / "cut"))
    spent = torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=True)["callbacks"]
    before = next(v["fit_seconds"] for k, v in spent.items() if k.startswith("Throughput"))
    resumed = run(compose_cfg(*common, "ckpt_path=last", run_dir=tmp_path / "cut"))

    a = torch.load(tmp_path / "straight/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert [k for k in a if not torch.equal(a[k], b[k])] == []
    assert resumed["best_val_acc"] == straight["best_val_acc"] and resumed["test_acc"] == straight["test_acc"]
    assert resumed["train_seconds"] > before > 0  # the fit before the crash counts

    def epochs(run_dir: Path, key: str) -> dict[int, str]:
        with open(run_dir / "csv" / "metrics.csv", newline="") as f:
            return {int(float(r["epoch"])): r[key] for r in csv.DictReader(f) if r.get(key)}

    assert sorted(epochs(tmp_path / "cut", "val/acc")) == [0, 1, 2]  # the epochs before the cut are kept
    straight_acc = epochs(tmp_path / "straight", "train/acc")
    assert sorted(straight_acc) == [0, 1, 2] and epochs(tmp_path / "cut", "train/acc") == straight_acc

    def epochless(run_dir: Path) -> list[tuple[tuple[str, str], ...]]:
        """Rows without an epoch (each epoch's LRs, the parameter counts), as logged: keys with values."""
        with open(run_dir / "csv" / "metrics.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if not r.get("epoch")]
        return sorted(tuple(sorted((k, v) for k, v in r.items() if v)) for r in rows)

    # The earlier run's LR rows of the epochs before the cut survive, and nothing is written twice.
    straight_rows = epochless(tmp_path / "straight")
    assert sum(any(k.startswith("lr-") for k, _ in r) for r in straight_rows) == 3  # one per epoch
    assert sum(any(k == "params/total" for k, _ in r) for r in straight_rows) == 1
    assert epochless(tmp_path / "cut") == straight_rows


@pytest.mark.slow
def test_trainable_params_count_only_stages_that_unfroze(compose_cfg, tmp_path: Path) -> None:
    late = run(
        compose_cfg("strategy=gradual", "strategy.start=5", "trainer.max_epochs=2", run_dir=tmp_path / "a")
    )
    assert late["trainable_params"] == 512 * 5 + 5  # the head only: layer4 was due at epoch 5
    early = run(
        compose_cfg("strategy=gradual", "strategy.start=1", "trainer.max_epochs=2", run_dir=tmp_path / "b")
    )
    assert early["trainable_params"] > 512 * 5 + 5


def test_run_folder_states(tmp_path: Path) -> None:
    folder = RunDir(tmp_path / "cell")
    assert folder.status == PENDING
    folder.path.mkdir()
    (folder.checkpoints).mkdir()
    (folder.checkpoints / ".last.ckpt.123.partial").write_bytes(b"half")
    assert folder.status == PENDING  # a temporary file is not a checkpoint
    torch.save({"state_dict": {}}, folder.checkpoints / "last.ckpt")
    assert folder.status == INTERRUPTED
    folder.record_failure("boom", 1)
    assert folder.status == FAILED and folder.failure()["reason"] == "boom"
    folder.clear_failure()
    assert folder.status == INTERRUPTED and (folder.path / "failure.previous.json").is_file()
    folder.write_metrics({"status": "complete", "best_val_acc": 0.5})
    assert folder.status == COMPLETE
    assert not [p for p in folder.path.iterdir() if p.name.endswith(".partial")]
    (folder.path / "metrics.json").write_text('{"status": "compl')  # cut by a crash: not complete
    assert folder.status == INTERRUPTED
    assert json.loads((folder.path / "failure.previous.json").read_text())["returncode"] == 1


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused_and_names_them(compose_cfg, tmp_path: Path) -> None:
    common = ["trainer.max_epochs=3", "strategy.cache_features=false"]
    crash = "+callbacks.crash={_target_:fakes.CrashAtEpoch,epoch:1}"
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(compose_cfg("strategy=freeze", *common, crash, run_dir=out))
    with pytest.raises(
        UserError, match=r"belongs to a different run \(dataset.color=rgb in the run, gray now"
    ):
        run(compose_cfg("strategy=freeze", "dataset.color=gray", *common, "ckpt_path=last", run_dir=out))
    with pytest.raises(UserError, match=r"strategy._target_=translearn.strategies.Freeze in the run"):
        run(compose_cfg("strategy=finetune", *common, "ckpt_path=last", run_dir=out))
    resumed = run(
        compose_cfg("strategy=freeze", *common, "dataset.num_workers=1", "ckpt_path=last", run_dir=out)
    )
    assert resumed["epochs"] == 3  # where and how fast the data loads may change


class _ScoredModule(pl.LightningModule):
    """A linear model whose val/acc is fixed per epoch: the score sequence decides which epoch is best."""

    def __init__(self, scores: list[float]) -> None:
        super().__init__()
        self.scores = scores
        self.layer = torch.nn.Linear(3 * 32 * 32, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x.flatten(1)), y)

    def validation_step(self, batch, batch_idx) -> None:
        self.log("val/acc", self.scores[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


SCORES = [0.375, 0.0625, 0.5]  # val/acc by epoch: the resumed epoch 1 is worse, epoch 2 better


def _fit_scored(compose_cfg, run_dir: Path, epochs: int, ckpt_path: Path | None = None) -> list:
    """Fit _ScoredModule with the checkpoint callbacks conf/callbacks/default.yaml configures."""
    from fakes import random_loader
    from translearn.config import instantiate

    cfg = compose_cfg(run_dir=run_dir)
    callbacks = [instantiate(cfg.callbacks[name]) for name in ("model_checkpoint", "last_checkpoint")]
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's notes on the tiny loaders
        trainer.fit(_ScoredModule(SCORES), random_loader(), random_loader(), ckpt_path=ckpt_path)
    return callbacks


def test_a_moved_run_folder_resumes_with_its_best_checkpoint_and_score(compose_cfg, tmp_path: Path) -> None:
    """Lightning's ModelCheckpoint drops its best score and top-k list when the saved dirpath differs
    from the current one: a run moved from scratch to home resumed with no best, saved the worse epoch 1
    as best, wrote its score to metrics.json, and left both best-*.ckpt files."""
    first = tmp_path / "scratch" / "run"
    _fit_scored(compose_cfg, first, epochs=1)
    moved = tmp_path / "home" / "run"
    moved.parent.mkdir()
    shutil.move(first, moved)
    best, last = _fit_scored(compose_cfg, moved, epochs=2, ckpt_path=moved / "checkpoints" / "last.ckpt")
    checkpoints = (moved / "checkpoints").resolve()
    assert float(best.best_model_score) == 0.375  # epoch 0's, not the worse epoch 1's 0.0625
    assert best.best_model_path == str(checkpoints / "best-epoch000.ckpt")
    assert list(best.best_k_models) == [str(checkpoints / "best-epoch000.ckpt")]
    assert sorted(p.name for p in checkpoints.glob("*.ckpt")) == ["best-epoch000.ckpt", "last.ckpt"]
    assert last.best_model_path == str(checkpoints / "last.ckpt")

    # A better epoch 2 becomes the best, and top-k pruning deletes the old best from the new folder.
    best, _ = _fit_scored(compose_cfg, moved, epochs=3, ckpt_path=moved / "checkpoints" / "last.ckpt")
    assert float(best.best_model_score) == 0.5
    assert sorted(p.name for p in checkpoints.glob("best-*.ckpt")) == ["best-epoch002.ckpt"]


def test_moved_checkpoint_state_is_rerooted_only_where_its_files_are(compose_cfg, tmp_path: Path) -> None:
    """The saved paths follow the folder when the files are there; otherwise Lightning's rule stands."""
    from translearn.config import instantiate

    old = str(tmp_path / "gone" / "checkpoints")
    new = tmp_path / "here" / "checkpoints"
    new.mkdir(parents=True)
    new = new.resolve()  # as ModelCheckpoint keeps its dirpath
    (new / "best-epoch000.ckpt").write_bytes(b"x")
    state = {
        "monitor": "val/acc", "best_model_score": torch.tensor(0.375), "current_score": torch.tensor(0.0625),
        "best_model_path": f"{old}/best-epoch000.ckpt", "dirpath": old,
        "best_k_models": {f"{old}/best-epoch000.ckpt": torch.tensor(0.375)},
        "kth_best_model_path": f"{old}/best-epoch000.ckpt", "kth_value": torch.tensor(0.375),
        "last_model_path": "",
    }  # fmt: skip
    cfg = compose_cfg(run_dir=tmp_path / "here")
    callback = instantiate(cfg.callbacks.model_checkpoint)
    callback.load_state_dict(dict(state))
    assert float(callback.best_model_score) == 0.375 and float(callback.kth_value) == 0.375
    assert callback.best_model_path == callback.kth_best_model_path == str(new / "best-epoch000.ckpt")
    assert list(callback.best_k_models) == [str(new / "best-epoch000.ckpt")]
    # Lightning's state key: checkpoints written with Lightning's own class still restore into it.
    settings = {k: v for k, v in cfg.callbacks.model_checkpoint.items() if k != "_target_"}
    assert callback.state_key == pl.callbacks.ModelCheckpoint(**settings).state_key

    (new / "best-epoch000.ckpt").unlink()  # not here either: nothing to re-root, Lightning's rule
    callback = instantiate(cfg.callbacks.model_checkpoint)
    with pytest.warns(UserWarning, match="dirpath has changed"):
        callback.load_state_dict(dict(state))
    assert callback.best_model_score is None and callback.best_k_models == {}


@pytest.mark.slow
def test_a_moved_run_resumes_to_the_true_best_in_metrics_json(compose_cfg, tmp_path: Path) -> None:
    """A run moved (cluster scratch to home) and resumed with a larger trainer.max_epochs."""
    first = tmp_path / "scratch" / "run"
    run(compose_cfg(run_dir=first))
    moved = tmp_path / "home" / "run"
    moved.parent.mkdir()
    shutil.move(first, moved)
    run(compose_cfg("ckpt_path=last", "trainer.max_epochs=2", run_dir=moved))
    saved = json.loads((moved / "metrics.json").read_text())
    with open(moved / "csv" / "metrics.csv", newline="") as f:
        accs = [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]
    assert len(accs) == 2 and saved["best_val_acc"] == pytest.approx(max(accs))
    assert saved["best_epoch"] == accs.index(max(accs)) and saved["run_dir"] == str(moved)
    best = Path(saved["best_checkpoint"])
    assert best.is_file() and best.parent == (moved / "checkpoints").resolve()
    assert [p.name for p in (moved / "checkpoints").glob("best-*.ckpt")] == [best.name]


@pytest.mark.slow
@pytest.mark.cli
def test_a_resume_with_fewer_epochs_than_trained_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    """A run stopped with Ctrl-C after a few epochs, resumed with a smaller trainer.max_epochs: it trained
    nothing, exited 0 and was marked complete with epochs above max_epochs and val_acc null."""
    out = tmp_path / "run"
    common = [*TINY, "strategy=freeze", "strategy.cache_features=false"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "translearn.train", *common, "trainer.max_epochs=50", f"hydra.run.dir={out}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while (not last.exists() or (RunDir.epochs_trained(last) or 0) < 2) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    done = RunDir.epochs_trained(last)
    assert done is not None and 2 <= done < 50

    def files() -> dict[str, bytes]:  # train.log included: a refusal is not written into the run's log
        found = [p for p in out.rglob("*") if p.is_file()]
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in found}

    before = files()
    refused = run_cli(*common, "trainer.max_epochs=1", "ckpt_path=last", f"hydra.run.dir={out}")
    told = f"has already trained {done} epochs, more than trainer.max_epochs=1"
    assert_user_error(refused, told, f"resume with trainer.max_epochs={done} or more")
    assert files() == before and RunDir(out).status == INTERRUPTED and not (out / "failure.json").exists()


# --- shared cache folders (translearn.storage.build_once) --------------------------------------------------


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped): nothing runs under it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_meta(partial: Path) -> None:
    (partial / "meta.json").write_text("{}")


def test_a_killed_builds_partial_folder_is_removed_by_the_next_build_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """kill -9 or SIGTERM skips the builder's cleanup: the next builder, under the lock, removes the rest."""
    from translearn.storage import build_once

    folder, key = tmp_path / "features", "abc123"
    names: list[str] = []
    build_once(folder, "other", lambda t: (t / "meta.json").is_file(), lambda p: names.append(p.name), "x")
    # This host's partial name for `key`, as the builder writes it, with another pid.
    host = names[0][len(".other") : -len(".partial")].rpartition(".")[0]
    dead = _dead_pid()
    left = [
        folder / f".{key}{host}.{dead}.partial",  # killed here: this host, pid gone
        folder / f".{key}.{dead}.partial",  # the name before it carried the host: pid gone here
    ]
    kept = [
        folder / f".{key}{host}.{os.getppid()}.partial",  # a live process
        folder / f".{key}.otherhost.{dead}.partial",  # another host's: its pid is not judged from here
    ]
    for partial in left + kept:
        partial.mkdir(parents=True, exist_ok=True)
        (partial / "train-0.npy").write_bytes(b"half")
    capsys.readouterr()
    target = build_once(folder, key, lambda t: (t / "meta.json").is_file(), _write_meta, "feature cache")
    assert (target / "meta.json").is_file()
    assert not any(p.exists() for p in left) and all(p.exists() for p in kept)
    err = capsys.readouterr().err
    assert err.count("translearn: warning: an interrupted build of the feature cache was found") == 2, err
    assert "Traceback" not in err


def test_an_incomplete_folder_is_rebuilt_with_a_translearn_warning_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The rebuild says so as every translearn warning does, not as a Python UserWarning with a file:line."""
    from translearn.storage import build_once

    folder = tmp_path / "features"
    (folder / "k1").mkdir(parents=True)  # no meta.json: cut short
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_once(folder, "k1", lambda t: (t / "meta.json").is_file(), _write_meta, "feature cache")
    assert not [w for w in caught if "rebuilding" in str(w.message)]
    err = capsys.readouterr().err
    assert (
        f"translearn: warning: feature cache {folder / 'k1'} is incomplete or corrupt; rebuilding it" in err
    )


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "No space left on device"),
        OSError(122, "Disk quota exceeded"),
        OSError("73926 requested and 24448 written"),  # numpy's short write: no errno
    ],
)
def test_a_full_disk_during_a_build_is_one_line_and_leaves_no_partial(tmp_path: Path, error: OSError) -> None:
    from translearn.storage import build_once

    def build(partial: Path) -> None:
        (partial / "pixels.npy").write_bytes(b"half")
        raise error

    folder = tmp_path / "decoded"
    with pytest.raises(UserError) as err:
        build_once(folder, "k1", lambda t: (t / "meta.json").is_file(), build, "decoded image cache")
    message = str(err.value)
    assert message.startswith(f"cannot write the decoded image cache in {folder}: ") and "\n" not in message
    assert ("quota" if error.errno == 122 else "no space left on the device") in message
    assert "free space or set paths.cache_dir=DIR" in message
    assert sorted(p.name for p in folder.iterdir()) == [".k1.lock"]  # no partial, no target


def test_reserving_a_memory_mapped_file_turns_a_full_disk_into_enospc(tmp_path: Path, monkeypatch) -> None:
    """A page the disk cannot back is SIGBUS when written: the space is reserved before mapping instead.

    Where the filesystem cannot reserve (EOPNOTSUPP), the free space is checked.
    """
    import errno

    import numpy as np

    from translearn import storage

    reserved: list[int] = []
    real = os.posix_fallocate
    monkeypatch.setattr(os, "posix_fallocate", lambda fd, off, n: (reserved.append(n), real(fd, off, n)))
    array = storage.open_npy(tmp_path / "a.npy", "float16", (3, 5))
    array[:] = 1
    array.flush()
    assert reserved == [(tmp_path / "a.npy").stat().st_size] and reserved[0] >= 30
    assert np.load(tmp_path / "a.npy").tolist() == [[1.0] * 5] * 3

    def unsupported(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.EOPNOTSUPP, "Operation not supported")

    monkeypatch.setattr(os, "posix_fallocate", unsupported)
    storage.save_npy(tmp_path / "b.npy", np.arange(4))  # falls back: enough room
    assert np.load(tmp_path / "b.npy").tolist() == [0, 1, 2, 3]
    full = os.statvfs_result((4096, 4096, 100, 0, 0, 100, 0, 0, 0, 255))
    monkeypatch.setattr(os, "fstatvfs", lambda fd: full)
    with pytest.raises(OSError) as err:
        storage.open_npy(tmp_path / "c.npy", "float32", (1000,))
    assert err.value.errno == errno.ENOSPC
