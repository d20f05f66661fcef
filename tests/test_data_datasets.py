"""Each dataset, read in its publisher's layout: exact class counts and split sizes, quirks, bad input."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import publishers
from helpers import assert_user_error, run_cli
from translearn.data.caltech256 import Caltech256DataModule
from translearn.data.dogs_vs_cats import DogsVsCatsDataModule
from translearn.data.hymenoptera import HymenopteraDataModule
from translearn.data.imagefolder import ImageFolderDataModule
from translearn.data.simpsons import SEED2017_CLASSES, SimpsonsDataModule
from translearn.data.splits import seed2017_train_count
from translearn.errors import UserError


def build(cls, root: Path, tmp_path: Path, **kwargs):
    return cls(root, index_dir=tmp_path / "index", num_workers=0, **kwargs)


def read_classes(cls, root: Path, tmp_path: Path, **kwargs) -> list[str]:
    """A data module reads the disk on first use (not when built): that is where bad data is found."""
    return build(cls, root, tmp_path, **kwargs).class_names


def sizes(dm) -> dict[str, int]:
    dm.setup("fit")
    return {s: dm.index.count(s) for s in ("train", "val", "test")}


def per_class(dm, split: str) -> dict[str, int]:
    counts = dict.fromkeys(dm.class_names, 0)
    for _, label in dm.index.samples[split]:
        counts[dm.class_names[label]] += 1
    return counts


# --- hymenoptera --------------------------------------------------------------------------------------


def test_hymenoptera_keeps_its_own_train_and_val(tmp_path: Path) -> None:
    root = publishers.hymenoptera(tmp_path / "hym")
    dm = build(HymenopteraDataModule, root, tmp_path)
    assert dm.class_names == ["ants", "bees"]
    # 6 ants (+ imageNotFound.gif) and 5 bees in train; 4 and 3 in val; .DS_Store/Thumbs.db skipped.
    assert sizes(dm) == {"train": 12, "val": 7, "test": 0}
    assert per_class(dm, "train") == {"ants": 7, "bees": 5}
    assert any(p.endswith("ants_0001.JPG") for p, _ in dm.index.samples["train"])


def test_hymenoptera_root_may_be_the_unzipped_folder_itself(tmp_path: Path) -> None:
    root = publishers.hymenoptera(tmp_path / "hym") / "hymenoptera_data"
    assert sizes(build(HymenopteraDataModule, root, tmp_path))["val"] == 7


def test_hymenoptera_random_split_pools_train_and_val(tmp_path: Path) -> None:
    dm = build(HymenopteraDataModule, publishers.hymenoptera(tmp_path / "hym"), tmp_path, split="random")
    # ants 7+4=11 -> round(2.2)=2 val; bees 5+3=8 -> round(1.6)=2 val.
    assert sizes(dm) == {"train": 15, "val": 4, "test": 0}


def test_hymenoptera_a_validation_class_without_training_images_is_a_user_error(tmp_path: Path) -> None:
    """val/wasps beside train/{ants,bees} was a third class with no training images: never predicted,
    validation accuracy capped, no word said (image folders already refused it)."""
    counts = {**publishers.HYMENOPTERA, "val": {**publishers.HYMENOPTERA["val"], "wasps": 2}}
    root = publishers.hymenoptera(tmp_path / "hym", counts)
    with pytest.raises(UserError) as info:
        read_classes(HymenopteraDataModule, root, tmp_path)
    message = str(info.value)
    assert "hymenoptera: 1 class(es) have no images in train/" in message, message
    assert "wasps (2 in val/)" in message and "dataset.classes=[ants,bees]" in message
    # Pooled by the random split, wasps gets training images like the others.
    assert read_classes(HymenopteraDataModule, root, tmp_path, split="random") == ["ants", "bees", "wasps"]


# --- simpsons -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def simpsons_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = publishers.simpsons(tmp_path_factory.mktemp("simpsons") / "archive")
    return root


def simpsons_count(name: str) -> int:
    return publishers.SIMPSONS[name] + (name == "bart_simpson")  # + the unicode-named file


def test_simpsons_default_is_the_studys_20_characters(simpsons_root: Path, tmp_path: Path) -> None:
    dm = build(SimpsonsDataModule, simpsons_root, tmp_path)
    assert dm.class_names == sorted(SEED2017_CLASSES) == list(publishers.STUDY_20)
    train, val = per_class(dm, "train"), per_class(dm, "val")
    for name in SEED2017_CLASSES:  # not doubled by the nested duplicate; the symlinked folder is read
        n = simpsons_count(name)
        assert (train[name], val[name]) == (seed2017_train_count(n), n - seed2017_train_count(n)), name
    # The flat test set, labelled by file-name prefix; disco_stu's test image has no class here.
    assert per_class(dm, "test") == {c: publishers.SIMPSONS_TEST.get(c, 0) for c in dm.class_names}


def test_simpsons_seed2017_split_sizes_are_exact(simpsons_root: Path, tmp_path: Path) -> None:
    dm = build(SimpsonsDataModule, simpsons_root, tmp_path)
    total = sum(simpsons_count(c) for c in SEED2017_CLASSES)
    train = sum(seed2017_train_count(simpsons_count(c)) for c in SEED2017_CLASSES)
    assert total == 107
    assert (
        sizes(dm) == {"train": train, "val": total - train, "test": 5} == {"train": 84, "val": 23, "test": 5}
    )


def test_simpsons_nested_duplicate_is_reported_not_counted(simpsons_root: Path, tmp_path: Path) -> None:
    result = build(SimpsonsDataModule, simpsons_root, tmp_path).prepare()
    assert ("simpsons_dataset/simpsons_dataset/", "nested duplicate of simpsons_dataset/") in result.ignored
    assert result.usable == 107 + 5


def test_simpsons_unicode_and_symlinked_files_are_indexed(simpsons_root: Path, tmp_path: Path) -> None:
    dm = build(SimpsonsDataModule, simpsons_root, tmp_path)
    dm.setup("fit")
    paths = [p for s in ("train", "val") for p, _ in dm.index.samples[s]]
    assert any(p.endswith("pic_0100_écrit.jpg") for p in paths)
    assert sum("/lisa_simpson/" in p for p in paths) == publishers.SIMPSONS["lisa_simpson"]


def test_simpsons_all_classes_and_top_n(simpsons_root: Path, tmp_path: Path) -> None:
    every = build(SimpsonsDataModule, simpsons_root, tmp_path, classes="all")
    assert len(every.class_names) == 22 and "disco_stu" in every.class_names
    assert sizes(every)["test"] == 6  # disco_stu's test image now has its class
    top = build(SimpsonsDataModule, simpsons_root, tmp_path, classes="all", top_n=3)
    largest = sorted(publishers.SIMPSONS, key=lambda c: (-simpsons_count(c), c))[:3]
    assert top.class_names == sorted(largest)


def test_simpsons_explicit_class_list(simpsons_root: Path, tmp_path: Path) -> None:
    dm = build(SimpsonsDataModule, simpsons_root, tmp_path, classes=["lisa_simpson", "bart_simpson"])
    assert dm.class_names == ["bart_simpson", "lisa_simpson"]
    assert sizes(dm)["test"] == 2


def test_simpsons_unknown_class_is_a_user_error(simpsons_root: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dataset.classes names maggie_simpson, not found .* available: "):
        read_classes(SimpsonsDataModule, simpsons_root, tmp_path, classes=["bart_simpson", "maggie_simpson"])


# --- caltech256 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def caltech_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return publishers.caltech256(tmp_path_factory.mktemp("caltech") / "data")


def test_caltech256_classes_and_seed2017_split(caltech_root: Path, tmp_path: Path) -> None:
    dm = build(Caltech256DataModule, caltech_root, tmp_path)
    assert dm.class_names == list(publishers.CALTECH)
    # round(0.8 n) of 5, 4, 6, 5, 7 = 4 + 3 + 5 + 4 + 6 = 22; greg/ and RENAME2 are not images of a class.
    assert sizes(dm) == {"train": 22, "val": 5, "test": 0}
    assert per_class(dm, "val") == {
        "001.ak47": 1,
        "002.american-flag": 1,
        "056.dog": 1,
        "198.spider": 1,
        "257.clutter": 1,
    }


def test_caltech256_strays_are_ignored_and_reported(caltech_root: Path, tmp_path: Path) -> None:
    ignored = dict(build(Caltech256DataModule, caltech_root, tmp_path).prepare().ignored)
    assert (
        ignored["caltech256/256_ObjectCategories/056.dog/greg/"] == "unexpected folder inside a class folder"
    )
    assert ignored["caltech256/256_ObjectCategories/198.spider/RENAME2"] == "not an image file name"


def test_caltech256_can_exclude_clutter_and_take_bare_names(caltech_root: Path, tmp_path: Path) -> None:
    no_clutter = build(Caltech256DataModule, caltech_root, tmp_path, exclude_clutter=True)
    assert "257.clutter" not in no_clutter.class_names and len(no_clutter.class_names) == 4
    picked = build(Caltech256DataModule, caltech_root, tmp_path, classes=["dog", "198.spider"])
    assert picked.class_names == ["056.dog", "198.spider"]


# --- dogs vs cats -------------------------------------------------------------------------------------


def test_dogs_vs_cats_labels_from_names_and_numeric_seed2017(tmp_path: Path) -> None:
    dm = build(DogsVsCatsDataModule, publishers.dogs_vs_cats(tmp_path / "dvc", cats=12, dogs=5), tmp_path)
    assert dm.class_names == ["cat", "dog"]
    # cats: round(9.6)=10 train; dogs: 4. Numeric order, so cat.10 and cat.11 are the val cats.
    assert sizes(dm) == {"train": 14, "val": 3, "test": 0}
    val = sorted(Path(p).name for p, _ in dm.index.samples["val"])
    assert val == ["cat.10.jpg", "cat.11.jpg", "dog.4.jpg"]
    assert not any("test1" in p for s in ("train", "val", "test") for p, _ in dm.index.samples[s])


def test_dogs_vs_cats_needs_train_folder(tmp_path: Path) -> None:
    root = tmp_path / "dvc"
    root.mkdir()
    (root / "train.zip").write_bytes(b"PK")
    with pytest.raises(
        UserError, match=r"no train/ folder \(unzip train.zip first\).*expected layout ROOT/train"
    ):
        read_classes(DogsVsCatsDataModule, root, tmp_path)


# --- image folder -------------------------------------------------------------------------------------


def test_imagefolder_with_its_own_train_val_test_folders(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "f", splits={"train": 1.0, "val": 0.5, "test": 0.5})
    dm = build(ImageFolderDataModule, root, tmp_path)
    assert dm.class_names == ["café", "dog", "owl"]
    assert sizes(dm) == {"train": 15, "val": 7, "test": 7}  # 5+6+4; round(2.5)=2, 3, 2 each


def test_imagefolder_classes_differing_only_in_case_get_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """cat/ and Cat/ were two classes without a word: one folder on macOS and Windows, a mistake here."""
    root = publishers.imagefolder(tmp_path / "f", {"cat": 3, "Cat": 3, "dog": 3})
    assert read_classes(ImageFolderDataModule, root, tmp_path) == ["Cat", "cat", "dog"]
    err = capsys.readouterr().err
    assert "differ only in case are separate classes: Cat and cat" in err, err
    assert "dog" not in err.split("differ only in case")[1]


def test_imagefolder_empty_class_folder_is_dropped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = publishers.imagefolder(tmp_path / "f")
    (root / "zebra").mkdir()
    dm = build(ImageFolderDataModule, root, tmp_path)
    assert dm.class_names == ["café", "dog", "owl"]
    assert "class folder 'zebra'" in capsys.readouterr().err
    with pytest.raises(UserError, match=r"zebra .* hold no images"):
        read_classes(ImageFolderDataModule, root, tmp_path, classes=["dog", "zebra"])


@pytest.mark.parametrize(
    "names",
    [
        ("Train", "Val"),
        ("training", "validation"),
        ("TRAIN", "Valid", "Test"),
        ("Training", "dev", "Testing"),
    ],
)
def test_imagefolder_split_folders_are_found_whatever_their_case_or_synonym(
    names: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Train/Val (Windows, Kaggle) were read as 2 classes "Train" and "Val"; the real labels were lost."""
    factors = dict(zip(names, (1.0, 0.5, 0.5), strict=False))
    root = publishers.imagefolder(tmp_path / "f", splits=factors)
    dm = build(ImageFolderDataModule, root, tmp_path)
    assert dm.class_names == ["café", "dog", "owl"]
    assert sizes(dm) == {"train": 15, "val": 7, "test": 7 if len(names) == 3 else 0}
    assert dm.split_name() == "folders (auto)"
    assert "look like split folders" not in capsys.readouterr().err


def test_imagefolder_folders_that_look_like_splits_are_warned_about(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Split folders under names no list can know (part1/part2, a language's own words) hold the same
    class folders, and no images of their own: read as classes, they get a warning saying what to do."""
    root = publishers.imagefolder_splits(
        tmp_path / "f", {"part1": {"ant": 4, "bee": 4}, "part2": {"ant": 2, "bee": 2}}
    )
    assert read_classes(ImageFolderDataModule, root, tmp_path) == ["part1", "part2"]
    err = capsys.readouterr().err
    warning = next(ln for ln in err.splitlines() if "look like split folders" in ln)
    assert "(part1, part2) each hold the same subfolders with images (ant, bee)" in warning
    assert "rename them train/ and val/" in warning
    # Class folders that also hold images of their own (publishers.imagefolder's more/) are classes.
    read_classes(ImageFolderDataModule, publishers.imagefolder(tmp_path / "g"), tmp_path)
    assert "look like split folders" not in capsys.readouterr().err


def test_imagefolder_two_folders_for_one_split_is_a_user_error(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "f", splits={"train": 1.0, "val": 0.5, "Validation": 0.5})
    with pytest.raises(UserError, match="name the validation split") as info:
        read_classes(ImageFolderDataModule, root, tmp_path)
    assert "Validation/" in str(info.value) and "val/" in str(info.value)


def test_imagefolder_a_split_folder_without_a_train_folder_is_a_user_error(tmp_path: Path) -> None:
    """Class folders beside a Test/ folder: Test was read as a class holding every class's test images."""
    root = publishers.imagefolder(tmp_path / "f")
    publishers.imagefolder(root, {"dog": 2, "owl": 2}, splits={"Test": 1.0})
    with pytest.raises(UserError, match=r"Test/ but no train/ folder") as info:
        read_classes(ImageFolderDataModule, root, tmp_path)
    assert "rename Test/ if it is a class" in str(info.value)


def test_imagefolder_entries_beside_the_split_folders_are_listed_as_ignored(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "f", splits={"train": 1.0, "val": 0.5})
    publishers.imagefolder(root, {"dog": 2}, splits={"extra": 1.0})
    publishers.write(root / "cover.jpg")
    result = build(ImageFolderDataModule, root, tmp_path).prepare()
    ignored = dict(result.ignored)
    assert "not a split folder" in ignored["extra/"] and "train, val or test" in ignored["extra/"]
    assert ignored["cover.jpg"] == "image outside any split folder"


SPLITS_DIFFER = {
    "train": {"ant": 5, "bee": 5, "wasp": 5},
    "val": {"ant": 3, "bee": 3, "zebra": 3},
    "test": {"ant": 3, "koala": 3},
}


def test_imagefolder_a_validation_class_without_training_images_is_a_user_error(tmp_path: Path) -> None:
    """zebra (val only) was a class with 0 training images: never predicted, validation accuracy capped,
    and no word said."""
    root = publishers.imagefolder_splits(tmp_path / "f", SPLITS_DIFFER)
    with pytest.raises(UserError) as info:
        read_classes(ImageFolderDataModule, root, tmp_path)
    message = str(info.value)
    assert "1 class(es) have no images in train/ and could never be predicted" in message
    assert "zebra (3 in val/)" in message and "wasp" not in message.split("train/ holds")[0]
    assert "dataset.classes=[ant,bee,wasp]" in message and "dataset.split=random" in message
    # Re-split, train and val are pooled: zebra gets training images and is a class like the others.
    assert read_classes(ImageFolderDataModule, root, tmp_path, split="random") == [
        "ant",
        "bee",
        "wasp",
        "zebra",
    ]


def test_imagefolder_test_images_of_a_class_without_training_images_are_reported_and_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """test/koala's images were neither used nor counted: the report said 27 images found of 30."""
    root = publishers.imagefolder_splits(tmp_path / "f", SPLITS_DIFFER)
    dm = build(ImageFolderDataModule, root, tmp_path, classes=["ant", "bee", "wasp"])
    result = dm.prepare()
    assert dm.class_names == ["ant", "bee", "wasp"]
    assert result.counts == {"train": 15, "val": 6, "test": 3}
    koala = [rel for rel, why in result.ignored if "class koala" in why]
    assert koala == [f"test/koala/img_{i}.jpg" for i in range(3)]
    assert (
        "24 images found" in dm.report_path.read_text() and "3 entries ignored" in dm.report_path.read_text()
    )
    err = capsys.readouterr().err
    assert "test images of 1 class(es) without training images are not used: koala (3 in test/)" in err


def compose(*overrides: str):
    from hydra.core.global_hydra import GlobalHydra

    from translearn.config import compose_config

    try:
        return compose_config(list(overrides))
    finally:
        GlobalHydra.instance().clear()


def _shape(*overrides: str) -> tuple[int, int]:
    from translearn.config import instantiate

    data = instantiate(compose(*overrides).dataset)
    return data.num_classes, data.in_chans


def test_the_data_module_reads_the_class_count_and_channels_from_disk(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "f")
    assert _shape(
        "dataset=imagefolder", f"dataset.root={root}", "dataset.color=gray", "dataset.gray_mode=adapt"
    ) == (3, 1)
    simpsons = publishers.simpsons(tmp_path / "s")
    assert _shape("dataset=simpsons", f"dataset.root={simpsons}") == (20, 3)
    assert _shape("dataset=simpsons", f"dataset.root={simpsons}", "dataset.classes=all") == (22, 3)
    assert _shape("dataset=simpsons", f"dataset.root={simpsons}", "dataset.top_n=5") == (5, 3)
    with pytest.raises(UserError, match=r"dataset\.num_classes=7 but .* holds 3 classes"):
        _shape("dataset=imagefolder", f"dataset.root={root}", "dataset.num_classes=7")


def test_neither_composing_nor_building_a_data_module_touches_the_disk(tmp_path: Path) -> None:
    from translearn.config import instantiate

    cfg = compose("dataset=simpsons", f"dataset.root={tmp_path / 'nope'}")
    assert "num_classes" not in cfg.model and "in_chans" not in cfg.model  # the shape is not config
    data = instantiate(cfg.dataset)  # a missing root is found when the data is first read
    with pytest.raises(UserError, match="does not exist"):
        data.num_classes  # noqa: B018


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "fragment"),
    [
        (HymenopteraDataModule, "download.pytorch.org/tutorial/hymenoptera_data.zip"),
        (SimpsonsDataModule, "the-simpsons-characters-dataset"),
        (Caltech256DataModule, "prepare caltech256 --root"),
        (DogsVsCatsDataModule, "kaggle.com/c/dogs-vs-cats"),
    ],
)
def test_a_missing_root_says_how_to_get_the_data(cls, fragment: str, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist") as info:
        read_classes(cls, tmp_path / "nowhere", tmp_path)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("cls", "layout"),
    [
        (HymenopteraDataModule, "hymenoptera_data/{train,val}/{ants,bees}"),
        (SimpsonsDataModule, "simpsons_dataset/<character>/pic_NNNN.jpg"),
        (Caltech256DataModule, "256_ObjectCategories/NNN.name/NNN_NNNN.jpg"),
        (DogsVsCatsDataModule, "ROOT/train/{cat,dog}.N.jpg"),
        (ImageFolderDataModule, "ROOT/<class>/<image>"),
    ],
)
def test_a_wrong_layout_names_the_expected_one(cls, layout: str, tmp_path: Path) -> None:
    root = tmp_path / "wrong"
    publishers.write(root / "photo.jpg")  # images, but not in any dataset's layout
    with pytest.raises(UserError, match="expected layout") as info:
        read_classes(cls, root, tmp_path)
    assert layout in str(info.value)


def test_fewer_than_two_classes_is_a_user_error(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "f", counts={"only": 4})
    with pytest.raises(UserError, match="a classifier needs at least 2"):
        read_classes(ImageFolderDataModule, root, tmp_path)


def test_too_few_images_for_a_validation_split_says_so(tmp_path: Path) -> None:
    """One image per class: every image goes to training. It said "no training or validation images"."""
    root = publishers.imagefolder(tmp_path / "f", counts={"a": 1, "b": 1})
    with pytest.raises(UserError) as info:
        read_classes(ImageFolderDataModule, root, tmp_path)
    message = str(info.value)
    assert "no validation images" in message and "training" not in message.split("images under")[0]
    assert "too few to split off a validation set" in message and "dataset.val_fraction" in message


def test_zero_images_after_verification_is_a_user_error(tmp_path: Path) -> None:
    for cls in ("a", "b"):
        publishers.write_bad(tmp_path / "f" / cls)
    dm = build(ImageFolderDataModule, tmp_path / "f", tmp_path)
    with pytest.raises(UserError, match=r"no readable images .*6 files failed verification.*report-"):
        dm.prepare()


def test_a_class_whose_every_file_is_bad_is_a_user_error(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "f")
    publishers.write_bad(root / "broken")
    with pytest.raises(UserError, match="every image of class broken failed verification"):
        build(ImageFolderDataModule, root, tmp_path).prepare()


def test_an_unreadable_root_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = publishers.imagefolder(tmp_path / "f")
    # Tests may run as root, for whom chmod 000 still reads; the check itself is os.access.
    monkeypatch.setattr("os.access", lambda path, mode: Path(path) != root)
    with pytest.raises(UserError, match="is not readable; fix its permissions"):
        read_classes(ImageFolderDataModule, root, tmp_path)


@pytest.mark.cli
def test_train_cli_missing_root_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(
        "dataset=simpsons", f"dataset.root={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert_user_error(proc, "simpsons: dataset.root", "does not exist", "kaggle")
    assert not (tmp_path / "nope").exists()


@pytest.mark.cli
def test_prepare_cli_wrong_layout_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "wrong"
    publishers.write(root / "photo.jpg")
    proc = subprocess.run(
        [sys.executable, "-m", "translearn.data", "prepare", "caltech256", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_user_error(proc, "expected layout ROOT/caltech256/256_ObjectCategories")


def test_a_symlink_loop_is_visited_once(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "f")
    (root / "owl" / "again").symlink_to(root / "owl", target_is_directory=True)
    dm = build(ImageFolderDataModule, root, tmp_path)
    result = dm.prepare()
    assert result.usable == sum(publishers.IMAGEFOLDER.values())
    assert ("owl/again/", "symlink loop (already visited)") in result.ignored


def test_a_top_n_that_is_not_a_number_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"dataset\.top_n must be a whole number"):
        build(ImageFolderDataModule, publishers.imagefolder(tmp_path / "f"), tmp_path, top_n="many")


def test_a_root_one_folder_too_high_names_the_folder_to_use(tmp_path: Path) -> None:
    """ROOT/mydata/{train,val}/<class>/ gave only "1 class(es) ... needs at least 2"."""
    from publishers import imagefolder

    imagefolder(tmp_path / "mydata", splits={"train": 1.0, "val": 0.5})
    dm = ImageFolderDataModule(root=str(tmp_path))
    with pytest.raises(UserError, match=rf"set dataset.root={re.escape(str(tmp_path / 'mydata'))}$"):
        dm.prepare()
