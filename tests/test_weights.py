"""Weights by name, the preprocessing they imply, the cache that `weights fetch` fills, and runs from them.

Nothing here reaches the network: downloads come from a ``file://`` mirror (TRANSLEARN_WEIGHTS_MIRROR)
or a stand-in for torch.hub's downloader, and files are written in torchvision's published format.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torchvision

import publishers
from translearn.errors import UserError
from translearn.weights import cache, parse_weights, preprocessing_for
from translearn.weights.__main__ import main as weights_main

V1_18 = "resnet18-f37072fd.pth"


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    return folder


def legacy_resnet18(path: Path, seed: int = 7) -> dict[str, torch.Tensor]:
    """resnet18-f37072fd.pth as published: saved before BatchNorm had num_batches_tracked, no _metadata."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18()
    state = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    for value in state.values():
        if value.is_floating_point():
            value.add_(torch.randn_like(value) * 0.01)
    torch.save(dict(state), path)
    return state


# --- names ----------------------------------------------------------------------------------------


def test_imagenet_is_the_default_and_versions_are_pinned_by_name() -> None:
    assert parse_weights("torchvision", "resnet50", "imagenet").name == "IMAGENET1K_V2"
    assert parse_weights("torchvision", "resnet50", "IMAGENET1K_V1").name == "IMAGENET1K_V1"
    assert parse_weights("torchvision", "resnet50", "ResNet50_Weights.IMAGENET1K_V1").name == "IMAGENET1K_V1"
    assert parse_weights("torchvision", "resnet50", "DEFAULT").name == "IMAGENET1K_V2"
    assert parse_weights("torchvision", "resnet18", "none").kind == "none"


@pytest.mark.parametrize(
    ("arch", "spec", "fragments"),
    [
        ("resnet18", "IMAGENET1K_V2", ["not a weight name of resnet18", "IMAGENET1K_V1"]),
        ("resnet50", "ResNet18_Weights.IMAGENET1K_V1", ["IMAGENET1K_V1, IMAGENET1K_V2"]),
        ("resnet18", "./missing.pth", ["weights file ./missing.pth does not exist"]),
        ("resnet19", "imagenet", ["unknown backbone 'resnet19'", "model.library=timm"]),
    ],
)
def test_unknown_weight_names_list_the_valid_ones(arch: str, spec: str, fragments: list[str]) -> None:
    with pytest.raises(UserError) as err:
        parse_weights("torchvision", arch, spec)
    assert "\n" not in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)


@pytest.mark.cli
def test_unknown_weight_name_on_the_command_line_is_one_line(tmp_path: Path) -> None:
    from helpers import assert_user_error, run_cli

    proc = run_cli("model.weights=IMAGENET1K_V7", f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(proc, "model.weights=IMAGENET1K_V7", "IMAGENET1K_V1")
    assert not (tmp_path / "run").exists()


def test_timm_missing_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm now raises ImportError
    with pytest.raises(UserError, match=r"pip install 'translearn\[timm\]'"):
        parse_weights("timm", "resnet18", "imagenet")


def test_timm_names_and_tags() -> None:
    assert parse_weights("timm", "resnet18", "imagenet").name == "a1_in1k"  # timm's default tag
    assert parse_weights("timm", "resnet18", "tv_in1k").name == "tv_in1k"
    assert parse_weights("timm", "resnet18.tv_in1k", "imagenet").name == "tv_in1k"
    with pytest.raises(UserError, match="valid: imagenet, none, a1_in1k"):
        parse_weights("timm", "resnet18", "b9_in1k")
    with pytest.raises(UserError, match="did you mean resnet18"):
        parse_weights("timm", "resnet18x", "none")


# --- preprocessing --------------------------------------------------------------------------------


def test_preprocessing_comes_from_the_weights_own_metadata() -> None:
    v2 = preprocessing_for(parse_weights("torchvision", "resnet50", "imagenet"))
    assert (v2.resize, v2.crop, v2.interpolation) == (232, 224, "bilinear")
    assert "ResNet50_Weights.IMAGENET1K_V2" in v2.source
    v1 = preprocessing_for(parse_weights("torchvision", "resnet50", "IMAGENET1K_V1"))
    assert (v1.resize, v1.crop) == (256, 224)
    vit = preprocessing_for(parse_weights("torchvision", "vit_b_16", "IMAGENET1K_SWAG_E2E_V1"))
    assert (vit.resize, vit.crop, vit.interpolation) == (384, 384, "bicubic")
    timm_vit = preprocessing_for(parse_weights("timm", "vit_tiny_patch16_224", "imagenet"))
    assert timm_vit.mean == (0.5, 0.5, 0.5) and timm_vit.interpolation == "bicubic"
    assert (timm_vit.crop, timm_vit.resize) == (224, 248)  # floor(224 / 0.9), as timm's eval transform
    assert preprocessing_for(parse_weights("torchvision", "resnet50", "none")) is None


def test_user_keys_win_and_a_smaller_crop_keeps_the_weights_ratio() -> None:
    v2 = preprocessing_for(parse_weights("torchvision", "resnet50", "imagenet"))
    small = v2.resolve(image_size=112)
    assert (small.crop, small.resize) == (112, 116)  # 232/224 kept
    pinned = v2.resolve(image_size=224, resize_ratio=256 / 224, interpolation="bicubic", mean=[0.5] * 3)
    assert (pinned.resize, pinned.interpolation, pinned.mean) == (256, "bicubic", (0.5, 0.5, 0.5))
    with pytest.raises(UserError, match=r"dataset\.interpolation"):
        v2.resolve(interpolation="lanczos9")


def test_the_data_module_applies_the_weights_preprocessing(tmp_path: Path, compose_cfg) -> None:
    from translearn.config import instantiate

    root = publishers.hymenoptera(tmp_path / "hym")
    overrides = ("dataset=hymenoptera", f"dataset.root={root}", "dataset.image_size=null")
    for extra, expected in (
        (("model.backbone=resnet50", "model.weights=imagenet"), (232, 224, "bilinear")),
        (("model.backbone=resnet50", "model.weights=IMAGENET1K_V1"), (256, 224, "bilinear")),
        (
            ("model.library=timm", "model.backbone=convnext_atto", "model.weights=imagenet"),
            (256, 224, "bicubic"),
        ),
        (("model.weights=none",), (256, 224, "bilinear")),
        (
            ("experiment=seed2017", "model.backbone=resnet50", "model.weights=imagenet"),
            (256, 224, "bilinear"),
        ),
    ):
        cfg = compose_cfg(*overrides, *extra)
        choice = parse_weights(cfg.model.library, cfg.model.backbone, cfg.model.weights)
        data = instantiate(cfg.dataset, _partial_=True)(preprocessing=preprocessing_for(choice))
        prep = data.preprocessing
        assert (prep.resize, prep.crop, prep.interpolation) == expected, extra
        # the eval transform really does what it says: the crop side comes out
        image = data.transform(train=False)(publishers.image("rgb", 1, (300, 280)))
        assert image.shape[-2:] == (expected[1], expected[1])


def test_seed2017_pins_the_2017_weights_and_transforms() -> None:
    from translearn.config import compose_config

    cfg = compose_config(["experiment=seed2017"])
    assert cfg.model.weights == "IMAGENET1K_V1"
    assert (cfg.dataset.image_size, cfg.dataset.resize_ratio, cfg.dataset.interpolation) == (
        224,
        1.142857,
        "bilinear",
    )
    assert list(cfg.dataset.mean) == [0.485, 0.456, 0.406] and list(cfg.dataset.std) == [0.229, 0.224, 0.225]


# --- end to end ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_imagenet_trains_from_the_legacy_resnet18_file(
    torch_home: Path, tmp_path: Path, compose_cfg, caplog: pytest.LogCaptureFixture
) -> None:
    """The bug this module was written for: the published file has no num_batches_tracked."""
    from translearn.train import run

    state = legacy_resnet18(torch_home / V1_18)
    root = publishers.hymenoptera(tmp_path / "hym")
    cfg = compose_cfg(
        "dataset=hymenoptera", f"dataset.root={root}", "model.weights=imagenet", "strategy=freeze"
    )
    metrics = run(cfg)
    assert metrics["weights_used"] == "ResNet18_Weights.IMAGENET1K_V1"
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["preprocessing"]["source"].startswith("ResNet18_Weights.IMAGENET1K_V1.transforms()")
    assert (saved["preprocessing"]["crop"], saved["preprocessing"]["resize"]) == (32, 37)  # TINY: 32 px
    assert "preprocessing resize 37 (bilinear) → crop 32" in caplog.text  # said at startup
    best = torch.load(saved["best_checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
    for key, value in state.items():  # freeze: every tensor but the head is still the file's
        if not key.startswith("fc."):
            assert torch.equal(best[f"net.model.{key}"], value), key


# --- the cache and `weights fetch` -------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A flat folder of published files, as TRANSLEARN_WEIGHTS_MIRROR=file://... serves them.

    Its resnet18 file holds random tensors, so its sha256 does not start with f37072fd.
    """
    folder = tmp_path / "mirror"
    folder.mkdir()
    legacy_resnet18(folder / V1_18)
    return folder


def _no_hash_download(real):
    """torch.hub's downloader with the hash check off: the test's files cannot match published hashes."""

    def download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        real(url, dst, None, progress)

    return download


def test_fetch_downloads_into_the_cache_training_reads(
    torch_home: Path,
    mirror: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("TRANSLEARN_WEIGHTS_MIRROR", mirror.as_uri())
    monkeypatch.delenv("TRANSLEARN_OFFLINE")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_hash_download(torch.hub.download_url_to_file))
    weights_main(["fetch", "resnet18"])
    out = capsys.readouterr().out
    assert f"translearn: resnet18:IMAGENET1K_V1 downloaded: {torch_home / V1_18}" in out
    assert (torch_home / V1_18).read_bytes() == (mirror / V1_18).read_bytes()
    weights_main(["list"])
    listing = capsys.readouterr().out
    assert "resnet18:IMAGENET1K_V1" in listing and str(torch_home / V1_18) in listing
    monkeypatch.setenv("TRANSLEARN_OFFLINE", "1")  # training now needs no network
    from translearn.backbones import build_backbone

    assert build_backbone("resnet18", 2, "imagenet").head.out_features == 2


def test_fetch_refuses_a_file_whose_hash_does_not_match_and_leaves_nothing(
    torch_home: Path,
    mirror: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("TRANSLEARN_WEIGHTS_MIRROR", mirror.as_uri())
    monkeypatch.delenv("TRANSLEARN_OFFLINE")
    with pytest.raises(SystemExit) as exit_info:
        weights_main(["fetch", "resnet18"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "could not be downloaded" in err and "hash" in err.lower()
    assert [p.name for p in torch_home.iterdir() if not p.name.endswith(".lock")] == []


def _fetch_in_child(torch_home: str, mirror: str, log: str) -> None:
    os.environ["TORCH_HOME"] = torch_home
    os.environ["TRANSLEARN_WEIGHTS_MIRROR"] = mirror
    os.environ.pop("TRANSLEARN_OFFLINE", None)
    real = torch.hub.download_url_to_file

    def slow_counted(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(1.0)  # both processes are inside fetch at the same time
        real(url, dst, None, progress)

    torch.hub.download_url_to_file = slow_counted
    from translearn.weights.__main__ import fetch

    fetch("resnet18", "torchvision")


def test_two_processes_needing_the_same_file_download_it_once(
    torch_home: Path, mirror: Path, tmp_path: Path
) -> None:
    log = tmp_path / "downloads.log"
    ctx = multiprocessing.get_context("fork")
    args = (str(torch_home.parent.parent), mirror.as_uri(), str(log))
    children = [ctx.Process(target=_fetch_in_child, args=args) for _ in range(2)]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
    assert [c.exitcode for c in children] == [0, 0]
    assert len(log.read_text().splitlines()) == 1, "both processes downloaded"
    assert (torch_home / V1_18).read_bytes() == (mirror / V1_18).read_bytes()
    assert sorted(p.name for p in torch_home.iterdir()) == [f".{V1_18}.lock", V1_18]


def test_fetch_replaces_a_truncated_cached_file(
    torch_home: Path,
    mirror: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    good = (mirror / V1_18).read_bytes()
    (torch_home / V1_18).write_bytes(good[: len(good) // 2])
    from translearn.backbones import build_backbone

    with pytest.raises(UserError) as err:  # training names the file and the fix
        build_backbone("resnet18", 2, "imagenet")
    assert str(torch_home / V1_18) in str(err.value)
    assert "python -m translearn.weights fetch resnet18:IMAGENET1K_V1" in str(err.value)
    monkeypatch.setenv("TRANSLEARN_WEIGHTS_MIRROR", mirror.as_uri())
    monkeypatch.delenv("TRANSLEARN_OFFLINE")
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_hash_download(torch.hub.download_url_to_file))
    monkeypatch.setattr("translearn.weights.__main__._hash_ok", lambda path: path.stat().st_size == len(good))
    weights_main(["fetch", "resnet18"])
    assert "downloaded again" in capsys.readouterr().out
    assert (torch_home / V1_18).read_bytes() == good


@pytest.mark.cli
def test_fetch_cli_is_a_one_line_error_offline(torch_home: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "translearn.weights", "fetch", "resnet50:IMAGENET1K_V2"],
        capture_output=True,
        text=True,
        env={**os.environ, "TRANSLEARN_OFFLINE": "1"},
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "resnet50-11ad3fa6.pth" in proc.stderr
    # It suggested running this very command; the fix is to run it without the offline switch.
    assert "env -u TRANSLEARN_OFFLINE -u HF_HUB_OFFLINE python -m translearn.weights fetch" in proc.stderr


# --- timm weights from the Hugging Face cache -------------------------------------------------------


def hf_cache_file(hf_home: Path, repo_id: str, state: dict[str, torch.Tensor]) -> Path:
    """A model.safetensors where the Hugging Face client keeps it: models--ORG--NAME/snapshots/REV/."""
    from safetensors.torch import save_file

    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "hub"))
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(home / "hub"))
    return home


def test_timm_imagenet_reads_the_hugging_face_cache_offline(hf_home: Path) -> None:
    import timm

    from translearn.backbones import build_backbone

    torch.manual_seed(3)
    source = timm.create_model("resnet18")  # the published file: timm's layout, 1000 classes
    state = source.state_dict()
    hf_cache_file(hf_home, "timm/resnet18.a1_in1k", state)
    net = build_backbone("resnet18", 4, "imagenet", library="timm")
    own = net.model.state_dict()
    for key, value in state.items():
        if not key.startswith("fc."):
            assert torch.equal(own[key], value), key
    assert net.head_name == "fc" and net.head.out_features == 4
    gray = build_backbone("resnet18", 4, "imagenet", in_chans=1, library="timm")  # timm adapts conv1
    assert torch.allclose(gray.model.conv1.weight, state["conv1.weight"].sum(dim=1, keepdim=True))


def test_timm_weights_not_cached_offline_is_one_line(hf_home: Path) -> None:
    from translearn.backbones import build_backbone

    with pytest.raises(UserError) as err:
        build_backbone("convnext_atto", 3, "imagenet", library="timm")
    message = str(err.value)
    assert "\n" not in message and "TRANSLEARN_OFFLINE" in message
    assert "python -m translearn.weights fetch convnext_atto.d2_in1k --library timm" in message


def test_timm_fetch_fills_the_hugging_face_cache(
    hf_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import huggingface_hub
    import timm

    calls: list[tuple[str, str, bool]] = []
    state = OrderedDict(timm.create_model("resnet18").state_dict())

    def stand_in(repo_id: str, filename: str, local_files_only: bool = False, **_: object) -> str:
        calls.append((repo_id, filename, local_files_only))
        if local_files_only:
            from huggingface_hub.errors import LocalEntryNotFoundError

            raise LocalEntryNotFoundError("not cached")
        return str(hf_cache_file(hf_home, repo_id, state))

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", stand_in)
    monkeypatch.setattr(cache, "_unreachable", lambda url, timeout=5.0: None)  # the stand-in Hub is there
    monkeypatch.delenv("TRANSLEARN_OFFLINE")
    weights_main(["fetch", "resnet18.tv_in1k", "--library", "timm"])
    assert ("timm/resnet18.tv_in1k", "model.safetensors", False) in calls
    assert "translearn: timm resnet18.tv_in1k:" in capsys.readouterr().out


# --- preprocessing of weights given as a file -------------------------------------------------------


def hub_snapshot(root: Path, repo_id: str, model: torch.nn.Module, **save_kwargs: object) -> Path:
    """``model`` as timm publishes it to the Hub (``save_for_hf``: model.safetensors + config.json), in the
    Hugging Face cache's layout: the snapshot's files are symlinks into ``blobs/``. Returns the weights file.
    """
    import hashlib

    from timm.models import save_for_hf

    staging = root / "staging"
    save_for_hf(model, str(staging), safe_serialization=True, **save_kwargs)
    repo = root / "hub" / f"models--{repo_id.replace('/', '--')}"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for file in staging.iterdir():
        blob = hashlib.sha256(file.read_bytes()).hexdigest()
        file.replace(repo / "blobs" / blob)
        (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob))
    staging.rmdir()
    return snapshot / "model.safetensors"


def _timm_model(arch: str, seed: int = 5) -> torch.nn.Module:
    """timm's ``arch`` with every float tensor moved off its init (a file of init values proves little)."""
    import timm

    from published_weights import perturbed

    torch.manual_seed(seed)
    return perturbed(timm.create_model(arch))


@pytest.mark.parametrize(
    ("arch", "data_config", "expected"),
    [
        # The config.json timm writes for its own weights: its pretrained_cfg (mean = std = 0.5, bicubic,
        # crop_pct 0.9 for this ViT), not translearn's ImageNet 256/224.
        ("vit_tiny_patch16_224", None, (224, 248, "bicubic", (0.5,) * 3, (0.5,) * 3)),
        # Fine-tuned weights exported with their own eval recipe (save_for_hf's data_config): the file's
        # numbers, not the ones timm's registry has for resnet18.a1_in1k (crop_pct 0.95, ImageNet stats).
        (
            "resnet18",
            {"input_size": (3, 160, 160), "crop_pct": 1.0, "interpolation": "bilinear",
             "mean": (0.1, 0.2, 0.3), "std": (0.4, 0.5, 0.6)},
            (160, 160, "bilinear", (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)),
        ),
    ],
    ids=["vit-own-cfg", "resnet18-exported-recipe"],
)  # fmt: skip
def test_a_hub_weights_file_brings_the_preprocessing_in_its_config_json(
    arch: str, data_config: dict | None, expected: tuple, tmp_path: Path, compose_cfg
) -> None:
    """model.safetensors from the Hub: the config.json beside it says how the weights were trained."""
    from translearn.backbones import build_backbone
    from translearn.config import instantiate

    model = _timm_model(arch)
    file = hub_snapshot(tmp_path / "hf", f"timm/{arch}.a_tag", model, data_config=data_config)
    saved = json.loads((file.parent / "config.json").read_text())
    assert saved["architecture"] == arch and isinstance(saved["pretrained_cfg"], dict)  # timm's hub format

    prep = preprocessing_for(parse_weights("timm", arch, str(file)))
    assert prep is not None
    assert (prep.crop, prep.resize, prep.interpolation, prep.mean, prep.std) == expected
    assert "config.json" in prep.source, prep.source
    # What training shows at startup and records in metrics.json: the data module's preprocessing.
    root = publishers.hymenoptera(tmp_path / "hym")
    cfg = compose_cfg(
        "dataset=hymenoptera", f"dataset.root={root}", "dataset.image_size=null",
        "model.library=timm", f"model.backbone={arch}", f"model.weights={file}",
    )  # fmt: skip
    data = instantiate(cfg.dataset, _partial_=True)(preprocessing=prep)
    assert (data.preprocessing.crop, data.preprocessing.resize) == expected[:2]
    assert "config.json" in data.preprocessing.describe()
    assert "config.json" in data.preprocessing.as_dict()["source"]

    # ...and the weights are the file's, every one of them.
    net = build_backbone(arch, num_classes=3, weights=str(file), library="timm")
    head = net.head_name
    own = {k: v for k, v in net.model.state_dict().items() if not k.startswith(head + ".")}
    theirs = {k: v for k, v in model.state_dict().items() if not k.startswith(head + ".")}
    assert sorted(own) == sorted(theirs)
    assert all(torch.equal(own[k], v) for k, v in theirs.items())


def test_a_weights_file_that_does_not_say_gets_the_default_and_one_line_on_how_to_set_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """No config.json (or one that is not timm's): translearn's default, said once, with the keys to set."""
    from safetensors.torch import save_file

    model = _timm_model("vit_tiny_patch16_224")
    bare = tmp_path / "bare" / "model.safetensors"
    bare.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(bare))
    transformers = tmp_path / "transformers" / "model.safetensors"  # a Transformers repo's config.json
    transformers.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(transformers))
    (transformers.parent / "config.json").write_text(
        json.dumps({"architectures": ["ViTForImageClassification"], "model_type": "vit", "image_size": 224})
    )
    for file in (bare, transformers):
        capsys.readouterr()
        prep = preprocessing_for(parse_weights("timm", "vit_tiny_patch16_224", str(file)))
        assert prep is not None
        assert (prep.crop, prep.resize, prep.interpolation) == (224, 256, "bilinear")
        assert prep.mean == (0.485, 0.456, 0.406) and prep.std == (0.229, 0.224, 0.225)
        assert prep.source.startswith("translearn default") and "does not say" in prep.source, prep.source
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if str(file) in ln]
        assert len(lines) == 1, err
        for key in ("dataset.mean", "dataset.std", "dataset.interpolation", "dataset.resize_ratio"):
            assert key in lines[0], lines[0]
    assert "config.json" in lines[0] and "not timm's" in lines[0], lines[0]
    other = tmp_path / "other" / "model.safetensors"  # a third file, so warn_once would say it again
    other.parent.mkdir()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(other))
    capsys.readouterr()
    preprocessing_for(parse_weights("timm", "vit_tiny_patch16_224", str(other)), given=True)
    assert str(other) not in capsys.readouterr().err  # every dataset.* key set: nothing to say


def test_offline_timm_weights_fail_in_one_attempt_not_after_the_hubs_retries(monkeypatch, tmp_path) -> None:
    """The Hub client retried five times with back-off: ~50 s and 22 lines of retries, then the error."""
    import socket

    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    downloads: list[str] = []

    def hub(repo_id: str, filename: str, local_files_only: bool = False, **_: object) -> str:
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        downloads.append(filename)
        raise AssertionError("the Hub was asked although its host cannot be reached")

    def no_network(address: tuple, timeout: float | None = None) -> socket.socket:
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub)
    monkeypatch.setattr(socket, "create_connection", no_network)
    for var in ("TRANSLEARN_OFFLINE", "HF_HUB_OFFLINE", *cache.PROXY_ENV):  # a proxy skips the attempt
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(UserError, match=r"huggingface.co cannot be reached \(Name or service not known"):
        cache.timm_file("timm/convnext_atto.d2_in1k", "timm convnext_atto weights", "fetch it")
    assert downloads == []


def test_weights_list_shows_translearns_own_embedded_weights(monkeypatch, tmp_path, capsys) -> None:
    """`weights list` ("what is cached, and where") said "no weight files cached" beside 90 MB of them."""
    from translearn.weights.__main__ import main as weights_main

    monkeypatch.setenv("TRANSLEARN_CACHE", str(tmp_path))
    (tmp_path / "weights").mkdir()
    torch.save({"w": torch.zeros(3)}, tmp_path / "weights" / "shapes-base-v2-resnet18-64px-e8.pt")
    weights_main(["list"])
    listing = capsys.readouterr().out
    assert f"embedded (model.weights=embedded): {tmp_path / 'weights'}" in listing
    assert "embedded    shapes-base-v2-resnet18-64px-e8" in listing
