"""Transforms: the preprocessing that matches the weights, the 2017 recipe, and the two grayscale modes.

Pretrained weights expect the preprocessing they were trained with: torchvision's ResNet50 V2 weights
resize to 232 and crop 224, timm's models often use bicubic resizing and their own mean/std. A
:class:`Preprocessing` records those numbers; :mod:`translearn.weights.catalog` reads them from the
weights' own metadata, and the data module fills every ``dataset.*`` key left null from it.

Train: Resize(resize) → RandomResizedCrop(crop, scale, ratio) → horizontal flip; eval: Resize(resize) →
CenterCrop(crop) (the 2017 recipe, with resize/crop = 256/224 there). Both end in normalisation. The
augmentation is configurable (``dataset.crop_scale``, ``dataset.crop_ratio``, ``dataset.hflip``): a flip
turns a 'b' into a 'd' and mirrors text, so digits, letters and documents need ``hflip=false``. Gray is PIL's
``convert('L')`` (luma 0.299R + 0.587G + 0.114B), done on the fly:

* ``replicate``: 3 equal channels, each normalised with the weights' per-channel mean/std, as in 2017, so
  the pretrained stem is untouched;
* ``adapt``: 1 channel normalised with the luma-weighted mean/std (:func:`gray_stats`), fed to a first
  conv whose weights are summed over RGB. With one shared mean/std the two modes give identical logits;
  with per-channel stats they differ slightly, because the three channels of a replicated gray image are
  then normalised differently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from PIL import Image
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as F

from translearn.errors import UserError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)
COLORS = ("rgb", "gray")
GRAY_MODES = ("replicate", "adapt")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
# The dataset.* keys that set the preprocessing (Preprocessing.resolve); null: the weights' own.
PREPROCESSING_KEYS = ("image_size", "resize_ratio", "interpolation", "mean", "std")
CROP_SCALE = (0.08, 1.0)  # torchvision's RandomResizedCrop defaults, as in 2017
CROP_RATIO = (3 / 4, 4 / 3)


def check_range(key: str, value: object, upper: float | None = None) -> tuple[float, float]:
    """``dataset.<key>`` as a (low, high) pair with 0 < low <= high (<= ``upper``), else a UserError."""
    # Any iterable but a string: Hydra passes a ListConfig.
    pair = tuple(value) if hasattr(value, "__iter__") and not isinstance(value, str | bytes) else ()
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
    low, high = (float(pair[0]), float(pair[1])) if len(pair) == 2 and numbers else (0.0, 0.0)
    if not 0 < low <= high or (upper is not None and high > upper):  # NaN fails here too
        bound = f" <= {upper:g}" if upper is not None else ""
        shown = list(pair) if pair else value
        raise UserError(f"dataset.{key} must be [low, high] with 0 < low <= high{bound}, got {shown}")
    return low, high


def gray_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[float, float]:
    """The luma-weighted mean and std of per-channel RGB statistics."""
    return (
        sum(w * m for w, m in zip(LUMA, mean, strict=True)),
        sum(w * s for w, s in zip(LUMA, std, strict=True)),
    )


GRAY_MEAN, GRAY_STD = gray_stats(IMAGENET_MEAN, IMAGENET_STD)


@dataclass(frozen=True)
class Preprocessing:
    """What pretrained weights expect: resize side, crop side, interpolation and RGB mean/std."""

    crop: int = 224
    resize: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    source: str = "translearn default (ImageNet statistics, 256/224)"

    def resolve(
        self,
        image_size: int | None = None,
        resize_ratio: float | None = None,
        interpolation: str | None = None,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> Preprocessing:
        """These weights' preprocessing with the user's explicit ``dataset.*`` values on top.

        A crop size set by the user keeps the weights' resize/crop ratio unless ``resize_ratio`` is set too.
        """
        crop = int(image_size) if image_size is not None else self.crop
        ratio = float(resize_ratio) if resize_ratio is not None else self.resize / self.crop
        interp = str(interpolation) if interpolation is not None else self.interpolation
        if interp not in INTERPOLATIONS:
            raise UserError(
                f"dataset.interpolation must be one of {', '.join(INTERPOLATIONS)}, got '{interp}'"
            )
        mean_, std_ = (
            tuple(mean) if mean is not None else self.mean,
            tuple(std) if std is not None else self.std,
        )
        if len(mean_) != 3 or len(std_) != 3 or min(std_) <= 0:
            raise UserError(f"dataset.mean and dataset.std need 3 RGB values, std > 0 (got {mean_}, {std_})")
        if crop < 8 or ratio < 1:
            raise UserError(f"dataset.image_size must be >= 8 and resize_ratio >= 1 (got {crop}, {ratio})")
        overridden = [
            key
            for key, value in (
                ("image_size", image_size),
                ("resize_ratio", resize_ratio),
                ("interpolation", interpolation),
                ("mean", mean),
                ("std", std),
            )
            if value is not None
        ]
        source = self.source + (f", dataset.{'/'.join(overridden)} set in the config" if overridden else "")
        return Preprocessing(
            crop=crop,
            resize=round(crop * ratio),
            interpolation=interp,
            mean=tuple(float(m) for m in mean_),
            std=tuple(float(s) for s in std_),
            source=source,
        )

    def describe(self) -> str:
        mean = ", ".join(f"{m:.3f}" for m in self.mean)
        std = ", ".join(f"{s:.3f}" for s in self.std)
        return (
            f"resize {self.resize} ({self.interpolation}) → crop {self.crop}, mean [{mean}] std [{std}] "
            f"({self.source})"
        )

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def input_channels(color: str, gray_mode: str) -> int:
    """1 only for ``gray`` + ``adapt``; the model's ``in_chans`` is interpolated from this."""
    return 1 if color == "gray" and gray_mode == "adapt" else 3


def normalization(
    color: str,
    gray_mode: str,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> tuple[Sequence[float], Sequence[float]]:
    if input_channels(color, gray_mode) == 1:
        gray_mean, gray_std = gray_stats(mean, std)
        return (gray_mean,), (gray_std,)
    return tuple(mean), tuple(std)


def build_transform(
    train: bool,
    image_size: int = 224,
    resize_ratio: float = 256 / 224,
    color: str = "rgb",
    gray_mode: str = "replicate",
    crop_scale: Sequence[float] = CROP_SCALE,
    hflip: bool = True,
    crop_ratio: Sequence[float] = CROP_RATIO,
    preprocessing: Preprocessing | None = None,
    resized: bool = False,
) -> ImagePipeline:
    """PIL RGB image → normalised float tensor of shape (C, crop, crop).

    ``preprocessing``, when given, supplies crop, resize, interpolation and mean/std and wins over
    ``image_size`` and ``resize_ratio``. ``resized=True`` leaves out the first Resize, for images stored
    already resized (``dataset.cache=decoded``).
    """
    prep = preprocessing or Preprocessing().resolve(image_size, resize_ratio)
    interpolation = InterpolationMode(prep.interpolation)
    ops: list = [] if resized else [v2.Resize(prep.resize, interpolation=interpolation, antialias=True)]
    if train:
        ops.append(
            v2.RandomResizedCrop(
                prep.crop,
                scale=tuple(crop_scale),
                ratio=tuple(crop_ratio),
                interpolation=interpolation,
                antialias=True,
            )
        )
        if hflip:
            ops.append(v2.RandomHorizontalFlip())
    else:
        ops.append(v2.CenterCrop(prep.crop))
    if color == "gray":
        ops.append(v2.Grayscale(num_output_channels=input_channels(color, gray_mode)))
    mean, std = normalization(color, gray_mode, prep.mean, prep.std)
    return ImagePipeline(ops, mean, std)


class ImagePipeline(v2.Compose):
    """``v2.Compose(ops + [ToImage, ToDtype(float32, scale), Normalize])``, applied to one PIL image faster.

    Why not plain Compose: for every op, v2 flattens the input's pytree, checks its types and decides
    what to transform; over the eight ops of a training transform that is ~100 µs an image, a third of
    the data path at 64 px and 5% of a frozen run's step (issue 8's profile). For a single PIL image this
    runs each op's own ``make_params``/``transform`` (torchvision's public API for custom transforms),
    draws the same random numbers in the same order, and converts and normalises with the same arithmetic
    as ToDtype and Normalize, so the output is bit-identical to Compose's and the RNG ends in the same
    state (tests/test_data_images.py). Any other input (tensors, tv_tensors, tuples) takes Compose's path.
    """

    def __init__(self, ops: Sequence, mean: Sequence[float], std: Sequence[float]):
        normalize = v2.Normalize(mean=list(mean), std=list(std))
        super().__init__([*ops, v2.ToImage(), v2.ToDtype(torch.float32, scale=True), normalize])
        self.pil_ops = list(ops)
        # float32 from the same Python floats Normalize converts on every call.
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1), False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1), False)

    def forward(self, *inputs):
        if len(inputs) != 1 or not isinstance(inputs[0], Image.Image):
            return super().forward(*inputs)
        image = inputs[0]
        for op in self.pil_ops:
            if isinstance(op, v2.RandomHorizontalFlip):
                if torch.rand(1) >= op.p:  # the draw RandomHorizontalFlip.forward makes, in its place
                    continue
            elif not isinstance(op, (v2.Resize, v2.RandomResizedCrop, v2.CenterCrop, v2.Grayscale)):
                image = op(image)  # an op whose forward does more than make_params + transform
                continue
            image = op.transform(image, op.make_params([image]))
        x = F.pil_to_tensor(image).to(torch.float32).mul_(1.0 / 255)  # ToDtype(float32, scale=True)
        return x.sub_(self.mean).div_(self.std)  # Normalize: (x - mean) / std
