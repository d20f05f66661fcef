"""Writing files and folders so that no reader and no kill ever sees half of one.

Folders built once and shared: the frozen-feature cache and the decoded-image store both use this.

Pitfalls it exists for: two sweep cells (or DDP ranks) that need the same folder start together, a job
killed mid-build leaves half a folder, and a half folder must never be read as a whole one. So a folder is
built under a per-key file lock, into a temporary name that holds the process id, renamed into place only
once complete (``is_complete`` then decides, e.g. from a ``meta.json`` written last), and a folder that
exists but is not complete is rebuilt with a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock


def build_once(
    folder: Path, key: str, is_complete: Callable[[Path], bool], build: Callable[[Path], None], what: str
) -> Path:
    """``folder/key``, built by ``build(tmp)`` unless a complete one is already there."""
    target = folder / key
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / f".{key}.lock")):
        if is_complete(target):
            return target
        if target.exists():
            warnings.warn(
                f"translearn: {what} {target} is incomplete or corrupt; rebuilding it", stacklevel=3
            )
            shutil.rmtree(target)
        partial = folder / f".{key}.{os.getpid()}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir()
        try:
            build(partial)
            os.replace(partial, target)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
    return target


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``path`` so that a reader, or a kill at any moment, sees the old file or the new one, whole.

    The temporary file sits beside the target (same filesystem, so the rename is atomic on local disks,
    NFS and Lustre alike) and carries the pid, so two writers never share one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
