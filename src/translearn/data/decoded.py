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
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode, v2

from translearn.data.base import ImageFileDataset
from translearn.data.images import DECODE_VERSION, load_rgb
from translearn.log import log
from translearn.progress import bar
from translearn.storage import build_once, disk_full, no_space, save_npy

VERSION = 1
MODES = ("none", "decoded")


def _key(samples: Sequence[tuple[str, int]], resize: int, interpolation: str) -> str:
    digest = hashlib.sha256(json.dumps([VERSION, DECODE_VERSION, resize, interpolation]).encode())
    for path, _ in samples:
        stat = os.stat(path)
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:20]


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

    def build(partial: Path) -> None:
        log.info(f"decoding {len(samples)} images once at {resize} px into {folder} (dataset.cache=decoded)")
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
        meta = {"count": len(samples), "resize": resize, "interpolation": interpolation, "bytes": offset}
        (partial / "meta.json").write_text(json.dumps(meta))  # last: marks the store complete

    key = _key(samples, resize, interpolation)
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
