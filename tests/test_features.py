"""The frozen-feature cache: exact where it claims to be, keyed on what changes features, never stale."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from translearn.errors import UserError
from translearn.features import CachedFeatures, PhasedFeatures, training_inputs
from translearn.train import run


def head_of(run_dir: Path) -> dict[str, torch.Tensor]:
    state = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)[
        "state_dict"
    ]
    return {k: v for k, v in state.items() if k.startswith("net.model.fc.")}


def cache_folders(cache_dir: Path) -> list[Path]:
    folder = cache_dir / "features"
    return (
        sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if folder.exists()
        else []
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("size", "precision"),
    [
        (32, "32-true"),
        (112, "32-true"),  # 112 px and up: the cache is built in channels-last
        # The build infers under the run's autocast: an fp32 build gave head weights 1.3e-4 apart and
        # another val accuracy (0.205 against 0.210).
        (32, "bf16-mixed"),
    ],
)
def test_cached_views_give_the_uncached_run_exactly(
    compose_cfg, tmp_path: Path, size: int, precision: str
) -> None:
    """With one stored view per epoch the cached run sees the uncached run's crops, batches and order.

    Weights with pretrained-like BatchNorm statistics: the build folds BatchNorm into the convolutions,
    which fresh statistics (mean 0, var 1) would leave unchanged.
    """
    import torchvision

    torch.manual_seed(0)
    resnet = torchvision.models.resnet18()
    _randomise_batchnorm(resnet)
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    common = [
        f"model.weights={tmp_path / 'resnet18.pth'}",
        "strategy=freeze",
        "trainer.max_epochs=2",
        "strategy.cache_views=2",
        f"paths.cache_dir={tmp_path / 'c'}",
        f"dataset.image_size={size}",
        f"trainer.precision={precision}",
    ]
    plain = run(compose_cfg(*common, "strategy.cache_features=false", run_dir=tmp_path / "plain"))
    cached = run(compose_cfg(*common, "strategy.cache_features=true", run_dir=tmp_path / "cached"))
    assert cached["feature_cache"] is True and plain["feature_cache"] is False
    assert cached["train_inputs"] == plain["train_inputs"] == "random crops"
    a, b = head_of(tmp_path / "plain"), head_of(tmp_path / "cached")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert cached["val_acc"] == pytest.approx(plain["val_acc"]) and cached["test_acc"] == pytest.approx(
        plain["test_acc"]
    )
    assert len(cache_folders(tmp_path / "c")) == 1
    if precision != "32-true":  # bf16 features are never served to an fp32 run, nor the other way round
        run(compose_cfg(*common[:-1], "strategy.cache_features=true", run_dir=tmp_path / "fp32"))
        assert len(cache_folders(tmp_path / "c")) == 2
    # The build's layout is not left behind: the checkpoint's frozen convolutions are in the training's
    # layout (NCHW here, except under bf16, where model.channels_last=auto trains in NHWC at any size).
    state = torch.load(tmp_path / "cached/checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    layout = torch.channels_last if precision.startswith("bf16") else torch.contiguous_format
    assert state["state_dict"]["net.model.conv1.weight"].is_contiguous(memory_format=layout)


@pytest.mark.heavy
@pytest.mark.slow
def test_auto_caches_exactly_where_it_is_exact_and_says_so(compose_cfg, tmp_path: Path, caplog) -> None:
    cache = f"paths.cache_dir={tmp_path / 'c'}"
    assert run(compose_cfg("strategy=freeze", cache, run_dir=tmp_path / "a"))["feature_cache"] is True
    assert (
        "feature cache on: the head's input stored once, training images seen through the eval" in caplog.text
    )
    # Said when the build starts, not only after it (at 224 px, 30k images were minutes of silence).
    started = caplog.text.index("building the feature cache once: ")
    assert started < caplog.text.index("feature cache on:")
    caplog.clear()
    run(compose_cfg("strategy=freeze", cache, run_dir=tmp_path / "again"))
    assert "building the feature cache" not in caplog.text  # built: only read
    for overrides in (
        ["strategy=finetune"],
        ["strategy=freeze", "strategy.bn=train"],
        ["strategy=gradual"],
    ):
        caplog.clear()
        metrics = run(
            compose_cfg(*overrides, cache, run_dir=tmp_path / "_".join(overrides).replace("=", "-"))
        )
        assert metrics["feature_cache"] is False, overrides
        assert "feature cache off:" in caplog.text


@pytest.mark.heavy
@pytest.mark.slow
def test_first_k_caches_its_frozen_prefix_exactly(compose_cfg, tmp_path: Path, caplog) -> None:
    """k=2: the stem and layer1 run once per image; layer2..head train on their stored output as uncached."""
    common = [
        "strategy=first_k", "strategy.k=2", "trainer.max_epochs=2", "strategy.cache_views=2",
        f"paths.cache_dir={tmp_path / 'c'}", "model.optimizer.lr=0.01",
    ]  # fmt: skip
    plain = run(compose_cfg(*common, "strategy.cache_features=false", run_dir=tmp_path / "plain"))
    cached = run(compose_cfg(*common, run_dir=tmp_path / "cached"))
    assert cached["feature_cache"] is True and plain["feature_cache"] is False
    assert cached["train_inputs"] == plain["train_inputs"] == "random crops"
    assert "feature cache on: the output of layer1 stored once" in caplog.text
    a, b = (
        torch.load(d / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        for d in (tmp_path / "plain", tmp_path / "cached")
    )
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=2e-4), key
    (folder,) = cache_folders(tmp_path / "c")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["arrays"]["train-0"] == [150, 64, 8, 8]  # layer1's output at 32 px, stored per image


@pytest.mark.heavy
@pytest.mark.slow
def test_gradual_reads_features_until_its_first_unfreeze_then_images(
    compose_cfg, tmp_path: Path, caplog
) -> None:
    """Head-only epochs 0-1 from the cache, then layer4 unfreezes on images: the same run as uncached."""
    common = [
        "strategy=gradual", "strategy.start=2", "trainer.max_epochs=3", "strategy.cache_views=2",
        f"paths.cache_dir={tmp_path / 'c'}", "model.optimizer.lr=0.01",
    ]  # fmt: skip
    plain = run(compose_cfg(*common, "strategy.cache_features=false", run_dir=tmp_path / "plain"))
    cached = run(compose_cfg(*common, run_dir=tmp_path / "cached"))  # auto: two head-only epochs pay
    assert cached["feature_cache"] is True and plain["feature_cache"] is False
    assert cached["train_inputs"] == plain["train_inputs"] == "random crops"
    assert "feature cache on for epochs 0-1, before the first unfreeze (images after)" in caplog.text
    a, b = (
        torch.load(d / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
        for d in (tmp_path / "plain", tmp_path / "cached")
    )
    for key in a:
        assert torch.allclose(a[key].float(), b[key].float(), atol=2e-4), key
    assert cached["test_acc"] == pytest.approx(plain["test_acc"], abs=0.01)

    caplog.clear()
    one = run(compose_cfg("strategy=gradual", "strategy.start=1", *common[2:], run_dir=tmp_path / "one"))
    assert one["feature_cache"] is False
    assert "caching one head-only epoch costs as much as it saves" in caplog.text


def test_a_net_whose_forward_is_not_a_chain_of_stages_is_not_cached(
    compose_cfg, tmp_path: Path, caplog
) -> None:
    """timm's ViT adds its class token and position embedding in forward: its stem cannot be skipped."""
    cfg = compose_cfg(
        "model.library=timm", "model.backbone=vit_tiny_patch16_224", "strategy=first_k", "strategy.k=2",
        "dataset.image_size=224", f"paths.cache_dir={tmp_path / 'c'}",
    )  # fmt: skip
    metrics = run(cfg)
    assert metrics["feature_cache"] is False
    assert "feature cache off: vit_tiny_patch16_224 cannot be cached after stage 2" in caplog.text
    assert cache_folders(tmp_path / "c") == []  # nothing half-built left behind


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        (["strategy=finetune"], "trains the stem"),
        (["strategy=freeze", "strategy.bn=train"], "adapts BatchNorm statistics"),
        (
            ["strategy=freeze", "model.backbone=squeezenet1_0"],
            "its head (classifier.1) is not its last operation",
        ),
    ],
)
def test_cache_true_where_it_is_not_exact_is_a_one_line_error(
    compose_cfg, tmp_path: Path, overrides: list[str], why: str
) -> None:
    cfg = compose_cfg(*overrides, "strategy.cache_features=true", f"paths.cache_dir={tmp_path / 'c'}")
    with pytest.raises(UserError) as err:
        run(cfg)
    assert why in str(err.value) and "\n" not in str(err.value)


@pytest.mark.heavy
@pytest.mark.slow
def test_the_key_covers_the_transform_and_a_corrupt_cache_is_rebuilt(
    compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cache_dir = tmp_path / "c"
    common = ["strategy=freeze", f"paths.cache_dir={cache_dir}"]
    first = run(compose_cfg(*common, run_dir=tmp_path / "1"))
    (folder,) = cache_folders(cache_dir)
    stamp = (folder / "meta.json").stat().st_mtime_ns
    run(compose_cfg(*common, run_dir=tmp_path / "2"))  # same everything: reused, not rebuilt
    assert cache_folders(cache_dir) == [folder] and (folder / "meta.json").stat().st_mtime_ns == stamp
    run(compose_cfg(*common, "dataset.image_size=40", run_dir=tmp_path / "3"))  # another transform
    run(compose_cfg(*common, "dataset.color=gray", run_dir=tmp_path / "4"))  # another colour mode
    assert len(cache_folders(cache_dir)) == 3

    array = folder / "images.npy"
    array.write_bytes(array.read_bytes()[:200])  # cut short, as a killed job would leave it
    capsys.readouterr()
    again = run(compose_cfg(*common, run_dir=tmp_path / "5"))
    assert f"translearn: warning: feature cache {folder} is incomplete or corrupt; rebuilding" in (
        capsys.readouterr().err
    )
    assert again["best_val_acc"] == first["best_val_acc"]
    meta = json.loads((folder / "meta.json").read_text())
    # One row per image file (150 training, 200 val, 200 test of the target task), ResNet18's 512 features
    assert meta["arrays"] == {"images": [550, 512]} and len(meta["images"]) == 550


@pytest.mark.slow
def test_a_seed_sweep_shares_one_build_and_each_seed_trains_as_uncached(
    compose_cfg, tmp_path: Path, caplog
) -> None:
    """One view is the eval transform, a function of the file alone: seeds, which redraw a random split,
    share one build (each seed built its own), and a seed whose split differs from the builder's trains
    exactly as on a cache of its own. Augmented views depend on the seed: there each seed builds its own."""
    import torchvision

    import publishers
    from translearn.data.imagefolder import ImageFolderDataModule

    root = publishers.imagefolder(tmp_path / "data", counts={"ant": 10, "bee": 10, "cat": 10})
    torch.manual_seed(0)  # pretrained weights, as a sweep's cells share them (weights=none draws per seed)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "resnet18.pth")
    cache = tmp_path / "c"
    common = [
        "dataset=imagefolder", f"dataset.root={root}", "dataset.split=random", "dataset.val_fraction=0.3",
        "strategy=freeze", "trainer.max_epochs=2", "model.optimizer.lr=0.05",
        f"model.weights={tmp_path / 'resnet18.pth'}", f"paths.cache_dir={cache}",
    ]  # fmt: skip

    def train_files(seed: int) -> set[str]:
        dm = ImageFolderDataModule(
            root, split="random", val_fraction=0.3, seed=seed, index_dir=tmp_path / "index", num_workers=0
        )
        return {path for path, _ in dm.index.samples["train"]}

    assert train_files(0) != train_files(1)  # the seeds really split otherwise
    run(compose_cfg(*common, "seed=0", run_dir=tmp_path / "s0"))
    (folder,) = cache_folders(cache)
    caplog.clear()
    cached = run(compose_cfg(*common, "seed=1", run_dir=tmp_path / "s1"))
    assert cached["feature_cache"] is True and "building the feature cache" not in caplog.text
    assert cache_folders(cache) == [folder]
    # Seed 1 on a cache of its own: the shared rows serve its split's items as its own build does.
    own = run(
        compose_cfg(*common[:-1], f"paths.cache_dir={tmp_path / 'own'}", "seed=1", run_dir=tmp_path / "o1")
    )
    a, b = head_of(tmp_path / "o1"), head_of(tmp_path / "s1")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    assert cached["best_val_acc"] == own["best_val_acc"] and cached["split_sizes"] == own["split_sizes"]

    for seed in (0, 1):  # two augmented views: another folder per seed
        run(compose_cfg(*common, f"seed={seed}", "strategy.cache_views=2", run_dir=tmp_path / f"v{seed}"))
    assert len(cache_folders(cache)) == 3


def test_a_changed_image_leaves_no_dead_feature_cache_behind(
    compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A cache whose key covers a file that changed can never be used again; it stayed on disk (audit 7)."""
    import publishers

    cache_dir = tmp_path / "c"

    def train(root: Path, name: str) -> None:
        run(compose_cfg(
            "dataset=imagefolder", f"dataset.root={root}", "strategy=freeze", "model.weights=none",
            f"paths.cache_dir={cache_dir}", run_dir=tmp_path / name,
        ))  # fmt: skip

    a, b = publishers.imagefolder(tmp_path / "a"), publishers.imagefolder(tmp_path / "b")
    train(a, "a1")
    (old,) = cache_folders(cache_dir)
    train(b, "b1")
    (other,) = [f for f in cache_folders(cache_dir) if f != old]
    changed = json.loads((old / "sources.json").read_text())[0][0]
    with open(changed, "ab") as f:  # a byte more: the same pixels, another size, so another key
        f.write(b"\0")
    capsys.readouterr()
    train(a, "a2")
    assert "removed 1 feature cache(s) whose files changed since" in capsys.readouterr().out
    assert not old.exists() and other.exists()  # b's files are as they were: its cache stays
    assert len(cache_folders(cache_dir)) == 2


def test_a_cache_in_an_older_layout_goes_at_the_next_build_and_a_newer_one_stays(
    compose_cfg, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A new layout (``features.VERSION``) is never read again by this translearn: those folders stayed for
    good, as their files never change. A newer layout belongs to a newer translearn sharing the folder."""
    from translearn import features
    from translearn.storage import file_stats, write_sources

    folder = tmp_path / "c" / "features"
    unchanged = tmp_path / "image.png"
    unchanged.write_bytes(b"pixels")
    for name, meta in (("old", {"key": "old", "splits": {}}), ("newer", {"version": features.VERSION + 1})):
        (folder / name).mkdir(parents=True)
        (folder / name / "meta.json").write_text(json.dumps(meta))
        (folder / name / "train-0.npy").write_bytes(b"\0" * 1000)
        write_sources(folder / name, file_stats([unchanged]))  # its files as they were: not stale
    capsys.readouterr()
    assert run(compose_cfg("strategy=freeze", f"paths.cache_dir={tmp_path / 'c'}"))["feature_cache"] is True
    out = capsys.readouterr().out
    assert "removed 1 feature cache(s) in an older layout that this version no longer reads" in out
    assert "whose files changed since" not in out
    (built,) = [f for f in cache_folders(tmp_path / "c") if f.name not in ("old", "newer")]
    assert json.loads((built / "meta.json").read_text())["version"] == features.VERSION
    assert not (folder / "old").exists() and (folder / "newer").is_dir() and unchanged.exists()


def test_building_the_cache_leaves_every_module_in_the_mode_it_was_in(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    """Frozen BatchNorm stays in eval mode after a fresh build (Lightning's summary counted it in train
    mode), and the frozen tensors stay bit for bit."""
    from translearn import features

    seen: dict[str, Any] = {}
    build = features.maybe_cache

    def recorded(mode: str, module: Any, *args: Any) -> Any:
        seen["before"] = {name: m.training for name, m in module.named_modules()}
        state = {k: v.clone() for k, v in module.net.state_dict().items()}
        out = build(mode, module, *args)
        seen["after"] = {name: m.training for name, m in module.named_modules()}
        seen["changed"] = [k for k, v in state.items() if not torch.equal(v, module.net.state_dict()[k])]
        return out

    monkeypatch.setattr(features, "maybe_cache", recorded)
    cfg = compose_cfg("strategy=freeze", "strategy.cache_features=true", f"paths.cache_dir={tmp_path / 'c'}")
    assert run(cfg)["feature_cache"] is True
    assert not seen["before"]["net.model.bn1"] and seen["before"]["net.model.fc"]  # the plan's modes
    assert seen["after"] == seen["before"]
    assert seen["changed"] == []


def test_a_full_disk_during_the_build_is_one_line_and_leaves_no_partial(
    compose_cfg, tmp_path: Path, monkeypatch
) -> None:
    """The stored arrays' space is reserved before they are mapped: a full disk is ENOSPC there, not a
    SIGBUS at the first write to a page the disk cannot back."""
    import errno
    import os

    def full(fd: int, offset: int, size: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    cache = tmp_path / "c"
    cfg = compose_cfg("strategy=freeze", "strategy.cache_features=true", f"paths.cache_dir={cache}")
    with pytest.raises(UserError) as err:
        run(cfg)
    message = str(err.value)
    assert message.startswith(f"cannot write the feature cache in {cache / 'features'}: no space left on the")
    assert "(needs ~1 MB); free space or set paths.cache_dir=DIR" in message and "\n" not in message
    assert [p.name for p in (cache / "features").iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.heavy
def test_float16_and_views_validation(compose_cfg, tmp_path: Path) -> None:
    cfg = compose_cfg("strategy=freeze", "strategy.cache_views=0", f"paths.cache_dir={tmp_path / 'c'}")
    with pytest.raises(UserError, match="cache_views must be >= 1"):
        run(cfg)
    metrics = run(
        compose_cfg(
            "strategy=freeze",
            "strategy.cache_dtype=float16",
            f"paths.cache_dir={tmp_path / 'c'}",
            run_dir=tmp_path / "h",
        )
    )
    assert metrics["feature_cache"] is True


def test_metrics_name_what_the_trained_layers_saw_of_the_training_images() -> None:
    """The report warns when strategies trained on different inputs; this is what it reads."""

    def cached(cls: type, views: int, until: float = float("inf")) -> Any:
        data = cls.__new__(cls)
        data.__dict__.update(views=views, until=until)
        return data

    assert training_inputs(object(), 10) == "random crops"  # the images themselves
    assert training_inputs(cached(CachedFeatures, 1), 10) == "eval transform"
    assert training_inputs(cached(CachedFeatures, 1), 1) == "eval transform"  # epoch 0 would be a crop
    assert training_inputs(cached(CachedFeatures, 4), 10) == "4 cached views"  # views repeat
    assert training_inputs(cached(CachedFeatures, 10), 10) == "random crops"  # the uncached run's crops
    assert training_inputs(cached(PhasedFeatures, 1, 4), 10) == "eval transform before the first unfreeze"
    # gradual reads the cache only before its first unfreeze: 2 views cover 2 head-only epochs exactly
    assert training_inputs(cached(PhasedFeatures, 2, 2), 3) == "random crops"
    assert training_inputs(cached(PhasedFeatures, 2, 4), 10) == "2 cached views before the first unfreeze"


def test_the_build_stops_each_pass_at_the_cut_after_checking_it_on_the_first_batch() -> None:
    """first_k k=1: after the first (whole, checked) pass, nothing above the stem runs for the cache."""
    from torch.utils.data import DataLoader, TensorDataset

    from translearn.backbones import build_backbone
    from translearn.features import _check_replay, _frozen_outputs

    torch.manual_seed(0)
    net = build_backbone("resnet18", 3, "none").eval()
    images = torch.randn(12, 3, 32, 32)
    loader = DataLoader(TensorDataset(images, torch.zeros(12)), batch_size=4)
    ran = []
    net.model.layer4.register_forward_hook(lambda *_: ran.append(1))
    out = list(_frozen_outputs(net, 1, loader, torch.device("cpu")))
    assert [logits is not None for _, logits in out] == [True, False, False]
    assert len(ran) == 1  # layer4 ran for the first batch only
    stem_end = net.model.get_submodule(net.stages[0].modules[-1])
    whole = []
    stem_end.register_forward_hook(lambda _m, _a, output: whole.append(output.clone()))
    with torch.no_grad():
        net(images)  # the stem's output in one uncut pass (a copy: an in-place ReLU follows it)
    assert torch.equal(torch.cat([feats for feats, _ in out]), whole[-1])
    assert torch.allclose(out[0][1], net(images[:4]), atol=1e-6)
    _check_replay(net, 1, *out[0])  # the rest of the net, run from the stored stem output, agrees


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Pretrained-like statistics: with a fresh BatchNorm (mean 0, var 1, weight 1) folding is a no-op."""
    generator = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=generator) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=generator) * 2 + 0.1)
            m.weight.data.copy_(torch.randn(n, generator=generator))
            m.bias.data.copy_(torch.randn(n, generator=generator))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_folding_batchnorm_for_the_build_keeps_outputs_and_module_names_and_leaves_the_net_alone(
    layout: torch.memory_format,
) -> None:
    from translearn.backbones import build_backbone
    from translearn.features import fold_batchnorm

    torch.manual_seed(0)
    net = build_backbone("resnet18", 3, "none").eval()
    _randomise_batchnorm(net.model)
    net.to(memory_format=layout)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net).to(memory_format=layout)
    assert folded is not net
    kinds = [type(m).__name__ for m in folded.model.modules()]
    assert "BatchNorm2d" not in kinds and kinds.count("Conv2d") == 20  # all 20 conv → BN pairs folded
    # The original keeps its BatchNorms and every tensor bit for bit (checkpoints hold it).
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.model.modules()) == 20
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # The stages' module names still resolve in the copy: the recorder hooks and SkipFrozen use them.
    for stage in net.stages:
        for name in stage.modules:
            folded.model.get_submodule(name)
    x = torch.randn(4, 3, 48, 48).contiguous(memory_format=layout)
    with torch.no_grad():
        want, got = net(x), folded(x)
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), (got - want).abs().max()


def test_folding_skips_batchnorms_it_cannot_fold_exactly_and_nets_fx_cannot_trace() -> None:
    from types import SimpleNamespace

    from torch import nn

    from translearn.features import fold_batchnorm

    class Mixed(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)  # foldable
            self.b, self.bn_b = nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)  # b's output read twice
            self.c, self.bn_c = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)  # bn_c runs twice: shared

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.bn_a(self.a(x))
            b = self.b(x)
            x = self.bn_b(b) + b
            return self.bn_c(self.bn_c(self.c(x)))

    class Branchy(Mixed):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum() > 0:  # data-dependent: torch.fx cannot trace it
                return self.bn_a(self.a(x))
            return x

    model = Mixed().eval()
    _randomise_batchnorm(model)
    net = nn.Module()
    net.model = model
    folded = fold_batchnorm(net)
    names = {name: type(m).__name__ for name, m in folded.model.named_children()}
    assert names["bn_a"] == "Identity"  # folded into a
    assert names["bn_b"] == names["bn_c"] == "BatchNorm2d"  # left alone
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(folded.model(x), model(x), rtol=1e-4, atol=1e-5)
    untraceable = SimpleNamespace(model=Branchy().eval())
    assert fold_batchnorm(untraceable) is untraceable


def test_the_build_infers_in_smaller_batches_on_a_cpu_only_where_images_are_large() -> None:
    from translearn.features import build_batch

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert [build_batch(32, crop, cpu) for crop in (32, 64, 112, 160, 224, 448)] == [32, 32, 32, 15, 8, 2]
    assert build_batch(4, 224, cpu) == 4  # never more than the training batch
    assert build_batch(32, 224, gpu) == 32
    # The claim it rests on: the frozen part's output for an image does not depend on its batch.
    from translearn.backbones import build_backbone

    torch.manual_seed(0)
    net = build_backbone("resnet18", 3, "none").eval()
    _randomise_batchnorm(net.model)
    images = torch.randn(8, 3, 64, 64)
    with torch.no_grad():
        whole = net(images)
        pieces = torch.cat([net(images[i : i + 2]) for i in range(0, 8, 2)])
    assert torch.allclose(whole, pieces, rtol=1e-5, atol=1e-5)


def test_the_build_stats_each_image_file_once(compose_cfg, tmp_path: Path, monkeypatch) -> None:
    """The key and ``sources.json`` come from one stat per file: the build stated every file twice (a
    network disk's round trip each), and a file changed between the two was keyed otherwise than recorded."""
    import os
    from collections import Counter

    from translearn import features

    counts: Counter[str] = Counter()
    real_stat, build = os.stat, features.build_cache

    def counting(path: Any, *args: Any, **kwargs: Any) -> Any:
        counts[os.fspath(path)] += 1
        return real_stat(path, *args, **kwargs)

    def counted(*args: Any, **kwargs: Any) -> Any:
        monkeypatch.setattr(os, "stat", counting)
        try:
            return build(*args, **kwargs)
        finally:
            monkeypatch.setattr(os, "stat", real_stat)

    monkeypatch.setattr(features, "build_cache", counted)
    cache = tmp_path / "c"
    cfg = compose_cfg("strategy=freeze", "strategy.cache_features=true", f"paths.cache_dir={cache}")
    assert run(cfg)["feature_cache"] is True
    (folder,) = cache_folders(cache)
    sources = json.loads((folder / "sources.json").read_text())
    assert len(sources) > 100
    assert Counter(counts[path] for path, _, _ in sources) == Counter({1: len(sources)})
