"""Decode-once images (``dataset.cache=decoded``): decode and resize each file once, augment from memory.

Every epoch of the plain path opens each file, decodes it and resizes it to the transform's resize side
before the random crop. The first two steps give the same pixels every time, and so does the resize
(it is deterministic). This store keeps the resized pixels as uint8 in one memory-mapped file per split,
so later epochs start from the random crop. The pixels are exactly those the plain path resizes to, so the
tensors that come out are bit-identical (tested).

Images keep their own aspect ratio, so the store is ragged: a flat uint8 array plus an (offset, height,
width) row per image. It lives under ``${paths.cache_dir}/decoded/<key>/``, where the key covers the
resize side and interpolation and every file's path, size and mtime; it is written under a temporary
name, renamed when complete and built once under a file lock. An incomplete or unreadable store is
rebuilt with a warning.

Each store lists its files' (path, size, mtime) in ``sources.json``. A changed or added file gives a new
key, and the new store copies every unchanged file's pixels from the stores already there, decoding only
what changed: touching one file of 20k rebuilt the whole split (audit 7). A store that lists a file
changed or removed since can never be used again, so each build removes such stores; one whose files
cannot be reached (their folder is gone, e.g. an unmounted disk) is kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from translearn.data.base import ImageFileDataset
from translearn.data.images import DECODE_VERSION, load_rgb
from translearn.log import log
from translearn.progress import bar
from translearn.storage import (
    SOURCES,
    build_once,
    disk_full,
    file_stats,
    no_space,
    remove_stale,
    save_npy,
    write_sources,
)

VERSION = 1
MODES = ("none", "decoded")


def _key(sources: Sequence[tuple[str, int, int]], resize: int, interpolation: str) -> str:
    digest = hashlib.sha256(json.dumps([VERSION, DECODE_VERSION, resize, interpolation]).encode())
    for path, size, mtime in sources:
        digest.update(f"{path}\0{size}\0{mtime}\n".encode())
    return digest.hexdigest()[:20]


class _Donors:
    """Pixels of unchanged files in the complete stores of the same resize and decoding, by source."""

    def __init__(self, folder: Path, resize: int, interpolation: str):
        self.rows: dict[tuple[str, int, int], tuple[np.ndarray, int, int, int]] = {}
        for store in sorted(folder.iterdir(), key=_mtime, reverse=True) if folder.is_dir() else []:
            meta = _meta(store)
            if meta is None or [meta.get(k) for k in ("version", "decode", "resize", "interpolation")] != [
                VERSION, DECODE_VERSION, resize, interpolation,
            ]:  # fmt: skip
                continue
            try:
                sources = json.loads((store / SOURCES).read_text())
                index = np.load(store / "index.npy")
                pixels = np.load(store / "pixels.npy", mmap_mode="r")
            except (OSError, ValueError):
                continue
            if len(sources) != len(index):
                continue
            for (path, size, mtime), (offset, height, width) in zip(sources, index.tolist(), strict=True):
                self.rows.setdefault((path, size, mtime), (pixels, offset, height, width))

    def pixels(self, source: tuple[str, int, int]) -> np.ndarray | None:
        found = self.rows.get(source)
        if found is None:
            return None
        pixels, offset, height, width = found
        return np.asarray(pixels[offset : offset + height * width * 3]).reshape(height, width, 3)


def _meta(store: Path) -> dict | None:
    if store.name.startswith(".") or not store.is_dir():
        return None
    try:
        return json.loads((store / "meta.json").read_text())
    except (OSError, ValueError):
        return None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _complete(target: Path, count: int) -> bool:
    try:
        meta = json.loads((target / "meta.json").read_text())
        index = np.load(target / "index.npy")
        pixels = np.load(target / "pixels.npy", mmap_mode="r")
    except (OSError, ValueError, json.JSONDecodeError):
        return False
    return (
        meta.get("count") == count and len(index) == count and int(index[:, 0].max(initial=0)) <= len(pixels)
    )


NPY_HEADER = 128  # bytes: a 1-D uint8 array's .npy v1 header, for any length up to 19 digits


def _npy_header(length: int) -> bytes:
    """The .npy v1 header of a uint8 array of ``length``, padded to :data:`NPY_HEADER` bytes."""
    import io

    buffer = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": (length,)}
    np.lib.format.write_array_header_1_0(buffer, header)
    data = buffer.getvalue()
    if len(data) != NPY_HEADER:  # numpy pads to 64 bytes: 128 for every length it can hold here
        raise ValueError(f"unexpected .npy header length {len(data)}")
    return data


def build_store(samples: Sequence[tuple[str, int]], resize: int, interpolation: str, folder: Path) -> Path:
    """The folder holding ``samples`` decoded and resized once (built now if it is not there)."""
    resizer = v2.Resize(resize, interpolation=InterpolationMode(interpolation), antialias=True)

    sources = file_stats(path for path, _ in samples)  # what the key covers; what later builds reuse

    def build(partial: Path) -> None:
        donors = _Donors(folder, resize, interpolation)
        reused = sum(source in donors.rows for source in sources)
        again = f", {reused} of them unchanged since an earlier store and copied from it" if reused else ""
        log.info(
            f"decoding {len(samples)} images once at {resize} px into {folder} (dataset.cache=decoded){again}"
        )
        index = np.zeros((len(samples), 3), dtype=np.int64)
        offset = 0
        try:
            # Streamed to the file behind a header of fixed size, written once the length is known: a
            # whole split held in a list and concatenated took twice the store in memory (4.2 GB peak
            # for a 1.9 GB store; audit 7). A full disk is an OSError from write(), said in one line.
            with (
                open(partial / "pixels.npy", "wb") as out,
                bar(len(samples), "decoding", "img", 200) as shown,
            ):
                out.write(b"\0" * NPY_HEADER)
                for i, (path, _) in enumerate(samples):
                    pixels = donors.pixels(sources[i])
                    if pixels is None:
                        pixels = np.asarray(resizer(load_rgb(path)), dtype=np.uint8)
                    index[i] = (offset, pixels.shape[0], pixels.shape[1])
                    out.write(pixels.tobytes())
                    offset += pixels.size
                    shown.update(1)
                out.seek(0)
                out.write(_npy_header(offset))
            save_npy(partial / "index.npy", index)
        except OSError as exc:
            if not disk_full(exc):
                raise
            raise no_space("decoded image cache", folder, exc, offset + index.nbytes) from None
        write_sources(partial, sources)
        meta = {
            "count": len(samples), "resize": resize, "interpolation": interpolation, "bytes": offset,
            "version": VERSION, "decode": DECODE_VERSION,
        }  # fmt: skip
        (partial / "meta.json").write_text(json.dumps(meta))  # last: marks the store complete
        del donors  # their memory maps, before their stores may go
        remove_stale(folder, key, "decoded image store")

    key = _key(sources, resize, interpolation)
    return build_once(folder, key, lambda t: _complete(t, len(samples)), build, "decoded image cache")


class DecodedImages(ImageFileDataset):
    """:class:`ImageFileDataset` reading resized pixels from a store instead of decoding files.

    ``transform`` is the usual one without its first Resize (the store already holds its output);
    seeding per (seed, epoch, index) is the base class's.
    """

    def __init__(self, store: Path, samples: Sequence[tuple[str, int]], transform, seed: int = 0):
        super().__init__(samples, transform, seed)
        self.index = np.load(store / "index.npy")
        self.pixels = np.load(store / "pixels.npy", mmap_mode="r")

    def image(self, index: int) -> Image.Image:
        offset, height, width = (int(v) for v in self.index[index])
        flat = np.asarray(self.pixels[offset : offset + height * width * 3])
        return Image.fromarray(flat.reshape(height, width, 3))
