"""Writes ``mmpretrain_resnetv1.json``: MMPretrain's own ResNet-50, ResNetV1d-18/50 and ResNetV1c-50,
as their ImageClassifier's ``state_dict()`` names and shapes them, and the features MMPretrain computes
for one input with seeded weights (:func:`seeded_state`). The test rebuilds the same file from this
record, loads it into torchvision's resnet50 or timm's resnet18d / resnet50d / resnet50c through
translearn, and compares features: MMPretrain's code checks the key mapping without being installed in CI.

Run where MMPretrain is importable (1.2.0 was used: pip install mmpretrain mmengine mmcv-lite
opencv-python-headless and their small dependencies):

    python tests/data/make_mmpretrain_resnetv1.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parents[1]))  # tests/: mmpretrain_seeded.py
from mmpretrain_seeded import INPUT_SEED, seeded_state


def main() -> None:
    import mmpretrain
    from mmpretrain.models import ImageClassifier

    record: dict = {"mmpretrain_version": mmpretrain.__version__, "input_seed": INPUT_SEED, "models": {}}
    for backbone, depth in (("ResNet", 50), ("ResNetV1d", 18), ("ResNetV1d", 50), ("ResNetV1c", 50)):
        width = 512 if depth == 18 else 2048
        model = ImageClassifier(
            backbone={"type": backbone, "depth": depth},
            neck={"type": "GlobalAveragePooling"},
            head={"type": "LinearClsHead", "num_classes": 1000, "in_channels": width},
        ).eval()
        shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
        model.load_state_dict(seeded_state(shapes))
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(INPUT_SEED))
        with torch.no_grad():
            features = model.neck(model.backbone(x))[0][0]
        record["models"][f"{backbone}-{depth}"] = {"keys": shapes, "features": features.tolist()}
    out = Path(__file__).with_name("mmpretrain_resnetv1.json")
    out.write_text(json.dumps(record, separators=(",", ":")) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
