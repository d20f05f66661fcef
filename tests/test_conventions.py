"""Conventions: augmentation knobs, progress bars, kagglehub downloads, params/* in the CSV log,
optional extras that fail in one line, and the package's console scripts and license."""

from __future__ import annotations

import csv
import importlib
import io
import sys
import types
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from pytorch_lightning.callbacks import RichProgressBar, TQDMProgressBar
from torchvision.transforms import v2

import publishers
from translearn import callbacks, extras, progress
from translearn.config import compose_config, instantiate
from translearn.data import download, verify
from translearn.data.base import ImageDataModule
from translearn.data.dogs_vs_cats import DogsVsCatsDataModule
from translearn.data.simpsons import SimpsonsDataModule
from translearn.errors import UserError
from translearn.train import run

REPO = Path(__file__).resolve().parents[1]


# --- augmentation knobs -------------------------------------------------------------------------------


def _left_bright() -> Image.Image:
    """White on the left half, black on the right: a flip is unmistakable."""
    image = Image.new("RGB", (32, 32))
    image.paste((255, 255, 255), (0, 0, 16, 32))
    return image


def _train_transform(tmp_path: Path, **knobs) -> v2.Compose:
    # scale and ratio 1: RandomResizedCrop takes the whole square image, so only the flip is random.
    settings = {"image_size": 16, "resize_ratio": 1.0, "crop_scale": [1.0, 1.0], "crop_ratio": [1.0, 1.0]}
    return ImageDataModule(tmp_path, **{**settings, **knobs}).transform(train=True)


def _flipped(transform: v2.Compose, seeds: range) -> list[bool]:
    image, flips = _left_bright(), []
    for seed in seeds:
        torch.manual_seed(seed)
        x = transform(image)
        left, right = x[:, :, :8].mean(), x[:, :, 8:].mean()
        assert left != right
        flips.append(bool(left < right))
    return flips


def test_hflip_false_never_flips_and_true_flips_about_half_the_time(tmp_path: Path) -> None:
    assert not any(_flipped(_train_transform(tmp_path, hflip=False), range(64)))
    flips = _flipped(_train_transform(tmp_path, hflip=True), range(64))
    assert 16 <= sum(flips) <= 48  # p = 0.5 over 64 seeds


def test_crop_ratio_and_scale_reach_random_resized_crop(tmp_path: Path) -> None:
    transform = ImageDataModule(tmp_path, crop_scale=[0.5, 0.9], crop_ratio=[0.5, 2]).transform(train=True)
    (crop,) = [t for t in transform.transforms if isinstance(t, v2.RandomResizedCrop)]
    assert crop.scale == (0.5, 0.9) and crop.ratio == (0.5, 2.0)


def test_the_default_crop_ratio_is_torchvisions_exactly() -> None:
    cfg = compose_config(["dataset=hymenoptera"])
    defaults = v2.RandomResizedCrop(8)
    assert tuple(cfg.dataset.crop_ratio) == defaults.ratio and tuple(cfg.dataset.crop_scale) == defaults.scale
    assert cfg.dataset.hflip is True and compose_config([]).dataset.hflip is True  # shapes lists its own


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("dataset.hflip=sometimes", "dataset.hflip must be true or false, got 'sometimes'"),
        (
            "dataset.crop_ratio=[2,1]",
            "dataset.crop_ratio must be [low, high] with 0 < low <= high, got [2, 1]",
        ),
        ("dataset.crop_ratio=[0,1]", "dataset.crop_ratio must be [low, high]"),
        ("dataset.crop_ratio=[1]", "dataset.crop_ratio must be [low, high]"),
        ("dataset.crop_ratio=wide", "dataset.crop_ratio must be [low, high] with 0 < low <= high, got wide"),
        ("dataset.crop_scale=[0.5,1.5]", "dataset.crop_scale must be [low, high] with 0 < low <= high <= 1"),
    ],
)
def test_bad_augmentation_values_are_one_line_errors(override: str, message: str) -> None:
    cfg = compose_config([override])
    with pytest.raises(UserError) as caught:
        instantiate(cfg.dataset)  # what train and data prepare do
    assert message in str(caught.value) and "\n" not in str(caught.value)


# --- params/* and the progress bar in a real run ------------------------------------------------------


@pytest.mark.slow
def test_params_counts_reach_the_csv_log_and_the_progress_bar_can_be_on(compose_cfg) -> None:
    cfg = compose_cfg("strategy=freeze", "trainer.enable_progress_bar=true")
    metrics = run(cfg)
    with open(Path(cfg.paths.output_dir) / "csv" / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("params/total")]
    assert len(rows) == 1 and rows[0]["step"] == "0" and rows[0]["epoch"] == ""
    row = {k: int(float(v)) for k, v in rows[0].items() if k.startswith("params/")}
    assert row == {
        "params/trainable": metrics["trainable_params"],
        "params/frozen": metrics["total_params"] - metrics["trainable_params"],
        "params/total": metrics["total_params"],
    }


def test_progress_bar_is_rich_when_installed_else_tqdm_and_nothing_when_disabled(monkeypatch) -> None:
    off = callbacks.ProgressBar(enabled=False)
    assert not isinstance(off, RichProgressBar | TQDMProgressBar)  # Lightning refuses a bar it was told off
    if extras.installed("rich"):
        rich_bar = callbacks.ProgressBar()
        assert isinstance(rich_bar, RichProgressBar) and isinstance(rich_bar, callbacks.ProgressBar)
    monkeypatch.setitem(sys.modules, "rich", None)  # as if rich were not installed
    tqdm_bar = callbacks.ProgressBar(refresh_rate=5)
    assert isinstance(tqdm_bar, TQDMProgressBar) and isinstance(tqdm_bar, callbacks.ProgressBar)
    assert not isinstance(tqdm_bar, RichProgressBar) and tqdm_bar.refresh_rate == 5


# --- progress bars: verification, downloads, weights --------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_verification_shows_a_bar_in_a_terminal_only_and_only_on_rank_0(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(verify, "PARALLEL_FROM", 4)
    monkeypatch.setattr(verify, "PROGRESS_FROM", 4)
    rels = [f"img{i}.png" for i in range(6)]
    for i, rel in enumerate(rels):
        publishers.write(tmp_path / "data" / rel, seed=i)

    def bar_drawn(cache: str) -> str:
        terminal = _Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        verified = verify.verify_files(tmp_path / "data", rels, tmp_path / cache)
        monkeypatch.setattr(sys, "stderr", sys.__stderr__)
        assert verified.checked == 6 and not any(verified.reasons.values())
        return terminal.getvalue()

    assert "verifying:" in bar_drawn("a.json") and "/6 [" in bar_drawn("b.json")  # tqdm's "0/6 [..."
    monkeypatch.setattr(progress, "rank", lambda: 1)
    assert bar_drawn("c.json") == ""
    monkeypatch.setattr(progress, "rank", lambda: 0)
    monkeypatch.setattr(verify, "PROGRESS_FROM", 7)  # fewer files than that: no bar
    assert bar_drawn("d.json") == ""
    monkeypatch.setattr(_Terminal, "isatty", lambda self: False)  # a log file or a pipe: no bar
    monkeypatch.setattr(verify, "PROGRESS_FROM", 4)
    assert bar_drawn("e.json") == ""


def test_a_zip_download_shows_a_byte_bar_in_a_terminal(tmp_path: Path, monkeypatch) -> None:
    source = tmp_path / "src"
    publishers.imagefolder(source)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            zf.write(path, path.relative_to(source).as_posix())
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    download.fetch_zip(archive.as_uri(), tmp_path / "root", None, name="data.zip")
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    assert "data.zip" in terminal.getvalue() and "B/s" in terminal.getvalue()
    assert (tmp_path / "root" / "dog").is_dir()


def test_weight_downloads_ask_torch_hub_for_its_bar_in_a_terminal_only(tmp_path: Path, monkeypatch) -> None:
    from translearn.weights import cache

    asked: list[bool] = []

    def fake_download(url: str, dst: str, hash_prefix: str | None = None, progress: bool = True) -> None:
        asked.append(progress)
        Path(dst).write_bytes(b"weights")

    monkeypatch.delenv("TRANSLEARN_OFFLINE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    cache.ensure_url("https://example.invalid/a.pth", "weights", "fetch a")
    monkeypatch.setattr(sys, "stderr", _Terminal())
    cache.ensure_url("https://example.invalid/b.pth", "weights", "fetch b")
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    assert asked == [False, True]


# --- kagglehub, offline: a stand-in module, never the network ------------------------------------------


def _fake_kagglehub(monkeypatch, folder: Path, fail: Exception | None = None) -> list[tuple[str, str]]:
    """Install a stand-in ``kagglehub`` whose downloads "land" in ``folder`` (its cache, as the real one)."""
    calls: list[tuple[str, str]] = []

    def fetcher(kind: str):
        def fetch(handle: str, *args, **kwargs) -> str:
            calls.append((kind, handle))
            if fail is not None:
                raise fail
            return str(folder)

        return fetch

    hub = types.ModuleType("kagglehub")
    hub.dataset_download = fetcher("datasets")  # type: ignore[attr-defined]
    hub.competition_download = fetcher("competitions")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kagglehub", hub)
    return calls


def test_kagglehub_is_used_when_installed_and_its_files_are_linked_into_the_root(
    tmp_path: Path, monkeypatch
) -> None:
    cached = publishers.simpsons(tmp_path / "kagglehub-cache", symlinked=None)
    calls = _fake_kagglehub(monkeypatch, cached)
    monkeypatch.setattr("shutil.which", lambda _name: pytest.fail("the kaggle CLI must not be called"))
    root = tmp_path / "simpsons"
    SimpsonsDataModule.download(root)
    assert calls == [("datasets", "alexattia/the-simpsons-characters-dataset")]
    placed = root / "simpsons_dataset" / "bart_simpson" / "pic_0000.jpg"
    original = cached / "simpsons_dataset" / "bart_simpson" / "pic_0000.jpg"
    assert placed.stat().st_ino == original.stat().st_ino  # a hard link: no second copy on disk
    assert download.cut_short(root, "the-simpsons-characters-dataset.zip") == []
    assert not list(root.rglob(".*.partial"))
    dm = SimpsonsDataModule(root, index_dir=tmp_path / "index", num_workers=0)
    assert dm.class_names == list(publishers.STUDY_20)


def test_kagglehub_competition_files_and_their_inner_zips_are_unpacked(tmp_path: Path, monkeypatch) -> None:
    source = publishers.dogs_vs_cats(tmp_path / "src")
    cached = tmp_path / "kagglehub-cache"
    cached.mkdir()
    with zipfile.ZipFile(cached / "train.zip", "w") as zf:  # the competition ships train.zip inside
        for path in sorted((source / "train").rglob("*")):
            zf.write(path, path.relative_to(source).as_posix())
    (cached / "sampleSubmission.csv").write_text("id,label\n")
    calls = _fake_kagglehub(monkeypatch, cached)
    root = tmp_path / "dvc"
    DogsVsCatsDataModule.download(root)
    assert calls == [("competitions", "dogs-vs-cats")]
    dm = DogsVsCatsDataModule(root, index_dir=tmp_path / "index", num_workers=0)
    assert dm.class_names == ["cat", "dog"]


def test_a_kagglehub_copy_cut_short_is_detected_and_finished_without_overwriting(
    tmp_path: Path, monkeypatch
) -> None:
    cached = publishers.simpsons(tmp_path / "kagglehub-cache", symlinked=None)
    _fake_kagglehub(monkeypatch, cached)
    root = tmp_path / "simpsons"
    real_place, placed = download._place, []

    def killed_after_three(source: Path, target: Path) -> None:
        if len(placed) == 3:
            raise KeyboardInterrupt  # the user's Ctrl-C (or a kill) in the middle of the copy
        real_place(source, target)
        placed.append(target)

    monkeypatch.setattr(download, "_place", killed_after_three)
    with pytest.raises(KeyboardInterrupt):
        SimpsonsDataModule.download(root)
    assert download.cut_short(root, "the-simpsons-characters-dataset.zip") == [
        "the-simpsons-characters-dataset.zip"
    ]
    placed[0].write_bytes(b"the user's own file")  # must survive the rerun
    monkeypatch.setattr(download, "_place", real_place)
    SimpsonsDataModule.download(root)  # what `prepare simpsons --download` calls: it finishes the copy
    assert download.cut_short(root, "the-simpsons-characters-dataset.zip") == []
    assert placed[0].read_bytes() == b"the user's own file"
    assert sorted(p.relative_to(root) for p in root.rglob("*.jpg")) == sorted(
        p.relative_to(cached) for p in cached.rglob("*.jpg")
    )


def test_a_failed_kagglehub_download_is_one_line_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    _fake_kagglehub(monkeypatch, tmp_path, fail=RuntimeError("401 Client Error:\nUnauthorized for url"))
    root = tmp_path / "simpsons"
    with pytest.raises(UserError) as caught:
        SimpsonsDataModule.download(root)
    message = str(caught.value)
    assert "kagglehub download of alexattia/the-simpsons-characters-dataset failed (401" in message
    assert "kaggle.json" in message and "kaggle.com" in message and "\n" not in message
    assert download.cut_short(root, "the-simpsons-characters-dataset.zip") == []
    assert list(root.iterdir()) == []


# --- optional extras ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "hidden", "message"),
    [
        (
            "logger=wandb",
            ("wandb",),
            "logger=wandb needs wandb, which is not installed: pip install 'translearn[wandb]'",
        ),
        ("logger=tensorboard", ("tensorboard", "tensorboardX"), "pip install 'translearn[tensorboard]'"),
        ("model.library=timm", ("timm",), "model.library=timm needs timm"),
    ],
)
def test_a_missing_optional_package_is_one_line_naming_its_extra(
    override: str, hidden: tuple[str, ...], message: str, monkeypatch
) -> None:
    cfg = compose_config([override])
    extras.check_config(cfg)  # installed here: nothing to say
    for module in hidden:
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        extras.check_config(cfg)


def test_a_missing_hydra_plugin_is_explained_by_its_extra() -> None:
    # What Hydra's MissingConfigException carries when hydra-submitit-launcher is not installed.
    assert extras.missing_config_hint("hydra/launcher/submitit_slurm") == (
        "launcher=slurm needs hydra-submitit-launcher, which is not installed: "
        "pip install 'translearn[slurm]'"
    )
    assert "translearn[optuna]" in extras.missing_config_hint("hydra/sweeper/optuna")
    assert extras.missing_config_hint("strategy/frieze") is None


# --- packaging ----------------------------------------------------------------------------------------


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_every_console_script_points_at_a_main_function() -> None:
    scripts = _pyproject()["project"]["scripts"]
    assert {"translearn-train", "translearn-report", "translearn-data", "translearn-weights"} <= set(scripts)
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), name


def test_the_dev_extra_installs_every_optional_part_the_tests_use() -> None:
    extras_table = _pyproject()["project"]["optional-dependencies"]
    (self_ref,) = [r for r in extras_table["dev"] if r.startswith("translearn[")]
    assert {"wandb", "tensorboard", "slurm", "timm", "onnx", "notebook"} <= set(self_ref[11:-1].split(","))
    (everything,) = extras_table["all"]
    assert set(everything[11:-1].split(",")) == set(extras_table) - {"all", "dev"}


def test_the_license_file_is_the_mit_license_pyproject_names() -> None:
    assert _pyproject()["project"]["license"] == "MIT" and _pyproject()["project"]["license-files"] == [
        "LICENSE"
    ]
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 the translearn authors" in text
