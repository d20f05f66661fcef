"""Every stored image mode becomes 8-bit RGB on load; gray is made on the fly by the transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from publishers import MODES, image, write
from translearn.data.images import is_image_name, load_rgb
from translearn.data.transforms import IMAGENET_MEAN, IMAGENET_STD, Preprocessing, build_transform


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


@pytest.mark.parametrize(
    ("train", "color", "gray_mode", "interpolation", "hflip", "resized"),
    [
        (True, "rgb", "replicate", "bilinear", True, False),
        (False, "rgb", "replicate", "bilinear", True, False),
        (True, "gray", "replicate", "bicubic", True, False),
        (True, "gray", "adapt", "bilinear", False, False),
        (False, "gray", "adapt", "nearest", True, False),
        (True, "rgb", "replicate", "bicubic", True, True),
    ],
)
def test_the_fast_pipeline_gives_torchvision_compose_bit_for_bit_with_the_same_random_draws(
    train: bool, color: str, gray_mode: str, interpolation: str, hflip: bool, resized: bool
) -> None:
    """build_transform skips v2's per-op pytree walk for PIL images; the pixels and RNG must not notice."""
    prep = Preprocessing(interpolation=interpolation, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)).resolve(24)
    fast = build_transform(
        train, color=color, gray_mode=gray_mode, hflip=hflip, preprocessing=prep, resized=resized,
        crop_scale=(0.2, 1.0),
    )  # fmt: skip
    reference = v2.Compose(list(fast.transforms))  # the same op objects, run by torchvision itself
    assert [type(op).__name__ for op in reference.transforms][-3:] == ["ToImage", "ToDtype", "Normalize"]
    for seed in range(40):
        picture = image("rgb", seed, (30 + seed % 7, 41 - seed % 5))
        torch.manual_seed(seed)
        want, want_rng = reference(picture), torch.get_rng_state()
        torch.manual_seed(seed)
        got, got_rng = fast(picture), torch.get_rng_state()
        assert got.dtype == want.dtype == torch.float32 and got.shape == want.shape
        assert torch.equal(got, want.as_subclass(torch.Tensor)), f"seed {seed}"
        assert torch.equal(got_rng, want_rng), f"seed {seed}: a different number of random draws"
    # Non-PIL inputs take Compose's own path: a uint8 tensor image gives Compose's result.
    tensor = v2.functional.pil_to_tensor(image("rgb", 99, (32, 32)))
    torch.manual_seed(0)
    want = reference(tensor)
    torch.manual_seed(0)
    assert torch.equal(fast(tensor), want)


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


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_phone_photo_loads_upright_as_a_viewer_shows_it(tmp_path: Path, orientation: int) -> None:
    """A photo stored sideways with an EXIF orientation tag loaded sideways: trained and predicted rotated.

    Checked against torchvision's own JPEG decoder with apply_exif_orientation, not against PIL's
    exif_transpose, which the loader uses.
    """
    from PIL import Image
    from torchvision.io import ImageReadMode, decode_jpeg, read_file

    stored = Image.new("RGB", (64, 40), (20, 40, 200))
    stored.paste((250, 240, 10), (0, 0, 16, 10))  # a yellow corner, to see where it lands
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)

    loaded = np.asarray(load_rgb(path)).astype(int)
    expected = decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB, apply_exif_orientation=True)
    expected = expected.permute(1, 2, 0).numpy().astype(int)
    assert loaded.shape == expected.shape
    assert np.abs(loaded - expected).mean() < 2.0  # two JPEG decoders, the same picture
    assert loaded.shape[:2] == ((40, 64) if orientation == 3 else (64, 40))


def test_a_float_image_in_0_to_1_keeps_its_values(tmp_path: Path) -> None:
    """A float TIFF (scientific, remote sensing) with values in 0..1 decoded to an all-black image."""
    from PIL import Image

    ramp = np.tile(np.linspace(0.0, 1.0, 32, dtype=np.float32), (8, 1))
    path = tmp_path / "ramp.tif"
    Image.fromarray(ramp, mode="F").save(path)
    pixels = np.asarray(load_rgb(path))[..., 0].astype(int)
    assert np.abs(pixels - np.round(ramp * 255)).max() <= 1


def test_a_very_large_photo_loads_without_pillows_two_line_warning(tmp_path: Path, monkeypatch) -> None:
    import warnings

    from PIL import Image

    path = write(tmp_path / "big.png", "rgb", seed=4)
    pixels = Image.open(path).size
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels[0] * pixels[1] * 2 // 3)  # over it, under twice
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_rgb(path).size == pixels
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
