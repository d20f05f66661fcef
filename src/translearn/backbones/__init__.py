"""Backbones: a torchvision or timm classification model by name, with its weights, cut into stages.

:mod:`.net` is what the freezing policies see (:class:`TransferNet`: stem, stages, head); each library
has its own module that builds one: :mod:`.torchvision_nets` and :mod:`.timm_nets`.
"""

from __future__ import annotations

from translearn.backbones.net import Stage, TransferNet, adapt_first_conv
from translearn.errors import UserError
from translearn.weights import available_backbones, parse_weights


def build_backbone(
    arch: str,
    num_classes: int,
    weights: str | None = "imagenet",
    in_chans: int = 3,
    library: str = "torchvision",
) -> TransferNet:
    """The model ``arch`` of ``library`` with a fresh ``num_classes`` head, its stages, and loaded weights.

    ``weights`` is ``imagenet`` (the library's default pretrained weights, from its cache or downloaded
    once), a weight name of ``arch`` (torchvision: ``IMAGENET1K_V1``; timm: a pretrained tag), ``none``
    (random init), or the path of a weight file. ``in_chans=1`` sums the first conv over RGB.
    """
    if in_chans not in (1, 3):
        raise UserError(f"in_chans must be 1 or 3, got {in_chans}")
    if num_classes < 2:
        raise UserError(f"num_classes must be at least 2, got {num_classes}")
    choice = parse_weights(library, arch, weights)
    if library == "timm":
        from translearn.backbones import timm_nets

        return timm_nets.build(arch, num_classes, choice, in_chans)
    from translearn.backbones import torchvision_nets

    return torchvision_nets.build(choice.arch, num_classes, choice, in_chans)


__all__ = ["Stage", "TransferNet", "adapt_first_conv", "available_backbones", "build_backbone"]
