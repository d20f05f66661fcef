"""Tiny fixture trees in each publisher's real layout, with the real archives' quirks.

Every image is a few pixels of real JPEG/PNG; the quirks are the ones the datasets ship with: gray and
CMYK JPEGs, RGBA/palette/16-bit PNGs, ``.DS_Store`` and ``Thumbs.db``, upper-case extensions, unicode
file names, symlinked folders, Simpsons' nested duplicate and flat test set, Caltech's ``greg/`` and
``RENAME2``, Kaggle's unlabelled ``test1/``. ``add_bad_files`` drops in the files verification must
exclude: a truncated JPEG, an empty file and a text file named ``.jpg``.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

SIDE = (20, 16)
MODES = ("rgb", "gray", "cmyk", "rgba", "palette", "i16")
BAD_FILES = {"truncated.jpg": "truncated", "empty.jpg": "empty file", "notes.jpg": "not an image"}


def image(mode: str = "rgb", seed: int = 0, size: tuple[int, int] = SIDE) -> Image.Image:
    """A small noisy image in PIL ``mode`` terms: rgb, gray, cmyk, rgba, palette or i16 (16-bit gray)."""
    rng = np.random.default_rng(seed)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    if mode == "rgb":
        return rgb
    if mode == "gray":
        return rgb.convert("L")
    if mode == "cmyk":
        return rgb.convert("CMYK")
    if mode == "rgba":
        return rgb.convert("RGBA")
    if mode == "palette":
        pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        pal.info["transparency"] = 0
        return pal
    if mode == "i16":
        return Image.fromarray(rng.integers(0, 65536, (size[1], size[0]), dtype=np.uint16))
    raise ValueError(mode)


def write(path: Path, mode: str = "rgb", seed: int = 0) -> Path:
    """Write an image; JPEG for rgb/gray/cmyk (by extension), PNG for the rest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = image(mode, seed)
    fmt = "PNG" if mode in ("rgba", "palette", "i16") or path.suffix.lower() == ".png" else "JPEG"
    if fmt == "PNG" and mode == "palette":
        img.save(path, format=fmt, transparency=0)
    else:
        img.save(path, format=fmt)
    return path


def write_bad(folder: Path) -> list[Path]:
    """A truncated JPEG, an empty .jpg and a text file named .jpg, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    image("rgb", 99, (64, 64)).save(buffer, format="JPEG")
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "notes.jpg").write_text("not an image\n")
    return [folder / name for name in BAD_FILES]


def junk(folder: Path) -> None:
    """What macOS and Windows leave in folders."""
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")


def _seed(*parts: object) -> int:
    """A seed from names, stable across processes (``hash()`` of a str is not)."""
    return zlib.crc32("/".join(map(str, parts)).encode()) % 10_000


def _mode(i: int) -> str:
    """Mostly colour JPEGs, with the odd gray and CMYK one, as in Caltech256."""
    return {3: "gray", 5: "cmyk"}.get(i % 7, "rgb")


# --- hymenoptera --------------------------------------------------------------------------------------

HYMENOPTERA = {"train": {"ants": 6, "bees": 5}, "val": {"ants": 4, "bees": 3}}


def hymenoptera(root: Path, counts: Mapping[str, Mapping[str, int]] = HYMENOPTERA) -> Path:
    """``root/hymenoptera_data/{train,val}/{ants,bees}/*.jpg``, with an upper-case ``.JPG`` and a GIF."""
    for split, classes in counts.items():
        for cls, n in classes.items():
            folder = root / "hymenoptera_data" / split / cls
            for i in range(n):
                name = f"{cls}_{i:04d}.JPG" if i == 1 else f"{cls}_{i:04d}.jpg"
                write(folder / name, _mode(i), seed=_seed(split, cls, i))
            junk(folder)
    # The real zip ships train/ants/imageNotFound.gif; a GIF is an image like any other.
    gif = root / "hymenoptera_data" / "train" / "ants" / "imageNotFound.gif"
    image("palette", 7).save(gif, format="GIF")
    return root


# --- simpsons -----------------------------------------------------------------------------------------

STUDY_20 = (
    "abraham_grampa_simpson",
    "apu_nahasapeemapetilon",
    "bart_simpson",
    "charles_montgomery_burns",
    "chief_wiggum",
    "comic_book_guy",
    "edna_krabappel",
    "homer_simpson",
    "kent_brockman",
    "krusty_the_clown",
    "lenny_leonard",
    "lisa_simpson",
    "marge_simpson",
    "mayor_quimby",
    "milhouse_van_houten",
    "moe_szyslak",
    "ned_flanders",
    "nelson_muntz",
    "principal_skinner",
    "sideshow_bob",
)
# 3..8 images per study character, plus two characters the study left out.
SIMPSONS = {name: 3 + (i % 6) for i, name in enumerate(STUDY_20)} | {"disco_stu": 9, "troy_mcclure": 2}
SIMPSONS_TEST = {"bart_simpson": 2, "homer_simpson": 3, "disco_stu": 1}


def simpsons(
    root: Path,
    counts: Mapping[str, int] = SIMPSONS,
    test: Mapping[str, int] = SIMPSONS_TEST,
    symlinked: str | None = "lisa_simpson",
) -> Path:
    """The Kaggle archive unzipped: ``simpsons_dataset/<character>/pic_NNNN.jpg``, its nested duplicate,
    and the flat ``kaggle_simpson_testset/<character>_NN.jpg``. ``symlinked``'s folder lives outside
    ``root`` and is linked in, and one file name is unicode."""
    top = root / "simpsons_dataset"
    for cls, n in counts.items():
        folder = top / cls
        if cls == symlinked:
            folder = root.parent / f"{root.name}-elsewhere" / cls
        for i in range(n):
            write(folder / f"pic_{i:04d}.jpg", _mode(i), seed=_seed(cls, i))
            write(top / "simpsons_dataset" / cls / f"pic_{i:04d}.jpg", "rgb", seed=i)  # the duplicate
        if cls == symlinked:
            top.mkdir(parents=True, exist_ok=True)
            os.symlink(folder, top / cls, target_is_directory=True)
    write(top / "bart_simpson" / "pic_0100_écrit.jpg", "rgb", seed=5)  # unicode file name
    junk(top / "bart_simpson")
    flat = root / "kaggle_simpson_testset"
    for cls, n in test.items():
        for i in range(n):
            write(flat / f"{cls}_{i + 1}.jpg", "rgb", seed=200 + i)
    junk(flat)
    return root


# --- caltech256 ---------------------------------------------------------------------------------------

CALTECH = {"001.ak47": 5, "002.american-flag": 4, "056.dog": 6, "198.spider": 5, "257.clutter": 7}


def caltech256(root: Path, counts: Mapping[str, int] = CALTECH) -> Path:
    """``root/caltech256/256_ObjectCategories/NNN.name/NNN_NNNN.jpg`` with ``056.dog/greg/`` and
    ``198.spider/RENAME2``; gray and CMYK JPEGs mixed in."""
    cats = root / "caltech256" / "256_ObjectCategories"
    for cls, n in counts.items():
        number = cls.split(".")[0]
        for i in range(n):
            write(cats / cls / f"{number}_{i + 1:04d}.jpg", _mode(i), seed=_seed(cls, i))
    if "056.dog" in counts:
        for i in range(3):
            write(cats / "056.dog" / "greg" / f"greg_{i}.jpg", "rgb", seed=i)
    if "198.spider" in counts:
        (cats / "198.spider" / "RENAME2").write_text("stray file shipped in the archive\n")
    return root


# --- dogs vs cats -------------------------------------------------------------------------------------


def dogs_vs_cats(root: Path, cats: int = 6, dogs: int = 5, test1: int = 3) -> Path:
    """Kaggle's ``train/{cat,dog}.N.jpg`` (numbers not zero-padded) and the unlabelled ``test1/``."""
    for cls, n in (("cat", cats), ("dog", dogs)):
        for i in range(n):
            write(root / "train" / f"{cls}.{i}.jpg", _mode(i), seed=_seed(cls, i))
    for i in range(test1):
        write(root / "test1" / f"{i + 1}.jpg", "rgb", seed=300 + i)
    junk(root / "train")
    return root


# --- a generic image folder ---------------------------------------------------------------------------

IMAGEFOLDER = {"café": 5, "dog": 6, "owl": 4}


def imagefolder(
    root: Path, counts: Mapping[str, int] = IMAGEFOLDER, splits: Mapping[str, float] | None = None
) -> Path:
    """``root/<class>/<image>`` (one nested subfolder, every image mode), or, with ``splits`` (e.g.
    ``{"train": 1.0, "val": 0.5}``), ``root/<split>/<class>/`` with that many times ``counts`` each."""
    for split, factor in (splits or {"": 1.0}).items():
        base = root / split if split else root
        for cls, n in counts.items():
            for i in range(max(1, round(n * factor))):
                mode = MODES[i % len(MODES)]
                sub = "more/" if i == 2 else ""
                ext = "png" if mode in ("rgba", "palette", "i16") else "jpg"
                write(base / cls / f"{sub}img_{i}.{ext}", mode, seed=i)
            junk(base / cls)
    return root


def imagefolder_splits(root: Path, per_split: Mapping[str, Mapping[str, int]]) -> Path:
    """``root/<split folder>/<class>/img_N.jpg`` with each split's own classes and counts, e.g.
    ``{"Train": {"ant": 5}, "Val": {"ant": 3, "zebra": 3}}``: split folders named and filled as users
    name and fill them (capitalised, synonyms, classes that differ between splits)."""
    for split, classes in per_split.items():
        for cls, n in classes.items():
            for i in range(n):
                write(root / split / cls / f"img_{i}.jpg", _mode(i), seed=_seed(split, cls, i))
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under ``root``, links followed: proof that nothing was touched."""
    out = {}
    for dirpath, _dirs, files in os.walk(root, followlinks=True):
        for name in files:
            path = Path(dirpath) / name
            st = path.stat()
            out[path.relative_to(root).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out
