"""End to end: every dataset trains from its publisher-layout fixture, in colour and both gray modes."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch

import publishers
from helpers import TINY, run_cli
from translearn.backbones import adapt_first_conv, build_backbone
from translearn.data.transforms import build_transform

COLOURS = [("rgb", "replicate"), ("gray", "replicate"), ("gray", "adapt")]
CLASSES = {"hymenoptera": 2, "simpsons": 20, "caltech256": 5, "dogs_vs_cats": 2, "imagefolder": 3}
BAD_IN = {  # where each fixture gets its truncated, empty and fake files
    "hymenoptera": "hymenoptera_data/train/bees",
    "simpsons": "simpsons_dataset/bart_simpson",
    "caltech256": "caltech256/256_ObjectCategories/056.dog",
    "dogs_vs_cats": "train",
    "imagefolder": "owl",
}


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("publishers")
    out = {
        "hymenoptera": publishers.hymenoptera(base / "hymenoptera"),
        "simpsons": publishers.simpsons(base / "simpsons"),
        "caltech256": publishers.caltech256(base / "caltech256"),
        "dogs_vs_cats": publishers.dogs_vs_cats(base / "dogs_vs_cats", cats=8, dogs=8),
        "imagefolder": publishers.imagefolder(base / "imagefolder"),
    }
    for name, folder in BAD_IN.items():
        bad = publishers.write_bad(out[name] / folder)
        if name == "dogs_vs_cats":  # labels come from names here, so the bad files need labelled names
            for i, path in enumerate(bad):
                path.rename(path.with_name(f"dog.{900 + i}.jpg"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("color", "gray_mode"), COLOURS, ids=["rgb", "gray-replicate", "gray-adapt"])
@pytest.mark.parametrize("dataset", list(CLASSES))
def test_one_epoch_trains_on_the_publisher_layout(
    dataset: str, color: str, gray_mode: str, trees: dict[str, Path], tmp_path: Path, compose_cfg
) -> None:
    from translearn.train import run

    cfg = compose_cfg(
        f"dataset={dataset}",
        f"dataset.root={trees[dataset]}",
        f"dataset.color={color}",
        f"dataset.gray_mode={gray_mode}",
    )
    metrics = run(cfg)
    # The head and the first conv were shaped from the data in code (nothing in the config says so).
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    weights = [v for k, v in state["state_dict"].items() if k.startswith("net.") and v.ndim in (2, 4)]
    assert weights[0].shape[1] == (1 if gray_mode == "adapt" and color == "gray" else 3)  # conv1
    assert weights[-1].shape[0] == CLASSES[dataset]  # the head
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["dataset"] == dataset and saved["color"] == color
    assert saved["num_classes"] == metrics["num_classes"] == CLASSES[dataset]
    assert 0.0 <= saved["best_val_acc"] <= 1.0
    assert (saved["test_acc"] is not None) == (dataset == "simpsons")  # only simpsons ships a test set


def test_gray_adapt_equals_replicate_only_with_one_shared_normalisation() -> None:
    """Summing the first conv over RGB is exact for three *equal* input channels.

    ``adapt`` normalises luma with one luma-weighted mean/std (GRAY_MEAN, GRAY_STD). Replicating that
    one normalised channel three times gives the same logits from the RGB model. The ``replicate``
    mode as shipped normalises each copy with ImageNet's per-channel mean/std, as the 2017 study did:
    its three channels then differ, and so do the logits.
    """
    picture = publishers.image("rgb", 11, (48, 40))
    adapt = build_transform(False, 32, color="gray", gray_mode="adapt")(picture)
    imagenet = build_transform(False, 32, color="gray", gray_mode="replicate")(picture)
    torch.manual_seed(0)
    rgb_net = build_backbone("resnet18", 4, "none", in_chans=3).eval()
    gray_net = copy.deepcopy(rgb_net)
    adapt_first_conv(gray_net.model)
    with torch.no_grad():
        one = gray_net(adapt[None])
        shared = rgb_net(adapt.expand(3, -1, -1)[None])
        per_channel = rgb_net(imagenet[None])
    assert torch.allclose(one, shared, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(one, per_channel, atol=1e-2)


@pytest.mark.cli
@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_prepares_once_and_both_ranks_read_the_same_split(trees: dict[str, Path], tmp_path: Path) -> None:
    tiny = TINY  # the command line's trainer=ddp_cpu wins over debug=tiny's cpu trainer
    proc = run_cli(
        "trainer=ddp_cpu",
        *tiny,
        "dataset=imagefolder",
        f"dataset.root={trees['imagefolder']}",
        f"paths.cache_dir={tmp_path / 'cache'}",  # a fresh index: this run must create it
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert out.count("translearn: prepared imagefolder:") == 1
    ranks = dict(re.findall(r"translearn: imagefolder rank (\d)/2: [^()\n]*\(index (\w+)\)", out))
    assert set(ranks) == {"0", "1"}, out[-3000:]
    assert ranks["0"] == ranks["1"]
    assert len(list((tmp_path / "cache" / "index").glob("imagefolder-*/index-*.json"))) == 1
