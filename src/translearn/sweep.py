"""Sweeps: running a Hydra multirun's cells on the hardware at hand, resuming them, and reporting them.

Hydra expands the grid and its launchers run the cells. Two things Hydra does not do live here:

* **Device packing.** Hydra's launchers never assign GPUs. :func:`run_packed` hands each cell its own
  group of devices from a pool and gives them to the next cell the moment one finishes.
* **Cells as their own processes.** Lightning's ``ddp`` re-executes ``sys.argv``; inside ``-m`` that is the
  whole sweep. translearn's launcher (``hydra_plugins.translearn_launcher``) starts every cell as a
  single run, ``python -m translearn.train <cell overrides> hydra.run.dir=<cell dir>``, so DDP inside a
  cell relaunches only that cell, and a crash, OOM or bad input in one cell cannot take the sweep down.

A cell's folder ends with ``metrics.json`` (done) or ``failure.json`` (why it failed); resuming a sweep
skips the first, restarts the second, and continues interrupted cells from ``checkpoints/last.ckpt``.

**What a cell returns to Hydra** is one float, the ``optimized_metric`` of its metrics (:func:`objective`),
whichever launcher ran it: Hydra's Optuna sweeper (``hparams_search=optuna``) calls ``float()`` on it. A
failed cell reaches the sweeper as a failed job (:class:`CellFailed`), which Optuna records as a failed
trial while the study goes on; a grid sweep runs every cell, then ``translearn.train`` lists them all.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from filelock import FileLock
from hydra.errors import CompactHydraException

from translearn.errors import UserError
from translearn.log import log
from translearn.rundir import COMPLETE, INTERRUPTED, PENDING, RunDir
from translearn.storage import write_json

T = TypeVar("T")
R = TypeVar("R")


class CellFailed(CompactHydraException):
    """A failed cell, as Hydra's sweepers see it: its job fails with this one-line reason, no traceback."""


# --- the objective of a cell ----------------------------------------------------------------------

# optimized_metric (conf/train.yaml) names a metric as Lightning logs it, or a metrics.json key. Logged
# names are read from metrics.json, which holds them at the end of the run: val/* from the last epoch,
# val/acc_best over all epochs, test/* of the best checkpoint.
LOGGED_METRICS = {
    "val/acc_best": "best_val_acc",
    "val/acc": "val_acc",
    "val/acc_macro": "val_acc_macro",
    "val/acc_top5": "val_acc_top5",
    "val/loss": "val_loss",
    "test/acc": "test_acc",
    "test/acc_macro": "test_acc_macro",
    "test/acc_top5": "test_acc_top5",
}
OBJECTIVE_KEYS = (
    *LOGGED_METRICS.values(),
    "best_val_acc_macro",  # the macro accuracy of the best checkpoint (by val/acc)
    "train_seconds",
    "train_img_per_s",
    "trainable_params",
)
DEFAULT_OBJECTIVE = "val/acc_best"


def objective_key(name: Any) -> str:
    """The metrics.json key of ``optimized_metric``; an unknown name is a one-line error with the choices."""
    name = DEFAULT_OBJECTIVE if name is None else str(name)
    key = LOGGED_METRICS.get(name, name)
    if key not in OBJECTIVE_KEYS:
        raise UserError(
            f"optimized_metric={name} is not a metric translearn records; choose one of: "
            f"{', '.join(LOGGED_METRICS)}, or a metrics.json key: {', '.join(OBJECTIVE_KEYS)}"
        )
    return key


def objective(metrics: dict[str, Any] | None, name: Any) -> float | None:
    """A cell's return value: its ``optimized_metric`` as a float, or None where the run has none."""
    value = (metrics or {}).get(objective_key(name))
    return None if value is None else float(value)


def run_packed(
    cells: Sequence[T],
    devices: Sequence[int] | None,
    per_cell: int,
    run: Callable[[T, tuple[int, ...]], R],
    stop: threading.Event | None = None,
) -> list[R]:
    """Run every cell once, in parallel, each on ``per_cell`` devices that no other running cell holds.

    ``devices=None`` runs the cells one after another with no device assignment. Results come back in
    the cells' order. A cell that raises does not stop the others; its exception is re-raised at the end.
    ``stop``: once set (Ctrl-C), ``run`` still sees every queued cell and is expected to skip it at once;
    a KeyboardInterrupt in this thread sets it before it propagates.
    """
    stop = stop or threading.Event()
    if devices is None:
        results = []
        for cell in cells:
            try:
                results.append(run(cell, ()))
            except KeyboardInterrupt:
                stop.set()
                raise
        return results
    if per_cell < 1 or len(devices) < per_cell:
        raise UserError(f"each cell needs {per_cell} device(s) but only {len(devices)} are available")
    free: queue.Queue[tuple[int, ...]] = queue.Queue()
    slots = len(devices) // per_cell
    for i in range(slots):
        free.put(tuple(devices[i * per_cell : (i + 1) * per_cell]))

    def worker(cell: T) -> R:
        group = free.get()  # blocks until a running cell hands its devices back
        try:
            return run(cell, group)
        finally:
            free.put(group)

    pool = ThreadPoolExecutor(max_workers=slots)
    futures = [pool.submit(worker, cell) for cell in cells]
    try:
        results = [f.result() for f in futures]
    except KeyboardInterrupt:
        stop.set()  # queued cells return at once; the caller stops the running ones
        for f in futures:
            f.cancel()
        pool.shutdown(wait=False)
        raise
    except BaseException:
        pool.shutdown(wait=True)  # a failing cell does not stop the others
        raise
    pool.shutdown()
    return results


def visible_gpus() -> list[int]:
    """The GPU indices this process may use (CUDA_VISIBLE_DEVICES is honoured by torch)."""
    import torch

    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def resolve_devices(devices: Any) -> list[int] | None:
    """``null`` → no packing; ``auto`` → every visible GPU; a list → exactly those (fake ones in tests)."""
    if devices is None:
        return None
    if devices == "auto":
        found = visible_gpus()
        if not found:
            raise UserError(
                "launcher=gpus found no GPU on this machine; run the sweep with launcher=local "
                "(cells one after another on the CPU), or list devices with hydra.launcher.devices"
            )
        return found
    if isinstance(devices, int):
        return list(range(devices))
    return [int(d) for d in devices]


# --- cells ---------------------------------------------------------------------------------------


def sweep_cells(sweep_dir: Path) -> list[RunDir]:
    """The cell folders of a sweep: every subfolder Hydra or translearn made a ``.hydra`` folder in."""
    if not sweep_dir.is_dir():
        return []
    cells = [
        RunDir(p)
        for p in sweep_dir.iterdir()
        if p.is_dir() and ((p / ".hydra").is_dir() or (p / "failure.json").exists())
    ]
    return sorted(
        cells,
        key=lambda c: (
            int(c.name.split("_", 1)[0]) if c.name.split("_", 1)[0].isdigit() else 1 << 30,
            c.name,
        ),
    )


def typed_overrides(overrides: str) -> str:
    """``a=1,++trainer.x=2`` as typed: ``++`` is how translearn passes an argument the presets lack
    (``config.class_arguments_added``), not part of the name of a cell or a W&B run."""
    return re.sub(r"(^|,)\+\+", r"\1", overrides)


def safe_name(name: str, limit: int = 200) -> str:
    """A cell folder name for any swept value: ``/``, quotes and control characters escaped, length capped.

    A ``/`` in a value would nest the cell folder (and the summary would miss it); a quote would break the
    override the launcher passes to the cell. Names over ``limit`` bytes end in a hash of the whole name.
    """
    out = []
    # ++trainer.gradient_clip_val=1 is how translearn passes a Trainer argument the presets lack
    # (config.trainer_arguments_added): the cell is named by the key and value the user typed.
    name = typed_overrides(str(name))
    for ch in name:
        if ch in "/\\'\"%" or ord(ch) < 32 or ch == "\x7f":
            out.append(f"%{ord(ch):02X}")
        else:
            out.append(ch)
    text = "".join(out) or "_"
    if len(text.encode()) > limit:
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        text = text.encode()[: limit - 11].decode(errors="ignore") + "~" + digest
    return text


# --- sweep identity and exclusivity ---------------------------------------------------------------

SWEEP_FILE, LOCK_FILE = "sweep.json", "sweep.lock"
# Overrides that may differ between a sweep and its resume: they do not change any cell's result.
RESUME_FREE = ("sweep.resume", "hydra.sweep.dir", "ckpt_path", "hydra.launcher.", "launcher")


def command_overrides(overrides: Sequence[str]) -> list[str]:
    """The overrides that define a sweep's cells, normalised (sorted; resume-only keys dropped)."""
    kept = []
    for o in overrides:
        key = o.lstrip("+~").split("=", 1)[0]
        if key.startswith(RESUME_FREE) or key in RESUME_FREE:
            continue
        kept.append(o)
    return sorted(kept)


class SweepLock:
    """The sweep folder's owner: one live sweep per folder; a crashed owner's lock is taken over.

    The lock file holds the owner's pid and host. A second sweep into the same folder while the owner
    lives is a one-line error; a lock whose owner is gone (same host, pid not running) is stale and taken
    over with a warning. Another host's lock cannot be checked, so it is refused with the command to run
    if that sweep is known to be dead.
    """

    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / LOCK_FILE
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        # The lock appears with its content in one step (a hard link to a finished file), so a reader never
        # sees an empty lock and takes it for a dead owner's.
        mine = self.path.with_name(f".{LOCK_FILE}.{me['pid']}.tmp")
        mine.write_text(json.dumps(me))
        try:
            # Serialises the check-and-take-over of two sweeps started together after a crash.
            with FileLock(str(self.path.with_name(f".{LOCK_FILE}.guard"))):
                self._take(mine, me)
        finally:
            mine.unlink(missing_ok=True)

    def _take(self, mine: Path, me: dict[str, Any]) -> None:
        for _ in range(3):
            try:
                os.link(mine, self.path)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and self._alive(owner):
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
                    hint = (
                        "wait for it, or stop it"
                        if owner.get("host") == me["host"]
                        else f"if it is dead, delete {self.path}"
                    )
                    raise UserError(
                        f"another sweep (pid {owner.get('pid')} on {owner.get('host')}, started {when}) is "
                        f"running in {self.path.parent}; {hint}, or choose another hydra.sweep.dir"
                    ) from None
                log.warning(
                    f"taking over the stale lock of a sweep that died (pid {(owner or {}).get('pid')}) in "
                    f"{self.path.parent}"
                )
                self.path.unlink(missing_ok=True)
                continue
            self.held = True
            return
        raise UserError(f"could not take the sweep lock {self.path}; another sweep keeps taking it")

    def release(self) -> None:
        if self.held:
            owner = self._owner()
            if owner is not None and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def _owner(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self.path.read_text())
            return data if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None  # unreadable (cut by a crash mid-write): stale

    @staticmethod
    def _alive(owner: dict[str, Any]) -> bool:
        if owner.get("host") != socket.gethostname():
            return True  # another node: cannot tell, so never steal it
        try:
            os.kill(int(owner["pid"]), 0)
        except (ProcessLookupError, KeyError, ValueError, TypeError):
            return False
        except PermissionError:
            return True  # exists, owned by someone else
        return True


def check_identity(sweep_dir: Path, overrides: Sequence[str], resume: bool, cells: int | None = None) -> None:
    """Record the sweep's whole command (and its number of cells, where known); resuming with another
    command is a one-line error naming the change."""
    command = command_overrides(overrides)
    record = Path(sweep_dir) / SWEEP_FILE
    stored = None
    # A sweep whose start failed (or was stopped) before any cell began has nothing to resume: the command
    # that holds the folder is the one given now, so a corrected command can be resumed as itself.
    if record.is_file() and sweep_cells(sweep_dir):
        try:
            stored = json.loads(record.read_text())["overrides"]
        except (OSError, ValueError, KeyError, TypeError):
            stored = None  # unreadable: rewritten below
        else:
            from translearn.config import command_line

            # A sweep started before translearn wrote its commands this way (dataset.root=data made
            # absolute, trainer.<arg> as ++) is still the same command.
            stored = sorted(command_line(list(stored)))
    if stored is not None and stored != command and resume:
        gone = " ".join(o for o in stored if o not in command)
        new = " ".join(o for o in command if o not in stored)
        change = "; ".join(
            part for part in (f"started with {gone}" if gone else "", f"now {new}" if new else "") if part
        )
        raise UserError(
            f"sweep.resume=true with a different command than the sweep in {sweep_dir} was started "
            f"with ({change}); rerun its own command, or choose another hydra.sweep.dir"
        )
    if stored is None:
        write_json(
            record,
            {"overrides": command, "cells": cells, "started": time.time(), "host": socket.gethostname()},
        )


def check_sweep_dir(sweep_dir: Path, resume: bool) -> None:
    """A sweep directory that already holds cells is only reused when resuming."""
    if not resume and sweep_cells(sweep_dir):
        raise UserError(
            f"{sweep_dir} already holds a sweep's cells; rerun the same command with "
            "sweep.resume=true to resume it, or choose another hydra.sweep.dir"
        )


def report(sweep_dir: Path, print_fn: Callable[[str], None] = print) -> int:
    """Print one line per cell and a total; returns the exit code (1 if any cell did not complete)."""
    cells = sweep_cells(sweep_dir)
    bad: dict[str, list[str]] = {}  # by status: an interrupted cell is resumable, not failed
    for cell in cells:
        status = cell.status
        if status == COMPLETE:
            m = cell.metrics() or {}
            acc = m.get("best_val_acc")
            print_fn(
                f"  ok      {cell.name}  best_val_acc={acc if acc is None else round(acc, 4)}  "
                f"train_seconds={m.get('train_seconds')}"
            )
        else:
            reason = {
                INTERRUPTED: "interrupted; rerun the same command with sweep.resume=true "
                f"hydra.sweep.dir={sweep_dir} to continue it",
                PENDING: "not started",
            }.get(status) or str((cell.failure() or {}).get("reason", "failed"))
            print_fn(f"  {status.upper():7} {cell.name}  {reason}")
            bad.setdefault({PENDING: "not started"}.get(status, status), []).append(cell.name)
    done = len(cells) - sum(map(len, bad.values()))
    # Cells the sweep never reached have no folder: only sweep.json's count tells of them.
    unseen = max(0, (planned_cells(sweep_dir) or 0) - len(cells))
    if unseen:
        bad.setdefault("not started", []).append(f"{unseen} more without a folder")
    best = study_best(sweep_dir, cells)
    if best:
        print_fn(best)
    print_fn(
        f"translearn: sweep {sweep_dir}: {done} of {len(cells) + unseen} cells complete"
        + "".join(f"; {status}: {', '.join(names)}" for status, names in bad.items())
    )
    return 1 if bad or not cells else 0


def planned_cells(sweep_dir: Path) -> int | None:
    """The number of cells sweep.json says the sweep has (None: not recorded, or unreadable)."""
    try:
        cells = json.loads((Path(sweep_dir) / SWEEP_FILE).read_text()).get("cells")
    except (OSError, ValueError, AttributeError):
        return None
    return cells if isinstance(cells, int) and not isinstance(cells, bool) else None


STUDY_FILE = "optimization_results.yaml"  # what Hydra's Optuna sweeper writes at the end of a study


def study_best(sweep_dir: Path, cells: Sequence[RunDir] = ()) -> str | None:
    """The best trial of an ``hparams_search`` study, as one line naming its cell; None for a grid sweep."""
    path = Path(sweep_dir) / STUDY_FILE
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    try:
        result = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:  # a damaged file must not hide the cells' summary
        return None
    if not isinstance(result, dict) or "best_value" not in result:
        return None
    params = [f"{k}={v}" for k, v in (result.get("best_params") or {}).items()]
    where, metric = " ".join(params), "best"
    for cell in cells:  # the trial's overrides, as the sweeper wrote them into the cell's command line
        try:
            overrides = OmegaConf.load(cell.path / ".hydra" / "overrides.yaml")
            chosen = OmegaConf.load(cell.path / ".hydra" / "config.yaml").get("optimized_metric")
        except Exception:
            continue
        if set(params) <= set(overrides):
            where, metric = cell.name, chosen or DEFAULT_OBJECTIVE
            break
    return f"  best    {where}  {metric}={result['best_value']}  ({STUDY_FILE})"


def die_with_sweep() -> None:
    """In a cell started by translearn's launcher: have the kernel SIGTERM this process when the sweep dies.

    Set here, in the cell, rather than in ``Popen(preexec_fn=...)``, which is unsafe in the launcher's
    threads. If the sweep is already gone, the cell stops at once.
    """
    parent = os.environ.pop("TRANSLEARN_SWEEP_PID", None)  # popped: the cell's own DDP ranks must not check
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(parent):
        raise SystemExit("translearn: error: the sweep that started this cell has ended")
