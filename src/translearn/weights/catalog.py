"""What ``model.weights`` names, for each library, and the preprocessing those weights expect.

``model.weights`` is ``imagenet`` (the library's default pretrained weights for the architecture),
``none``, ``embedded`` (translearn's own offline pretraining), a weight name of the architecture
(torchvision: an enum member such as ``IMAGENET1K_V2``; timm: a pretrained tag such as ``a1_in1k``), or
the path of a weight file. Parsing needs no file and no network, so a typo fails before anything runs.

Pitfalls this module exists for:

* ``imagenet`` is torchvision's ``DEFAULT``, which moves: ResNet50's DEFAULT is V2 (80.9 %), not the V1
  (76.1 %) of every paper before 2021. A study that must not move pins the name (``seed2017`` pins V1).
* Each weight version has its own preprocessing: ResNet50 V2 resizes to 232 before its 224 crop, timm
  models use bicubic resizing and sometimes mean = std = 0.5. :func:`preprocessing_for` reads them from
  the weights' own metadata rather than assuming ImageNet's 256/224.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torchvision

from translearn.data.transforms import Preprocessing
from translearn.errors import UserError

LIBRARIES = ("torchvision", "timm")
WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors", ".tar")


@dataclass(frozen=True)
class WeightsChoice:
    """One parsed ``model.weights`` value for one architecture of one library."""

    library: str
    arch: str  # the library's model name (timm: without the pretrained tag)
    kind: str  # "none" | "embedded" | "published" (a library's own weights, by name) | "file"
    name: str | None = None  # torchvision enum member name or timm pretrained tag, for "published"
    path: Path | None = None  # for "file"

    @property
    def label(self) -> str:
        if self.kind == "published" and self.library == "torchvision":
            return f"{torchvision_enum(self).__class__.__name__}.{self.name}"
        if self.kind == "published":
            return f"timm {self.arch}.{self.name}"
        return str(self.path) if self.path else self.kind


def require_timm() -> ModuleType:
    """timm is an optional extra; say how to get it rather than raising ImportError."""
    try:
        import timm
    except ImportError:
        raise UserError(
            "model.library=timm needs timm: pip install 'translearn[timm]' (or pip install timm)"
        ) from None
    return timm


def available_backbones(library: str = "torchvision") -> list[str]:
    if library == "timm":
        return sorted(require_timm().list_models())
    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_backbone(library: str, arch: str) -> str:
    """The library's model name for ``arch`` (timm: the tag split off); a one-line error if unknown."""
    if library not in LIBRARIES:
        raise UserError(f"model.library must be one of {', '.join(LIBRARIES)}, got '{library}'")
    if library == "timm":
        timm = require_timm()
        model, _ = timm.models.split_model_name_tag(arch)
        if not timm.is_model(model):
            close = difflib.get_close_matches(model, timm.list_models(), n=5)
            hint = f"; did you mean {', '.join(close)}?" if close else "; see timm.list_models()"
            raise UserError(f"unknown timm model '{model}'{hint}")
        return model
    known = available_backbones(library)
    if arch not in known:
        raise UserError(
            f"unknown backbone '{arch}'; model.backbone must be a torchvision classification model "
            f"(or pass model.library=timm): {', '.join(known)}"
        )
    return arch


def looks_like_path(spec: str) -> bool:
    return os.sep in spec or spec.startswith(("~", ".")) or spec.lower().endswith(WEIGHT_SUFFIXES)


def parse_weights(library: str, arch: str, spec: str | None) -> WeightsChoice:
    """``model.weights`` for ``arch``; a one-line error that lists the valid names if it means nothing."""
    model = check_backbone(library, arch)
    value = "none" if spec is None else str(spec).strip()
    if value in ("none", "embedded"):
        return WeightsChoice(library, model, value)
    if looks_like_path(value) or Path(value).expanduser().is_file():
        path = Path(value).expanduser()
        if path.is_dir():
            raise UserError(f"weights file {value} is a folder; pass the state_dict file inside it")
        if not path.is_file():
            raise UserError(
                f"weights file {value} does not exist; pass model.weights=imagenet, none, a weight name "
                f"of {arch}, or the path of a state_dict file"
            )
        return WeightsChoice(library, model, "file", path=path)
    if library == "timm":
        return WeightsChoice(library, model, "published", name=_timm_tag(arch, value))
    names = torchvision_weight_names(model)
    if not names:
        if value == "imagenet":
            raise UserError(
                f"torchvision has no pretrained weights for {model}; use model.weights=none or a path"
            )
    elif value == "imagenet" or value.upper() == "DEFAULT":
        return WeightsChoice(library, model, "published", name=_enum_class(model).DEFAULT.name)
    else:
        enum_class = _enum_class(model)
        member = value.rpartition(".")[2].upper()
        prefix = value.rpartition(".")[0]
        if member in names and prefix in ("", enum_class.__name__):
            return WeightsChoice(library, model, "published", name=member)
    valid = ", ".join(["imagenet", "none", "embedded", *names])
    raise UserError(
        f"model.weights={value} is not a weight name of {model} nor an existing file; valid names: {valid} "
        "(or a path)"
    )


# --- torchvision ---------------------------------------------------------------------------------


def _enum_class(arch: str) -> Any:
    return torchvision.models.get_model_weights(arch)


def torchvision_weight_names(arch: str) -> list[str]:
    try:
        return [name for name in _enum_class(arch).__members__ if name != "DEFAULT"]
    except (ValueError, KeyError, AttributeError):
        return []


def torchvision_enum(choice: WeightsChoice) -> Any:
    return _enum_class(choice.arch)[choice.name]


def published_file_enum(arch: str, filename: str) -> Any | None:
    """The torchvision weights whose published file has this name (a file copied off a login node)."""
    try:
        members = list(_enum_class(arch))
    except (ValueError, KeyError, AttributeError):
        return None
    return next((m for m in members if os.path.basename(m.url) == filename), None)


# --- timm ----------------------------------------------------------------------------------------


def _timm_tag(arch: str, value: str) -> str:
    """The pretrained tag ``value`` names for timm's ``arch`` (which may carry a tag of its own)."""
    timm = require_timm()
    model, own_tag = timm.models.split_model_name_tag(arch)
    tags = [timm.models.split_model_name_tag(n)[1] for n in timm.list_pretrained(f"{model}.*")]
    tags = [t for t in tags if t]
    if value == "imagenet":
        if own_tag:
            value = own_tag
        else:
            cfg = timm.models.get_pretrained_cfg(model)
            value = getattr(cfg, "tag", None) or ""
    if value in tags:
        return value
    if not tags:
        raise UserError(f"timm has no pretrained weights for {model}; use model.weights=none or a path")
    raise UserError(
        f"model.weights={value} is not a pretrained tag of timm's {model}; valid: imagenet, none, "
        f"{', '.join(tags)} (or a path)"
    )


def timm_pretrained_cfg(choice: WeightsChoice) -> Any:
    return require_timm().models.get_pretrained_cfg(f"{choice.arch}.{choice.name}")


# --- preprocessing -------------------------------------------------------------------------------


def preprocessing_for(choice: WeightsChoice) -> Preprocessing | None:
    """The preprocessing these weights were trained with, from their own metadata; None if they have none."""
    if choice.kind == "published" and choice.library == "torchvision":
        return _torchvision_preprocessing(torchvision_enum(choice), choice.label)
    if choice.kind == "published":
        return _timm_preprocessing(timm_pretrained_cfg(choice), choice.label)
    if choice.kind == "file" and choice.library == "torchvision" and choice.path is not None:
        enum = published_file_enum(choice.arch, choice.path.name)
        if enum is not None:
            return _torchvision_preprocessing(enum, f"{enum.__class__.__name__}.{enum.name} (file name)")
    return None


def _torchvision_preprocessing(enum: Any, label: str) -> Preprocessing | None:
    transform = enum.transforms()
    crop, resize = getattr(transform, "crop_size", None), getattr(transform, "resize_size", None)
    if not crop or not resize:
        return None
    return Preprocessing(
        crop=int(crop[0]),
        resize=int(resize[0]),
        interpolation=transform.interpolation.value,
        mean=tuple(float(m) for m in transform.mean),
        std=tuple(float(s) for s in transform.std),
        source=f"{label}.transforms()",
    )


def _timm_preprocessing(cfg: Any, label: str) -> Preprocessing:
    """timm's eval recipe: resize to floor(crop / crop_pct), then centre-crop (its transforms_factory)."""
    crop = int(cfg.input_size[-1])
    interpolation = (
        cfg.interpolation if cfg.interpolation in ("bilinear", "bicubic", "nearest") else "bicubic"
    )
    return Preprocessing(
        crop=crop,
        resize=math.floor(crop / (cfg.crop_pct or 0.875)),
        interpolation=interpolation,
        mean=tuple(float(m) for m in cfg.mean),
        std=tuple(float(s) for s in cfg.std),
        source=f"{label} pretrained_cfg",
    )


def torchvision_names_by_file() -> dict[str, str]:
    """Published file name → ``arch:WEIGHTS`` for every torchvision classification weight."""
    names: dict[str, str] = {}
    for arch in available_backbones("torchvision"):
        try:
            members = list(_enum_class(arch))
        except (ValueError, KeyError, AttributeError):
            continue
        for member in members:
            names.setdefault(os.path.basename(member.url), f"{arch}:{member.name}")
    return names
