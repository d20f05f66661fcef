"""Backbones: heads found and replaced across families, stages that partition the model, weights loading."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
import torchvision

from translearn.backbones import build_backbone
from translearn.errors import UserError

# One of each head/stage layout torchvision has: fc, classifier[-1], classifier conv, heads.head, head.
FAMILIES = {
    "resnet18": 5,
    "densenet121": 5,
    "mobilenet_v3_small": 5,
    "efficientnet_b0": 5,
    "convnext_tiny": 5,
    "regnet_y_400mf": 5,
    "shufflenet_v2_x0_5": 4,
    "squeezenet1_0": None,
    "swin_t": 5,
    "vit_b_16": 13,
}


@pytest.mark.parametrize("arch", sorted(FAMILIES))
def test_stages_partition_every_parameter_and_head_is_replaced(arch: str) -> None:
    net = build_backbone(arch, num_classes=7, weights="none")
    groups = list(net.named_groups())
    ids = [id(p) for _, params in groups for p in params]
    assert len(ids) == len(set(ids)), "a parameter sits in two stages"
    assert set(ids) == {id(p) for p in net.parameters()}, "a parameter sits in no stage"
    assert all(params for _, params in groups), "empty stage"
    assert net.stages[0].name == "stem"
    if FAMILIES[arch] is not None:
        assert net.num_stages == FAMILIES[arch], [s.name for s in net.stages]
    side = 224 if arch in ("vit_b_16", "swin_t") else 64
    with torch.no_grad():
        out = net.eval()(torch.randn(2, 3, side, side))
    assert out.shape == (2, 7)


def test_resnet_stages_are_the_contract_ones() -> None:
    net = build_backbone("resnet18", num_classes=2, weights="none")
    assert [s.name for s in net.stages] == ["stem", "layer1", "layer2", "layer3", "layer4"]
    stem = {n for m in net.stage_modules(0) for n, _ in m.named_parameters()}
    assert {p for p in stem} == {"weight", "bias"} and len(
        net.stage_parameters(0)
    ) == 3  # conv1.w, bn1.w, bn1.b
    assert net.head_name == "fc"


def test_hidden_classifier_layers_join_the_last_stage() -> None:
    net = build_backbone("mobilenet_v3_small", num_classes=3, weights="none")
    assert net.head_name == "classifier.3"
    assert "classifier.0" in net.stages[-1].modules  # the pretrained Linear(576, 1024) is not "head"


def test_unknown_backbone_lists_the_valid_ones() -> None:
    with pytest.raises(UserError, match="resnet18") as err:
        build_backbone("resnet19", num_classes=2, weights="none")
    assert "unknown backbone 'resnet19'" in str(err.value)


def _fake_imagenet_cache(arch: str = "resnet18") -> tuple[Path, dict[str, torch.Tensor]]:
    """Save a random 1000-class state_dict where torchvision's cache expects the ImageNet file."""
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(123)
    state = torchvision.models.get_model(arch).state_dict()
    torch.save(state, path)
    return path, state


def test_imagenet_weights_load_from_torch_home_cache_without_the_head(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    _, state = _fake_imagenet_cache()
    net = build_backbone("resnet18", num_classes=4, weights="imagenet")
    own = net.model.state_dict()
    for key, value in state.items():
        if key.startswith("fc."):
            continue
        assert torch.equal(own[key], value), key
    assert own["fc.weight"].shape == (4, 512)


def test_imagenet_offline_and_not_cached_fails_fast_with_the_fix(tmp_path: Path, monkeypatch) -> None:
    import socket

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    tried = []
    monkeypatch.setattr(
        socket, "create_connection", lambda *a, **k: tried.append(a) or (_ for _ in ()).throw(OSError)
    )
    with pytest.raises(UserError) as err:
        build_backbone("resnet18", 3, "imagenet")
    assert tried == []  # offline: no connection is even attempted, so it cannot hang on a firewall
    message = str(err.value)
    assert "model.weights=PATH" in message and "model.weights=none" in message and "resnet18-" in message
    assert "python -m translearn.weights fetch resnet18:IMAGENET1K_V1" in message


def test_imagenet_download_failure_is_a_user_error_not_a_hang(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty"))
    monkeypatch.delenv("TRANSLEARN_OFFLINE")

    def no_network(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        raise OSError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(UserError, match="could not be downloaded"):
        build_backbone("resnet18", 3, "imagenet")
    left = [p.name for p in (tmp_path / "empty").rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert left == []


def test_weights_file_with_another_head_loads_the_backbone_only(tmp_path: Path) -> None:
    source = build_backbone("resnet18", num_classes=10, weights="none")
    torch.save(source.model.state_dict(), tmp_path / "w.pt")
    net = build_backbone("resnet18", num_classes=3, weights=str(tmp_path / "w.pt"))
    assert torch.equal(net.model.layer4[1].conv2.weight, source.model.layer4[1].conv2.weight)
    assert net.head.out_features == 3


def test_weights_file_with_the_same_head_loads_everything(tmp_path: Path) -> None:
    source = build_backbone("resnet18", num_classes=3, weights="none")
    torch.save(source.model.state_dict(), tmp_path / "w.pt")
    net = build_backbone("resnet18", num_classes=3, weights=str(tmp_path / "w.pt"))
    assert torch.equal(net.head.weight, source.head.weight)


def test_lightning_checkpoint_works_as_a_weights_file(tmp_path: Path) -> None:
    source = build_backbone("resnet18", num_classes=3, weights="none")
    state = {f"net.model.{k}": v for k, v in source.model.state_dict().items()}
    state["val_acc_best.max_value"] = torch.tensor(0.5)
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "last.ckpt")
    net = build_backbone("resnet18", num_classes=3, weights=str(tmp_path / "last.ckpt"))
    assert torch.equal(net.model.conv1.weight, source.model.conv1.weight)


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("not a checkpoint"), "not a file torch.save or safetensors wrote"),
        (lambda p: p.write_bytes(os.urandom(5000)), "not a file torch.save or safetensors wrote"),
        (  # torch.save(model): torch's own message is a paragraph about trust, with terminal escapes
            lambda p: torch.save(torchvision.models.resnet18(), p),
            "it holds a pickled torchvision.models.resnet.ResNet object, not a dict of tensors",
        ),
        (lambda p: p.mkdir(), "is a folder; pass the state_dict file inside it"),
        (lambda p: torch.save(torchvision.models.resnet34().state_dict(), p), "does not fit resnet18"),
        (lambda p: torch.save({"x": 1}, p), "does not hold a state_dict"),
    ],
    ids=["missing", "text", "random-bytes", "pickled-model", "folder", "other-architecture", "not-tensors"],
)
def test_bad_weights_files_are_user_errors(tmp_path: Path, make_file, message: str) -> None:
    path = tmp_path / "w.pt"
    make_file(path)
    with pytest.raises(UserError, match=re.escape(message)) as err:
        build_backbone("resnet18", num_classes=3, weights=str(path))
    assert "\x1b" not in str(err.value) and "\n" not in str(err.value)


def test_gray_adapt_sums_the_first_conv_over_rgb(tmp_path: Path) -> None:
    rgb = build_backbone("resnet18", num_classes=3, weights="none")
    torch.save(rgb.model.state_dict(), tmp_path / "w.pt")
    gray = build_backbone("resnet18", num_classes=3, weights=str(tmp_path / "w.pt"), in_chans=1)
    assert gray.model.conv1.in_channels == 1
    assert torch.allclose(gray.model.conv1.weight, rgb.model.conv1.weight.sum(dim=1, keepdim=True))
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():  # equal channels through the RGB net = one channel through the summed one
        assert torch.allclose(gray.eval()(x), rgb.eval()(x.expand(-1, 3, -1, -1)), atol=1e-5)


# --- timm -----------------------------------------------------------------------------------------

TIMM_STAGES = {
    "resnet18": (["stem", "layer1", "layer2", "layer3", "layer4"], "fc"),
    "convnext_atto": (["stem", "stages.0", "stages.1", "stages.2", "stages.3..head.norm"], "head.fc"),
    "vit_tiny_patch16_224": (["stem", *[f"blocks.{i}" for i in range(11)], "blocks.11..norm"], "head"),
}


@pytest.mark.parametrize("arch", sorted(TIMM_STAGES))
def test_timm_stages_come_from_its_group_matcher(arch: str) -> None:
    net = build_backbone(arch, num_classes=7, weights="none", library="timm")
    names, head = TIMM_STAGES[arch]
    assert [s.name for s in net.stages] == names and net.head_name == head
    groups = list(net.named_groups())
    ids = [id(p) for _, params in groups for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in net.parameters()}
    side = 224 if arch.startswith("vit") else 64
    with torch.no_grad():
        assert net.eval()(torch.randn(2, 3, side, side)).shape == (2, 7)


def test_timm_and_torchvision_resnet18_freeze_the_same_tensors() -> None:
    """timm's resnet18 is torchvision's architecture: stage k must hold the same parameter names."""
    tv = build_backbone("resnet18", num_classes=3, weights="none")
    tm = build_backbone("resnet18", num_classes=3, weights="none", library="timm")
    for i in range(tv.num_stages):
        named_tv = {n for m in tv.stages[i].modules for n, _ in tv.model.get_submodule(m).named_parameters(m)}
        named_tm = {n for m in tm.stages[i].modules for n, _ in tm.model.get_submodule(m).named_parameters(m)}
        assert named_tv == named_tm, tv.stages[i].name


def test_timm_weights_file_loads_like_torchvision_ones(tmp_path: Path) -> None:
    source = build_backbone("convnext_atto", num_classes=5, weights="none", library="timm")
    torch.save(source.model.state_dict(), tmp_path / "w.pt")
    same = build_backbone("convnext_atto", num_classes=5, weights=str(tmp_path / "w.pt"), library="timm")
    assert torch.equal(same.head.weight, source.head.weight)  # a head for our classes is kept
    other = build_backbone("convnext_atto", num_classes=3, weights=str(tmp_path / "w.pt"), library="timm")
    assert other.head.out_features == 3
    assert torch.equal(
        other.model.stages[3].blocks[0].conv_dw.weight, source.model.stages[3].blocks[0].conv_dw.weight
    )
    with pytest.raises(UserError, match="does not fit resnet18"):
        build_backbone("resnet18", num_classes=3, weights=str(tmp_path / "w.pt"), library="timm")


def test_a_wrong_shape_names_the_tensor_and_both_shapes(tmp_path: Path) -> None:
    state = torchvision.models.resnet18(num_classes=10).state_dict()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(state, tmp_path / "w.pt")
    with pytest.raises(UserError) as err:
        build_backbone("resnet18", num_classes=3, weights=str(tmp_path / "w.pt"))
    assert "layer1.0.conv1.weight has shape [64, 64, 5, 5] there but [64, 64, 3, 3] in the model" in str(
        err.value
    )


@pytest.mark.parametrize(
    ("arch", "small", "fits"), [("vit_b_16", 32, 224), ("maxvit_t", 64, 224), ("inception_v3", 32, 96)]
)
def test_a_backbone_that_cannot_take_the_image_size_is_one_line_before_any_work(
    arch: str, small: int, fits: int
) -> None:
    """vit_b_16 at 32 px was a 125-line traceback from inside the cache build or the first step."""
    from translearn.module import check_input_size

    net = torchvision.models.get_model(arch)
    with pytest.raises(
        UserError, match=rf"{arch} cannot run on {small}x{small} px images .*dataset.image_size"
    ):
        check_input_size(net, arch, 3, small)
    check_input_size(net, arch, 3, fits)  # the size it takes: no error
    assert net.training  # its mode is put back


def test_the_input_size_check_is_part_of_building_the_module() -> None:
    from translearn.module import TransferModule

    with pytest.raises(UserError, match="vit_b_16 cannot run on 32x32"):
        TransferModule(backbone="vit_b_16", weights="none", num_classes=3, preprocessing={"crop": 32})


@pytest.mark.cli
def test_embedded_pretraining_of_a_backbone_that_cannot_take_the_size_is_one_line(tmp_path: Path) -> None:
    """The embedded default pretrains first: vit_b_16 at 64 px crashed inside the pretraining loop."""
    from helpers import assert_user_error, run_cli

    proc = run_cli("model.backbone=vit_b_16", "trainer.max_epochs=1", f"hydra.run.dir={tmp_path / 'run'}")
    assert_user_error(proc, "vit_b_16 cannot run on 64x64 px images")


def test_embedded_pretraining_serves_timm_backbones_too(tmp_path: Path) -> None:
    """The help footer's `model.library=timm model.backbone=convnext_atto strategy=freeze` on the default
    data was refused: "model.weights=embedded pretrains torchvision backbones only"."""
    from translearn.pretrain import embedded_weights

    data = Path(os.environ["TRANSLEARN_DATA"])
    path = embedded_weights("convnext_atto", 32, data, tmp_path, epochs=1, limit_batches=2, library="timm")
    assert "timm-convnext_atto" in path.name  # never mistaken for a torchvision net's file
    saved = torch.load(path, weights_only=True)
    net = build_backbone("convnext_atto", 5, str(path), library="timm")
    state = net.model.state_dict()
    head = net.head_name
    kept = [k for k in saved if not k.startswith(head)]
    assert kept and all(torch.equal(state[k], saved[k]) for k in kept)
