"""dataset.cache=decoded: the same tensors as decoding every epoch, from a store built once."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

import publishers
from translearn.data.imagefolder import ImageFolderDataModule
from translearn.errors import UserError


def module(root: Path, cache_dir: Path, cache: str, **kwargs) -> ImageFolderDataModule:
    kwargs.setdefault("image_size", 32)
    dm = ImageFolderDataModule(
        root,
        cache=cache,
        cache_dir=cache_dir,
        index_dir=cache_dir / "index",
        num_workers=0,
        **kwargs,
    )
    dm.prepare_data()
    dm.setup("fit")
    return dm


@pytest.mark.parametrize("color", ["rgb", "gray"])
def test_decoded_tensors_are_bit_identical_to_decoding_each_time(tmp_path: Path, color: str) -> None:
    root = publishers.imagefolder(tmp_path / "data")  # mixed sizes, gray and CMYK files among them
    plain = module(root, tmp_path / "cache", "none", color=color)
    decoded = module(root, tmp_path / "cache", "decoded", color=color)
    for split in plain.datasets:
        a, b = plain.datasets[split], decoded.datasets[split]
        assert len(a) == len(b)
        for i in range(len(a)):
            # train: seeded random draws (epoch 3, 4); val/test: the deterministic eval transform
            for key in ((i, 3), (i, 4)) if split == "train" else (i,):
                x, y = a[key]
                x2, y2 = b[key]
                assert y == y2 and torch.equal(x, x2), (split, key)


def test_the_store_is_built_once_and_rebuilt_when_cut_short(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = publishers.imagefolder(tmp_path / "data")
    cache = tmp_path / "cache"
    module(root, cache, "decoded")
    stores = sorted(p for p in (cache / "decoded").iterdir() if p.is_dir() and not p.name.startswith("."))
    stamps = {p: (p / "meta.json").stat().st_mtime_ns for p in stores}
    module(root, cache, "decoded")  # the same files and resize: reused
    assert {p: (p / "meta.json").stat().st_mtime_ns for p in stores} == stamps
    module(root, cache, "decoded", image_size=40)  # another resize: another store
    assert len([p for p in (cache / "decoded").iterdir() if p.is_dir() and not p.name.startswith(".")]) > len(
        stores
    )
    (stores[0] / "index.npy").write_bytes(b"\x93NUMPY")  # cut short
    capsys.readouterr()
    again = module(root, cache, "decoded")
    assert f"translearn: warning: decoded image cache {stores[0]} is incomplete or corrupt; rebuilding" in (
        capsys.readouterr().err
    )
    assert len(again.datasets["train"]) > 0


@pytest.mark.parametrize("errno_", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_one_line_and_leaves_no_partial(tmp_path: Path, monkeypatch, errno_: int) -> None:
    """The store's space is reserved before it is written: a full disk is one line naming the folder and the
    size, not numpy's 'N requested and M written' traceback."""

    def full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno_, os.strerror(errno_))

    root = publishers.imagefolder(tmp_path / "data")
    cache = tmp_path / "cache"
    module(root, cache, "none")  # the index first: its writes reserve nothing
    monkeypatch.setattr(os, "posix_fallocate", full)
    with pytest.raises(UserError) as err:
        module(root, cache, "decoded")
    message = str(err.value)
    assert message.startswith(f"cannot write the decoded image cache in {cache / 'decoded'}: ")
    why = "the disk quota is exceeded" if errno_ == errno.EDQUOT else "no space left on the device"
    assert f"{why} (needs ~" in message and "free space or set paths.cache_dir=DIR" in message
    assert "\n" not in message
    assert [p.name for p in (cache / "decoded").iterdir() if not p.name.endswith(".lock")] == []


def test_a_bad_cache_mode_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dataset\.cache must be none or decoded"):
        ImageFolderDataModule(tmp_path, cache="jpeg")


def _pngs(folder: Path, count: int) -> list[tuple[str, int]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.new("RGB", (48 + i, 40), (i * 30 % 256, 90, 200 - i * 20)).save(folder / f"{i}.png")
    return [(str(folder / f"{i}.png"), 0) for i in range(count)]


def test_a_changed_file_is_decoded_again_the_rest_copied_and_the_dead_store_removed(
    tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture
) -> None:
    """Touching one file of 20k decoded all 20k again, and the old store stayed on disk for good (audit 7)."""
    from PIL import Image

    from translearn.data import decoded

    samples = _pngs(tmp_path / "img", 6)
    folder = tmp_path / "decoded"
    old = decoded.build_store(samples, 32, "bilinear", folder)
    kept = decoded.build_store(samples[:2], 32, "bilinear", folder)  # its files stay as they are
    Image.new("RGB", (50, 44), (1, 2, 3)).save(samples[3][0])  # changed: other pixels, other size
    opened: list[str] = []
    real = decoded.load_rgb
    monkeypatch.setattr(decoded, "load_rgb", lambda path: opened.append(path) or real(path))
    capsys.readouterr()
    new = decoded.build_store(samples, 32, "bilinear", folder)
    said = capsys.readouterr().out
    assert new != old and opened == [samples[3][0]]
    assert "5 of them unchanged since an earlier store and copied from it" in said
    assert not old.exists() and kept.exists()  # old lists a file that changed: no run can use it again
    assert "removed 1 decoded image store(s) whose files changed since" in said
    fresh = decoded.build_store(samples, 32, "bilinear", tmp_path / "fresh")  # nothing to copy from
    for name in ("pixels.npy", "index.npy", "sources.json"):
        assert (new / name).read_bytes() == (fresh / name).read_bytes(), name


def test_a_store_of_removed_files_goes_and_one_of_unreachable_files_stays(tmp_path: Path) -> None:
    from translearn.data import decoded

    folder = tmp_path / "decoded"
    gone = decoded.build_store(_pngs(tmp_path / "a", 2), 32, "bilinear", folder)
    unmounted = decoded.build_store(_pngs(tmp_path / "disk" / "b", 2), 32, "bilinear", folder)
    Path(tmp_path / "a" / "1.png").unlink()  # its folder is there: the file was removed
    (tmp_path / "disk").rename(tmp_path / "elsewhere")  # its folder is not: an unmounted disk, say
    decoded.build_store(_pngs(tmp_path / "c", 2), 32, "bilinear", folder)
    assert not gone.exists() and unmounted.exists()


def test_the_store_is_streamed_to_disk_not_held_in_memory(tmp_path: Path) -> None:
    """The build kept every decoded image in a list and concatenated them: a peak of twice the store in
    memory (4.2 GB for a 1.9 GB store of 20k images). Streamed, the peak is a few images."""
    import tracemalloc

    import numpy as np
    from PIL import Image

    from translearn.data.decoded import build_store

    samples = []
    for i in range(120):
        path = tmp_path / "img" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.new("RGB", (96, 72), (i, 2 * i % 256, 50)).save(path)
        samples.append((str(path), 0))
    tracemalloc.start()
    try:
        store = build_store(samples, 64, "bilinear", tmp_path / "decoded")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = np.load(store / "pixels.npy", mmap_mode="r").nbytes
    assert size == 120 * 64 * 85 * 3
    assert peak < size / 4, (peak, size)


@pytest.mark.cli
def test_the_store_build_is_cache_time_not_training_time_and_is_said(tmp_path: Path, monkeypatch) -> None:
    """The build ran inside fit's setup: train_seconds counted it (8.4 s against 1.6 s once built, audit 7)
    while cache_seconds said 0.0, and it ran without a word."""
    import json

    from helpers import TINY, run_cli

    monkeypatch.setenv("TRANSLEARN_CACHE", str(tmp_path / "cache"))
    proc = run_cli(*TINY, "dataset.cache=decoded", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "decoding 150 images once at 37 px" in proc.stdout + proc.stderr
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["cache_seconds"] > 0.05
