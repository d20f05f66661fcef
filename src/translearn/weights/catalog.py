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
* A weight file says nothing about its preprocessing, except where its publisher said it beside it:
  torchvision's file names (``resnet18-f37072fd.pth`` is ``IMAGENET1K_V1`` only if its sha256 starts with
  ``f37072fd``, checked as torch.hub checks a download) and the ``config.json`` timm writes beside a Hub
  ``model.safetensors``. Otherwise translearn's default applies, and one line says so and how to set it.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import torch
import torchvision

from translearn.data.transforms import Preprocessing
from translearn.errors import UserError
from translearn.log import warn_once

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


def published_file(arch: str, path: Path) -> Any | None:
    """The torchvision weights this file is: its name is a published one and its sha256 agrees with it.

    A name is only a claim: the hash prefix in it is checked as torch.hub checks a download. On a mismatch
    the file is an unknown one, and one line (once) says so. Only for files given by path; torchvision does
    not re-hash its cache, and neither does translearn.
    """
    enum, mismatch = _published_match(arch, path)
    if mismatch:
        _say_mismatch(arch, path, mismatch)
    return enum


def _say_mismatch(arch: str, path: Path, mismatch: str) -> None:
    warn_once(f"weights file {path} {mismatch}: loaded as an unknown {arch} file; {DEFAULT_HOW_TO}")


def _published_match(arch: str, path: Path) -> tuple[Any | None, str]:
    """(enum, "") for published weights; (None, why) when the name says so but the hash does not."""
    enum = published_file_enum(arch, path.name)
    if enum is None:
        return None, ""
    match = torch.hub.HASH_REGEX.search(path.name)
    if not match or not match.group(1):
        return enum, ""  # nothing to check it against
    prefix, digest = match.group(1), file_sha256(path)
    if digest.startswith(prefix):
        return enum, ""
    return None, (
        f"has the name of torchvision's {enum.__class__.__name__}.{enum.name} file but not its contents "
        f"(its sha256 begins {digest[: len(prefix)]}, the name says {prefix})"
    )


def file_sha256(path: Path) -> str:
    """The file's sha256 in hex, computed once per file version (a published file is up to 0.5 GB)."""
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


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


DEFAULT_HOW_TO = (
    "translearn's default preprocessing applies where dataset.* does not set it (ImageNet mean/std, bilinear "
    "resize 256 → crop 224); if the weights were trained otherwise, set dataset.mean, dataset.std, "
    "dataset.interpolation, dataset.resize_ratio and dataset.image_size"
)


def preprocessing_for(choice: WeightsChoice, given: bool = False) -> Preprocessing | None:
    """The preprocessing these weights were trained with, from their own metadata; None without weights.

    A weight file that does not say gets translearn's default, with a ``source`` and one line that say so:
    a silent ImageNet 256/224 under weights trained at 0.5/0.5 bicubic costs accuracy and nobody sees why.
    ``given``: the user set every ``dataset.*`` preprocessing key, so the line is not needed.
    """
    if choice.kind == "published" and choice.library == "torchvision":
        return _torchvision_preprocessing(torchvision_enum(choice), choice.label)
    if choice.kind == "published":
        return _timm_preprocessing(timm_pretrained_cfg(choice), choice.label)
    if choice.kind == "file" and choice.path is not None:
        return _file_preprocessing(choice.library, choice.arch, choice.path, given)
    return None


def _file_preprocessing(library: str, arch: str, path: Path, given: bool = False) -> Preprocessing:
    """From the file's published name (hash-checked), else from a timm config.json beside it, else default."""
    default = Preprocessing()
    if library == "torchvision":
        enum, mismatch = _published_match(arch, path)
        if enum is not None:
            label = f"{enum.__class__.__name__}.{enum.name} (file name)"
            return _torchvision_preprocessing(enum, label) or default
        if mismatch:  # the same line as loading the file says: said once
            _say_mismatch(arch, path, mismatch)
            return dataclasses.replace(
                default, source=f"{default.source}; the file's published name does not match its contents"
            )
    prep = _training_args_preprocessing(library, arch, path)
    if prep is not None:
        return prep
    prep, why = _timm_hub_preprocessing(path)
    if prep is not None:
        return prep
    if not given:  # every dataset.* preprocessing key set: the user said it, nothing to warn about
        warn_once(
            f"weights file {path} does not say what preprocessing it was trained with ({why}): "
            f"{DEFAULT_HOW_TO}"
        )
    return dataclasses.replace(default, source=f"{default.source}; the weights file does not say its own")


def _training_args_preprocessing(library: str, arch: str, path: Path) -> Preprocessing | None:
    """The eval preprocessing a training checkpoint's own command line (``args``) set; None without one.

    * torchvision's references/classification/train.py evaluates with ``ClassificationPresetEval(
      crop_size=args.val_crop_size, resize_size=args.val_resize_size, interpolation=args.interpolation)``
      and ImageNet mean/std (the preset's defaults).
    * timm's train.py evaluates with ``resolve_data_config(vars(args), model=model)``: ``--mean``, ``--std``,
      ``--interpolation``, ``--crop-pct``, ``--img-size``/``--input-size`` where given, else the model's
      pretrained_cfg (``args.model``). Needs timm; without it the file counts as one that does not say.
    """
    from translearn.weights.files import training_args

    args = training_args(path)
    if not args:
        return None
    if isinstance(args.get("val_resize_size"), int) and isinstance(args.get("val_crop_size"), int):
        interpolation = str(args.get("interpolation") or "bilinear")
        return Preprocessing(
            crop=args["val_crop_size"],
            resize=args["val_resize_size"],
            interpolation=interpolation
            if interpolation in ("bilinear", "bicubic", "nearest")
            else "bilinear",
            source="the checkpoint's args (torchvision references: --val-resize-size, --val-crop-size, "
            "--interpolation; ImageNet mean/std)",
        )
    if not {"crop_pct", "mean", "std"} <= args.keys():
        return None
    try:
        import timm.data
        import timm.models
    except ImportError:
        return None
    model = str(args.get("model") or arch)
    try:
        pretrained = timm.models.get_pretrained_cfg(model)
        config = timm.data.resolve_data_config(
            args, pretrained_cfg=pretrained.to_dict() if pretrained is not None else None
        )
    except Exception:  # a model name this timm does not know: the file says nothing usable
        return None
    mean, std = config.get("mean"), config.get("std")
    if not (_numbers(list(mean or ()), 3) and _numbers(list(std or ()), 3) and min(std) > 0):
        return None  # a gray or 1-value --mean: not RGB statistics this run can apply
    values = SimpleNamespace(**{**config, "mean": mean, "std": std})
    prep = _timm_preprocessing(values, f"timm {model}")
    return dataclasses.replace(
        prep,
        source=f"the checkpoint's args (timm train.py: --mean/--std/--interpolation/--crop-pct/--img-size, "
        f"else {model}'s pretrained_cfg)",
    )


def _timm_hub_preprocessing(path: Path) -> tuple[Preprocessing | None, str]:
    """What the config.json timm writes beside a Hub weights file says; else None and why not.

    timm's ``save_config_for_hf`` writes ``{"architecture", "num_classes", ..., "pretrained_cfg": {"mean",
    "std", "interpolation", "crop_pct", "input_size", ...}}``; older exports put the pretrained_cfg keys at
    the top level. Keys it leaves out get timm's own defaults (``resolve_data_config``).
    """
    from translearn.weights.cache import TIMM_FILES

    config = path.parent / "config.json"  # the snapshot folder, not the blob a Hub symlink points to
    if path.name not in TIMM_FILES:
        hub = " or ".join(TIMM_FILES)
        return None, f"neither a torchvision published file name nor a timm Hub {hub} with its config.json"
    if not config.is_file():
        return None, "no timm config.json beside it"
    try:
        raw = json.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"cannot read the config.json beside it: {exc}"
    if not isinstance(raw, dict) or "architecture" not in raw:
        return None, "the config.json beside it is not timm's: it has no architecture or pretrained_cfg"
    cfg = raw.get("pretrained_cfg", raw)  # no pretrained_cfg: timm's older single-dict format
    if not isinstance(cfg, dict):
        return None, "the config.json beside it is not timm's: its pretrained_cfg is not a mapping"
    defaults = {
        "input_size": [3, 224, 224],
        "interpolation": "bicubic",
        "crop_pct": 0.875,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    given = {k: cfg[k] for k in defaults if cfg.get(k) is not None}
    values = {**defaults, **given}
    mean, std, size = values["mean"], values["std"], values["input_size"]
    if not (_numbers(mean, 3) and _numbers(std, 3) and min(std) > 0):
        return None, f"the config.json beside it has mean {mean} and std {std}, not 3 RGB values"
    crop_pct = values["crop_pct"]
    if not (_numbers(size, 3) and size[-1] >= 8 and _numbers([crop_pct], 1) and 0 < crop_pct <= 1):
        return None, f"the config.json beside it has input_size {size} and crop_pct {values['crop_pct']}"
    # Not the tag: an export of fine-tuned weights keeps the tag of the weights it started from.
    prep = _timm_preprocessing(SimpleNamespace(**values), f"timm {raw['architecture']}")
    missing = [k for k in defaults if k not in given]
    note = f", timm's defaults for {', '.join(missing)}" if missing else ""
    return dataclasses.replace(prep, source=f"config.json beside the weights file ({prep.source}{note})"), ""


def _numbers(values: object, count: int) -> bool:
    return (
        isinstance(values, (list, tuple))
        and len(values) == count
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    )


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
