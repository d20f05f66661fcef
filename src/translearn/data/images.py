"""Decoding images: any file PIL can read becomes an 8-bit RGB image, whatever it was stored as."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

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


def to_rgb(image: Image.Image) -> Image.Image:
    """Gray, CMYK, palette, alpha and 16-bit images, all as RGB (16-bit is scaled, not clipped)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_rgb(path: str | Path) -> Image.Image:
    """Open and fully decode ``path`` as RGB; raises OSError/ValueError for files that are not images."""
    # A truncated file must fail here, not be padded with gray by PIL's lenient mode.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with Image.open(path) as image:
        image.load()
        return to_rgb(image)
