"""torchvision's ImageNet weight files in the formats they are really published in, for tests and demos.

The published files predate today's ``state_dict()``: what each format reproduces is said in
``tests/test_weights_formats.py``. Also a command, to try translearn on such files by hand:

    python tests/published_weights.py DIR resnet18 densenet121   # writes DIR/hub/checkpoints/<published name>
    TORCH_HOME=DIR python -m translearn.train model.weights=imagenet model.backbone=densenet121 ...

The tensors are seeded random values (no real weights can be downloaded here), in the real key names,
buffers and file names.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torchvision
from torch import nn

# torchvision/models/densenet.py, _load_state_dict: published key -> today's key is group(1) + group(2).
DENSENET_LEGACY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
DENSENET_TODAY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))([12])\.(weight|bias|running_mean|running_var)$"
)
VIT_LEGACY = re.compile(r"^(.*\.mlp\.)linear_([12])\.(weight|bias)$")
VIT_TODAY = re.compile(r"^(.*\.mlp\.)([03])\.(weight|bias)$")
AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


@dataclass(frozen=True)
class Format:
    """How one published file differs from ``get_model(arch, **kwargs).state_dict()`` today."""

    arch: str
    enum: str  # the weights enum whose file this is
    head: str  # the layer translearn replaces with a fresh ``num_classes`` one
    legacy_bn: bool = False  # saved before num_batches_tracked existed: no such keys, no _metadata
    kwargs: dict = field(default_factory=dict)  # builds the modules the file holds (aux heads)
    legacy_names: str | None = None  # "densenet" or "vit": pre-rename key names, no _metadata


FORMATS = {
    f.arch: f
    for f in [
        Format("resnet18", "IMAGENET1K_V1", "fc", legacy_bn=True),
        Format("densenet121", "IMAGENET1K_V1", "classifier", legacy_bn=True, legacy_names="densenet"),
        Format("googlenet", "IMAGENET1K_V1", "fc", kwargs={"aux_logits": True, "init_weights": False}),
        Format("inception_v3", "IMAGENET1K_V1", "fc", kwargs={"aux_logits": True, "init_weights": False}),
        Format("vgg11_bn", "IMAGENET1K_V1", "classifier.6", legacy_bn=True),
        Format("mobilenet_v2", "IMAGENET1K_V1", "classifier.1", legacy_bn=True),
        Format("mobilenet_v3_small", "IMAGENET1K_V1", "classifier.3"),
        Format("efficientnet_b0", "IMAGENET1K_V1", "classifier.1"),
        Format("convnext_tiny", "IMAGENET1K_V1", "classifier.2"),
        Format("vit_b_16", "IMAGENET1K_V1", "heads.head", legacy_names="vit"),
        Format("swin_t", "IMAGENET1K_V1", "head"),
        Format("regnet_y_400mf", "IMAGENET1K_V1", "fc"),
    ]
}


@dataclass(frozen=True)
class Published:
    """A published-format file in its own TORCH_HOME cache."""

    fmt: Format
    torch_home: Path
    file: Path

    @property
    def spec(self) -> str:
        """``imagenet`` names the DEFAULT enum; mobilenet_v2's and regnet's DEFAULT is V2, so name V1."""
        default = torchvision.models.get_model_weights(self.fmt.arch).DEFAULT.name
        return "imagenet" if default == self.fmt.enum else self.fmt.enum


def weights_enum(arch: str, name: str) -> torchvision.models.WeightsEnum:
    return torchvision.models.get_model_weights(arch)[name]


def cache_file(arch: str, enum: str) -> Path:
    """Where torch.hub caches the enum's file: ``$TORCH_HOME/hub/checkpoints/<url basename>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights_enum(arch, enum).url)


def perturbed(model: nn.Module) -> nn.Module:
    """Every float tensor moved randomly off its init (BN's constant 1s and 0s too); variances stay > 0."""
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            else:
                tensor.add_(torch.randn_like(tensor), alpha=0.05)
    return model


def to_published(fmt: Format, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Today's state_dict rewritten into the published file's format."""
    out = {}
    for key, value in state.items():
        if fmt.legacy_bn and key.endswith("num_batches_tracked"):
            continue
        if fmt.legacy_names == "densenet":
            key = DENSENET_TODAY.sub(r"\1.\2.\3", key)
        elif fmt.legacy_names == "vit":
            key = VIT_TODAY.sub(lambda m: f"{m[1]}linear_{1 if m[2] == '0' else 2}.{m[3]}", key)
        out[key] = value
    if fmt.legacy_bn or fmt.legacy_names:
        return dict(out)  # a plain dict: no _metadata, so every module reads it as version None
    ordered = type(state)(out)
    ordered._metadata = state._metadata  # type: ignore[attr-defined]
    return ordered


def from_published(fmt: Format, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's own renames of a published file, aux heads dropped: what a loaded model holds."""
    out = {}
    for key, value in state.items():
        if key.startswith(AUX_PREFIXES):
            continue
        if fmt.legacy_names == "densenet" and (m := DENSENET_LEGACY.match(key)):
            key = m[1] + m[2]
        elif fmt.legacy_names == "vit":
            key = VIT_LEGACY.sub(lambda m: f"{m[1]}{3 * (int(m[2]) - 1)}.{m[3]}", key)
        out[key] = value
    return out


def publish(fmt: Format, torch_home: Path) -> Published:
    torch.manual_seed(0)
    model = perturbed(torchvision.models.get_model(fmt.arch, num_classes=1000, **fmt.kwargs))
    state = to_published(fmt, model.state_dict())
    file = torch_home / "hub" / "checkpoints" / os.path.basename(weights_enum(fmt.arch, fmt.enum).url)
    file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, file)
    return Published(fmt, torch_home, file)


if __name__ == "__main__":
    if len(sys.argv) < 3 or any(a not in FORMATS for a in sys.argv[2:]):
        raise SystemExit(
            f"usage: python tests/published_weights.py TORCH_HOME ARCH...  (ARCH: {', '.join(FORMATS)})"
        )
    for arch in sys.argv[2:]:
        made = publish(FORMATS[arch], Path(sys.argv[1]))
        print(f"{arch} {made.fmt.enum}: {made.file}")
