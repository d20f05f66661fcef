"""torchvision's published ImageNet files predate today's state_dict(): they must load as torchvision does.

Each family below writes a seeded random file in the exact format of the published one (its key names,
its missing buffers, its file name) into a TORCH_HOME cache, and checks that translearn reads it to the
same tensors torchvision's own builder does. Facts reproduced, from torchvision 0.29 / torch 2.14 sources:

* Files saved before BatchNorm gained ``num_batches_tracked`` (resnet18, densenet121, vgg11_bn,
  mobilenet_v2 V1) lack those keys and are plain dicts without ``_metadata``: BatchNorm's
  ``_load_from_state_dict`` (torch/nn/modules/batchnorm.py) fills the buffer with 0 only when the stored
  version is None or < 2, so torchvision's strict load works for exactly that format.
* DenseNet's file names dense-layer modules ``norm.1``/``conv.1``/``norm.2``/``conv.2``; torchvision's
  ``densenet._load_state_dict`` renames them with the regex copied in ``DENSENET_LEGACY`` below.
* ViT-B/16's file names the MLP ``linear_1``/``linear_2``; ``MLPBlock._load_from_state_dict``
  (vision_transformer.py) renames them to ``0``/``3`` when the stored version is None or < 2.
* GoogLeNet's and Inception-v3's files hold their aux classifiers; their builders load with
  ``aux_logits=True`` and ``transform_input=True``, then drop the aux heads (googlenet.py, inception.py).
* Everything else (mobilenet_v3_small, efficientnet_b0, convnext_tiny, swin_t, regnet_y_400mf) is a
  modern ``state_dict()`` as saved, ``_metadata`` included.
* A cached file is never re-hashed: ``torch.hub.load_state_dict_from_url`` only checks the hash of a
  file it downloads, so torchvision's builders read our fake files as they would read the real ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

from fakes import random_loader, tiny_trainer
from mmpretrain_seeded import INPUT_SEED, seeded_state
from published_weights import (
    AUX_PREFIXES,
    FORMATS,
    Published,
    cache_file,
    from_published,
    perturbed,
    publish,
    weights_enum,
)
from translearn.backbones import build_backbone
from translearn.errors import UserError
from translearn.module import TransferModule
from translearn.strategies import Freeze

HOT_SGD = {"_target_": "torch.optim.SGD", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
# Heavy models (VGG's classifier alone is ~100M parameters): their checks take seconds.
HEAVY = {"vgg11_bn", "vit_b_16", "swin_t", "convnext_tiny", "inception_v3"}
FAMILIES = [pytest.param(a, marks=pytest.mark.slow) if a in HEAVY else a for a in FORMATS]
# Trained for real: the two legacy-BN/legacy-name convnets, the legacy-name transformer, a depthwise one.
TRAINED = ["resnet18", "densenet121", "mobilenet_v2", "vit_b_16"]


@pytest.fixture(scope="session")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Published]]:
    """Each family's file, written once per session into its own TORCH_HOME (deleted at the end: ~1 GB)."""
    made: dict[str, Published] = {}

    def get(arch: str) -> Published:
        if arch not in made:
            made[arch] = publish(FORMATS[arch], tmp_path_factory.mktemp(f"torch-{arch}"))
        return made[arch]

    yield get
    for pub in made.values():
        shutil.rmtree(pub.torch_home, ignore_errors=True)


def file_tensors(pub: Published) -> dict[str, torch.Tensor]:
    """The file's tensors under today's names, as torchvision renames them (aux heads dropped)."""
    raw = torch.load(pub.file, map_location="cpu", weights_only=True, mmap=True)
    # The fixture must reproduce the published format, or the tests below test nothing.
    assert not any(k.endswith("num_batches_tracked") for k in raw) or not pub.fmt.legacy_bn
    assert hasattr(raw, "_metadata") == (not pub.fmt.legacy_bn and pub.fmt.legacy_names is None)
    return from_published(pub.fmt, raw)


def non_head(state: dict[str, torch.Tensor], head: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.startswith(head + ".")}


def assert_holds_the_file(model: nn.Module, pub: Published) -> None:
    """Every non-head tensor is the file's (renamed); the BN counters the file lacked are there, at 0."""
    fmt = pub.fmt
    expected = non_head(file_tensors(pub), fmt.head)
    own = non_head(model.state_dict(), fmt.head)
    absent = sorted(expected.keys() - own.keys())
    assert not absent, f"{fmt.arch}: file tensors the model does not hold: {absent[:5]}"
    extra = sorted(own.keys() - expected.keys())
    assert all(k.endswith("num_batches_tracked") for k in extra), (
        f"{fmt.arch}: not from the file: {extra[:5]}"
    )
    if fmt.legacy_bn:  # the fixture dropped them, so the loader had to add them
        assert extra, f"{fmt.arch}: the model lost its num_batches_tracked buffers"
    for key in extra:
        assert own[key].item() == 0, f"{fmt.arch}: {key} = {own[key].item()}, not 0"
    different = [k for k, v in expected.items() if not torch.equal(own[k], v)]
    assert not different, f"{fmt.arch}: {len(different)} tensors differ from the file, e.g. {different[:5]}"


def assert_torchvision_layout(model: nn.Module, arch: str) -> None:
    """GoogLeNet/Inception with ImageNet weights: inputs re-normalised, no aux heads (as torchvision)."""
    if arch not in ("googlenet", "inception_v3"):
        return
    assert model.transform_input is True, f"{arch}: ImageNet weights need transform_input=True"
    for aux in ("aux1", "aux2", "AuxLogits"):
        assert getattr(model, aux, None) is None, f"{arch}: aux head {aux} is still there"
    assert not any(k.startswith(AUX_PREFIXES) for k in model.state_dict())


# --- 1. every published format loads as torchvision loads it -----------------------------------------


@pytest.mark.parametrize("arch", FAMILIES)
def test_published_file_loads_as_torchvision_loads_it(
    arch: str, published: Callable[[str], Published], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cached file gives the file's tensors under today's names, and exactly torchvision's model."""
    pub = published(arch)
    monkeypatch.setenv("TORCH_HOME", str(pub.torch_home))
    assert cache_file(arch, pub.fmt.enum) == pub.file
    with torch.no_grad():
        net = build_backbone(arch, num_classes=3, weights=pub.spec)
        assert net.head_name == pub.fmt.head
        assert net.head.out_features == 3
        assert_holds_the_file(net.model, pub)
        assert_torchvision_layout(net.model, arch)

        reference = torchvision.models.get_model(arch, weights=weights_enum(arch, pub.fmt.enum))
        if arch == "inception_v3":  # its builder refuses aux_logits=False with weights; this is its own
            reference.aux_logits, reference.AuxLogits = False, None  # branch for original_aux_logits=False
        theirs = non_head(reference.state_dict(), pub.fmt.head)
        ours = non_head(net.model.state_dict(), pub.fmt.head)
        only = sorted(ours.keys() ^ theirs.keys())
        assert not only, f"{arch}: tensors in one model only (ours vs torchvision's): {only[:5]}"
        different = [k for k in theirs if not torch.equal(ours[k], theirs[k])]
        assert not different, f"{arch}: differs from torchvision's own load: {different[:5]}"
        assert_torchvision_layout(reference, arch)  # the reference itself follows the rule we assert


@pytest.mark.parametrize("arch", FAMILIES)
def test_published_file_loads_from_a_path(
    arch: str, published: Callable[[str], Published], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same file downloaded by hand and passed as a path; the cache is empty so it cannot be used.

    A file given by path is the published one only if its sha256 starts with the prefix in its name. A real
    download does; these seeded fakes cannot, so the hash stands in here (section 6 tests the check itself).
    """
    pub = published(arch)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    monkeypatch.setattr(
        "translearn.weights.catalog.file_sha256",
        lambda path: torch.hub.HASH_REGEX.search(path.name).group(1) + "0" * 56,
    )
    elsewhere = tmp_path / "downloads" / pub.file.name
    elsewhere.parent.mkdir()
    try:
        os.link(pub.file, elsewhere)  # a copy without copying VGG's 0.5 GB
    except OSError:
        shutil.copyfile(pub.file, elsewhere)
    try:
        with torch.no_grad():
            net = build_backbone(arch, num_classes=3, weights=str(elsewhere))
    finally:
        elsewhere.unlink()  # pytest keeps tmp dirs of 3 runs: do not keep VGG's 0.5 GB with them
    with torch.no_grad():
        assert net.head_name == pub.fmt.head
        assert net.head.out_features == 3
        assert_holds_the_file(net.model, pub)
        assert_torchvision_layout(net.model, arch)


# --- 2. it trains, and frozen means the file's tensors bit for bit -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("arch", TRAINED)
def test_freeze_keeps_the_published_tensors_through_real_steps(
    arch: str, published: Callable[[str], Published], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two hot SGD steps: the head moves, every other parameter and BN buffer stays the file's."""
    pub = published(arch)
    monkeypatch.setenv("TORCH_HOME", str(pub.torch_home))
    torch.manual_seed(0)
    module = TransferModule(
        arch,
        weights=pub.spec,
        num_classes=3,
        policy=Freeze(),
        optimizer=HOT_SGD,
        scheduler=None,
        decay_norm_and_bias=True,
    )
    head = {k: v.detach().clone() for k, v in module.net.head.state_dict().items()}
    # ViT only takes 224 px: keep its batches tiny.
    n, batch, side = (4, 2, 224) if arch == "vit_b_16" else (16, 8, 64)
    trainer = tiny_trainer(epochs=1, batches=2)
    trainer.fit(
        module,
        random_loader(n=n, batch=batch, side=side),
        random_loader(n=n, batch=batch, side=side, seed=1),
    )
    assert trainer.global_step == 2
    assert_holds_the_file(module.net.model, pub)
    after = module.net.head.state_dict()
    still = [k for k, v in head.items() if torch.equal(v, after[k])]
    assert not still, f"{arch}: head tensors that did not train: {still}"


# --- 3. an enum name picks that enum's file ---------------------------------------------------------


def test_enum_name_picks_its_file_and_imagenet_picks_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """resnet50's DEFAULT is V2: with only the V1 file cached, V1 loads and ``imagenet`` names V2's file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    v1 = cache_file("resnet50", "IMAGENET1K_V1")
    assert v1.name == "resnet50-0676ba61.pth"
    assert cache_file("resnet50", "IMAGENET1K_V2").name == "resnet50-11ad3fa6.pth"
    torch.manual_seed(0)
    state = perturbed(torchvision.models.resnet50()).state_dict()
    v1.parent.mkdir(parents=True)
    torch.save(state, v1)
    with torch.no_grad():
        net = build_backbone("resnet50", num_classes=3, weights="IMAGENET1K_V1")
    own = non_head(net.model.state_dict(), "fc")
    assert sorted(own) == sorted(non_head(state, "fc"))
    assert all(torch.equal(own[k], v) for k, v in non_head(state, "fc").items())
    assert net.head.out_features == 3

    with pytest.raises(UserError) as err:
        build_backbone("resnet50", num_classes=3, weights="imagenet")
    message = str(err.value)
    assert "resnet50-11ad3fa6.pth" in message and "\n" not in message, message
    assert not half_written(tmp_path)


# --- 4. bad input: one-line UserErrors, nothing half-written ----------------------------------------


def half_written(torch_home: Path) -> list[str]:
    return [p.name for p in torch_home.rglob("*") if p.name.endswith(".partial") or ".tmp" in p.name]


def test_unknown_enum_lists_the_valid_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(UserError) as err:
        build_backbone("resnet18", num_classes=3, weights="IMAGENET1K_V9")
    message = str(err.value)
    assert "IMAGENET1K_V9" in message and "IMAGENET1K_V1" in message, message
    assert "\n" not in message, message
    assert not half_written(tmp_path)


def _other_architecture(path: Path, real: Path) -> None:
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet34().state_dict(), path)


def _truncated(path: Path, real: Path) -> None:
    data = real.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path: Path, real: Path) -> None:
    path.write_bytes(b"<html><body>502 Bad Gateway</body></html>\n" * 100)


@pytest.mark.parametrize("corrupt", [_other_architecture, _truncated, _garbage], ids=lambda f: f.__name__[1:])
def test_bad_cached_file_names_the_file_and_how_to_fetch_it_again(
    corrupt: Callable[[Path, Path], None],
    published: Callable[[str], Published],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = cache_file("resnet18", "IMAGENET1K_V1")
    cached.parent.mkdir(parents=True)
    corrupt(cached, published("resnet18").file)
    with pytest.raises(UserError) as err:
        build_backbone("resnet18", num_classes=3, weights="imagenet")
    message = str(err.value)
    assert cached.name in message and "python -m translearn.weights fetch" in message, message
    assert "\n" not in message, message
    assert not half_written(tmp_path)


# --- 5. files other tools write: training checkpoints, MMPretrain -----------------------------------
#
# Each file is built as its tool writes it, from these sources:
# * torchvision references/classification/train.py: {"model": model_without_ddp.state_dict(),
#   "optimizer", "lr_scheduler", "epoch", "args": the argparse.Namespace}, plus "model_ema" under
#   --model-ema (utils.ExponentialMovingAverage, an AveragedModel with use_buffers=True: "n_averaged" and
#   "module."-prefixed keys).
#   DeiT, ConvNeXt and MAE save {"model": ...} the same way.
# * timm's train.py: timm.utils.CheckpointSaver itself (used below), which writes "state_dict",
#   "state_dict_ema" (with --model-ema), "optimizer", "args" (argparse.Namespace), "arch", "epoch", "metric".
# * MMPretrain: ImageClassifier's state_dict() (backbone., neck., head. modules; ClsDataPreprocessor's
#   mean/std buffers are not persistent) under "state_dict", with "meta", as tools/model_converters/
#   publish_model.py leaves it. Its ResNet names its layers as torchvision does (conv1, bn1 from mmcv's
#   build_norm_layer "bn" abbreviation, layer1..4, downsample.0/.1); LinearClsHead's classifier is head.fc.


def _hot_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """One SGD step, so the optimizer has state and the EMA differs from the model."""
    model.train()
    model(torch.randn(2, 3, 64, 64)).logsumexp(dim=1).sum().backward()
    optimizer.step()
    optimizer.zero_grad()


def _references_args(*argv: str) -> argparse.Namespace:
    """A real argparse.Namespace from (a part of) references/classification/train.py's parser."""
    parser = argparse.ArgumentParser(description="PyTorch Classification Training")
    parser.add_argument("--model", default="resnet18", type=str)
    parser.add_argument("--device", default="cuda", type=str)
    parser.add_argument("--lr", default=0.1, type=float)
    parser.add_argument("--model-ema", action="store_true")
    parser.add_argument("--model-ema-decay", type=float, default=0.99998)
    parser.add_argument("--interpolation", default="bilinear", type=str)
    parser.add_argument("--val-resize-size", default=256, type=int)
    parser.add_argument("--val-crop-size", default=224, type=int)
    parser.add_argument("--weights", default=None, type=str)
    return parser.parse_args(list(argv))


def assert_holds(model: nn.Module, expected: dict[str, torch.Tensor], head: str) -> None:
    """Every non-head tensor of the model is ``expected``'s, and nothing of the model came from elsewhere."""
    own = non_head(model.state_dict(), head)
    expected = non_head(expected, head)
    assert sorted(own) == sorted(expected), sorted(own.keys() ^ expected.keys())[:5]
    different = [k for k, v in expected.items() if not torch.equal(own[k], v)]
    assert not different, f"{len(different)} tensors differ from the file, e.g. {different[:5]}"


@pytest.mark.parametrize("ema", [False, True], ids=["model", "model_ema"])
@pytest.mark.parametrize("ddp", [False, True], ids=["plain", "ddp"])
def test_a_torchvision_references_checkpoint_loads(
    ema: bool, ddp: bool, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """checkpoint.pth of torchvision's reference scripts: an argparse.Namespace inside, the weights nested."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(0)
    model = perturbed(torchvision.models.resnet18())
    args = _references_args("--model", "resnet18", "--lr", "0.5", *(["--model-ema"] if ema else []))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    lr_scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    model_ema = (
        AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.5), use_buffers=True) if ema else None
    )
    if model_ema is not None:
        model_ema.update_parameters(model)  # the first update copies; the next one averages
    _hot_step(model, optimizer)
    lr_scheduler.step()
    if model_ema is not None:
        model_ema.update_parameters(model)
    # DistributedDataParallel's own state_dict() prefixes "module."; the scripts save model_without_ddp's.
    saved_model = {f"module.{k}": v for k, v in model.state_dict().items()} if ddp else model.state_dict()
    checkpoint = {
        "model": saved_model,
        "optimizer": optimizer.state_dict(),
        "lr_scheduler": lr_scheduler.state_dict(),
        "epoch": 0,
        "args": args,
    }
    if model_ema is not None:
        checkpoint["model_ema"] = model_ema.state_dict()
    path = tmp_path / "checkpoint.pth"
    torch.save(checkpoint, path)  # utils.save_on_master

    capsys.readouterr()
    with torch.no_grad():
        net = build_backbone("resnet18", num_classes=3, weights=str(path))
    if model_ema is not None:  # timm's load_checkpoint rule: EMA weights when the file has them
        expected = {
            k.removeprefix("module."): v for k, v in model_ema.state_dict().items() if k != "n_averaged"
        }
        assert not torch.equal(expected["conv1.weight"], model.state_dict()["conv1.weight"])
    else:
        expected = model.state_dict()
    assert_holds(net.model, expected, "fc")
    out = capsys.readouterr().out
    said = [ln for ln in out.splitlines() if str(path) in ln]
    assert len(said) == 1 and ("'model_ema'" if ema else "'model'") in said[0], out


def test_a_deit_style_checkpoint_loads_the_state_dict_under_model(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """DeiT's, ConvNeXt's and MAE's published files: {"model": state_dict}, nothing else."""
    torch.manual_seed(3)
    model = perturbed(torchvision.models.resnet18())
    path = tmp_path / "deit_style.pth"
    torch.save({"model": model.state_dict()}, path)
    capsys.readouterr()
    with torch.no_grad():
        net = build_backbone("resnet18", num_classes=3, weights=str(path))
    assert_holds(net.model, model.state_dict(), "fc")
    said = [ln for ln in capsys.readouterr().out.splitlines() if str(path) in ln]
    assert len(said) == 1 and "'model'" in said[0], said


def test_the_state_dict_of_a_compiled_model_loads(tmp_path: Path) -> None:
    """torch.compile wraps the model: its state_dict keys all start with ``_orig_mod.``."""
    torch.manual_seed(4)
    model = perturbed(torchvision.models.resnet18())
    path = tmp_path / "compiled.pth"
    state = torch.compile(model).state_dict()
    assert all(k.startswith("_orig_mod.") for k in state)  # what a user of torch.compile saves
    torch.save(state, path)
    with torch.no_grad():
        net = build_backbone("resnet18", num_classes=3, weights=str(path))
    assert_holds(net.model, model.state_dict(), "fc")


def _timm_train_args(*argv: str) -> argparse.Namespace:
    """A real argparse.Namespace from (the preprocessing part of) timm's train.py parser."""
    parser = argparse.ArgumentParser(description="PyTorch ImageNet Training")
    parser.add_argument("--model", default="resnet50", type=str)
    parser.add_argument("--img-size", type=int, default=None)
    parser.add_argument("--in-chans", type=int, default=None)
    parser.add_argument("--input-size", default=None, nargs=3, type=int)
    parser.add_argument("--crop-pct", default=None, type=float)
    parser.add_argument("--mean", type=float, nargs="+", default=None)
    parser.add_argument("--std", type=float, nargs="+", default=None)
    parser.add_argument("--interpolation", default="", type=str)
    parser.add_argument("--lr", type=float, default=None)
    return parser.parse_args(list(argv))


def test_a_torchvision_references_checkpoint_brings_its_eval_preprocessing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Trained with --val-resize-size 232 --interpolation bicubic (ResNet50 V2's recipe): the run got
    translearn's default 256 bilinear and a line saying the file does not say, though its args did."""
    from translearn.weights import parse_weights, preprocessing_for

    model = torchvision.models.resnet50()
    args = _references_args("--model", "resnet50", "--val-resize-size", "232", "--interpolation", "bicubic")
    path = tmp_path / "checkpoint.pth"
    torch.save({"model": model.state_dict(), "epoch": 599, "args": args}, path)
    capsys.readouterr()
    prep = preprocessing_for(parse_weights("torchvision", "resnet50", str(path)))
    assert (prep.resize, prep.crop, prep.interpolation) == (232, 224, "bicubic"), prep
    assert prep.mean == (0.485, 0.456, 0.406) and "checkpoint's args" in prep.source, prep
    assert "does not say" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (  # every preprocessing flag given
            [
                "--mean",
                "0.5",
                "0.5",
                "0.5",
                "--std",
                "0.5",
                "0.5",
                "0.5",
                "--crop-pct",
                "0.95",
                "--img-size",
                "160",
                "--interpolation",
                "bilinear",
            ],
            (160, 168, "bilinear", (0.5, 0.5, 0.5)),
        ),
        ([], None),  # none given: resnet50's pretrained_cfg, as timm's resolve_data_config does
    ],
)
def test_a_timm_training_checkpoint_brings_its_eval_preprocessing(
    argv: list[str], expected: tuple | None, tmp_path: Path
) -> None:
    """timm's train.py evaluates with resolve_data_config(vars(args), model): its flags, else the model's."""
    import timm
    from timm.utils import CheckpointSaver

    from translearn.weights import parse_weights, preprocessing_for

    model = timm.create_model("resnet50", num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    args = _timm_train_args("--model", "resnet50", *argv)
    saver = CheckpointSaver(
        model, optimizer, args=args, checkpoint_dir=str(tmp_path), recovery_dir=str(tmp_path)
    )
    saver.save_checkpoint(0, metric=0.5)
    prep = preprocessing_for(parse_weights("timm", "resnet50", str(tmp_path / "last.pth.tar")))
    if expected is None:
        cfg = timm.models.get_pretrained_cfg("resnet50")
        crop = cfg.input_size[-1]
        expected = (crop, int(crop / cfg.crop_pct), cfg.interpolation, tuple(cfg.mean))
    assert (prep.crop, prep.resize, prep.interpolation) == expected[:3], prep
    assert prep.mean == pytest.approx(expected[3]) and "checkpoint's args" in prep.source, prep


@pytest.mark.parametrize("library", ["timm", "torchvision"])
@pytest.mark.parametrize("ema", [True, False], ids=["with-ema", "no-ema"])
def test_a_timm_training_checkpoint_loads_its_ema_weights_and_says_which(
    library: str, ema: bool, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """last.pth.tar of timm's train.py, written by timm's own CheckpointSaver (args: a Namespace)."""
    import timm
    from timm.utils import CheckpointSaver, ModelEmaV3

    torch.manual_seed(1)
    model = perturbed(timm.create_model("resnet18"))
    model_ema = ModelEmaV3(model, decay=0.5) if ema else None
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    _hot_step(model, optimizer)
    if model_ema is not None:
        model_ema.update(model)
    args = argparse.Namespace(model="resnet18", lr=0.5, epochs=1, model_ema=ema, device="cpu")
    saver = CheckpointSaver(
        model,
        optimizer,
        args=args,
        model_ema=model_ema,
        checkpoint_dir=str(tmp_path),
        recovery_dir=str(tmp_path),
    )
    saver.save_checkpoint(0, metric=0.5)
    path = tmp_path / "last.pth.tar"
    raw = torch.load(path, map_location="cpu", weights_only=False)
    assert isinstance(raw["args"], argparse.Namespace) and ("state_dict_ema" in raw) == ema  # the real format

    capsys.readouterr()
    with torch.no_grad():
        net = build_backbone("resnet18", num_classes=3, weights=str(path), library=library)
    key = "state_dict_ema" if ema else "state_dict"
    if ema:
        assert not torch.equal(raw["state_dict_ema"]["conv1.weight"], raw["state_dict"]["conv1.weight"])
    assert_holds(net.model, raw[key], "fc")
    out = capsys.readouterr().out
    said = [ln for ln in out.splitlines() if str(path) in ln]
    assert len(said) == 1 and f"'{key}'" in said[0], out
    if ema:
        assert "'state_dict'" in said[0], said[0]  # the one not loaded, and how to use it instead


class _ImageClassifier(nn.Module):
    """MMPretrain's ImageClassifier as its state_dict() sees it: backbone, a parameter-free neck
    (GlobalAveragePooling) and a LinearClsHead whose classifier is ``fc``."""

    def __init__(self, backbone: nn.Module, classes: int) -> None:
        super().__init__()
        features = backbone.fc.in_features
        backbone.fc = nn.Identity()  # MMPretrain's ResNet has no classifier of its own
        self.backbone = backbone
        self.neck = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Module()
        self.head.fc = nn.Linear(features, classes)


@pytest.mark.parametrize("library", ["torchvision", "timm"])
def test_an_mmpretrain_checkpoint_loads_its_backbone(
    library: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """resnet18_8xb32_in1k.pth as MMPretrain publishes it: backbone.* is torchvision's resnet18."""
    torch.manual_seed(2)
    classifier = perturbed(_ImageClassifier(torchvision.models.resnet18(), classes=3))
    state = (
        classifier.state_dict()
    )  # its _metadata is keyed by "backbone.…" module names, as mmengine keeps it
    meta = {
        "epoch": 100,
        "iter": 500500,
        "mmengine_version": "0.10.4",
        "dataset_meta": {"classes": ["a", "b", "c"]},
    }
    path = tmp_path / "resnet18_8xb32_in1k_20210831-fbbb1da6.pth"
    torch.save({"meta": meta, "state_dict": state}, path)

    capsys.readouterr()
    with torch.no_grad():  # 3 classes, as the file's head: it is still MMPretrain's head, and is replaced
        net = build_backbone("resnet18", num_classes=3, weights=str(path), library=library)
    expected = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    assert_holds(net.model, expected, "fc")
    assert not torch.equal(net.model.fc.weight, state["head.fc.weight"])
    out = capsys.readouterr().out
    said = [ln for ln in out.splitlines() if str(path) in ln]
    assert len(said) == 1 and "MMPretrain" in said[0] and "backbone." in said[0] and "head." in said[0], out


MMPRETRAIN_RECORD = Path(__file__).parent / "data" / "mmpretrain_resnetv1.json"


@pytest.mark.parametrize(
    ("model", "library", "arch"),
    [
        ("ResNet-50", "torchvision", "resnet50"),
        ("ResNetV1d-18", "timm", "resnet18d"),
        ("ResNetV1d-50", "timm", "resnet50d"),
        ("ResNetV1c-50", "timm", "resnet50c"),
    ],
)
def test_an_mmpretrain_resnet_gives_mmpretrains_own_features(
    model: str, library: str, arch: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Against MMPretrain's own code (its features for these seeded weights, recorded by
    tests/data/make_mmpretrain_resnetv1.py), so a tensor put in the wrong layer shows. The deep-stem
    ResNetV1c/V1d (resnetv1d50_8xb32_in1k.pth and the like) were "does not fit": stem.N.conv/bn, and V1d's
    stride-1 shortcuts without a pool."""
    record = json.loads(MMPRETRAIN_RECORD.read_text())
    assert record["input_seed"] == INPUT_SEED
    entry = record["models"][model]
    path = tmp_path / f"{model}.pth"
    torch.save({"meta": {"mmengine_version": "0.10.7"}, "state_dict": seeded_state(entry["keys"])}, path)
    capsys.readouterr()
    net = build_backbone(arch, num_classes=1000, weights=str(path), library=library).model.eval()
    if library == "timm":
        net.reset_classifier(0)
    else:
        net.fc = nn.Identity()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(INPUT_SEED))
    with torch.no_grad():
        features = net(x)[0]
    expected = torch.tensor(entry["features"])
    # Float rounding differs with the thread count (~3e-6 of the largest feature); a tensor in the wrong
    # layer moves the features by their own size.
    error = float((features - expected).abs().max() / expected.abs().max())
    assert error < 1e-5, error
    said = [ln for ln in capsys.readouterr().out.splitlines() if str(path) in ln]
    assert len(said) == 1 and "MMPretrain" in said[0], said
    if model.startswith("ResNetV1"):
        kind = model[len("ResNetV1")]
        assert f"ResNetV1{kind} (deep stem)" in said[0] and f"resnet*{kind}" in said[0], said[0]


def test_a_deep_stem_resnet_file_for_a_torchvision_resnet_names_timms_network(tmp_path: Path) -> None:
    """torchvision's resnets have one 7x7 conv1: the misfit says which network the file holds."""
    record = json.loads(MMPRETRAIN_RECORD.read_text())
    path = tmp_path / "resnetv1d18.pth"
    torch.save({"state_dict": seeded_state(record["models"]["ResNetV1d-18"]["keys"])}, path)
    with pytest.raises(UserError) as err:
        build_backbone("resnet18", num_classes=3, weights=str(path))
    message = str(err.value)
    assert "\n" not in message and "deep stem" in message, message
    assert "model.library=timm model.backbone=resnet18d" in message, message


# --- 6. a file under a published name is that file only if its hash says so --------------------------


def test_a_published_name_on_other_contents_loads_as_an_unknown_file(
    published: Callable[[str], Published],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """googlenet-1378be20.pth whose sha256 does not start with 1378be20: not GoogLeNet's published weights, so
    no transform_input and no published preprocessing; a line says the name does not match the contents."""
    from translearn.weights import parse_weights, preprocessing_for

    pub = published("googlenet")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    elsewhere = tmp_path / "downloads" / pub.file.name
    elsewhere.parent.mkdir()
    shutil.copyfile(pub.file, elsewhere)
    capsys.readouterr()

    prep = preprocessing_for(parse_weights("torchvision", "googlenet", str(elsewhere)))
    assert prep is not None and prep.source.startswith("translearn default"), prep
    assert "GoogLeNet_Weights" not in prep.source
    with torch.no_grad():
        net = build_backbone("googlenet", num_classes=3, weights=str(elsewhere))
    assert net.model.transform_input is False  # built as for any googlenet file, not as the published one
    assert_holds(net.model, file_tensors(pub), "fc")
    err = capsys.readouterr().err
    said = [ln for ln in err.splitlines() if str(elsewhere) in ln]
    assert len(said) == 1 and "sha256" in said[0] and "1378be20" in said[0], err


def test_a_published_name_whose_hash_matches_is_the_published_file(
    published: Callable[[str], Published],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    """The same file under a name that carries its real hash prefix is the published weights (the enum's URL
    is pointed at that name: no fake file can match GoogLeNet's real hash)."""
    from translearn.weights import parse_weights, preprocessing_for

    pub = published("googlenet")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    digest = hashlib.sha256(pub.file.read_bytes()).hexdigest()
    name = f"googlenet-{digest[:8]}.pth"
    enum = weights_enum("googlenet", "IMAGENET1K_V1")
    monkeypatch.setattr(enum.value, "url", f"https://download.pytorch.org/models/{name}")
    elsewhere = tmp_path / "downloads" / name
    elsewhere.parent.mkdir()
    shutil.copyfile(pub.file, elsewhere)
    capsys.readouterr()

    prep = preprocessing_for(parse_weights("torchvision", "googlenet", str(elsewhere)))
    assert prep is not None and prep.source.startswith("GoogLeNet_Weights.IMAGENET1K_V1"), prep
    with torch.no_grad():
        net = build_backbone("googlenet", num_classes=3, weights=str(elsewhere))
    assert_torchvision_layout(net.model, "googlenet")  # transform_input=True: loaded as published
    assert_holds(net.model, file_tensors(pub), "fc")
    assert str(elsewhere) not in capsys.readouterr().err
