"""Backbones: any torchvision classification model by name, cut into ordered stages, with weights.

A freezing policy needs to know what "the first k stages" means for any architecture. We follow
timm's convention: a *stem*, then one stage per block group (a change of spatial resolution), then
the *head*, the single layer that maps features to classes and is replaced for ``num_classes``.
Layers that sit between the last block and the head (ConvNeXt's norm, MobileNetV3's and VGG's hidden
classifier layers) belong to the last stage, so ``freeze`` trains exactly one fresh layer, as in 2017.

Stages are found by running one dummy image through the trunk and grouping consecutive blocks by
their output resolution; ViT, whose blocks keep one resolution, gets one stage per encoder block.
"""

from __future__ import annotations

import os
import socket
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
import torchvision
from torch import nn

from translearn.errors import UserError

# Where torchvision keeps a model's classifier, in the order we look for it.
HEAD_CONTAINERS = ("fc", "classifier", "heads", "head")
# Top-level Sequential/ModuleList children whose items are the model's blocks.
TRUNK_CONTAINERS = ("features", "trunk_output", "layers", "blocks")
# Auxiliary classifiers exist only for training-time losses that translearn does not use.
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
_AUX_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False},
}


@dataclass(frozen=True)
class Stage:
    """A group of layers that freeze and unfreeze together."""

    name: str
    modules: tuple[str, ...]
    params: tuple[str, ...] = ()  # parameters owned directly by a parent (ViT's class token)


class TransferNet(nn.Module):
    """A torchvision model plus its stage layout: ``stages[0]`` is the stem, then blocks, then ``head``."""

    def __init__(self, model: nn.Module, arch: str, stages: list[Stage], head: str, in_chans: int = 3):
        super().__init__()
        self.model = model
        self.arch = arch
        self.stages = list(stages)
        self.head_name = head
        self.in_chans = in_chans

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        # GoogLeNet/Inception return a named tuple in training mode.
        return out.logits if hasattr(out, "logits") else out

    @property
    def num_stages(self) -> int:
        return len(self.stages)

    @property
    def head(self) -> nn.Module:
        return self.model.get_submodule(self.head_name)

    def stage_modules(self, index: int) -> list[nn.Module]:
        return [self.model.get_submodule(name) for name in self.stages[index].modules]

    def stage_parameters(self, index: int) -> list[nn.Parameter]:
        stage = self.stages[index]
        params = [p for m in self.stage_modules(index) for p in m.parameters()]
        params += [self.model.get_parameter(name) for name in stage.params]
        return params

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.head.parameters())

    def named_groups(self) -> Iterator[tuple[str, list[nn.Parameter]]]:
        """Every parameter exactly once: the stages in order, then the head."""
        for i, stage in enumerate(self.stages):
            yield stage.name, self.stage_parameters(i)
        yield "head", self.head_parameters()


def available_backbones() -> list[str]:
    return sorted(torchvision.models.list_models(module=torchvision.models))


def build_backbone(
    arch: str, num_classes: int, weights: str | None = "imagenet", in_chans: int = 3
) -> TransferNet:
    """The torchvision model ``arch`` with a fresh ``num_classes`` head, its stages, and loaded weights.

    ``weights`` is ``imagenet`` (torchvision's default weights, from the TORCH_HOME cache or downloaded),
    ``none`` (random init), or the path of a state_dict file. ``in_chans=1`` sums the first conv over RGB.
    """
    known = available_backbones()
    if arch not in known:
        raise UserError(
            f"unknown backbone '{arch}'; model.backbone must be a torchvision classification model: "
            f"{', '.join(known)}"
        )
    if in_chans not in (1, 3):
        raise UserError(f"in_chans must be 1 or 3, got {in_chans}")
    if num_classes < 2:
        raise UserError(f"num_classes must be at least 2, got {num_classes}")
    model = torchvision.models.get_model(arch, **_AUX_KWARGS.get(arch, {}))
    head_container, head = _find_head(model)
    _replace_layer(model, head, num_classes)
    stages = _group_stages(model, head_container, head)

    spec = "none" if weights is None else str(weights)
    if spec == "imagenet":
        _load_into(
            model,
            arch,
            imagenet_state_dict(arch),
            head,
            f"ImageNet weights for {arch}",
            keep_head=False,
            in_chans=in_chans,
        )
    elif spec == "embedded":
        raise UserError(
            "model.weights=embedded is resolved by translearn.train (translearn.pretrain builds it); "
            "pass the cached file's path when building a backbone directly"
        )
    elif spec != "none":
        _load_into(
            model,
            arch,
            read_state_dict(spec),
            head,
            f"weights file {spec}",
            keep_head=True,
            in_chans=in_chans,
        )
    if in_chans == 1:
        adapt_first_conv(model)
    return TransferNet(model, arch, stages, head, in_chans=in_chans)


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
        if i == 0:
            name = "stem"
        elif len(with_params) == 1:
            name = with_params[0]
        else:
            name = f"{with_params[0]}..{with_params[-1]}"
        stages.append(Stage(name, tuple(modules), tuple(params)))
    _check_partition(model, stages, head)
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
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for side in (64, 224):  # most models run at 64 px; ViT-like ones insist on 224
                sizes.clear()
                try:
                    model(torch.zeros(1, 3, side, side))
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


def _check_partition(model: nn.Module, stages: list[Stage], head: str) -> None:
    seen: dict[int, str] = {}
    for stage in stages:
        params = [p for m in stage.modules for p in model.get_submodule(m).parameters()]
        params += [model.get_parameter(p) for p in stage.params]
        for p in params:
            if id(p) in seen:
                raise UserError(
                    f"{type(model).__name__}: a parameter sits in stages {seen[id(p)]} and {stage.name}"
                )
            seen[id(p)] = stage.name
    for p in model.get_submodule(head).parameters():
        seen[id(p)] = "head"
    loose = [n for n, p in model.named_parameters() if id(p) not in seen]
    if loose:
        raise UserError(
            f"{type(model).__name__} is not supported: parameters outside every stage: {loose[:3]}"
        )


# --- weights -----------------------------------------------------------------------------------------


def imagenet_state_dict(arch: str) -> dict[str, torch.Tensor]:
    """torchvision's default ImageNet weights for ``arch``, from the TORCH_HOME cache or downloaded once."""
    try:
        weights = torchvision.models.get_model_weights(arch).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise UserError(
            f"torchvision has no ImageNet weights for {arch}; use model.weights=none or a path"
        ) from None
    url = weights.url
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if not cache.is_file():
        _download(url, cache, arch)
    return read_state_dict(str(cache))


def _download(url: str, dest: Path, arch: str) -> None:
    fix = (
        f"download {url} to {dest} (or point TORCH_HOME at a cache that has it), "
        "or pass model.weights=PATH or model.weights=none"
    )
    if os.environ.get("TRANSLEARN_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise UserError(f"ImageNet weights for {arch} are not cached and TRANSLEARN_OFFLINE is set: {fix}")
    timeout = float(os.environ.get("TRANSLEARN_DOWNLOAD_TIMEOUT", "30"))
    match = torch.hub.HASH_REGEX.search(dest.name)
    partial = dest.with_name(dest.name + ".partial")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)  # urllib's opener has no timeout of its own: never hang offline
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(partial), hash_prefix=match.group(1) if match else None)
        os.replace(partial, dest)
    except (OSError, urllib.error.URLError, RuntimeError) as exc:
        partial.unlink(missing_ok=True)
        reason = str(getattr(exc, "reason", exc)).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"ImageNet weights for {arch} are not cached and could not be downloaded ({reason}): {fix}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """A state_dict from a plain ``torch.save`` file or a Lightning checkpoint, loaded with weights_only."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(
            f"weights file {path} does not exist; pass model.weights=imagenet, none, or a state_dict path"
        )
    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot read weights file {path} as a state_dict ({first}); save one with "
            "torch.save(model.state_dict(), PATH)"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]  # a Lightning checkpoint: keep the network, not metric states
        if any(k.startswith("net.model.") for k in obj):
            obj = {k: v for k, v in obj.items() if k.startswith("net.model.")}
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"weights file {path} does not hold a state_dict (a dict of tensors)")
    for prefix in ("net.model.", "model.", "module."):
        if all(k.startswith(prefix) for k in obj):
            obj = {k[len(prefix) :]: v for k, v in obj.items()}
    return obj


def _load_into(
    model: nn.Module,
    arch: str,
    state: dict[str, torch.Tensor],
    head: str,
    source: str,
    keep_head: bool,
    in_chans: int,
) -> None:
    own = model.state_dict()
    is_head = lambda key: key.startswith(head + ".")  # noqa: E731
    state = {k: v for k, v in state.items() if not k.startswith(AUX_PREFIXES)}
    if keep_head:  # a head trained for another class count is dropped, one for ours is kept
        state = {k: v for k, v in state.items() if not (is_head(k) and k in own and v.shape != own[k].shape)}
    else:
        state = {k: v for k, v in state.items() if not is_head(k)}
    first = _first_conv(model)
    key = f"{first}.weight" if first else None
    if in_chans == 1 and key in state and state[key].shape[1] == 1:
        adapt_first_conv(model)  # the file was saved from a 1-channel model
        own = model.state_dict()
    mismatched = [
        (k, tuple(v.shape), tuple(own[k].shape))
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if mismatched:
        k, theirs, ours = mismatched[0]
        more = f" ({len(mismatched) - 1} more)" if len(mismatched) > 1 else ""
        raise UserError(
            f"{source} do not fit {arch}: {k} has shape {list(theirs)} there but {list(ours)} in the "
            f"model{more}; pass weights saved from a {arch}"
        )
    missing = [k for k in own if k not in state and not is_head(k)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        example = missing[0] if missing else unexpected[0]
        raise UserError(
            f"{source} do not fit {arch}: {len(missing)} tensors missing and {len(unexpected)} unexpected "
            f"(e.g. {example}); pass weights saved from a {arch}"
        )
    model.load_state_dict(state, strict=False)


def _first_conv(model: nn.Module) -> str | None:
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            return name
    return None


def adapt_first_conv(model: nn.Module) -> None:
    """Make the first conv take 1 channel by summing its weights over RGB (exact for equal channels)."""
    name = _first_conv(model)
    conv = model.get_submodule(name) if name else None
    if conv is None or conv.in_channels not in (1, 3) or conv.groups != 1:
        raise UserError(f"{type(model).__name__} has no plain RGB first convolution to adapt to 1 channel")
    if conv.in_channels == 1:
        return
    conv.weight = nn.Parameter(conv.weight.detach().sum(dim=1, keepdim=True))
    conv.in_channels = 1


__all__ = [
    "Stage",
    "TransferNet",
    "adapt_first_conv",
    "available_backbones",
    "build_backbone",
    "imagenet_state_dict",
    "read_state_dict",
]
