"""A Hydra launcher that runs every cell of a multirun as its own ``translearn.train`` process.

Selected by ``launcher=local`` (one cell after another) and ``launcher=gpus`` (one cell per free GPU
group). Why a process per cell, and how devices are packed: see :mod:`translearn.sweep`.
"""

# No `from __future__ import annotations`: Hydra loads plugin modules outside sys.modules, where
# dataclasses cannot resolve string annotations.
import os
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

from translearn.sweep import (
    COMPLETE,
    Cell,
    clear_failure,
    record_failure,
    resolve_devices,
    run_packed,
    say,
)


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
        say(
            f"translearn: sweep {self.config.hydra.sweep.dir}: {len(jobs)} cells"
            + (f" on devices {devices}, {self.gpus_per_cell} per cell" if devices is not None else "")
        )
        values = run_packed(
            jobs, devices, self.gpus_per_cell, lambda job, group: self._run_cell(job, group, resume, stream)
        )
        returns = []
        for (_, overrides, cell_dir, cfg), value in zip(jobs, values, strict=True):
            ret = JobReturn(
                overrides=overrides,
                cfg=cfg,
                hydra_cfg=cfg,
                working_dir=str(cell_dir),
                task_name=str(cfg.hydra.job.name),
                status=JobStatus.COMPLETED,
            )
            ret.return_value = value  # failures are reported by translearn.train from the cells' folders
            returns.append(ret)
        return returns

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

    def _run_cell(self, job: tuple, group: tuple, resume: bool, stream: bool) -> dict | None:
        idx, overrides, cell_dir, _ = job
        cell = Cell(cell_dir)
        if resume and cell.status == COMPLETE:
            say(f"translearn: [{idx}] {cell.name}: already complete, skipped")
            return cell.metrics()
        extra = ["ckpt_path=last"] if resume and (cell_dir / "checkpoints").is_dir() else []
        clear_failure(cell_dir)
        cell_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if group:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(d) for d in group)
        where = f" on device(s) {','.join(map(str, group))}" if group else ""
        say(f"translearn: [{idx}] {cell.name}: started{where}" + (" (resuming)" if extra else ""))
        command = [*self._command(overrides, cell_dir), *extra, f'++sweep.cell="{cell.name}"']
        tail: deque[str] = deque(maxlen=40)
        with open(cell_dir / "cell.log", "a", encoding="utf-8") as log:
            proc = subprocess.Popen(
                command,
                env=env,
                stdout=None if stream else log,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
            )
            assert proc.stderr is not None

            def pump() -> (
                None
            ):  # keep the cell's stderr visible (or logged) and its last lines for the reason
                for line in proc.stderr:
                    tail.append(line.rstrip("\n"))
                    (sys.stderr if stream else log).write(line)

            reader = threading.Thread(target=pump, daemon=True)
            reader.start()
            code = proc.wait()
            reader.join()
        metrics = cell.metrics()
        if code == 0 and metrics is not None:
            acc = metrics.get("best_val_acc")
            shown = None if acc is None else round(acc, 4)
            say(f"translearn: [{idx}] {cell.name}: complete, best_val_acc={shown}")
            return metrics
        reason = _reason(list(tail), code)
        record_failure(cell_dir, reason, code)
        say(f"translearn: [{idx}] {cell.name}: FAILED ({reason})")
        return None


def _reason(lines: list[str], code: int) -> str:
    for line in reversed(lines):
        if line.startswith("translearn: error:"):
            return line.removeprefix("translearn: error:").strip()
    if code < 0:
        return f"killed by signal {-code}"
    meaningful = [ln.strip() for ln in lines if ln.strip()]
    return f"exit code {code}: {meaningful[-1][:300]}" if meaningful else f"exit code {code}"
