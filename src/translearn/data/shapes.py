"""The embedded offline default: procedurally drawn shapes, split into a base task and a target task.

No dataset or ImageNet checkpoint can be downloaded offline, so translearn reproduces the Yosinski et al.
(2014) A→B setup on data it can draw itself. Ten shape classes are split in two disjoint halves:

* base (A): circle, square, triangle, cross, star; 200 training images each. translearn pretrains a
  backbone on it once and caches the weights (``model.weights=embedded``, see :mod:`translearn.pretrain`);
* target (B): ring, hexagon, diamond, arrow, crescent; only 30 training images each, 40 val, 40 test.
  Against the pretrained base weights this is an output-level (label) shift: new classes, same images.
* corrupted: the base classes again, new images with a corruption each (strong noise, blur, or low
  contrast), 30 / 40 / 40 per class: an input-level shift, the other kind Lee et al. (2023) separate.

Every image has a random background gradient, noise, distractor lines, and a shape of random colour,
size, position and rotation. Generation is deterministic (one seeded RNG per image) and takes a few
seconds; files are real PNGs in ``root/{base,target}/{train,val,test}/<class>/NNNN.png``.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image, ImageDraw

from translearn.data.base import DatasetIndex, ImageDataModule
from translearn.errors import UserError

VERSION = 2
SIDE = 72  # stored size; training crops image_size (default 64) out of a resize, as with real photos
BASE_CLASSES = ("circle", "square", "triangle", "cross", "star")
TARGET_CLASSES = ("ring", "hexagon", "diamond", "arrow", "crescent")
COUNTS = {
    "base": {"train": 200, "val": 40},
    "target": {"train": 30, "val": 40, "test": 40},
    "corrupted": {"train": 30, "val": 40, "test": 40},
}
CORRUPTIONS = ("noise", "blur", "contrast")
_SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _regular(n: int, phase: float = 0.0) -> np.ndarray:
    a = phase + np.arange(n) * 2 * math.pi / n
    return np.stack([np.cos(a), np.sin(a)], axis=1)


def _star(points: int = 5, inner: float = 0.45) -> np.ndarray:
    a = np.arange(2 * points) * math.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], axis=1)


_W = 0.33  # arm half-width of the cross
_POLYGONS = {
    "square": np.array([(-0.8, -0.8), (0.8, -0.8), (0.8, 0.8), (-0.8, 0.8)]),
    "triangle": _regular(3, -math.pi / 2),
    "hexagon": _regular(6),
    "diamond": np.array([(0.0, -1.0), (0.6, 0.0), (0.0, 1.0), (-0.6, 0.0)]),
    "cross": np.array(
        [
            (-_W, -1),
            (_W, -1),
            (_W, -_W),
            (1, -_W),
            (1, _W),
            (_W, _W),
            (_W, 1),
            (-_W, 1),
            (-_W, _W),
            (-1, _W),
            (-1, -_W),
            (-_W, -_W),
        ]
    ),
    "star": _star(),
    "arrow": np.array(
        [(-1.0, -0.25), (0.2, -0.25), (0.2, -0.6), (1.0, 0.0), (0.2, 0.6), (0.2, 0.25), (-1.0, 0.25)]
    ),
}


def render(kind: str, rng: np.random.Generator, side: int = SIDE) -> Image.Image:
    """One image of shape ``kind``: the only thing that identifies the class is the outline."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    background = rng.uniform(0, 255, 3)
    canvas = background + rng.uniform(-25, 25, 3) * ramp + rng.normal(0, 4, (side, side, 3))
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(0, 3)):  # distractor lines
        draw.line(
            [tuple(rng.uniform(0, side, 2)), tuple(rng.uniform(0, side, 2))],
            fill=tuple(int(v) for v in rng.uniform(0, 255, 3)),
            width=1,
        )
    while True:  # a foreground that stands out from the background
        fg = rng.uniform(0, 255, 3)
        if np.abs(fg - background).sum() > 200:
            break
    fill = tuple(int(v) for v in fg)
    hole = tuple(int(v) for v in np.clip(background, 0, 255))
    radius = rng.uniform(0.28, 0.42) * side
    cx, cy = side / 2 + rng.uniform(-0.1, 0.1, 2) * side
    rotation = rng.uniform(0, 2 * math.pi)

    def disc(x: float, y: float, r: float, colour: tuple[int, ...]) -> None:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)

    if kind == "circle":
        disc(cx, cy, radius, fill)
    elif kind == "ring":
        disc(cx, cy, radius, fill)
        disc(cx, cy, radius * rng.uniform(0.5, 0.65), hole)
    elif kind == "crescent":
        disc(cx, cy, radius, fill)
        offset = radius * rng.uniform(0.4, 0.55)
        disc(cx + offset * math.cos(rotation), cy + offset * math.sin(rotation), radius * 0.9, hole)
    else:
        points = _POLYGONS[kind]
        rot = np.array([[math.cos(rotation), -math.sin(rotation)], [math.sin(rotation), math.cos(rotation)]])
        xy = points @ rot.T * radius + (cx, cy)
        draw.polygon([tuple(p) for p in xy], fill=fill)
    return image


def corrupt(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One of three input-level corruptions, strong enough to move early features, mild enough to keep the
    outline recognisable: Gaussian noise, Gaussian blur, or contrast cut to 30 %."""
    from PIL import ImageFilter

    kind = CORRUPTIONS[int(rng.integers(len(CORRUPTIONS)))]
    if kind == "blur":
        return image.filter(ImageFilter.GaussianBlur(radius=2.0))
    pixels = np.asarray(image, dtype=np.float32)
    if kind == "noise":
        pixels = pixels + rng.normal(0, 45, pixels.shape)
    else:
        pixels = pixels.mean() + 0.3 * (pixels - pixels.mean())
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _generate_corrupted(root: Path) -> None:
    marker = root / ".complete-corrupted-v1"  # its own marker: adding the task never redraws the others
    if marker.exists():
        return
    with FileLock(str(root / ".generate.lock")):
        if marker.exists():
            return
        for split, count in COUNTS["corrupted"].items():
            for label, kind in enumerate(BASE_CLASSES):
                folder = root / "corrupted" / split / kind
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):  # a seed stream of its own: not the base task's images
                    rng = np.random.default_rng([VERSION, label, _SPLIT_IDS[split], i, 2])
                    corrupt(render(kind, rng), rng).save(folder / f"{i:04d}.png", compress_level=1)
        marker.touch()


def generate(root: Path, task: str = "target") -> Path:
    """Write the dataset under ``root`` once (idempotent, safe across processes)."""
    root.mkdir(parents=True, exist_ok=True)
    if task == "corrupted":
        _generate_corrupted(root)
        return root
    marker = root / f".complete-v{VERSION}"
    if marker.exists():
        return root
    with FileLock(str(root / ".generate.lock")):
        if marker.exists():
            return root
        for task, classes in (("base", BASE_CLASSES), ("target", TARGET_CLASSES)):  # not "corrupted"
            for split, count in COUNTS[task].items():
                for label, kind in enumerate(classes):
                    folder = root / task / split / kind
                    folder.mkdir(parents=True, exist_ok=True)
                    for i in range(count):
                        rng = np.random.default_rng(
                            [VERSION, label, _SPLIT_IDS[split], i, int(task == "base")]
                        )
                        render(kind, rng).save(folder / f"{i:04d}.png", compress_level=1)
        marker.touch()
    return root


class ShapesDataModule(ImageDataModule):
    """The embedded dataset: ``task`` is ``target`` (the transfer task, new classes), ``corrupted`` (the
    base classes under corruptions) or ``base`` (the pretraining task)."""

    def __init__(self, root: str | Path, task: str = "target", **kwargs):
        super().__init__(root, **kwargs)
        if task not in COUNTS:
            raise UserError(f"dataset.task must be one of {', '.join(COUNTS)}, got '{task}'")
        self.task = task

    def prepare_data(self) -> None:
        generate(self.root, self.task)

    def build_index(self) -> DatasetIndex:
        generate(self.root, self.task)
        classes = list(TARGET_CLASSES if self.task == "target" else BASE_CLASSES)
        samples = {
            split: [
                (str(path), label)
                for label, kind in enumerate(classes)
                for path in sorted((self.root / self.task / split / kind).glob("*.png"))
            ]
            for split in COUNTS[self.task]
        }
        return DatasetIndex(classes, samples)
