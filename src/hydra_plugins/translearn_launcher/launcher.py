"""A Hydra launcher that runs every cell of a multirun as its own ``translearn.train`` process.

Selected by ``launcher=local`` (one cell after another) and ``launcher=gpus`` (one cell per free GPU
group). Why a process per cell, and how devices are packed: see :mod:`translearn.sweep`. A cell's job
returns its ``optimized_metric`` as a float (what Hydra's Optuna sweeper reads), or fails with
:class:`CellFailed`.
"""

# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations.
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

from translearn.log import log
from translearn.rundir import COMPLETE, RunDir
from translearn.sweep import CellFailed, objective, resolve_devices, run_packed

__all__ = ["CellFailed", "TranslearnLauncher", "TranslearnLauncherConf", "job_return"]


class _Stopped(Exception):
    """The sweep was interrupted before this cell started, or while it ran."""


@dataclass
class TranslearnLauncherConf:
    _target_: str = "hydra_plugins.translearn_launcher.launcher.TranslearnLauncher"
    devices: Any = None  # null: cells one at a time; auto: every visible GPU; [0, 1, ...]: these devices
    gpus_per_cell: int = 1  # devices handed to each cell (its CUDA_VISIBLE_DEVICES)
    stream_output: Any = None  # null: live output when cells run one at a time, else <cell>/cell.log


ConfigStore.instance().store(
    group="hydra/launcher", name="translearn", node=TranslearnLauncherConf, provider="translearn"
)


class TranslearnLauncher(Launcher):
    def __init__(self, devices: Any = None, gpus_per_cell: int = 1, stream_output: Any = None) -> None:
        self.devices = devices
        self.gpus_per_cell = gpus_per_cell
        self.stream_output = stream_output
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        devices = resolve_devices(self.devices)
        stream = self.stream_output if self.stream_output is not None else devices is None
        resume = bool(self.config.get("sweep", {}).get("resume", False))
        jobs = []
        for offset, overrides in enumerate(job_overrides):
            idx = initial_job_idx + offset
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(cfg):
                cfg.hydra.job.id = str(idx)
                cfg.hydra.job.num = idx
            HydraConfig.instance().set_config(cfg)  # resolves ${hydra.job.num} in the subdir
            cell_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
            jobs.append((idx, list(overrides), cell_dir, cfg))
        log.info(
            f"sweep {self.config.hydra.sweep.dir}: {len(jobs)} cells"
            + (f" on devices {devices}, {self.gpus_per_cell} per cell" if devices is not None else "")
        )
        self._stop = threading.Event()
        self._running: dict[int, subprocess.Popen] = {}
        try:
            values = run_packed(
                jobs,
                devices,
                self.gpus_per_cell,
                lambda job, group: self._run_cell(job, group, resume, stream),
                stop=self._stop,
            )
        except KeyboardInterrupt:
            self._interrupt()
            raise
        return [
            job_return(
                overrides,
                cfg,
                cell_dir,
                value if isinstance(value, BaseException) else objective(value, cfg.get("optimized_metric")),
            )
            for (_, overrides, cell_dir, cfg), value in zip(jobs, values, strict=True)
        ]

    def _interrupt(self) -> None:
        """Ctrl-C: start no more cells, stop the running ones (each keeps its last checkpoint), then exit."""
        self._stop.set()
        running = list(self._running.values())
        where = self.config.hydra.sweep.dir if self.config is not None else "DIR"
        log.info(
            f"interrupted: stopping {len(running)} running cell(s); queued cells will not start. Rerun the "
            f"same command with sweep.resume=true hydra.sweep.dir={where} to continue."
        )
        for proc in running:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)  # Lightning stops at the next batch
        for proc in running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)

    def _command(self, overrides: list[str], cell_dir: Path) -> list[str]:
        assert self.config is not None
        flags = []
        for source in self.config.hydra.runtime.config_sources:
            if source.provider == "command-line" and source.schema == "file":
                flags += ["--config-dir", source.path]
        name = self.config.hydra.job.config_name
        if name and name != "train":
            flags += ["--config-name", name]
        # Quoted: cell folder names hold "=" and ",", which the override grammar would parse.
        return [sys.executable, "-m", "translearn.train", *flags, *overrides, f'hydra.run.dir="{cell_dir}"']

    def _run_cell(self, job: tuple, group: tuple, resume: bool, stream: bool) -> Any:
        """The cell's metrics, or the exception that its JobReturn carries (it never raises)."""
        idx, overrides, cell_dir, _ = job
        cell = RunDir(cell_dir)
        if self._stop.is_set():
            return _Stopped(f"cell {cell.name} not started: the sweep was interrupted")
        if resume and cell.status == COMPLETE:
            log.info(f"[{idx}] {cell.name}: already complete, skipped")
            return cell.metrics()
        extra = ["ckpt_path=last"] if resume and cell.checkpoint_files() else []
        cell.clear_failure()
        cell_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRANSLEARN_SWEEP_PID": str(os.getpid())}
        if group:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in group)
        where = f" on device(s) {','.join(map(str, group))}" if group else ""
        log.info(f"[{idx}] {cell.name}: started{where}" + (" (resuming)" if extra else ""))
        command = [*self._command(overrides, cell_dir), *extra, f'++sweep.cell="{cell.name}"']
        tail: deque[str] = deque(maxlen=40)
        with open(cell_dir / "cell.log", "a", encoding="utf-8") as cell_log:
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=None if stream else cell_log,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                # Its own session: a terminal's Ctrl-C reaches the sweep, which stops the queue first and
                # then the cells (and their DDP ranks: the whole group). TRANSLEARN_SWEEP_PID: the cell
                # asks the kernel to end it when the sweep dies (translearn.sweep.die_with_sweep).
                start_new_session=True,
            )
            self._running[idx] = proc
            assert proc.stderr is not None

            def pump() -> (
                None
            ):  # keep the cell's stderr visible (or logged) and its last lines for the reason
                for line in proc.stderr:
                    tail.append(line.rstrip("\n"))
                    (sys.stderr if stream else cell_log).write(line)

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            code = proc.wait()
            reader.join()
            self._running.pop(idx, None)
        metrics = cell.metrics()
        if code == 0 and metrics is not None:
            acc = metrics.get("best_val_acc")
            shown = None if acc is None else round(acc, 4)
            log.info(f"[{idx}] {cell.name}: complete, best_val_acc={shown}")
            return metrics
        if self._stop.is_set():  # stopped by Ctrl-C: resumable from its checkpoint, not a failure
            log.info(f"[{idx}] {cell.name}: stopped (resumable)")
            return _Stopped(f"cell {cell.name} stopped: the sweep was interrupted")
        recorded = cell.failure()  # the cell records its own failure; a crash or a kill cannot
        reason = str(recorded.get("reason") or "failed") if recorded else _reason(list(tail), code)
        if recorded is None:
            cell.record_failure(reason, code)
        log.info(f"[{idx}] {cell.name}: FAILED ({reason})")
        return CellFailed(f"translearn: error: cell {cell.name} failed: {reason}")


def job_return(overrides: list, cfg: DictConfig, cell_dir: Path, value: Any) -> JobReturn:
    """What Hydra's sweeper sees of a cell: COMPLETED with its objective (a float), or FAILED with why.

    Optuna, Ax and Nevergrad read a FAILED job as a failed trial (hparams_search=optuna sets
    max_failure_rate so the study goes on); Hydra's basic sweeper raises its exception (a one-line
    CompactHydraException) once the batch is done, and translearn.train then lists every cell.
    """
    ret = JobReturn(
        overrides=overrides,
        cfg=cfg,
        hydra_cfg=cfg,
        working_dir=str(cell_dir),
        task_name=str(cfg.hydra.job.name),
    )
    ret.status = JobStatus.FAILED if isinstance(value, BaseException) else JobStatus.COMPLETED
    ret.return_value = value
    return ret


def _reason(lines: list[str], code: int) -> str:
    for line in reversed(lines):
        if line.startswith("translearn: error:"):
            return line.removeprefix("translearn: error:").strip()
    if code < 0:
        return f"killed by signal {-code}"
    meaningful = [ln.strip() for ln in lines if ln.strip()]
    return f"exit code {code}: {meaningful[-1][:300]}" if meaningful else f"exit code {code}"
