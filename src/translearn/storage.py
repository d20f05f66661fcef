"""Writing files and folders so that no reader and no kill ever sees half of one.

Folders built once and shared: the frozen-feature cache and the decoded-image store both use this.

Pitfalls it exists for: two sweep cells (or DDP ranks) that need the same folder start together, a job
killed mid-build leaves half a folder, and a half folder must never be read as a whole one. So a folder is
built under a per-key file lock, into a temporary name that holds the host and process id, renamed into
place only once complete (``is_complete`` then decides, e.g. from a ``meta.json`` written last), and a
folder that exists but is not complete is rebuilt with a warning. A temporary folder whose process is gone
(kill -9, SIGTERM) is removed by the next builder. A full disk is one line, not a crash: memory-mapped
files get their space reserved before they are mapped (a write to an unbacked page is SIGBUS).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from translearn.errors import UserError
from translearn.log import log

FULL = (errno.ENOSPC, errno.EDQUOT)
# posix_fallocate where the filesystem cannot reserve (some NFS, ZFS, overlay setups): check free space.
_NO_FALLOCATE = {errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def disk_full(exc: BaseException) -> bool:
    """Whether a write failed for want of space: ENOSPC, EDQUOT, or numpy's short write (it has no errno)."""
    if not isinstance(exc, OSError):
        return False
    short = exc.errno is None and " requested and " in str(exc) and str(exc).endswith(" written")
    return exc.errno in FULL or short


def no_space(what: str, folder: Path, exc: OSError | None = None, needs: int = 0) -> UserError:
    """The one line for a full disk (or quota) while writing ``what`` under ``folder``."""
    quota = exc is not None and exc.errno == errno.EDQUOT
    why = "the disk quota is exceeded" if quota else "no space left on the device"
    size = f" (needs ~{max(1, round(needs / 1e6))} MB)" if needs else ""
    return UserError(
        f"cannot write the {what} in {folder}: {why}{size}; free space or set "
        "paths.cache_dir=DIR (or TRANSLEARN_CACHE)"
    )


def reserve(fd: int, size: int) -> None:
    """Give the open file ``fd`` ``size`` bytes of disk now, so a full disk is an ``OSError(ENOSPC)`` here.

    Why: a sparse memory-mapped file is backed only when a page is written, and a page the disk has no
    room for kills the process with SIGBUS; a short write from numpy carries no errno. Where the
    filesystem cannot reserve, the free space is checked instead.
    """
    try:
        os.posix_fallocate(fd, 0, size)
        return
    except AttributeError:  # macOS: no posix_fallocate
        pass
    except OSError as exc:
        if exc.errno not in _NO_FALLOCATE:
            raise
    stat = os.fstatvfs(fd)
    if stat.f_bavail * stat.f_frsize < size - os.fstat(fd).st_size:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def open_npy(path: Path, dtype: Any, shape: tuple[int, ...]) -> Any:
    """A new ``.npy`` of ``shape``, its disk space reserved, memory-mapped for writing (``np.memmap``)."""
    dtype = np.dtype(dtype)
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": tuple(shape)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.flush()
        reserve(f.fileno(), f.tell() + int(np.prod(shape)) * dtype.itemsize)
    return np.lib.format.open_memmap(path, mode="r+")


def save_npy(path: Path, array: Any) -> None:
    """``np.save`` whose disk space is reserved first (see :func:`reserve`)."""
    out = open_npy(path, array.dtype, array.shape)
    out[...] = array
    out.flush()
    del out


def _host() -> str:
    return socket.gethostname().replace("/", "_").replace(".", "_") or "localhost"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):  # another user's process, or not a pid at all
        return True
    return True


def _remove_interrupted(folder: Path, key: str, what: str) -> None:
    """Remove partials of ``key`` left by builds killed on this host (the caller holds the key's lock).

    ``.KEY.HOST.PID.partial`` is removed when HOST is this host and PID is gone; the older
    ``.KEY.PID.partial`` (no host) likewise: under the lock no live builder of this key writes here, and
    another host's live pid is not judged from this one (a shared filesystem).
    """
    for partial in folder.glob(f".{key}.*.partial"):
        host, _, pid = partial.name[len(key) + 2 : -len(".partial")].rpartition(".")
        if host not in ("", _host()) or not pid.isdigit() or _alive(int(pid)):
            continue
        log.warning(f"an interrupted build of the {what} was found ({partial}); rebuilding it")
        shutil.rmtree(partial, ignore_errors=True)


def build_once(
    folder: Path, key: str, is_complete: Callable[[Path], bool], build: Callable[[Path], None], what: str
) -> Path:
    """``folder/key``, built by ``build(tmp)`` unless a complete one is already there.

    A full disk during the build is a one-line :class:`UserError` (``build`` may raise its own, with the
    size it needs); the partial folder goes either way.
    """
    target = folder / key
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(folder / f".{key}.lock")):
            if is_complete(target):
                return target
            if target.exists():
                log.warning(f"{what} {target} is incomplete or corrupt; rebuilding it")
                shutil.rmtree(target)
            _remove_interrupted(folder, key, what)
            partial = folder / f".{key}.{_host()}.{os.getpid()}.partial"
            shutil.rmtree(partial, ignore_errors=True)
            try:
                partial.mkdir()
                build(partial)
                os.replace(partial, target)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
    except OSError as exc:
        if disk_full(exc):
            raise no_space(what, folder, exc) from None
        raise
    return target


SOURCES = "sources.json"  # in a cache entry: [[path, size, mtime_ns], ...] of the files it was built from


def file_stats(paths: Iterable[str]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of each file: what a cache key covers, and what :data:`SOURCES` records."""
    rows = []
    for path in paths:
        stat = os.stat(path)
        rows.append((str(path), stat.st_size, stat.st_mtime_ns))
    return rows


def write_sources(entry: Path, rows: list[tuple[str, int, int]]) -> None:
    """Record the files an entry is built from (:func:`file_stats`): a later build tells when it is dead."""
    (entry / SOURCES).write_text(json.dumps(rows))


def _stale(entry: Path) -> bool:
    """A file the entry lists was changed or removed since; False when its files cannot be reached."""
    try:
        sources = json.loads((entry / SOURCES).read_text())
    except (OSError, ValueError):
        return False  # built before entries listed their files: left alone
    for path, size, mtime in sources:
        try:
            stat = os.stat(path)
        except FileNotFoundError:  # stale if its folder is there; kept if not (an unmounted disk?)
            return os.path.isdir(os.path.dirname(path))
        except OSError:
            return False
        if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
            return True
    return False


def remove_stale(folder: Path, keep: str, what: str, version: int | None = None) -> None:
    """Remove the complete entries of ``folder`` that no run can use again: a file they were built from
    changed or went since, so their key (which covers every file's size and mtime) never comes back; or,
    given ``version``, their ``meta.json`` says an older layout (none: older than any), which this
    translearn neither reads nor builds again. Newer layouts are left to the translearn that made them.

    Why: each change to a dataset left its caches behind for good (2.7 GB of stores, 0.46 GB of them in
    use; audit 7), and so did each new layout (a first_k k=1 feature cache at 224 px is ~0.8 MB an image).
    Entries whose files cannot be reached (their folder is gone) are kept, and so is one whose lock is held
    (being checked or built right now).
    """
    from filelock import Timeout

    removed: Counter[str] = Counter()
    freed: Counter[str] = Counter()
    for entry in folder.iterdir():
        if entry.name == keep or entry.name.startswith(".") or not (entry / "meta.json").is_file():
            continue
        if version is not None and _version(entry) < version:
            reason = "in an older layout that this version no longer reads"
        elif _stale(entry):
            reason = "whose files changed since"
        else:
            continue
        try:
            with FileLock(str(folder / f".{entry.name}.lock"), timeout=0):
                freed[reason] += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
                shutil.rmtree(entry, ignore_errors=True)
                removed[reason] += 1
        except Timeout:
            continue
    for reason, count in removed.items():
        log.info(f"removed {count} {what}(s) {reason} ({freed[reason] / 1e9:.2f} GB) from {folder}")


def _version(entry: Path) -> float:
    """The layout version an entry's ``meta.json`` records (0 if none); unreadable: kept, as infinite."""
    try:
        version = json.loads((entry / "meta.json").read_text()).get("version", 0)
    except (OSError, ValueError, AttributeError):
        return float("inf")
    return version if isinstance(version, int) and not isinstance(version, bool) else float("inf")


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``path`` so that a reader, or a kill at any moment, sees the old file or the new one, whole.

    The temporary file sits beside the target (same filesystem, so the rename is atomic on local disks,
    NFS and Lustre alike) and carries the pid, so two writers never share one. A full disk removes it and
    raises the ``OSError``; callers that know the folder's setting say so (:func:`no_space`).
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
