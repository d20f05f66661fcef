"""The embedded data: a label shift (target) and an input shift (corrupted) against the base task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from translearn.data.shapes import BASE_CLASSES, TARGET_CLASSES, ShapesDataModule
from translearn.errors import UserError


def _pixels(path: str) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32)


def test_the_corrupted_task_is_the_base_classes_on_new_corrupted_images(tmp_path: Path) -> None:
    corrupted = ShapesDataModule(tmp_path, task="corrupted", num_workers=0)
    target = ShapesDataModule(tmp_path, task="target", num_workers=0)
    assert corrupted.class_names == list(BASE_CLASSES) and target.class_names == list(TARGET_CLASSES)
    assert {s: corrupted.index.count(s) for s in ("train", "val", "test")} == {
        "train": 150,
        "val": 200,
        "test": 200,
    }
    base = ShapesDataModule(tmp_path, task="base", num_workers=0)
    base_files = {Path(p).relative_to(tmp_path / "base") for p, _ in base.index.samples["train"]}
    ours = [p for p, _ in corrupted.index.samples["train"]]
    # new images, not the pretraining ones with noise on top: the same file names hold other drawings
    same_name = [p for p in ours if Path(p).relative_to(tmp_path / "corrupted") in base_files]
    assert same_name and all(
        not np.array_equal(
            _pixels(p), _pixels(str(tmp_path / "base" / Path(p).relative_to(tmp_path / "corrupted")))
        )
        for p in same_name[:10]
    )

    # corrupted: on average far noisier (high-frequency energy) or flatter (low contrast) than clean ones
    def roughness(path: str) -> float:
        x = _pixels(path)
        return float(np.abs(np.diff(x, axis=0)).mean())

    clean = [p for p, _ in target.index.samples["train"]][:60]
    assert np.std([roughness(p) for p in ours[:60]]) > 2 * np.std([roughness(p) for p in clean])
    # adding the task drew nothing else again
    assert (tmp_path / ".complete-v2").exists() and (tmp_path / ".complete-corrupted-v1").exists()


def test_an_unknown_task_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dataset\.task must be one of base, target, corrupted"):
        ShapesDataModule(tmp_path, task="shifted")
