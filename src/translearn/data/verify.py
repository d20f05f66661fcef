"""Verifying files once: each must be non-empty, decode completely and convert to RGB.

Step 3 of preparation (:mod:`translearn.data.prepare`). Results are cached by (size, mtime), so
preparing again decodes only what changed; files that fail are excluded and listed, never touched.
A first verification of a large dataset (Caltech256: 30,607 files) takes minutes, so it shows a
progress bar in a terminal (:mod:`translearn.progress`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from translearn.data.images import load_rgb
from translearn.log import log
from translearn.progress import bar
from translearn.storage import write_json

CACHE_VERSION = 1
# Above this many files to decode, verification runs on threads (Pillow releases the GIL while decoding).
PARALLEL_FROM = 64
# From this many files to decode, a progress bar (in a terminal, on rank 0); fewer take seconds.
PROGRESS_FROM = 200


def verify_image(path: str | Path) -> str | None:
    """Why ``path`` cannot be trained on, or None when it is a complete, decodable image."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        image = load_rgb(path)  # a full decode: truncated files fail here
        if image.width < 1 or image.height < 1:
            return "image has no pixels"
    except Image.UnidentifiedImageError:
        return "not an image (no decoder recognises it)"
    except Image.DecompressionBombError as exc:
        return f"too large to decode safely: {exc}"
    except Exception as exc:  # any decoder failure means: do not train on it
        message = " ".join(str(exc).split()) or type(exc).__name__
        if "truncated" in message.lower():
            return f"truncated: {message}"
        return f"cannot decode: {message}"
    return None


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


@dataclass
class Verified:
    """Per file: None when usable, else why not. ``checked`` counts the files decoded in this call."""

    reasons: dict[str, str | None]
    checked: int


def verify_files(root: Path, rels: Sequence[str], cache_file: Path, reverify: bool = False) -> Verified:
    """Verify ``rels`` under ``root``, decoding only files whose (size, mtime) changed since the cache."""
    cache: dict[str, list] = {}
    if cache_file.is_file() and not reverify:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8")).get("files", {})
        except (OSError, ValueError):
            cache = {}  # a damaged cache only costs a re-verification
    reasons: dict[str, str | None] = {}
    todo: list[tuple[str, tuple[int, int]]] = []
    for rel in rels:
        stat = _stat(root / rel)
        if stat is None:
            reasons[rel] = "cannot read (missing or permission denied)"
            continue
        cached = cache.get(rel)
        if cached and tuple(cached[:2]) == stat:
            reasons[rel] = cached[2]
        else:
            todo.append((rel, stat))
    if todo:
        paths = [root / rel for rel, _ in todo]
        if len(todo) >= PARALLEL_FROM:
            log.info(f"verifying {len(todo)} files under {root} (once; cached)")
            workers = max(1, min(8, os.cpu_count() or 1))
            with (
                ThreadPoolExecutor(max_workers=workers) as pool,
                bar(len(paths), "verifying", min_total=PROGRESS_FROM) as progress,
            ):
                results = []
                for reason in pool.map(verify_image, paths):  # in order, as each finishes
                    results.append(reason)
                    progress.update(1)
        else:
            results = [verify_image(p) for p in paths]
        for (rel, stat), reason in zip(todo, results, strict=True):
            reasons[rel] = reason
            cache[rel] = [*stat, reason]
    if todo or reverify:
        write_json(cache_file, {"version": CACHE_VERSION, "files": cache})
    return Verified(reasons, len(todo))
