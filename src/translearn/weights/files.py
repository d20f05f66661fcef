"""Weight files as publishers ship them: read safely, upgraded as their builders do, loaded with a check.

A published file is not ``model.state_dict()`` of today's code, and loading it "as torchvision itself
would" means three things this module keeps:

* **Torch's versioned loaders.** Files saved before PyTorch 0.4.1 have no BatchNorm
  ``num_batches_tracked``; BatchNorm's own ``_load_from_state_dict`` fills it in when the file's
  ``_metadata`` says nothing. ViT files from torchvision 0.13 name the MLP ``linear_1``/``linear_2``, and
  ``MLPBlock`` renames them by the same version rule; MNASNet refuses a file without a version at all.
  So ``_metadata`` must survive every filtering and renaming step here: a dict comprehension drops it.
* **Builder renames.** DenseNet's files use the legacy names ``norm.1``/``conv.2``, which torchvision's
  ``densenet._load_state_dict`` renames before loading (:func:`upgrade_torchvision`).
* **An honest check.** Everything the model has must come from the file, except the head when its class
  count differs and the ``num_batches_tracked`` counters that only momentum-free BatchNorm reads; anything
  else missing, unexpected or of another shape is a one-line error that says which file and what to do.

Files other tools write hold the network inside a training checkpoint (:func:`read_state_dict` finds it
and says in one line which entry it loaded):

* torchvision's reference scripts save ``{"model", "optimizer", "lr_scheduler", "epoch", "args"}`` (and
  ``"model_ema"``, an ``AveragedModel``: ``n_averaged`` plus ``module.`` keys); DeiT, ConvNeXt and MAE
  publish ``{"model": ...}``; timm's train.py saves ``"state_dict"`` and ``"state_dict_ema"``; Lightning
  saves ``"state_dict"``. With an EMA copy in the file, the EMA weights load, as timm's ``load_checkpoint``
  does by default (``use_ema=True``, same order of keys as :data:`_NESTED`).
* ``args`` is an ``argparse.Namespace``, which ``weights_only=True`` refuses unless allowed by name; it
  is allowed, and nothing else (see :func:`_load`).
* MMPretrain's ``ImageClassifier`` keys its ResNet ``backbone.`` + torchvision's names and its classifier
  ``head.fc``: the backbone loads, the head (replaced anyway) does not. Its deep-stem ResNetV1c/V1d load
  into timm's ``resnet*c``/``resnet*d`` (the same networks, renamed); into a torchvision resnet, the
  error names that backbone.
"""

from __future__ import annotations

import argparse
import re
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from translearn.errors import UserError
from translearn.log import info_rank_zero

# torchvision/models/densenet.py: '.'s are no longer allowed in module names.
_DENSENET_LEGACY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
# Wrappers' key prefixes: Lightning modules, DataParallel/DDP, torch.compile's OptimizedModule.
_LIGHTNING_PREFIXES = ("net.model.", "model.", "module.", "_orig_mod.")
# Where training checkpoints keep the network, in the order timm's load_state_dict(use_ema=True) looks:
# an EMA copy first (timm's train.py, torchvision's references), then the raw weights (timm, Lightning;
# torchvision's references, DeiT, ConvNeXt, MAE).
_NESTED = ("state_dict_ema", "model_ema", "state_dict", "model")
_EMA_OF = {"state_dict_ema": "state_dict", "model_ema": "model"}
# MMPretrain's ImageClassifier: backbone, neck (GlobalAveragePooling: no tensors), head (LinearClsHead.fc).
_MMPRETRAIN_PARTS = ("backbone.", "neck.", "head.")


def first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def _with_metadata(items: dict[str, torch.Tensor], metadata: dict | None) -> OrderedDict:
    out = OrderedDict(items)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def read_state_dict(path: str | Path, fix: str = "") -> OrderedDict:
    """A state_dict from a ``torch.save`` file, a training checkpoint or a ``.safetensors`` file.

    Loaded with ``weights_only=True``: a weight file from the internet must not be able to run code.
    Training checkpoints (Lightning, timm, torchvision's references, DeiT, MMPretrain) hold the network
    under a key: which one was loaded is said in one line, since an EMA file holds two networks.
    """
    file = Path(path).expanduser()
    fix = fix or "save one with torch.save(model.state_dict(), PATH)"
    if file.is_dir():
        raise UserError(f"weights file {path} is a folder; pass the state_dict file inside it")
    if not file.is_file():
        raise UserError(
            f"weights file {path} does not exist; pass model.weights=imagenet, none, or a state_dict path"
        )
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: object = load_file(str(file), device="cpu")
        else:
            obj = _load(file)
    except ImportError:
        raise UserError(f"reading {file} needs safetensors: pip install safetensors") from None
    except Exception as exc:  # torch raises many types for foreign, truncated or corrupt files
        raise UserError(f"cannot read weights file {file} as a state_dict ({_why(exc)}); {fix}") from None
    notes = []
    if isinstance(obj, dict) and obj and not _is_state_dict(obj):
        key = next((k for k in _NESTED if _is_state_dict(obj.get(k))), None)
        if key is None:
            raise UserError(
                f"weights file {file} does not hold a state_dict (a dict of tensors): it is a dict of "
                f"{_some(obj)}, none of them a state_dict ({', '.join(_NESTED)}); {fix}"
            )
        notes.append(_nested_note(obj, key))
        obj = _network_only(obj[key])  # a Lightning checkpoint: keep the network, not metric states
    if not _is_state_dict(obj):
        raise UserError(f"weights file {file} does not hold a state_dict (a dict of tensors); {fix}")
    assert isinstance(obj, dict)  # for the type checker: _is_state_dict said so
    obj = _without_averaging_count(obj)
    for prefix in _LIGHTNING_PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = strip_prefix(obj, prefix)
    obj, note = _mmpretrain_backbone(obj)
    notes += [note] if note else []
    if notes:  # said once at startup: which of the file's weights the run starts from
        info_rank_zero(f"weights file {file}: {'; '.join(notes)}")
    return obj if isinstance(obj, OrderedDict) else _with_metadata(obj, getattr(obj, "_metadata", None))


def _load(file: Path) -> object:
    """``torch.load(weights_only=True)`` that lets a training checkpoint's ``argparse.Namespace`` through.

    timm's train.py and torchvision's reference scripts save their parsed command line (``args``) in the
    checkpoint. Allowing ``argparse.Namespace`` runs no code: the weights-only unpickler makes it with
    ``object.__new__`` and fills its ``__dict__`` (Namespace has no ``__setstate__``; its ``__init__`` is not
    called), and each value inside must itself be something the weights-only unpickler allows (numbers,
    strings, lists, dicts, tensors), so a Namespace cannot carry anything else in. Every other class is still
    refused. timm's own ``load_checkpoint`` allows the same class the same way.
    """
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(file, map_location="cpu", weights_only=True)


def training_args(path: Path) -> dict | None:
    """The command line a training checkpoint was saved with (``checkpoint["args"]``, an
    ``argparse.Namespace``: timm's train.py, torchvision's references), as a dict; None for any other file.

    Memory-mapped where torch's zip format allows, so a checkpoint with optimizer state is not read whole
    for a few numbers. An unreadable file is left to the weights load, which says why.
    """
    if path.suffix == ".safetensors":
        return None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # not torch's zip format (saved with _use_new_zipfile_serialization=False)
                obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    args = obj.get("args") if isinstance(obj, dict) else None
    return dict(vars(args)) if isinstance(args, argparse.Namespace) else None


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _some(obj: dict, most: int = 6) -> str:
    keys = [str(k) for k in obj]
    return ", ".join(keys[:most]) + (f" and {len(keys) - most} more" if len(keys) > most else "")


def _nested_note(checkpoint: dict, key: str) -> str:
    """Which entry of a training checkpoint was loaded, and what was not (an EMA file holds two networks)."""
    raw = _EMA_OF.get(key)
    if raw and _is_state_dict(checkpoint.get(raw)):
        return (
            f"loaded checkpoint['{key}'], its EMA weights (as timm's load_checkpoint does by default); "
            f"checkpoint['{raw}'] (the weights without averaging) is not used: to start from those, "
            f"torch.save(checkpoint['{raw}'], PATH) and pass model.weights=PATH"
        )
    rest = [k for k in checkpoint if k != key]
    return f"loaded checkpoint['{key}']" + (
        f" (also there, not used: {_some(dict.fromkeys(rest))})" if rest else ""
    )


def _without_averaging_count(state: dict) -> dict:
    """``AveragedModel.state_dict()`` (torchvision's ``model_ema``): the wrapped model's keys, no count."""
    others = [k for k in state if k != "n_averaged"]
    if "n_averaged" not in state or not others or not all(k.startswith("module.") for k in others):
        return state
    return _with_metadata({k: state[k] for k in others}, getattr(state, "_metadata", None))


def _mmpretrain_backbone(state: dict) -> tuple[dict, str]:
    """An MMPretrain classifier's backbone under the model's own names, its neck and head dropped.

    MMPretrain's ResNet names its layers as torchvision's does (conv1, bn1, layer1.0.downsample.0, ...)
    under ``backbone.``; its classifier is ``head.fc``, which translearn replaces anyway.
    """
    keys = list(state)
    if not any(k.startswith("backbone.") for k in keys) or not all(
        k.startswith(_MMPRETRAIN_PARTS) for k in keys
    ):
        return state, ""
    dropped = [k for k in keys if not k.startswith("backbone.")]
    kept = _with_metadata(
        {k: state[k] for k in keys if k.startswith("backbone.")}, getattr(state, "_metadata", None)
    )
    parts = sorted({k.split(".", 1)[0] + ".*" for k in dropped})
    gone = (
        f"; its {' and '.join(parts)} ({len(dropped)} tensors) not loaded, the head starts fresh"
        if dropped
        else ""
    )
    note = f"an MMPretrain checkpoint: loaded backbone.* without the prefix{gone}"
    state, deep = _deep_stem_as_timm(strip_prefix(kept, "backbone."))
    return state, note + deep


# MMPretrain's ResNetV1c/V1d stem: three ConvModules (stem.N.conv, stem.N.bn); timm's resnet*c/*d call the
# same layers conv1.0/1.1, conv1.3/1.4, conv1.6 and bn1 (ReLUs at 2 and 5).
_DEEP_STEM = {
    "stem.0.conv.": "conv1.0.", "stem.0.bn.": "conv1.1.", "stem.1.conv.": "conv1.3.",
    "stem.1.bn.": "conv1.4.", "stem.2.conv.": "conv1.6.", "stem.2.bn.": "bn1.",
}  # fmt: skip
_DOWNSAMPLE = re.compile(r"^(layer\d+\.\d+\.downsample\.)(\d+)\.(.+)$")


def _deep_stem_as_timm(state: dict) -> tuple[dict, str]:
    """MMPretrain's ResNetV1c/V1d under timm's names for the same networks, ``resnet50c``/``resnet50d``.

    Why by hand: no library converts between the two. The networks match layer for layer (checked against
    MMPretrain 1.2.0's own ResNetV1d-50: equal features from the same input). One more difference: V1d's
    average-pool shortcut (``downsample.0`` pool, ``.1`` conv, ``.2`` bn) has no pool where the stride is 1
    (conv at ``.0``), where timm keeps an Identity at ``.0``; those convs and norms move up one.
    """
    if "stem.0.conv.weight" not in state:
        return state, ""
    v1d = any(
        (m := _DOWNSAMPLE.match(k)) and m.group(2) == "1" and m.group(3) == "weight" and v.dim() == 4
        for k, v in state.items()
    )
    items = {}
    for key, value in state.items():
        for theirs, ours in _DEEP_STEM.items():
            if key.startswith(theirs):
                key = ours + key[len(theirs) :]
                break
        match = _DOWNSAMPLE.match(key)
        if v1d and match and f"{match.group(1)}0.weight" in state:  # conv at .0: a stride-1 shortcut, no pool
            key = f"{match.group(1)}{int(match.group(2)) + 1}.{match.group(3)}"
        items[key] = value
    kind = "d" if v1d else "c"
    note = f"; its ResNetV1{kind} (deep stem) under the names of timm's resnet*{kind}, the same network"
    return _with_metadata(items, getattr(state, "_metadata", None)), note


def _why(exc: Exception) -> str:
    """torch.load's reason in a few words: its weights_only messages are paragraphs about trust."""
    import re

    text = str(exc)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:  # torch.save(model): the pickled class, which a weights file must not make us import
        name = found.group(1)
        return f"it holds a pickled {name} object, not a dict of tensors; not unpickled, it could run code"
    if isinstance(exc, OSError):  # permissions, a disk error: the system's own words
        return first_line(exc)
    # Pickle, zip and safetensors readers fail on foreign bytes with anything from "invalid load key" to
    # a bare number ("(101)"), which tells a user nothing.
    return "not a file torch.save or safetensors wrote, or cut short"


def _network_only(state: dict) -> dict:
    if not any(k.startswith("net.model.") for k in state):
        return state
    kept = {k: v for k, v in state.items() if k.startswith("net.model.")}
    return _with_metadata(kept, getattr(state, "_metadata", None))


def strip_prefix(state: dict, prefix: str) -> OrderedDict:
    """Keys (and the version metadata, which is keyed by module prefix) without ``prefix``."""
    items = {k[len(prefix) :]: v for k, v in state.items()}
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        module_prefix = prefix.rstrip(".")
        metadata = {
            ("" if k == module_prefix else k[len(prefix) :]): v
            for k, v in metadata.items()
            if k == module_prefix or k.startswith(prefix)
        }
    return _with_metadata(items, metadata)


def upgrade_torchvision(arch: str, state: dict) -> OrderedDict:
    """The renames a torchvision builder applies to its published file before ``load_state_dict``."""
    metadata = getattr(state, "_metadata", None)
    if not arch.startswith("densenet"):
        return state if isinstance(state, OrderedDict) else _with_metadata(state, metadata)
    items = {}
    for key, value in state.items():
        match = _DENSENET_LEGACY.match(key)
        items[match.group(1) + match.group(2) if match else key] = value
    return _with_metadata(items, metadata)


def _deep_stem_fix(model: nn.Module, state: dict, arch: str) -> str | None:
    """A deep-stem ResNet file (conv1.0, conv1.3, conv1.6) for a 7x7-stem ResNet: which network it is."""
    if "conv1.0.weight" not in state or not hasattr(model, "conv1") or isinstance(model.conv1, nn.Sequential):
        return None
    kind = "d" if any(re.fullmatch(r"layer\d+\.\d+\.downsample\.2\.weight", k) for k in state) else "c"
    same = f"model.backbone={arch}{kind}" if re.fullmatch(r"resnet\d+", arch) else f"a resnet*{kind} backbone"
    return (
        f"it holds a ResNet with a deep stem (three 3x3 convs: ResNet-{kind.upper()}, MMPretrain's "
        f"ResNetV1{kind}) where {arch} has one 7x7 conv; timm has the same network: model.library=timm {same}"
    )


def load_checked(
    model: nn.Module, state: dict, source: str, arch: str, fix: str, ignore=lambda k: False
) -> None:
    """``model.load_state_dict(state)`` through torch's versioned loaders, with a one-line error on misfit.

    ``ignore(key)`` marks keys the model may have that the file need not (a head being replaced).
    """
    fix = _deep_stem_fix(model, state, arch) or fix
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # size mismatches are raised after every key was compared
        sizes = re.findall(
            r"size mismatch for ([^:]+): copying a param with shape torch\.Size\((\[.*?\])\) from "
            r"checkpoint, the shape in current model is torch\.Size\((\[.*?\])\)",
            str(exc),
        )
        if not sizes:
            raise UserError(f"{source} does not fit {arch} ({first_line(exc)}); {fix}") from None
        key, theirs, ours = sizes[0]
        more = f" ({len(sizes) - 1} more)" if len(sizes) > 1 else ""
        raise UserError(
            f"{source} does not fit {arch}: {key} has shape {theirs} there but {ours} in the model{more}; "
            f"{fix}"
        ) from None
    missing = [k for k in result.missing_keys if not k.endswith("num_batches_tracked") and not ignore(k)]
    unexpected = list(result.unexpected_keys)
    if missing or unexpected:
        example = missing[0] if missing else unexpected[0]
        raise UserError(
            f"{source} does not fit {arch}: {len(missing)} tensors missing and {len(unexpected)} unexpected "
            f"(e.g. {example}); {fix}"
        )


__all__ = ["load_checked", "read_state_dict", "strip_prefix", "upgrade_torchvision"]
