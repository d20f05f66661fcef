"""Sweeps: device packing, one folder per cell, DDP inside -m, failures, kill-and-resume, W&B per cell."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from helpers import TINY
from translearn.config import validate_command_line
from translearn.errors import UserError
from translearn.sweep import check_sweep_dir, objective, resolve_devices, run_packed
from wandb_records import run_record

SWEEP_TINY = [*TINY, "trainer.enable_progress_bar=false"]


def sweep_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "translearn.train", "-m", *SWEEP_TINY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def cells(sweep_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/metrics.json"))}


# --- packing -------------------------------------------------------------------------------------


def test_packing_never_puts_two_cells_on_one_device_and_refills_freed_devices() -> None:
    durations = [0.30, 0.05, 0.10, 0.20, 0.05, 0.15, 0.05, 0.10, 0.25]
    intervals: list[tuple[int, tuple[int, ...], float, float]] = []
    lock = threading.Lock()

    def fake_cell(cell: int, group: tuple[int, ...]) -> int:
        start = time.perf_counter()
        time.sleep(durations[cell])
        with lock:
            intervals.append((cell, group, start, time.perf_counter()))
        return cell * 10

    results = run_packed(range(len(durations)), devices=[0, 1, 2, 3], per_cell=2, run=fake_cell)

    assert results == [c * 10 for c in range(len(durations))]  # every cell ran once, results in order
    assert sorted(c for c, *_ in intervals) == list(range(len(durations)))
    groups = {g for _, g, *_ in intervals}
    assert groups == {(0, 1), (2, 3)}  # disjoint groups of per_cell devices
    for i, (_, g1, s1, e1) in enumerate(intervals):
        for _, g2, s2, e2 in intervals[i + 1 :]:
            if set(g1) & set(g2):
                assert e1 <= s2 or e2 <= s1, "two cells overlapped on one device"
    # Refilling: the sweep took about as long as the busiest slot, not the sum of all cells.
    wall = max(e for *_, e in intervals) - min(s for *_, s, _ in intervals)
    assert wall < sum(durations) * 0.8


def test_packing_without_devices_runs_cells_in_order() -> None:
    seen: list[tuple[int, tuple]] = []
    run_packed([3, 1, 2], devices=None, per_cell=1, run=lambda c, g: seen.append((c, g)))
    assert seen == [(3, ()), (1, ()), (2, ())]


def test_a_failing_cell_does_not_stop_the_others() -> None:
    done = []

    def cell(c: int, group: tuple[int, ...]) -> None:
        if c == 0:
            raise RuntimeError("boom")
        done.append(c)

    with pytest.raises(RuntimeError, match="boom"):
        run_packed([0, 1, 2], devices=[0], per_cell=1, run=cell)
    assert sorted(done) == [1, 2]


def test_gpus_launcher_without_gpus_suggests_local(monkeypatch) -> None:
    monkeypatch.setattr("translearn.sweep.visible_gpus", lambda: [])
    with pytest.raises(UserError, match="launcher=local"):
        resolve_devices("auto")
    with pytest.raises(UserError, match="no GPU"):
        validate_command_line(["-m", "launcher=gpus", "strategy=finetune,freeze"])


def test_a_sweep_dir_with_cells_is_refused_unless_resuming(tmp_path: Path) -> None:
    (tmp_path / "0_strategy=finetune" / ".hydra").mkdir(parents=True)
    with pytest.raises(UserError, match=r"sweep\.resume=true"):
        validate_command_line(["-m", f"hydra.sweep.dir={tmp_path}", "strategy=finetune,freeze"])
    check_sweep_dir(tmp_path, resume=True)


@pytest.mark.cli
def test_unknown_name_in_a_grid_fails_before_any_cell(tmp_path: Path) -> None:
    proc = sweep_cli("strategy=finetune,frieze", f"hydra.sweep.dir={tmp_path / 'sweep'}", timeout=120)
    assert proc.returncode == 2 and "unknown strategy 'frieze'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "sweep").exists()


# --- end to end on the embedded data -------------------------------------------------------------


@pytest.mark.cli
@pytest.mark.slow
def test_two_by_two_grid_writes_four_cells_and_one_wandb_run_each(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = sweep_cli(
        "strategy=finetune,freeze",
        "dataset.color=rgb,gray",
        "logger=wandb",
        f"hydra.sweep.dir={sweep}",
        f"paths.log_dir={tmp_path / 'logs'}",
        env={"WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = cells(sweep)
    assert sorted(found) == [
        "0_dataset.color=rgb,strategy=finetune",
        "1_dataset.color=gray,strategy=finetune",
        "2_dataset.color=rgb,strategy=freeze",
        "3_dataset.color=gray,strategy=freeze",
    ]
    assert {(m["strategy"], m["color"]) for m in found.values()} == {
        ("finetune", "rgb"),
        ("finetune", "gray"),
        ("freeze", "rgb"),
        ("freeze", "gray"),
    }
    assert all(m["status"] == "complete" and m["sweep_id"] == "sweep" for m in found.values())
    assert not (tmp_path / "logs").exists(), "a second sweep or run directory appeared"
    assert "4 of 4 cells complete" in proc.stdout
    for name, m in found.items():
        (run_dir,) = (sweep / name / "wandb").glob("offline-run-*")  # exactly one W&B run per cell
        record = run_record(run_dir)
        assert record.run_group == "sweep" and record.display_name == name and record.job_type == "train"
        assert set(record.tags) == {"shapes", m["color"], m["strategy"], "resnet18", "bn-frozen"}
        config = {item.key: json.loads(item.value_json) for item in record.config.update}
        assert config["strategy_name"] == m["strategy"]  # a flat column to group runs by


@pytest.mark.cli
@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_inside_a_multirun_runs_each_cell_once_with_ranks_in_sync(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = sweep_cli(
        "trainer=ddp_cpu",
        "strategy=finetune,freeze",
        "dataset.color=rgb,gray",
        f"hydra.sweep.dir={sweep}",
        f"paths.log_dir={tmp_path / 'logs'}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = cells(sweep)
    assert len(found) == 4
    assert all(m["world_size"] == 2 and m["replicas_in_sync"] is True for m in found.values())
    assert len([p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 4
    assert all(
        (sweep / name / "train_ddp_process_1.log").exists() for name in found
    )  # rank 1 ran in the cell
    assert not (tmp_path / "logs").exists(), "a rank relaunched the sweep"
    assert proc.stdout.count("translearn: sweep ") == 2  # one start line, one summary: one sweep


@pytest.mark.cli
@pytest.mark.slow
def test_packed_launcher_runs_cells_side_by_side_and_records_a_failing_cell(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = sweep_cli(
        "launcher=gpus",
        "hydra.launcher.devices=[0,1]",
        "strategy=first_k",
        "trainer.precision=32-true,32,bf17",  # bf17: refused by Lightning in the cell, not before the grid
        f"hydra.sweep.dir={sweep}",
    )
    assert proc.returncode == 1
    found = cells(sweep)
    assert sorted(found) == ["0_trainer.precision=32-true", "1_trainer.precision=32"]
    assert {m["cuda_visible_devices"] for m in found.values()} <= {"0", "1"}
    assert (sweep / "0_trainer.precision=32-true" / "cell.log").is_file()  # parallel cells log to files
    failure = json.loads((sweep / "2_trainer.precision=bf17" / "failure.json").read_text())
    assert "Precision 'bf17' is invalid" in failure["reason"]
    assert "failed: 2_trainer.precision=bf17" in proc.stdout


@pytest.mark.cli
@pytest.mark.slow
def test_killed_sweep_resumes_without_redoing_finished_cells(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = ["strategy=finetune,freeze", f"hydra.sweep.dir={sweep}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "translearn.train", "-m", *SWEEP_TINY, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    done = sweep / "0_strategy=finetune" / "metrics.json"
    deadline = time.time() + 300
    while not done.exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)  # the whole process group: the sweep and its running cell
    first.wait()
    assert done.exists() and len(cells(sweep)) < 2, "the kill came too late to test anything"
    before = (done.read_bytes(), done.stat().st_mtime_ns)

    refused = sweep_cli(*args, timeout=120)
    assert refused.returncode == 2 and "sweep.resume=true" in refused.stderr

    resumed = sweep_cli(*args, "sweep.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(cells(sweep)) == 2
    assert (done.read_bytes(), done.stat().st_mtime_ns) == before, "a finished cell was redone"
    assert "0_strategy=finetune: already complete, skipped" in resumed.stdout


# --- identity, exclusivity, signals ---------------------------------------------------------------


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "translearn.train", "-m", *SWEEP_TINY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _wait_for(proc: subprocess.Popen, fragment: str, timeout: float = 240) -> list[str]:
    lines, deadline = [], time.time() + timeout
    assert proc.stdout is not None
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if fragment in line:
            return lines
    raise AssertionError(f"never saw {fragment!r}:\n{''.join(lines[-30:])}")


def _cell_pids(sweep_dir: Path) -> list[int]:
    """Processes whose command line names this sweep folder, other than the sweep itself (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if f'hydra.run.dir="{sweep_dir}' in cmd:
                pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


SLOW_CELL = ["trainer.max_epochs=50", "++trainer.limit_train_batches=20"]


@pytest.mark.cli
@pytest.mark.slow
def test_a_resume_with_a_different_command_is_refused_and_shows_the_difference(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    first = sweep_cli("strategy=freeze", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr[-2000:]
    wrong = sweep_cli("strategy=finetune", "dataset.color=gray", "seed=0,1", f"hydra.sweep.dir={sweep}",
                      "sweep.resume=true", timeout=120)  # fmt: skip
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    (line,) = [ln for ln in wrong.stderr.splitlines() if ln.startswith("translearn: error:")]
    assert "different command" in line and "started with strategy=freeze" in line
    assert "now dataset.color=gray strategy=finetune" in line
    same = sweep_cli("seed=0,1", "strategy=freeze", f"hydra.sweep.dir={sweep}", "sweep.resume=true")
    assert same.returncode == 0 and same.stdout.count("already complete, skipped") == 2


@pytest.mark.cli
@pytest.mark.slow
def test_a_second_live_sweep_into_the_same_folder_is_refused_and_a_stale_lock_is_taken_over(
    tmp_path: Path,
) -> None:
    sweep = tmp_path / "sweep"
    first = _start("seed=0,1", *SLOW_CELL, f"hydra.sweep.dir={sweep}")
    try:
        _wait_for(first, "started")
        second = sweep_cli(
            "seed=0,1", *SLOW_CELL, f"hydra.sweep.dir={sweep}", "sweep.resume=true", timeout=120
        )
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert f"another sweep (pid {first.pid} on " in second.stderr and "is running in" in second.stderr
    finally:
        first.send_signal(signal.SIGKILL)  # the sweep dies without releasing its lock
        first.wait()
    time.sleep(1.0)
    assert (sweep / "sweep.lock").is_file()
    third = sweep_cli(
        "seed=0,1", *SLOW_CELL[:1], f"hydra.sweep.dir={sweep}", "sweep.resume=true", "trainer.max_epochs=1"
    )
    assert "taking over the stale lock" in third.stderr
    assert not (sweep / "sweep.lock").exists()


@pytest.mark.cli
@pytest.mark.slow
def test_killing_the_sweep_kills_its_cells(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = _start("seed=0,1", *SLOW_CELL, f"hydra.sweep.dir={sweep}")
    _wait_for(proc, "started")
    deadline = time.time() + 60
    while not (pids := _cell_pids(sweep)) and time.time() < deadline:
        time.sleep(0.2)
    assert pids, "no cell process found"
    proc.send_signal(signal.SIGKILL)  # only the sweep process, as `kill -9 <pid>` or an OOM killer does
    proc.wait()
    deadline = time.time() + 20
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "cells outlived their sweep"


@pytest.mark.cli
@pytest.mark.slow
def test_ctrl_c_stops_the_queue_and_the_running_cell_and_leaves_the_sweep_resumable(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    args = [
        "seed=0,1,2",
        "trainer.max_epochs=3",
        "++trainer.limit_train_batches=20",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = _start(*args)
    _wait_for(proc, "[0] 0_seed=0: started")
    deadline = time.time() + 120
    while not (sweep / "0_seed=0" / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the sweep
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert ": started" not in out.split("interrupted", 1)[1]  # no cell started after the interrupt
    assert f"sweep.resume=true hydra.sweep.dir={sweep}" in out  # the hint names the folder to resume
    assert not (sweep / "1_seed=1" / ".hydra").exists() and not (sweep / "2_seed=2" / ".hydra").exists()
    assert not (sweep / "0_seed=0" / "failure.json").exists()  # stopped, not failed
    resumed = sweep_cli(*args, "sweep.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (
        "[0] 0_seed=0: started on" not in resumed.stdout and "0_seed=0: started (resuming)" in resumed.stdout
    )
    assert len(cells(sweep)) == 3


@pytest.mark.slow
def test_failed_cells_reach_hydra_as_failed_jobs(tmp_path: Path) -> None:
    from hydra.core.utils import JobStatus
    from omegaconf import OmegaConf

    from hydra_plugins.translearn_launcher.launcher import CellFailed, TranslearnLauncher, job_return

    launcher = TranslearnLauncher()
    launcher._stop = threading.Event()
    launcher._running = {}
    launcher._command = lambda overrides, cell_dir: [sys.executable, "-c", "import sys; sys.exit(3)"]
    value = launcher._run_cell((0, [], tmp_path / "0_x", None), (), resume=False, stream=False)
    assert isinstance(value, CellFailed) and "exit code 3" in str(value)
    assert json.loads((tmp_path / "0_x" / "failure.json").read_text())["returncode"] == 3
    failed = job_return(["seed=0"], OmegaConf.create({"hydra": {"job": {"name": "t"}}}), tmp_path, value)
    assert failed.status == JobStatus.FAILED  # what Optuna, Ax or Nevergrad read as a failed trial
    with pytest.raises(CellFailed, match="exit code 3"):
        _ = failed.return_value
    done = job_return(["seed=1"], OmegaConf.create({"hydra": {"job": {"name": "t"}}}), tmp_path, 0.75)
    assert done.status == JobStatus.COMPLETED and done.return_value == 0.75


def test_a_cell_returns_its_optimized_metric_as_a_float() -> None:
    """What Hydra's Optuna sweeper calls float() on; a metric the run lacks is None (a failed trial)."""
    metrics = {"best_val_acc": 0.8, "val_loss": 0.5, "test_acc": None, "train_seconds": 3.5}
    assert objective(metrics, None) == objective(metrics, "val/acc_best") == 0.8
    assert objective(metrics, "val/loss") == objective(metrics, "val_loss") == 0.5
    assert objective(metrics, "train_seconds") == 3.5
    assert objective(metrics, "test/acc") is None
    with pytest.raises(UserError, match="optimized_metric=val/f1 is not a metric"):
        objective(metrics, "val/f1")


@pytest.mark.slow
def test_an_in_process_cell_returns_its_objective_and_a_failing_one_raises_a_one_line_failure(
    compose_cfg, tmp_path: Path
) -> None:
    """launcher=inline and submitit run cells in the sweep's process: the same float, the same failed job."""
    from translearn.sweep import CellFailed
    from translearn.train import _in_process_cell

    cfg = compose_cfg("strategy=freeze", "optimized_metric=val/acc", run_dir=tmp_path / "0_ok")
    value = _in_process_cell(cfg)
    metrics = json.loads((tmp_path / "0_ok" / "metrics.json").read_text())
    assert isinstance(value, float) and value == metrics["val_acc"]

    bad = compose_cfg("strategy=first_k", "strategy.k=99", run_dir=tmp_path / "1_bad")
    with pytest.raises(CellFailed, match=r"cell 1_bad failed: .*strategy.k=99 is out of range") as err:
        _in_process_cell(bad)
    assert "\n" not in str(err.value)
    assert "out of range" in json.loads((tmp_path / "1_bad" / "failure.json").read_text())["reason"]


def test_cell_names_are_safe_for_any_value() -> None:
    from translearn.sweep import safe_name

    assert safe_name("model.weights=/data/w/r18.pth") == "model.weights=%2Fdata%2Fw%2Fr18.pth"
    assert safe_name("x='a\"b'") == "x=%27a%22b%27"
    assert safe_name("strategy=finetune,dataset.color=gray") == "strategy=finetune,dataset.color=gray"
    # A Trainer argument the presets lack reaches Hydra as ++trainer.<arg>= (config.trainer_arguments_added)
    assert safe_name("++trainer.gradient_clip_val=1,seed=0") == "trainer.gradient_clip_val=1,seed=0"
    assert safe_name("seed=0,++trainer.gradient_clip_val=1") == "seed=0,trainer.gradient_clip_val=1"
    from translearn.config import run_name  # the W&B run's name

    assert run_name("++trainer.gradient_clip_val=1,seed=0") == "trainer.gradient_clip_val=1,seed=0"
    assert run_name("") == "default"
    long = safe_name("k=" + "v" * 500)
    assert len(long.encode()) <= 200 and long != safe_name("k=" + "v" * 499)


@pytest.mark.cli
@pytest.mark.slow
def test_a_swept_value_with_a_slash_stays_one_cell_folder(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    proc = sweep_cli("+tag=a/b,c", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(cells(sweep)) == ["0_+tag=a%2Fb", "1_+tag=c"]
    assert "2 of 2 cells complete" in proc.stdout


def test_a_sweep_whose_start_failed_before_any_cell_takes_the_corrected_command(tmp_path: Path) -> None:
    """The first command's sweep.json stayed after it failed before any cell, and the corrected command,
    which then ran every cell, could not be resumed: "started with dataset.classes=all"."""
    from translearn.sweep import check_identity

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    check_identity(sweep, ["dataset.classes=all", "strategy=freeze,finetune"], resume=False)
    corrected = ["++dataset.classes=all", "strategy=freeze,finetune"]
    check_identity(sweep, corrected, resume=False)  # no cell began: the folder is the corrected command's
    (sweep / "0_strategy=freeze" / ".hydra").mkdir(parents=True)  # its first cell starts
    check_identity(sweep, corrected, resume=True)
    with pytest.raises(UserError, match="different command"):
        check_identity(sweep, ["dataset.classes=all", "strategy=freeze,finetune"], resume=True)


def test_a_sweep_started_before_paths_were_made_absolute_resumes_as_the_same_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """translearn now passes dataset.root=data as its absolute path and trainer.<arg> as ++: a sweep whose
    sweep.json holds the command as typed must still resume (from the folder it was typed in)."""
    import json

    from translearn.config import class_arguments_added, paths_expanded
    from translearn.sweep import check_identity

    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep"
    (sweep / "0_seed=0" / ".hydra").mkdir(parents=True)
    typed = ["dataset=imagefolder", "dataset.root=data", "trainer.gradient_clip_val=1", "seed=0,1"]
    (sweep / "sweep.json").write_text(json.dumps({"overrides": sorted(typed), "cells": 2}))
    check_identity(sweep, paths_expanded(class_arguments_added(typed)), resume=True)
    with pytest.raises(UserError, match="different command"):
        check_identity(sweep, [*typed[:-1], "seed=0,1,2"], resume=True)


def test_the_sweep_summary_tells_interrupted_cells_from_failed_ones(tmp_path: Path) -> None:
    """An interrupted cell (resumable) was listed under "failed"."""
    from translearn.sweep import report

    for name in ("0_a", "1_b", "2_c"):
        (tmp_path / name / ".hydra").mkdir(parents=True)
    (tmp_path / "0_a" / "metrics.json").write_text(json.dumps({"status": "complete", "best_val_acc": 0.5}))
    (tmp_path / "1_b" / "checkpoints").mkdir()
    (tmp_path / "1_b" / "checkpoints" / "last.ckpt").write_bytes(b"x")
    (tmp_path / "2_c" / "failure.json").write_text(json.dumps({"status": "failed", "reason": "bad"}))
    lines: list[str] = []
    assert report(tmp_path, lines.append) == 1
    assert lines[-1].endswith("1 of 3 cells complete; interrupted: 1_b; failed: 2_c")


def test_a_swept_data_folder_names_its_cells_and_a_fixed_one_does_not(tmp_path: Path) -> None:
    """Two roots were cells ``0__`` and ``1__``: dataset.root was never in a cell's name."""
    from publishers import imagefolder

    a, b = imagefolder(tmp_path / "a"), imagefolder(tmp_path / "b")
    out = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    swept = validate_command_line(["-m", "dataset=imagefolder", f"dataset.root={a},{b}", out])
    assert "dataset.root" not in swept.cell_name_excluded()
    assert "ckpt_path" in swept.cell_name_excluded()
    fixed = validate_command_line(["-m", "dataset=imagefolder", f"dataset.root={a}", "seed=0,1", out])
    assert "dataset.root" in fixed.cell_name_excluded()


def test_the_summary_counts_the_cells_a_stopped_sweep_never_reached(tmp_path: Path) -> None:
    """A sweep of 3 stopped in its first cell said "0 of 1 cells complete": the others had no folder."""
    from translearn.sweep import check_identity, report

    check_identity(tmp_path, ["seed=0,1,2"], resume=False, cells=3)
    (tmp_path / "0_seed=0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0_seed=0" / "metrics.json").write_text(json.dumps({"status": "complete"}))
    lines: list[str] = []
    assert report(tmp_path, lines.append) == 1
    assert lines[-1].endswith("1 of 3 cells complete; not started: 2 more without a folder")


def test_a_sweep_records_how_many_cells_it_has(tmp_path: Path) -> None:
    out = "hydra.sweep.dir=/nonexistent/sweep"
    assert validate_command_line(["-m", *TINY, "seed=0,1,2", "strategy=freeze,finetune", out]).cells == 6
    data = tmp_path / "data"  # the grid's data folders are checked before its first cell
    for name in ("hymenoptera", "simpsons", "caltech256", "dogs_vs_cats"):
        (data / name).mkdir(parents=True)
    grid = validate_command_line(["-m", "experiment=seed2017_grid", f"paths.data_dir={data}", out])
    assert grid.cells == 16  # the experiment's grid
    assert validate_command_line(["-m", *TINY, "hparams_search=optuna", out]).cells == 20  # n_trials


@pytest.mark.cli
@pytest.mark.slow
def test_ctrl_c_under_the_inline_launcher_exits_130_and_the_sweep_resumes(tmp_path: Path) -> None:
    """launcher=inline: Lightning's sys.exit(1) on Ctrl-C ended the sweep with exit code 1, no resume hint."""
    sweep = tmp_path / "sweep"
    args = ["launcher=inline", "seed=0,1,2", "trainer.max_epochs=3", f"hydra.sweep.dir={sweep}"]
    proc = _start(*args)
    deadline = time.time() + 120
    while not (sweep / "0_seed=0" / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-3000:]
    assert f"sweep.resume=true hydra.sweep.dir={sweep}" in out
    assert "0 of 3 cells complete; interrupted: 0_seed=0; not started: 2 more without a folder" in out
    assert not (sweep / "0_seed=0" / "failure.json").exists()
    resumed = sweep_cli(*args, "sweep.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(cells(sweep)) == 3


@pytest.mark.cli
@pytest.mark.slow
def test_an_inline_resume_leaves_finished_cells_records_alone_and_records_the_cells_it_runs(
    tmp_path: Path,
) -> None:
    """Hydra's run_job writes .hydra at each job's start: a resume rewrote every finished cell's config."""
    sweep = tmp_path / "sweep"
    args = ["launcher=inline", "seed=0,1", "trainer.max_epochs=1", f"hydra.sweep.dir={sweep}"]
    assert sweep_cli(*args).returncode == 0
    record = {p.name: p.read_bytes() for p in (sweep / "0_seed=0" / ".hydra").iterdir()}
    assert set(record) == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    for path in sorted((sweep / "1_seed=1").rglob("*"), reverse=True):  # cell 1 as if never reached
        path.unlink() if path.is_file() else path.rmdir()
    (sweep / "1_seed=1").rmdir()
    resumed = sweep_cli(*args, "sweep.resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in (sweep / "0_seed=0" / ".hydra").iterdir()} == record
    again = sweep / "1_seed=1" / ".hydra"
    assert {p.name for p in again.iterdir()} == set(record)
    assert "seed: 1" in (again / "config.yaml").read_text()
    assert len(cells(sweep)) == 2
