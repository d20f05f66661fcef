"""Decoding images: any file PIL can read becomes an 8-bit RGB image, upright, whatever it was stored as.

Upright: a photo's EXIF orientation tag is applied, as every image viewer and browser does; phone photos
are stored sideways with the tag saying so, and a model trained on them sideways would be served upright
ones. Every reader (training, the decoded cache, predict, eval, the data check) decodes here, so they
agree, and the caches' keys carry :data:`DECODE_VERSION`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Files that operating systems and archivers leave in image folders.
JUNK_NAMES = {".ds_store", "thumbs.db", "desktop.ini"}


def is_image_name(path: str | Path) -> bool:
    name = Path(path).name
    return (
        not name.startswith(".")
        and name.lower() not in JUNK_NAMES
        and Path(name).suffix.lower() in IMAGE_EXTENSIONS
    )


# 2: EXIF orientation applied; float images whose values lie in 0..1 scaled from 1, not 255 (they were black).
DECODE_VERSION = 2
ORIENTATION = 0x0112  # the EXIF tag


def to_rgb(image: Image.Image) -> Image.Image:
    """Gray, CMYK, palette, alpha, 16-bit and float images, all as RGB.

    16-bit is scaled from 65535, not clipped. A float image (TIFF mode F) in 0..1 is scaled from 1, the
    convention of scientific and remote-sensing files; one with larger values from 255 or 65535.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = float(np.nanmax(array)) if array.size else 0.0
        if image.mode.startswith("I;16") or peak > 255:
            top = 65535.0
        elif image.mode == "F" and peak <= 1.0:
            top = 1.0
        else:
            top = 255.0
        array = np.nan_to_num(array, nan=0.0)
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode ``path`` as RGB; raises OSError/ValueError for files that are not images."""
    # A truncated file must fail here, not be padded with gray by PIL's lenient mode.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with warnings.catch_warnings():
        # Pillow's DecompressionBombWarning (a photo over ~89 MP) is two lines naming Pillow's source file;
        # such a photo decodes fine, and one over twice the limit fails as an unreadable file.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            image.load()
            if image.getexif().get(ORIENTATION, 1) not in (0, 1):  # exif_transpose copies even an upright one
                return to_rgb(ImageOps.exif_transpose(image))
            return to_rgb(image)
