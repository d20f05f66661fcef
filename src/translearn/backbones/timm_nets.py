"""timm models (``model.library=timm``): built and loaded by timm, cut into stages by timm's own grouping.

timm already declares what translearn needs, so nothing is discovered at run time:

* **Stages** come from ``model.group_matcher(coarse=True)``: the stem, then one group per stage (ResNet's
  ``layer1..4``, ConvNeXt's ``stages.0..3``, one per block for ViT). Parameters the matcher leaves
  unmatched (the classifier and whatever sits before it, such as ConvNeXt's ``head.norm``) go to the
  last stage, except the classifier itself, which is the head: the same rule as for torchvision models.
* **The head** is ``get_classifier()``; timm sizes it for ``num_classes`` when it builds the model.
* **Pretrained weights** are loaded by ``timm.create_model(..., pretrained=True)`` from a file that
  :mod:`translearn.weights.cache` found in the Hugging Face cache (offline first), so timm's own filters,
  head dropping and ``in_chans`` adaptation apply. A weight file (``model.weights=PATH``) is loaded with
  translearn's checked loader after timm's ``checkpoint_filter_fn`` for the architecture, if it has one.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

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
from translearn.weights import cache
from translearn.weights.catalog import WeightsChoice, require_timm, timm_pretrained_cfg
from translearn.weights.files import first_line, load_checked, read_state_dict


def build(arch: str, num_classes: int, choice: WeightsChoice, in_chans: int = 3) -> TransferNet:
    """timm's ``arch`` with ``choice``'s weights, a ``num_classes`` head and timm's stage grouping."""
    timm = require_timm()
    model_name = choice.arch
    keep_head = False
    try:
        if choice.kind == "published":
            model = _published(timm, choice, num_classes, in_chans)
        elif choice.kind == "file" and choice.path is not None:
            model, keep_head = _from_file(timm, model_name, choice.path, num_classes, in_chans)
        elif choice.kind == "none":
            model = timm.create_model(
                model_name, pretrained=False, num_classes=num_classes, in_chans=in_chans
            )
        else:
            raise UserError(
                "model.weights=embedded is resolved by translearn.train; pass the cached file's path when "
                "building a backbone directly"
            )
    except UserError:
        raise
    except (RuntimeError, ValueError, KeyError, OSError) as exc:
        raise UserError(
            f"timm could not build {model_name} with weights {choice.label}: {first_line(exc)}"
        ) from None
    if not keep_head and model.get_classifier().weight.shape[0] != num_classes:
        model.reset_classifier(num_classes)
    head = _qualname(model, model.get_classifier())
    stages = _group_stages(model, head)
    return TransferNet(model, model_name, stages, head, in_chans=in_chans, library="timm")


def _published(timm: Any, choice: WeightsChoice, num_classes: int, in_chans: int) -> nn.Module:
    cfg = timm_pretrained_cfg(choice)
    name = f"{choice.arch}.{choice.name}"
    fetch = f"python -m translearn.weights fetch {name} --library timm"
    what = f"timm {name} weights"
    if cfg.hf_hub_id:
        path = cache.timm_file(cfg.hf_hub_id, what, fetch)
    elif cfg.url:
        path = cache.ensure_url(cfg.url, what, fetch)
    else:
        raise UserError(f"timm publishes no downloadable file for {name}; pass model.weights=PATH or none")
    try:
        return timm.create_model(
            name,
            pretrained=True,
            pretrained_cfg_overlay={"file": str(path)},
            num_classes=num_classes,
            in_chans=in_chans,
        )
    except (RuntimeError, ValueError, KeyError, EOFError, OSError) as exc:
        raise UserError(
            f"the cached file {path} does not load into timm's {name} ({first_line(exc)}); "
            f"delete it and fetch it again: {fetch}"
        ) from None


def _from_file(timm: Any, name: str, path: Path, num_classes: int, in_chans: int) -> tuple[nn.Module, bool]:
    state = read_state_dict(path)
    probe = timm.create_model(name, pretrained=False)
    state = _timm_filter(probe, state)
    head = _qualname(probe, probe.get_classifier())
    rows = state.get(f"{head}.weight")
    classes = int(rows.shape[0]) if rows is not None else num_classes
    model = timm.create_model(name, pretrained=False, num_classes=classes)
    conv = first_conv(model)
    if in_chans == 1 and conv and f"{conv}.weight" in state and state[f"{conv}.weight"].shape[1] == 1:
        adapt_first_conv(model)
    load_checked(model, state, f"weights file {path}", name, f"pass weights saved from timm's {name}",
                 ignore=lambda k: k.startswith(head + "."))  # fmt: skip
    if in_chans == 1:
        adapt_first_conv(model)
    return model, classes == num_classes and rows is not None


def _timm_filter(model: nn.Module, state: dict) -> dict:
    """timm's own converter for files in an architecture's original (non-timm) layout, where it has one."""
    module = importlib.import_module(type(model).__module__)
    convert = getattr(module, "checkpoint_filter_fn", None)
    if convert is None:
        return state
    try:
        return convert(state, model)
    except Exception:  # a converter for another layout; the checked load below says what does not fit
        return state


def _qualname(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise UserError(f"cannot find the classifier of timm's {type(model).__name__}")


def _group_stages(model: nn.Module, head: str) -> list[Stage]:
    from timm.models._manipulate import group_parameters

    groups = group_parameters(model, model.group_matcher(coarse=True))
    ordered = [[n for n in names if not n.startswith(head + ".")] for _, names in sorted(groups.items())]
    ordered = [names for names in ordered if names]
    # What no pattern matched (the classifier's neighbours, such as ConvNeXt's head.norm) sorts last in
    # timm's grouping; it joins the last stage, like torchvision's hidden classifier layers.
    if len(ordered) > 1 and _unmatched(model, ordered[-1]):
        ordered[-2:] = [ordered[-2] + ordered[-1]]
    stages = []
    for i, names in enumerate(ordered):
        modules, params = _cover(model, set(names))
        stages.append(Stage(stage_name(i, modules or list(params)), tuple(modules), tuple(params)))
    check_partition(model, stages, head)
    return stages


def _unmatched(model: nn.Module, names: list[str]) -> bool:
    matcher = model.group_matcher(coarse=True)
    patterns = []
    for spec in matcher.values():
        if isinstance(spec, (list, tuple)):
            patterns += [s[0] for s in spec]
        elif spec:
            patterns.append(spec)
    return not any(re.match(p, n) for p in patterns for n in names)


def _cover(model: nn.Module, names: set[str]) -> tuple[list[str], list[str]]:
    """The fewest modules whose parameters are exactly ``names``, plus loose parameters owned by a parent."""
    modules: list[str] = []
    params: list[str] = []

    def visit(prefix: str, module: nn.Module) -> None:
        full = [f"{prefix}{n}" for n, _ in module.named_parameters()]
        if prefix and full and all(f in names for f in full):
            modules.append(prefix.rstrip("."))
            return
        params.extend(
            f"{prefix}{n}" for n, _ in module.named_parameters(recurse=False) if f"{prefix}{n}" in names
        )
        for child_name, child in module.named_children():
            visit(f"{prefix}{child_name}.", child)

    visit("", model)
    return modules, params
