"""Every stored image mode becomes 8-bit RGB on load; gray is made on the fly by the transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from publishers import MODES, image, write
from translearn.data.images import is_image_name, load_rgb
from translearn.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform


@pytest.mark.parametrize("mode", MODES)
def test_load_rgb_converts_every_stored_mode_to_rgb(tmp_path: Path, mode: str) -> None:
    ext = "jpg" if mode in ("rgb", "gray", "cmyk") else "png"
    path = write(tmp_path / f"x.{ext}", mode, seed=1)
    loaded = load_rgb(path)
    assert loaded.mode == "RGB"
    assert loaded.size == image(mode, 1).size


def test_load_rgb_scales_16_bit_instead_of_clipping(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.png", "i16", seed=2)
    pixels = np.asarray(load_rgb(path))
    # Uniform 16-bit noise scaled to 8 bits averages about 127; clipping at 255 would saturate it.
    assert 100 < pixels.mean() < 155
    assert (pixels[..., 0] == pixels[..., 1]).all()


def test_load_rgb_of_a_gray_jpeg_gives_three_equal_channels(tmp_path: Path) -> None:
    pixels = np.asarray(load_rgb(write(tmp_path / "g.jpg", "gray")))
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()


def test_gray_replicate_is_one_luma_channel_normalised_per_imagenet_channel() -> None:
    x = build_transform(False, 16, color="gray", gray_mode="replicate")(image("rgb", 3, (24, 24)))
    mean = torch.tensor(IMAGENET_MEAN)[:, None, None]
    std = torch.tensor(IMAGENET_STD)[:, None, None]
    luma = x * std + mean  # undo the per-channel normalisation: three copies of the same gray
    assert x.shape == (3, 16, 16)
    assert torch.allclose(luma[0], luma[1], atol=1e-5) and torch.allclose(luma[1], luma[2], atol=1e-5)


def test_gray_adapt_is_one_channel() -> None:
    x = build_transform(True, 16, color="gray", gray_mode="adapt")(image("rgb", 3, (24, 24)))
    assert x.shape == (1, 16, 16)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("pic_0001.jpg", True),
        ("PIC_0002.JPG", True),
        ("écrit.jpeg", True),
        ("x.Png", True),
        (".DS_Store", False),
        ("Thumbs.db", False),
        ("._pic_0001.jpg", False),  # macOS resource fork
        ("RENAME2", False),
    ],
)
def test_is_image_name(name: str, expected: bool) -> None:
    assert is_image_name(name) is expected
