"""torchvision classification models: built with their published weights as torchvision builds them, then cut
into stages.

**Weights.** Published weights (``imagenet`` or an enum name) go through torchvision's own builder
(``get_model(arch, weights=...)``) once the file is in the cache, so every quirk a builder handles is
handled by the code that knows it. The builders read in torchvision 0.29, and what each does on load:

* ``resnet*``, ``resnext*``, ``wide_resnet*``, ``alexnet``, ``convnext_*``, ``efficientnet_*``,
  ``mobilenet_v2``, ``mobilenet_v3_*``, ``regnet_*``, ``shufflenet_v2_*``, ``squeezenet*``, ``swin_*``:
  head sized from the weights' categories, then a strict ``load_state_dict``;
* ``densenet*``: legacy key names (``norm.1`` → ``norm1``) renamed first;
* ``googlenet``, ``inception_v3``: ``transform_input=True`` (the files expect it), aux heads built for
  loading and dropped afterwards, ``init_weights=False``;
* ``vit_*``: ``image_size`` from the weights (the SWAG E2E files are 384 or 518 px), and ``MLPBlock``
  renames the 0.13 files' ``linear_1/2`` by version;
* ``maxvit_t``: ``input_size`` from the weights;
* ``vgg*``: ``init_weights=False``; ``IMAGENET1K_FEATURES`` (vgg16) has no categories: only its features
  are trained, so the classifier layers are re-initialised here (the file's are not usable);
* ``mnasnet*``: versioned ``_load_from_state_dict`` (v1 files get the v1 stem), which needs the file's
  ``_metadata``.

A weight *file* (``model.weights=PATH``) is loaded by :func:`_from_file` with the same rules: a file
whose name is a published one gets that weight's builder arguments, legacy names are renamed, torch's
versioned loaders run, and aux heads are dropped. The tests check both paths against torchvision's own
builder on files written in each family's published format.

**Stages.** We follow timm's convention: a *stem*, then one stage per block group (a change of spatial
resolution), then the *head*, the single layer that maps features to classes and is replaced for
``num_classes``. Layers that sit between the last block and the head (ConvNeXt's norm, MobileNetV3's and
VGG's hidden classifier layers) belong to the last stage, so ``freeze`` trains exactly one fresh layer, as
in 2017. Stages are found by running one dummy image through the trunk and grouping consecutive blocks by
their output resolution; ViT, whose blocks keep one resolution, gets one stage per encoder block.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any
from unittest.mock import patch

import torch
import torchvision
from torch import nn

from translearn.backbones.net import (
    Stage,
    TransferNet,
    adapt_first_conv,
    check_partition,
    first_conv,
    stage_name,
)
from translearn.errors import UserError
from translearn.log import log
from translearn.weights import cache
from translearn.weights.catalog import WeightsChoice, published_file, torchvision_enum
from translearn.weights.files import first_line, load_checked, read_state_dict, upgrade_torchvision

# Where torchvision keeps a model's classifier, in the order we look for it.
HEAD_CONTAINERS = ("fc", "classifier", "heads", "head")
# Top-level Sequential/ModuleList children whose items are the model's blocks.
TRUNK_CONTAINERS = ("features", "trunk_output", "layers", "blocks")
# Auxiliary classifiers exist only for training-time losses that translearn does not use.
AUX_MODULES = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}


def build(arch: str, num_classes: int, choice: WeightsChoice, in_chans: int = 3) -> TransferNet:
    """``arch`` with ``choice``'s weights, a fresh ``num_classes`` head (unless the file's fits), stages."""
    keep_head = False
    if choice.kind == "published":
        model = _published(arch, choice)
    elif choice.kind == "file" and choice.path is not None:
        model, keep_head = _from_file(arch, choice.path, num_classes, in_chans)
    elif choice.kind == "none":
        model = torchvision.models.get_model(arch, **_plain_kwargs(arch, aux=False, init=True))
    else:
        raise UserError(
            "model.weights=embedded is resolved by translearn.train (translearn.pretrain builds it); "
            "pass the cached file's path when building a backbone directly"
        )
    _drop_aux(model, arch)
    head_container, head = _find_head(model)
    if not keep_head:
        _replace_layer(model, head, num_classes)
    if in_chans == 1:
        adapt_first_conv(model)
    stages = _group_stages(model, head_container, head)
    return TransferNet(model, arch, stages, head, in_chans=in_chans, library="torchvision")


def _plain_kwargs(arch: str, aux: bool, init: bool) -> dict[str, Any]:
    """Builder arguments for GoogLeNet/Inception when torchvision's weights do not set them.

    ``init=False`` when a file overwrites every weight anyway (their truncated-normal init is slow).
    """
    return {"aux_logits": aux, "init_weights": init} if arch in AUX_MODULES else {}


def _published(arch: str, choice: WeightsChoice, path: Path | None = None) -> nn.Module:
    """torchvision's builder on its published weights, read from the cache (downloaded once if allowed).

    The builder itself reads the cached file with ``weights_only=False`` (torch.hub's default), which would
    let a tampered cache run code; so the file is read here with ``weights_only=True`` and handed to the
    builder in place of its own read. Everything else (builder arguments, renames, the strict load,
    dropping aux heads) is torchvision's own code.
    """
    enum = torchvision_enum(choice)
    fetch = f"python -m translearn.weights fetch {arch}:{enum.name}"
    if path is None:
        path = cache.ensure_url(enum.url, f"{choice.label} weights", fetch)
        fix = f"delete {path} and fetch it again: {fetch}"
        what = f"the cached weights file {path}"
    else:
        fix = f"pass the {enum.name} file of {arch} as published (its name says which), or another file name"
        what = f"weights file {path}"
    state = read_state_dict(path, fix)
    # No aux_logits=False here: the builders refuse it with weights; _drop_aux does what they do after.
    try:
        with warnings.catch_warnings(), patch.object(type(enum), "get_state_dict", lambda *_a, **_k: state):
            warnings.simplefilter("ignore")  # MNASNet v1 files warn about the v1 stem they load into
            model = torchvision.models.get_model(arch, weights=enum)
    except RuntimeError as exc:
        if "Error(s) in loading state_dict" not in str(exc):
            raise UserError(f"{what} does not load into {arch} ({first_line(exc)}); {fix}") from None
        _explain_misfit(arch, enum, state, what, fix)
        raise  # unreachable: _explain_misfit raises
    if enum.meta.get("categories") is None:
        _reinit_classifier(model, arch, enum.name)
    return model


def _explain_misfit(arch: str, enum: Any, state: dict, what: str, fix: str) -> None:
    """Say in one line how a file disagrees with ``arch`` (torch's own message spans many lines)."""
    state = upgrade_torchvision(arch, state)
    model, _ = _shaped_like(arch, state, enum, in_chans=3)
    load_checked(model, state, what, arch, fix)
    raise UserError(f"{what} does not load into {arch}; {fix}")


def _from_file(arch: str, path: Path, num_classes: int, in_chans: int) -> tuple[nn.Module, bool]:
    """A weight file loaded as torchvision would load it; True when its head already has our classes."""
    enum = published_file(arch, path)  # by name and sha256: a name alone does not make a file published
    if enum is not None:  # torchvision's own file, copied off a login node: load it exactly as published
        return _published(arch, WeightsChoice("torchvision", arch, "published", enum.name), path), False
    fix = f"pass weights saved from a {arch}"
    state = upgrade_torchvision(arch, read_state_dict(path))
    model, head = _shaped_like(arch, state, None, in_chans)
    load_checked(model, state, f"weights file {path}", arch, fix, ignore=lambda k: k.startswith(head + "."))
    rows = state.get(f"{head}.weight")
    return model, rows is not None and rows.shape[0] == num_classes


def _shaped_like(arch: str, state: dict, enum: Any, in_chans: int) -> tuple[nn.Module, str]:
    """An untrained ``arch`` built the way its builder would build it for this file: same head size, aux
    heads if the file has them, ``transform_input`` and input size if it is a published file."""
    aux = arch in AUX_MODULES and any(k.startswith(tuple(m + "." for m in AUX_MODULES[arch])) for k in state)
    kwargs = _plain_kwargs(arch, aux, init=False)
    if enum is not None:
        if arch in AUX_MODULES:
            kwargs["transform_input"] = True
        if arch.startswith("vit_"):
            kwargs["image_size"] = enum.meta["min_size"][0]
        if arch.startswith("maxvit"):
            kwargs["input_size"] = enum.meta["min_size"]
    elif arch.startswith("vit_") and "encoder.pos_embedding" in state:
        patch = int(state["conv_proj.weight"].shape[-1]) if "conv_proj.weight" in state else 16
        kwargs["image_size"] = math.isqrt(state["encoder.pos_embedding"].shape[1] - 1) * patch
    model = torchvision.models.get_model(arch, **kwargs)
    _, head = _find_head(model)
    rows = state.get(f"{head}.weight")
    if rows is not None and rows.dim() >= 2 and rows.shape[0] != model.get_submodule(head).weight.shape[0]:
        _replace_layer(model, head, int(rows.shape[0]))
    conv = first_conv(model)
    if in_chans == 1 and conv and f"{conv}.weight" in state and state[f"{conv}.weight"].shape[1] == 1:
        adapt_first_conv(model)  # the file was saved from a 1-channel model
    return model, head


def _drop_aux(model: nn.Module, arch: str) -> None:
    """What torchvision's googlenet/inception builders do after loading when aux logits were not asked for."""
    if arch not in AUX_MODULES:
        return
    model.aux_logits = False
    for name in AUX_MODULES[arch]:
        setattr(model, name, None)


def _reinit_classifier(model: nn.Module, arch: str, name: str) -> None:
    """Weights trained as a feature extractor only: their classifier layers are not usable values."""
    reset = []
    for qual, module in model.named_modules():
        if not qual.startswith("features") and hasattr(module, "reset_parameters") and qual:
            module.reset_parameters()
            reset.append(qual)
    log.info(f"{arch} {name} holds pretrained features only; {', '.join(reset)} start from random init")


# --- heads -------------------------------------------------------------------------------------------


def _find_head(model: nn.Module) -> tuple[str, str]:
    """(container attribute, qualified name of the final class layer)."""
    for attr in HEAD_CONTAINERS:
        container = getattr(model, attr, None)
        if not isinstance(container, nn.Module):
            continue
        if isinstance(container, (nn.Linear, nn.Conv2d)):
            return attr, attr
        last = None
        for name, module in container.named_modules(prefix=attr):
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                last = name
        if last is not None:
            return attr, last
    raise UserError(
        f"cannot find the classifier of {type(model).__name__} (looked for {', '.join(HEAD_CONTAINERS)})"
    )


def _replace_layer(model: nn.Module, qualname: str, num_classes: int) -> None:
    parent_name, _, child = qualname.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:  # SqueezeNet classifies with a 1x1 conv
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=old.kernel_size, stride=old.stride)
    setattr(parent, child, new)


# --- stages ------------------------------------------------------------------------------------------


def _group_stages(model: nn.Module, head_container: str, head: str) -> list[Stage]:
    vit = isinstance(model, torchvision.models.VisionTransformer)
    groups = _vit_groups(model) if vit else _resolution_groups(model, _trunk_units(model, head_container))
    # Hidden classifier layers (everything in the head container but the head) join the last stage.
    groups[-1][0].extend(_non_head_children(model, head_container, head))
    stages = []
    for i, (modules, params) in enumerate(groups):
        with_params = [m for m in modules if _has_params(model, m)]
        stages.append(Stage(stage_name(i, with_params), tuple(modules), tuple(params)))
    check_partition(model, stages, head)
    return stages


def _trunk_units(model: nn.Module, head_container: str) -> list[str]:
    units = []
    for name, child in model.named_children():
        if name == head_container:
            continue
        if name in TRUNK_CONTAINERS and isinstance(child, (nn.Sequential, nn.ModuleList)):
            units += [f"{name}.{sub}" for sub, _ in child.named_children()]
        else:
            units.append(name)
    return units


def _has_params(model: nn.Module, qualname: str) -> bool:
    return any(True for _ in model.get_submodule(qualname).parameters())


def _spatial_size(model: nn.Module, output: object) -> int | None:
    if not isinstance(output, torch.Tensor) or output.dim() != 4:
        return None
    # Swin keeps activations channels-last (N, H, W, C).
    channels_last = isinstance(model, torchvision.models.SwinTransformer)
    return int(output.shape[1] if channels_last else output.shape[-2])


def _resolution_groups(model: nn.Module, units: list[str]) -> list[tuple[list[str], list[str]]]:
    """Consecutive trunk units with the same output resolution form one stage; the first is the stem."""
    sizes: dict[str, int | None] = {}

    def recorder(unit: str):
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            sizes.setdefault(unit, _spatial_size(model, output))

        return hook

    hooks = [model.get_submodule(u).register_forward_hook(recorder(u)) for u in units]
    conv = first_conv(model)
    channels = model.get_submodule(conv).in_channels if conv else 3  # 1 once adapted to gray
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for side in (64, 224):  # most models run at 64 px; ViT-like ones insist on 224
                sizes.clear()
                try:
                    model(torch.zeros(1, channels, side, side))
                    break
                except (RuntimeError, AssertionError, ValueError):
                    continue
            else:
                raise UserError(f"cannot run a dummy image through {type(model).__name__} to find its stages")
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)

    input_side = side
    groups: list[tuple[list[str], list[str]]] = []
    pending: list[str] = []  # parameter-free units (pooling, activations) join the next stage
    current: int | None = None
    split_after_stem = False
    for unit in units:
        if not _has_params(model, unit):
            pending.append(unit)
            continue
        size = sizes.get(unit)
        new_group = not groups or split_after_stem or (size is not None and size != current)
        if new_group:
            groups.append(([*pending, unit], []))
            # A patchify stem (stride >= 4 in one unit: ConvNeXt, Swin) is its own stage even though the
            # first block group keeps its resolution.
            split_after_stem = len(groups) == 1 and size is not None and size * 4 <= input_side
            if size is not None:
                current = size
        else:
            groups[-1][0].extend([*pending, unit])
            split_after_stem = False
        pending = []
    if not groups:
        raise UserError(f"{type(model).__name__} has no trainable layers outside its head")
    groups[-1][0].extend(pending)
    return groups


def _vit_groups(model: nn.Module) -> list[tuple[list[str], list[str]]]:
    stem = (["conv_proj", "encoder.dropout"], ["class_token", "encoder.pos_embedding"])
    blocks = [([f"encoder.layers.{name}"], []) for name, _ in model.encoder.layers.named_children()]
    blocks[-1][0].append("encoder.ln")
    return [stem, *blocks]


def _non_head_children(model: nn.Module, container: str, head: str) -> list[str]:
    if container == head:
        return []
    out = []
    for name, _ in model.get_submodule(container).named_children():
        qual = f"{container}.{name}"
        if qual == head:
            continue
        out.extend(_non_head_children(model, qual, head) if head.startswith(qual + ".") else [qual])
    return out
