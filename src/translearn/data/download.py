"""Getting the publishers' archives: a checksummed zip over HTTPS, or Kaggle's (``kagglehub`` or the CLI).

Only ``python -m translearn.data prepare DATASET --download`` calls these; training never downloads.
Downloads go to a ``.partial`` file first and are unpacked only once complete, so an interrupted
download leaves nothing that looks like data. Each member is unpacked to a temporary name and renamed,
and a ``.<archive>.complete`` marker is written once every member is out: an extraction cut short is
detected by its missing marker and finished, never taken for the whole dataset. Existing files are
never overwritten. A download shows a progress bar in a terminal (:mod:`translearn.progress`).

Kaggle's datasets come through ``kagglehub`` when it is installed (``pip install 'translearn[kaggle]'``),
else through the ``kaggle`` CLI. kagglehub downloads and unpacks into its own cache (resuming there), and
its files are then linked, or copied across filesystems, into the root: each under a temporary name,
renamed into place, while a ``.<archive>.kagglehub`` marker says the copy is unfinished (``cut_short``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

from translearn.errors import UserError
from translearn.log import log
from translearn.progress import bar

CHUNK = 1 << 20


def _writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {root} ({exc.strerror}); pass a writable --root") from None
    if not os.access(root, os.W_OK | os.X_OK):
        raise UserError(f"cannot write into {root}; pass a writable --root")


def marker(archive: Path, dest: Path) -> Path:
    """The file that says every member of ``archive`` is unpacked into ``dest``."""
    return dest / f".{archive.name}.complete"


def kagglehub_marker(archive: Path) -> Path:
    """The file that says kagglehub's copy of ``archive``'s content into its folder is not finished."""
    return archive.with_name(f".{archive.name}.kagglehub")


def cut_short(root: Path, *archive_names: str) -> list[str]:
    """The archives in ``root`` whose extraction (or kagglehub copy) never finished."""
    return [
        name
        for name in archive_names
        if ((root / name).is_file() and not marker(root / name, root).is_file())
        or kagglehub_marker(root / name).is_file()
    ]


def extract_zip(archive: Path, dest: Path) -> None:
    """Unpack ``archive`` into ``dest``, refusing members that would land outside it or overwrite a file.

    Rerun after a kill, it unpacks what is missing: finished members are whole (renamed into place), so
    a file already there is either one of them or the user's, and is kept either way.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(
            f"{archive} is not a zip archive ({exc}); delete it and download again (a failed download can "
            "leave an error page under the archive's name)"
        ) from None
    with zf:
        bad = zf.testzip()
        if bad is not None:
            raise UserError(f"{archive} is corrupt (first bad member: {bad}); delete it and download again")
        base = dest.resolve()
        for member in zf.infolist():
            target = (dest / member.filename).resolve()
            if base not in (target, *target.parents):
                raise UserError(
                    f"{archive} holds a member outside its folder ({member.filename}); not unpacking"
                )
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.exists():
                continue  # never overwrite what the user already has
            partial = target.with_name(f".{target.name}.partial")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, open(partial, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
                os.replace(partial, target)
            except OSError as exc:  # e.g. a file and a folder of the same name in one archive
                with contextlib.suppress(OSError):
                    partial.unlink()
                raise UserError(
                    f"cannot unpack {member.filename} from {archive} ({exc.strerror or exc}); "
                    "the archive is not the one translearn expects: check it, or unpack it by hand"
                ) from None
    marker(archive, dest).write_text(f"{archive.name} unpacked completely\n")


def extract_tar(archive: Path, dest: Path) -> None:
    """:func:`extract_zip` for a tar archive: regular files and folders only, each renamed into place."""
    import tarfile

    base = dest.resolve()
    try:
        with tarfile.open(archive) as tf:
            for member in tf:
                target = (dest / member.name).resolve()
                if base not in (target, *target.parents) or not (member.isfile() or member.isdir()):
                    continue  # links, devices and escaping paths are never unpacked
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                if target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.partial")
                source = tf.extractfile(member)
                assert source is not None
                with source, open(partial, "wb") as out:
                    shutil.copyfileobj(source, out, CHUNK)
                os.replace(partial, target)
    except tarfile.TarError as exc:
        raise UserError(f"{archive} is corrupt ({exc}); delete it and download again") from None
    marker(archive, dest).write_text(f"{archive.name} unpacked completely\n")


def fetch_zip(url: str, root: Path, sha256: str | None, name: str) -> Path:
    """Download ``url`` to ``root/name``, check its SHA-256 (when known), and unpack it into ``root``."""
    _writable(root)
    archive = root / name
    if not archive.is_file():
        partial = root / f".{name}.partial"
        digest = hashlib.sha256()
        log.info(f"downloading {url} to {archive}")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(partial, "wb") as out:
                length = response.headers.get("Content-Length")
                with bar(int(length) if length and length.isdigit() else None, name, unit="B") as progress:
                    while chunk := response.read(CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        progress.update(len(chunk))
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise UserError(
                f"downloading {url} failed ({exc}); check the network, or fetch it by hand into {root}"
            ) from None
        got = digest.hexdigest()
        if sha256 and got != sha256:
            partial.unlink(missing_ok=True)
            raise UserError(
                f"{url} has SHA-256 {got}, expected {sha256}; the download is corrupt or changed, retry"
            )
        os.replace(partial, archive)
        log.info(f"{name} sha256 {got}" + (" (verified)" if sha256 else " (no pinned checksum)"))
    elif sha256:
        got = file_sha256(archive)
        if got != sha256:
            raise UserError(
                f"{archive} has SHA-256 {got}, expected {sha256}; move it away and download again"
            )
    extract_zip(archive, root)
    return root


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def kaggle_configured() -> bool:
    """The kaggle CLI reads KAGGLE_USERNAME/KAGGLE_KEY or a kaggle.json in its config folder."""
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    folders = [os.environ.get("KAGGLE_CONFIG_DIR"), "~/.kaggle", "~/.config/kaggle"]
    return any(f and Path(f).expanduser().joinpath("kaggle.json").is_file() for f in folders)


def _kagglehub() -> Any | None:
    """The kagglehub module, or None when it is not installed (then the kaggle CLI is used)."""
    try:
        import kagglehub
    except ImportError:
        return None
    return kagglehub


def fetch_kaggle(kind: str, ref: str, root: Path, manual: str, inner_zips: tuple[str, ...] = ()) -> Path:
    """Kaggle's archive of ``ref`` unpacked into ``root``, inner zips included.

    Through kagglehub when it is installed, else ``kaggle datasets|competitions download``. ``manual`` is
    the one-line fallback instruction shown when neither can download.
    """
    archive = root / f"{ref.rsplit('/', 1)[-1]}.zip"  # the name the kaggle CLI gives the download
    if archive.is_file():  # downloaded by the CLI before; its extraction was cut short
        log.info(f"finishing the extraction of {archive}")
        extract_zip(archive, root)
    elif (hub := _kagglehub()) is not None:
        _fetch_with_kagglehub(hub, kind, ref, root, archive, manual)
    else:
        _fetch_with_cli(kind, ref, root, archive, manual)
    for inner in inner_zips:
        if (root / inner).is_file():
            extract_zip(root / inner, root)
    return root


def _fetch_with_cli(kind: str, ref: str, root: Path, archive: Path, manual: str) -> None:
    exe = shutil.which("kaggle")
    if exe is None or not kaggle_configured():
        why = "the kaggle CLI is not installed" if exe is None else "the kaggle CLI has no credentials"
        raise UserError(
            f"{why} (pip install 'translearn[kaggle]' for kagglehub, or pip install kaggle; then put your "
            f"API token in ~/.kaggle/kaggle.json); or {manual}"
        )
    _writable(root)
    flag = {"datasets": "-d", "competitions": "-c"}[kind]
    log.info(f"kaggle {kind} download {ref} into {root}")
    proc = subprocess.run([exe, kind, "download", flag, ref, "-p", str(root)], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"kaggle download of {ref} failed: {last[0]}; or {manual}")
    if not archive.is_file():
        raise UserError(f"kaggle reported success but {archive} is missing; or {manual}")
    extract_zip(archive, root)


def _fetch_with_kagglehub(hub: Any, kind: str, ref: str, root: Path, archive: Path, manual: str) -> None:
    """kagglehub downloads and unpacks into its cache; its files are then placed under ``root``."""
    _writable(root)
    download = {"datasets": hub.dataset_download, "competitions": hub.competition_download}[kind]
    log.info(f"kagglehub: downloading {ref} (into its cache, then into {root})")
    try:
        cached = Path(download(ref))
    except Exception as exc:  # no credentials, rules not accepted, network: kagglehub raises many types
        message = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise UserError(
            f"kagglehub download of {ref} failed ({message}); check your Kaggle API token "
            f"(~/.kaggle/kaggle.json, or KAGGLE_USERNAME and KAGGLE_KEY); or {manual}"
        ) from None
    unfinished = kagglehub_marker(archive)  # from here until every file is in place
    unfinished.write_text(f"kagglehub's copy of {ref} into this folder is not finished\n")
    files = [p for p in sorted(cached.rglob("*")) if p.is_file()] if cached.is_dir() else [cached]
    base = cached if cached.is_dir() else cached.parent
    with bar(len(files), f"placing {ref}", min_total=200) as progress:
        for source in files:
            _place(source, root / source.relative_to(base))
            progress.update(1)
    unfinished.unlink()


def _place(source: Path, target: Path) -> None:
    """``source`` at ``target``: a hard link where it can be (no second copy on disk), else a copy.

    Whole or absent: written under a temporary name and renamed. A file already there is kept.
    """
    if target.exists():
        return  # one placed before a kill, or the user's: kept either way
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)
        try:
            os.link(source, partial)
        except OSError:  # another filesystem, or links not allowed
            shutil.copyfile(source, partial)
        os.replace(partial, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise UserError(
            f"cannot place {target} from kagglehub's cache ({exc.strerror or exc}); check that the "
            "root is writable and has room"
        ) from None
