"""Progress bars for the steps that would otherwise sit silent: downloads and dataset verification.

A bar is tqdm's (a Lightning dependency) on stderr, so stdout keeps the ``translearn:`` lines scripts
read. It is drawn only in a terminal and only on rank 0: in a SLURM log or a pipe, carriage-return
updates become thousands of lines, and DDP ranks would draw over each other. Training's own bar is
Lightning's (:class:`translearn.callbacks.ProgressBar`).
"""

from __future__ import annotations

import sys
from typing import Any

from translearn.log import rank


def enabled() -> bool:
    """Whether a bar would be drawn here: stderr is a terminal and this is rank 0."""
    try:
        return sys.stderr.isatty() and rank() == 0
    except (AttributeError, ValueError):  # a replaced or closed stderr
        return False


def bar(total: int | None, desc: str, unit: str = "file", min_total: int = 0) -> Any:
    """A tqdm bar (a context manager with ``update(n)``) that draws nothing unless :func:`enabled`.

    ``unit="B"`` counts bytes (shown as KiB/MiB); ``min_total`` keeps short jobs quiet.
    """
    from tqdm import tqdm

    quiet = not enabled() or (total is not None and total < min_total)
    in_bytes = unit == "B"
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=in_bytes,
        unit_divisor=1024 if in_bytes else 1000,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        disable=quiet,
    )
