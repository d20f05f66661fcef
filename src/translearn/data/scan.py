"""Scanning a layout: the image files under a folder, each with its class, and what is set aside.

Step 1 of preparation (:mod:`translearn.data.prepare`). Stray entries (``056.dog/greg/``, ``RENAME2``,
non-UTF-8 names, links back into the dataset) are kept as *ignored*, with the reason, for the report.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from translearn.data.images import IMAGE_EXTENSIONS, JUNK_NAMES, is_image_name
from translearn.data.splits import Entry
from translearn.errors import UserError


@dataclass
class Scan:
    """What a dataset's layout holds: image entries, class folders (empty ones too), and ignored entries."""

    entries: list[Entry] = field(default_factory=list)
    class_dirs: list[str] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)


def relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def is_junk(name: str) -> bool:
    """Files operating systems and archivers leave behind: skipped silently, never reported."""
    return name.startswith(".") or name.lower() in JUNK_NAMES or name == "__MACOSX"


def list_dir(folder: Path) -> list[os.DirEntry]:
    """The entries of ``folder`` sorted by name; an unreadable folder is the user's to fix, in one line."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except PermissionError:
        raise UserError(
            f"cannot read {folder} (permission denied); make it readable (chmod) and rerun"
        ) from None
    except NotADirectoryError:
        raise UserError(f"{folder} is not a folder") from None


def undecodable(name: str) -> str | None:
    """A file name that is not UTF-8 (os.scandir hands its bytes over as surrogates): its printable form.

    Such names cannot go into the index or the report, which are UTF-8 JSON, so the file is skipped and
    listed under this form (bad bytes as ``\\xNN``).
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return None


def is_dir(entry: os.DirEntry) -> bool:
    """Symlinked folders count as folders; a dangling link does not."""
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def subfolders(folder: Path) -> list[Path]:
    return [Path(e.path) for e in list_dir(folder) if is_dir(e) and not is_junk(e.name)]


def image_name(name: str) -> bool:
    """:func:`translearn.data.images.is_image_name` without pathlib: a scan checks ~30k names, often."""
    return not is_junk(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _links_above(link: str, root: Path) -> bool:
    """A folder link to the dataset root or above it: following it would relabel every class's images."""
    target, base = os.path.realpath(link), os.path.realpath(root)
    return base == target or base.startswith(target.rstrip(os.sep) + os.sep)


def _links_into_dataset(link: str, root: Path, top: str) -> bool:
    """A followed folder link that leads to the dataset root, above it, or into another class's folder."""
    target, base = os.path.realpath(link), os.path.realpath(root)
    inside = target.startswith(base + os.sep)
    own = target == top or target.startswith(top + os.sep)
    return _links_above(link, root) or (inside and not own)


def images_in(
    folder: Path,
    root: Path,
    recursive: bool = False,
    _seen: set[str] | None = None,
    top: str | None = None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """(image paths, ignored entries) under ``folder``, relative to ``root``; symlinked folders followed.

    Non-recursive: subfolders are not part of the layout (Caltech256's ``056.dog/greg/``) and are
    reported as ignored. Recursive: each real folder is visited once, so a symlink loop ends.
    """
    seen = _seen if _seen is not None else set()
    prefix = relative(folder, root) + "/" if folder != root else ""
    real = os.path.realpath(folder)
    if real in seen:
        return [], [(prefix, "symlink loop (already visited)")]
    seen.add(real)
    images: list[str] = []
    ignored: list[tuple[str, str]] = []
    for entry in list_dir(folder):
        name = entry.name
        if is_junk(name):
            continue
        if (shown := undecodable(name)) is not None:
            ignored.append(((undecodable(prefix) or prefix) + shown, "file name is not valid UTF-8"))
            continue
        if is_dir(entry):
            if recursive and entry.is_symlink() and _links_into_dataset(entry.path, root, top or real):
                ignored.append(
                    (f"{prefix}{name}/", "symlink back into the dataset (its images belong to other classes)")
                )
            elif recursive:
                sub_images, sub_ignored = images_in(Path(entry.path), root, True, seen, top or real)
                images += sub_images
                ignored += sub_ignored
            else:
                ignored.append((f"{prefix}{name}/", "unexpected folder inside a class folder"))
        elif image_name(name):
            images.append(prefix + name)
        else:
            ignored.append((prefix + name, "not an image file name"))
    return images, ignored


def class_folder_scan(
    root: Path, folder: Path, split: str | None = None, recursive: bool = False, skip: Sequence[str] = ()
) -> Scan:
    """``folder/<class>/<image>``: each subfolder is a class (empty ones included in ``class_dirs``)."""
    scan = Scan()
    for entry in list_dir(folder):
        path = Path(entry.path)
        if is_junk(entry.name) or entry.name in skip:
            continue
        if (shown := undecodable(entry.name)) is not None:
            where = undecodable(relative(folder, root)) or relative(folder, root)
            scan.ignored.append((f"{where}/{shown}".lstrip("./"), "file name is not valid UTF-8"))
            continue
        if is_dir(entry) and entry.is_symlink() and _links_above(entry.path, root):
            scan.ignored.append(
                (relative(path, root) + "/", "symlink back into the dataset (would relabel images)")
            )
            continue
        if not is_dir(entry):
            reason = (
                "image outside any class folder" if is_image_name(entry.name) else "not part of the layout"
            )
            scan.ignored.append((relative(path, root), reason))
            continue
        scan.class_dirs.append(entry.name)
        images, ignored = images_in(path, root, recursive)
        scan.entries += [Entry(rel, entry.name, split) for rel in images]
        scan.ignored += ignored
    return scan


def merge(*scans: Scan) -> Scan:
    out = Scan()
    for scan in scans:
        out.entries += scan.entries
        out.ignored += scan.ignored
        out.class_dirs += [c for c in scan.class_dirs if c not in out.class_dirs]
    return out
