"""Transforms: the 2017 recipe, scaled to any crop size, plus the two grayscale modes.

Train: Resize(s·256/224) → RandomResizedCrop(s) → horizontal flip; eval: Resize(s·256/224) →
CenterCrop(s); both end in ImageNet normalisation. Gray is PIL's ``convert('L')`` (luma
0.299R + 0.587G + 0.114B), done on the fly:

* ``replicate``: 3 equal channels, each normalised with ImageNet's per-channel mean/std, as in 2017, so
  the pretrained stem is untouched;
* ``adapt``: 1 channel normalised with the luma-weighted ImageNet mean/std (:data:`GRAY_MEAN`,
  :data:`GRAY_STD`), fed to a first conv whose weights are summed over RGB. With one shared mean/std the
  two modes give identical logits; with ImageNet's per-channel stats they differ slightly, because the
  three channels of a replicated gray image are then normalised differently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LUMA = (0.299, 0.587, 0.114)
GRAY_MEAN = sum(w * m for w, m in zip(LUMA, IMAGENET_MEAN, strict=True))
GRAY_STD = sum(w * s for w, s in zip(LUMA, IMAGENET_STD, strict=True))
COLORS = ("rgb", "gray")
GRAY_MODES = ("replicate", "adapt")


def input_channels(color: str, gray_mode: str) -> int:
    """1 only for ``gray`` + ``adapt``; the model's ``in_chans`` is interpolated from this."""
    return 1 if color == "gray" and gray_mode == "adapt" else 3


def normalization(color: str, gray_mode: str) -> tuple[Sequence[float], Sequence[float]]:
    if input_channels(color, gray_mode) == 1:
        return (GRAY_MEAN,), (GRAY_STD,)
    return IMAGENET_MEAN, IMAGENET_STD


def build_transform(
    train: bool,
    image_size: int = 224,
    resize_ratio: float = 256 / 224,
    color: str = "rgb",
    gray_mode: str = "replicate",
    crop_scale: Sequence[float] = (0.08, 1.0),
    hflip: bool = True,
) -> v2.Compose:
    """PIL RGB image → normalised float tensor of shape (C, image_size, image_size)."""
    resize = round(image_size * resize_ratio)
    ops: list = [v2.Resize(resize, antialias=True)]
    if train:
        ops.append(v2.RandomResizedCrop(image_size, scale=tuple(crop_scale), antialias=True))
        if hflip:
            ops.append(v2.RandomHorizontalFlip())
    else:
        ops.append(v2.CenterCrop(image_size))
    if color == "gray":
        ops.append(v2.Grayscale(num_output_channels=input_channels(color, gray_mode)))
    mean, std = normalization(color, gray_mode)
    ops += [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean=list(mean), std=list(std))]
    return v2.Compose(ops)
