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
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from translearn.errors import UserError

T = TypeVar("T")
R = TypeVar("R")

COMPLETE, FAILED, INTERRUPTED, PENDING = "complete", "failed", "interrupted", "pending"


def run_packed(
    cells: Sequence[T], devices: Sequence[int] | None, per_cell: int, run: Callable[[T, tuple[int, ...]], R]
) -> list[R]:
    """Run every cell once, in parallel, each on ``per_cell`` devices that no other running cell holds.

    ``devices=None`` runs the cells one after another with no device assignment. Results come back in
    the cells' order. A cell that raises does not stop the others; its exception is re-raised at the end.
    """
    if devices is None:
        return [run(cell, ()) for cell in cells]
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

    with ThreadPoolExecutor(max_workers=slots) as pool:
        futures = [pool.submit(worker, cell) for cell in cells]
        return [f.result() for f in futures]


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


# --- cell state ----------------------------------------------------------------------------------


@dataclass
class Cell:
    """One cell of a sweep: its folder and what it has left there."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    def metrics(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.path / "metrics.json").read_text())
        except (OSError, ValueError):
            return None
        return data if data.get("status") == COMPLETE else None

    def failure(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / "failure.json").read_text())
        except (OSError, ValueError):
            return None

    @property
    def status(self) -> str:
        if self.metrics() is not None:
            return COMPLETE
        if self.failure() is not None:
            return FAILED
        if (self.path / "checkpoints" / "last.ckpt").is_file():
            return INTERRUPTED
        return PENDING


def record_failure(cell_dir: Path, reason: str, returncode: int | None = None) -> None:
    cell_dir.mkdir(parents=True, exist_ok=True)
    data = {"status": FAILED, "reason": reason, "returncode": returncode, "time": time.time()}
    (cell_dir / "failure.json").write_text(json.dumps(data, indent=2) + "\n")


def clear_failure(cell_dir: Path) -> None:
    """A rerun replaces translearn's own failure marker (kept as failure.previous.json)."""
    marker = cell_dir / "failure.json"
    if marker.exists():
        os.replace(marker, cell_dir / "failure.previous.json")


def sweep_cells(sweep_dir: Path) -> list[Cell]:
    """The cell folders of a sweep: every subfolder Hydra or translearn made a ``.hydra`` folder in."""
    if not sweep_dir.is_dir():
        return []
    cells = [
        Cell(p)
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
    bad = []
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
            reason = (cell.failure() or {}).get("reason", "no metrics.json: the cell did not finish")
            print_fn(f"  {status.upper():7} {cell.name}  {reason}")
            bad.append(cell.name)
    done = len(cells) - len(bad)
    print_fn(
        f"translearn: sweep {sweep_dir}: {done} of {len(cells)} cells complete"
        + (f"; failed: {', '.join(bad)}" if bad else "")
    )
    return 1 if bad or not cells else 0


_print_lock = threading.Lock()


def say(line: str) -> None:
    """Status lines from parallel cells, one at a time."""
    with _print_lock:
        print(line, flush=True)
