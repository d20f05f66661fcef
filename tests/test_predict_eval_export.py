"""A trained run used as a model: ``translearn.predict``, ``translearn.eval`` and ``translearn.export``.

One tiny run (module-scoped) that validates and tests on its whole splits, so that what the commands
compute can be compared with what training computed on the same images.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict, read_write

import publishers
from helpers import TINY, assert_user_error
from translearn import eval as evaluate
from translearn import export, predict
from translearn.train import run


class CaptureVal(pl.Callback):
    """The probabilities the module computed for each validation image during training, by file path."""

    probs: dict[str, torch.Tensor] = {}  # noqa: RUF012 (one run per module; read by the tests)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        samples = trainer.datamodule.index.samples["val"]
        start = batch_idx * trainer.datamodule.batch_size
        with torch.no_grad():
            probs = torch.softmax(pl_module(batch[0]), dim=1)
        for (path, _), row in zip(samples[start : start + len(probs)], probs, strict=True):
            CaptureVal.probs[path] = row.cpu()


def run_module(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` in a subprocess, as a user would type it."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny run validated on every image (not the 2 batches of debug=tiny); tested on 2 batches."""
    from translearn.config import compose_config

    out = tmp_path_factory.mktemp("trained") / "run"
    overrides = [
        *TINY,
        "trainer.limit_val_batches=null",
        f"+callbacks.capture={{_target_:{__name__}.CaptureVal}}",
        f"hydra.run.dir={out}",
    ]
    cfg = compose_config(overrides, return_hydra_config=True)
    with read_write(cfg), open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    (out / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")  # what Hydra writes for a real run (eval reads it)
    CaptureVal.probs.clear()
    try:
        run(cfg)
    finally:
        GlobalHydra.instance().clear()
    yield out
    shutil.rmtree(out.parent, ignore_errors=True)


def _val_folder() -> Path:
    return Path(next(iter(CaptureVal.probs))).parents[1]  # .../shapes/target/val


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --- predict --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_predictions_equal_the_probabilities_validation_computed_during_training(
    trained: Path, tmp_path: Path
) -> None:
    out = tmp_path / "p.csv"
    predict.main([str(trained), str(_val_folder()), "--out", str(out), "--top-k", "5", "--batch-size", "32"])
    rows = _read_csv(out)
    classes = json.loads((trained / "metrics.json").read_text())["class_names"]
    header = ["path", "label", "prob"] + [f"{c}_{k}" for k in range(2, 6) for c in ("label", "prob")]
    assert list(rows[0]) == header
    assert len(rows) == len(CaptureVal.probs) == 200
    worst = 0.0
    for row in rows:
        pairs = [(row["label"], row["prob"])] + [(row[f"label_{k}"], row[f"prob_{k}"]) for k in range(2, 6)]
        assert sorted(label for label, _ in pairs) == sorted(classes)
        probs = [float(p) for _, p in pairs]
        assert probs == sorted(probs, reverse=True)
        during_training = CaptureVal.probs[row["path"]]
        got = torch.tensor([float(p) for _, p in sorted(pairs, key=lambda lp: classes.index(lp[0]))])
        worst = max(worst, float((got - during_training).abs().max()))
    assert worst < 1e-5, worst


@pytest.mark.slow
def test_trainer_predict_takes_file_batches_and_the_training_loaders(trained: Path) -> None:
    from translearn.data.files import ImageFilesDataModule

    loaded = predict.load_trained(trained)
    files = sorted(CaptureVal.probs)[:5]
    trainer = pl.Trainer(
        accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    data = ImageFilesDataModule.for_checkpoint(files, loaded.hparams, batch_size=2)
    batches = trainer.predict(loaded.module, datamodule=data)
    probs = torch.cat(batches)
    assert probs.shape == (5, 5) and torch.allclose(probs.sum(1), torch.ones(5))
    x, paths = next(iter(data.predict_dataloader()))
    labels = torch.zeros(len(x), dtype=torch.long)
    with torch.no_grad():
        assert torch.equal(loaded.module.predict_step(x), loaded.module.predict_step((x, labels)))
        assert torch.equal(loaded.module.predict_step(x), loaded.module.predict_step((x, paths)))


@pytest.mark.slow
def test_a_file_that_is_not_an_image_is_skipped_and_listed(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    images = sorted(CaptureVal.probs)[:2]
    for i, image in enumerate(images):
        shutil.copy(image, folder / f"{i}.png")
    (folder / "broken.png").write_bytes(Path(images[0]).read_bytes()[:100])
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    out = tmp_path / "p.csv"
    predict.main([str(trained), str(folder), str(notes), str(tmp_path / "gone.jpg"), "--out", str(out)])
    rows = _read_csv(out)
    assert [Path(r["path"]).name for r in rows] == ["0.png", "1.png"]
    assert list(rows[0]) == ["path", "label", "prob"]  # --top-k defaults to 1
    err = capsys.readouterr().err
    skipped = [ln for ln in err.splitlines() if ln.startswith("translearn: warning: skipped ")]
    assert len(skipped) == 3, err
    assert any("broken.png" in ln for ln in skipped) and any("notes.txt" in ln for ln in skipped)
    assert any("gone.jpg: no such file or folder" in ln for ln in skipped)
    assert "Traceback" not in err


@pytest.mark.slow
def test_no_images_at_all_is_a_one_line_error(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        predict.main([str(trained), str(tmp_path / "empty"), "--out", str(tmp_path / "p.csv")])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("translearn: error: no image files in"), lines
    assert not (tmp_path / "p.csv").exists()


def test_find_images_follows_symlinked_folders_as_training_does_and_ends_symlink_loops(
    tmp_path: Path,
) -> None:
    """Path.rglob (Python 3.11) skipped linked folders that training reads; a loop is walked once."""
    from translearn.data.files import find_images

    outside = tmp_path / "elsewhere"
    for name in ("x.jpg", "y.png"):
        publishers.write(outside / name)
    folder = tmp_path / "in"
    publishers.write(folder / "a.jpg")
    publishers.write(folder / "z" / "b.jpg")
    (folder / "linked").symlink_to(outside, target_is_directory=True)
    (folder / "z" / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "z" / "notes.txt").write_text("not an image")
    (folder / ".thumbnails").mkdir()  # junk folders are skipped, as training skips them
    publishers.write(folder / ".thumbnails" / "a.jpg")
    found = find_images([folder])
    names = [p.relative_to(folder).as_posix() for p in found.files]
    assert names == ["a.jpg", "linked/x.jpg", "linked/y.png", "z/b.jpg"]  # sorted as paths, each once
    assert found.ignored == 1 and not found.missing
    only_a_link = tmp_path / "only"
    only_a_link.mkdir()
    (only_a_link / "photos").symlink_to(outside, target_is_directory=True)
    assert [p.name for p in find_images([only_a_link]).files] == ["x.jpg", "y.png"]


@pytest.mark.slow
def test_predict_reads_a_folder_that_holds_only_a_symlinked_folder(trained: Path, tmp_path: Path) -> None:
    """It said "no image files in ..." for a folder whose images all lie behind a folder link."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    images = sorted(CaptureVal.probs)[:3]
    for i, image in enumerate(images):
        shutil.copy(image, outside / f"{i}.png")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photos").symlink_to(outside, target_is_directory=True)
    out = tmp_path / "p.csv"
    predict.main([str(trained), str(folder), "--out", str(out)])
    rows = _read_csv(out)
    assert [r["path"] for r in rows] == [str(folder / "photos" / f"{i}.png") for i in range(3)]


@pytest.mark.cli
def test_a_checkpoint_not_written_by_translearn_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}, "epoch": 3}, bad)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(image)
    proc = run_module("translearn.predict", str(bad), str(image), "--out", str(tmp_path / "p.csv"))
    assert_user_error(proc, "not a translearn checkpoint", "other.ckpt")


# --- eval -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_eval_on_its_own_splits_reproduces_the_runs_numbers_and_confusion(trained: Path) -> None:
    run_metrics = json.loads((trained / "metrics.json").read_text())
    evaluate.main([str(trained)])
    val = json.loads((trained / "eval" / "val" / "metrics.json").read_text())
    assert val["images"] == 200
    assert val["acc"] == pytest.approx(run_metrics["best_val_acc"], abs=1e-6)
    assert val["acc_macro"] == pytest.approx(run_metrics["best_val_acc_macro"], abs=1e-6)
    assert (trained / "eval/val/confusion_val.csv").read_text() == (trained / "confusion_val.csv").read_text()
    # The run tested on debug=tiny's 2 batches; trainer.* overrides reach eval's Trainer.
    evaluate.main([str(trained), "--split", "test", "trainer.limit_test_batches=2"])
    (folder,) = (trained / "eval").glob("test-*")
    test = json.loads((folder / "metrics.json").read_text())
    assert test["acc"] == pytest.approx(run_metrics["test_acc"], abs=1e-6)
    assert (folder / "confusion_test.csv").read_text() == (trained / "confusion_test.csv").read_text()


@pytest.mark.slow
def test_eval_reads_the_colour_mode_of_the_checkpoint_not_of_an_edited_config(
    trained: Path, tmp_path: Path
) -> None:
    """An RGB model whose run config was later edited to gray (3-channel replicate, so no channel check
    fails) was silently scored on gray images; the checkpoint says what the model learnt on."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("eval"))
    config = copy / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("color: rgb", "color: gray"))
    assert "color: gray" in config.read_text()
    evaluate.main([str(copy)])
    val = json.loads((copy / "eval" / "val" / "metrics.json").read_text())
    assert val["acc"] == pytest.approx(json.loads((trained / "metrics.json").read_text())["best_val_acc"])


@pytest.mark.slow
def test_eval_says_when_its_preprocessing_is_not_the_runs(trained: Path, tmp_path: Path, capfd) -> None:
    """dataset.image_size=64 on eval's line changed the accuracy (0.125 -> 0.083) without a word."""
    copy = tmp_path / "run"  # eval writes eval/<split>-<hash>/: not into the run other tests read
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("eval"))
    evaluate.main([str(copy), "dataset.image_size=48", "trainer.limit_val_batches=1"])
    said = capfd.readouterr().err
    assert "evaluating with other preprocessing than the run's: crop 48 (the run's: " in said
    evaluate.main([str(copy), "trainer.limit_val_batches=1"])
    assert "other preprocessing" not in capfd.readouterr().err


@pytest.mark.slow
def test_eval_on_an_image_folder_of_the_same_classes_scores_every_image_by_class_name(
    trained: Path, tmp_path: Path
) -> None:
    """dataset=imagefolder sorts its class names (arrow, crescent, ...), shapes does not: labels follow."""
    classes = json.loads((trained / "metrics.json").read_text())["class_names"]
    copy, right = tmp_path / "copy", 0
    for cls in classes:
        (copy / cls).mkdir(parents=True)
        for image in sorted((_val_folder() / cls).glob("*.png"))[:8]:
            shutil.copy(image, copy / cls / image.name)
            right += int(CaptureVal.probs[str(image)].argmax()) == classes.index(cls)
    evaluate.main([str(trained), "dataset=imagefolder", f"dataset.root={copy}", "--split", "all"])
    (folder,) = (trained / "eval").glob("all-*")
    result = json.loads((folder / "metrics.json").read_text())
    assert result["images"] == 40 and result["dataset"] == "imagefolder"
    assert result["acc"] == pytest.approx(right / 40)


@pytest.mark.cli
@pytest.mark.slow
def test_eval_on_a_folder_with_other_classes_names_the_difference(trained: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    images = sorted(CaptureVal.probs)[:6]
    for name in ("ring", "hexagon", "square"):
        (other / name).mkdir(parents=True)
        for i, image in enumerate(images):
            shutil.copy(image, other / name / f"{i}.png")
    proc = run_module("translearn.eval", str(trained), "dataset=imagefolder", f"dataset.root={other}")
    assert_user_error(proc, "missing diamond, arrow, crescent", "extra square")
    assert not any(p.name.startswith("val-") for p in (trained / "eval").glob("*"))


# --- export ---------------------------------------------------------------------------------------


def _check_export(trained: Path, path: Path, fmt: str) -> dict:
    export.main([str(trained), "--format", fmt, "--out", str(path)])
    meta = json.loads(path.with_name(path.name + ".json").read_text())
    classes = json.loads((trained / "metrics.json").read_text())["class_names"]
    assert meta["class_names"] == classes and meta["format"] == fmt
    assert meta["input"]["shape"] == ["batch", 3, 32, 32] and meta["in_chans"] == 3
    assert meta["preprocessing"]["crop"] == 32 and meta["color"] == "rgb"
    assert meta["check"]["passed"] is True and meta["check"]["inputs"] == "8 images of the run's val split"
    assert meta["check"]["max_abs_diff"] <= 1e-4
    return meta


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:.*torch.jit.load.*deprecated")
def test_export_torchscript_matches_pytorch_and_writes_its_sidecar(trained: Path, tmp_path: Path) -> None:
    path = tmp_path / "m.pt"
    _check_export(trained, path, "torchscript")
    net = predict.load_trained(trained).module.net
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(path))(x), net(x), atol=1e-4)


@pytest.mark.slow
def test_export_onnx_matches_pytorch_and_writes_its_sidecar(trained: Path, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    meta = _check_export(trained, path, "onnx")
    assert meta["onnx_opset"] == export.ONNX_OPSET
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = predict.load_trained(trained).module.net(x)
    got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
    assert torch.allclose(got, expected, atol=1e-4)


@pytest.mark.slow
def test_onnx_export_without_onnxruntime_says_its_check_was_skipped(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    path = tmp_path / "m.onnx"
    export.main([str(trained), "--format", "onnx", "--out", str(path)])
    meta = json.loads(path.with_name("m.onnx.json").read_text())
    assert "onnxruntime is not installed" in meta["check"]["skipped"] and path.stat().st_size > 0
    assert "pip install 'translearn[onnx]'" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_and_export_replace_their_own_outputs_but_never_a_users_file(
    trained: Path, tmp_path: Path
) -> None:
    """--out named a file of the user's (a label list, a model of theirs) and it was replaced silently."""
    labels, model = tmp_path / "labels.csv", tmp_path / "model.pt"
    labels.write_text("file,class\na.png,ants\n")
    model.write_bytes(b"someone's model")
    image = str(sorted(CaptureVal.probs)[0])
    for command, args in (
        (predict.main, [str(trained), image, "--out", str(labels)]),
        (export.main, [str(trained), "--format", "torchscript", "--out", str(model)]),
    ):
        with pytest.raises(SystemExit):
            command(args)
    assert labels.read_text() == "file,class\na.png,ants\n" and model.read_bytes() == b"someone's model"

    mine = tmp_path / "p.csv"
    predict.main([str(trained), image, "--out", str(mine)])
    predict.main([str(trained), image, image, "--out", str(mine), "--top-k", "2"])  # its own: replaced
    assert mine.read_text().startswith("path,label,prob,label_2,prob_2")
    predict.main([str(trained), image, "--out", str(labels), "--force"])
    assert labels.read_text().startswith("path,label,prob")
    export.main([str(trained), "--format", "torchscript", "--out", str(model), "--force"])
    export.main([str(trained), "--format", "torchscript", "--out", str(model)])  # its own now
    assert model.stat().st_size > 1000


def test_a_gray_adapt_sidecar_gives_one_mean_and_std_wherever_a_reader_looks(tmp_path: Path) -> None:
    """Its preprocessing.mean was ImageNet's RGB mean beside normalize.mean's one luma value: a consumer
    reading the first normalised a 1-channel input with three values."""
    from types import SimpleNamespace

    from translearn.data.transforms import Preprocessing
    from translearn.export import sidecar

    hparams = {
        "preprocessing": Preprocessing(crop=32, resize=37).as_dict(), "color": "gray", "gray_mode": "adapt",
        "in_chans": 1, "num_classes": 2, "backbone": "resnet18",
    }  # fmt: skip
    trained = SimpleNamespace(
        hparams=hparams, class_names=["a", "b"], checkpoint=tmp_path / "x.ckpt", run_dir=None
    )
    meta = sidecar(trained, "onnx", tmp_path / "m.onnx", {})
    assert meta["preprocessing"]["mean"] == meta["normalize"]["mean"] and len(meta["normalize"]["mean"]) == 1
    assert meta["preprocessing"]["std"] == meta["normalize"]["std"] and len(meta["normalize"]["std"]) == 1
