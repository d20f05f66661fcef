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
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from translearn.errors import UserError

# torchvision/models/densenet.py: '.'s are no longer allowed in module names.
_DENSENET_LEGACY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
_LIGHTNING_PREFIXES = ("net.model.", "model.", "module.")


def first_line(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    return lines[0][:200] if lines else type(exc).__name__


def _with_metadata(items: dict[str, torch.Tensor], metadata: dict | None) -> OrderedDict:
    out = OrderedDict(items)
    if metadata is not None:
        out._metadata = metadata  # type: ignore[attr-defined]
    return out


def read_state_dict(path: str | Path, fix: str = "") -> OrderedDict:
    """A state_dict from a ``torch.save`` file, a Lightning checkpoint or a ``.safetensors`` file.

    Loaded with ``weights_only=True``: a weight file from the internet must not be able to run code.
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
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except ImportError:
        raise UserError(f"reading {file} needs safetensors: pip install safetensors") from None
    except Exception as exc:  # torch raises many types for foreign, truncated or corrupt files
        raise UserError(f"cannot read weights file {file} as a state_dict ({_why(exc)}); {fix}") from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = _network_only(obj["state_dict"])  # a Lightning checkpoint: keep the network, not metric states
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"weights file {file} does not hold a state_dict (a dict of tensors); {fix}")
    for prefix in _LIGHTNING_PREFIXES:
        if all(k.startswith(prefix) for k in obj):
            obj = strip_prefix(obj, prefix)
    return obj if isinstance(obj, OrderedDict) else _with_metadata(obj, getattr(obj, "_metadata", None))


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


def load_checked(
    model: nn.Module, state: dict, source: str, arch: str, fix: str, ignore=lambda k: False
) -> None:
    """``model.load_state_dict(state)`` through torch's versioned loaders, with a one-line error on misfit.

    ``ignore(key)`` marks keys the model may have that the file need not (a head being replaced).
    """
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
