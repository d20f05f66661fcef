"""Preparation: every file verified once, bad files excluded and reported, nothing in the root touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import publishers
from translearn.data import download
from translearn.data.__main__ import main as data_main
from translearn.data.download import fetch_kaggle, fetch_zip, file_sha256
from translearn.data.hymenoptera import HymenopteraDataModule
from translearn.data.imagefolder import ImageFolderDataModule
from translearn.data.simpsons import SimpsonsDataModule
from translearn.data.verify import verify_image
from translearn.errors import UserError


def folder_module(root: Path, tmp_path: Path, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root, index_dir=tmp_path / "index", num_workers=0, **kwargs)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = publishers.imagefolder(tmp_path / "data")
    publishers.write_bad(root / "dog")
    return root


def test_verify_image_names_the_reason(tmp_path: Path) -> None:
    bad = dict(zip(publishers.BAD_FILES, publishers.write_bad(tmp_path), strict=True))
    assert verify_image(publishers.write(tmp_path / "ok.jpg")) is None
    assert verify_image(bad["truncated.jpg"]).startswith("truncated")
    assert verify_image(bad["empty.jpg"]).startswith("empty file")
    assert verify_image(bad["notes.jpg"]).startswith("not an image")


def test_bad_files_are_excluded_from_the_index_and_listed_in_the_report(tree: Path, tmp_path: Path) -> None:
    dm = folder_module(tree, tmp_path)
    result = dm.prepare()
    excluded = dict(result.excluded)
    assert set(excluded) == {f"dog/{name}" for name in publishers.BAD_FILES}
    indexed = {path for split in ("train", "val", "test") for path, _ in dm.index.samples[split]}
    assert not any(Path(p).name in publishers.BAD_FILES for p in indexed)
    assert len(indexed) == result.usable == sum(publishers.IMAGEFOLDER.values())
    report = result.report_path.read_text(encoding="utf-8")
    for name, reason in publishers.BAD_FILES.items():
        assert f"dog/{name}" in report and reason in report


def test_prepare_writes_nothing_into_the_data_root(tree: Path, tmp_path: Path) -> None:
    before = publishers.snapshot(tree)
    dm = folder_module(tree, tmp_path)
    dm.prepare()
    dm.setup("fit")
    assert publishers.snapshot(tree) == before
    assert dm.index_path.is_relative_to(tmp_path / "index")


def test_preparing_again_reverifies_only_what_changed(tree: Path, tmp_path: Path) -> None:
    first = folder_module(tree, tmp_path).prepare()
    assert first.checked == first.usable + len(first.excluded)
    assert folder_module(tree, tmp_path).prepare().checked == 0
    changed = tree / "owl" / "img_0.jpg"
    publishers.write(changed, "rgb", seed=42)
    os.utime(changed, ns=(1, 1))  # a different mtime even on coarse-grained file systems
    publishers.write(tree / "owl" / "img_new.jpg", "gray", seed=43)
    again = folder_module(tree, tmp_path).prepare()
    assert again.checked == 2
    assert again.usable == first.usable + 1


def test_a_file_broken_after_preparation_is_excluded_next_time(tree: Path, tmp_path: Path) -> None:
    folder_module(tree, tmp_path).prepare()
    victim = tree / "owl" / "img_1.jpg"
    victim.write_bytes(victim.read_bytes()[:40])
    result = folder_module(tree, tmp_path).prepare()
    assert "owl/img_1.jpg" in dict(result.excluded)


def test_training_reads_the_saved_index_without_verifying_again(tree: Path, tmp_path: Path) -> None:
    prepared = folder_module(tree, tmp_path).prepare()
    dm = folder_module(tree, tmp_path)
    cache = dm.index_folder / "files.json"
    stamp = cache.stat().st_mtime_ns
    dm.setup("fit")
    assert dm.digest == prepared.digest
    assert cache.stat().st_mtime_ns == stamp
    data = json.loads(dm.index_path.read_text(encoding="utf-8"))
    assert data["classes"] == dm.class_names == ["café", "dog", "owl"]
    assert {s: len(v) for s, v in data["samples"].items()} == {"train": 12, "val": 3, "test": 0}


def test_each_root_gets_its_own_index_folder(tmp_path: Path) -> None:
    a = folder_module(publishers.imagefolder(tmp_path / "a"), tmp_path)
    b = folder_module(publishers.imagefolder(tmp_path / "b"), tmp_path)
    assert a.index_folder != b.index_folder
    assert a.index_folder.parent == b.index_folder.parent == tmp_path / "index"


def test_an_unwritable_index_folder_is_a_user_error(tree: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    dm = ImageFolderDataModule(tree, index_dir=blocker, num_workers=0)
    with pytest.raises(UserError, match=r"cannot write the dataset index .*paths.cache_dir"):
        dm.prepare()


@pytest.mark.cli
def test_prepare_cli_prints_the_report_of_bad_files(tree: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "translearn.data", "prepare", "imagefolder", "--root", str(tree)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 excluded (failed verification)" in proc.stdout
    assert "dog/truncated.jpg\ttruncated" in proc.stdout
    assert "dog/empty.jpg\tempty file (0 bytes)" in proc.stdout
    assert "translearn: prepared imagefolder: 3 classes, train 12 / val 3" in proc.stdout


def test_prepare_cli_download_flag_calls_the_datasets_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    calls = []

    def fake_download(cls, root: Path) -> None:  # the real one fetches the tutorial zip
        calls.append(root)
        publishers.hymenoptera(root)

    monkeypatch.setattr(HymenopteraDataModule, "download", classmethod(fake_download))
    root = tmp_path / "hym"
    assert data_main(["prepare", "hymenoptera", "--root", str(root), "--download"]) == 0
    assert calls == [root]
    assert "prepared hymenoptera: 2 classes, train 12 / val 7" in capsys.readouterr().out


def test_prepare_cli_turns_a_user_error_into_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        data_main(["prepare", "simpsons", "--root", str(tmp_path / "nowhere")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("translearn: error: simpsons: dataset.root")
    assert "kaggle.com/datasets/alexattia/the-simpsons-characters-dataset" in err[0]


def test_prepare_cli_names_an_unknown_dataset(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit):
        data_main(["prepare", "mnist", "--root", "/tmp"])
    assert "unknown dataset 'mnist'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        # Its own "+dataset.clases" gave a 42-line TypeError; argparse's errors were not one line either.
        (["prepare", "shapes", "+dataset.clases=all"], "unknown key dataset.clases"),
        (["prepare"], "the following arguments are required: dataset (usage: python -m translearn.data"),
        # A training key was accepted and ignored; a misspelt dataset key got Hydra's "+dataset.splt" hint.
        (["prepare", "shapes", "strategy=freeze"], "prepare takes dataset.* keys only"),
        (["prepare", "shapes", "+seeed=3"], "prepare takes dataset.* keys only"),
        (["prepare", "hymenoptera", "dataset.splt=random"], "did you mean dataset.split?"),
        ([], "the following arguments are required: command"),
    ],
)
def test_prepare_cli_bad_command_lines_are_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        data_main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("translearn: error:") and fragment in err[0], err


def test_prepare_help_lists_the_key_value_overrides(capsys: pytest.CaptureFixture) -> None:
    """The README documents prepare's dataset.KEY=VALUE overrides; its --help did not mention them."""
    with pytest.raises(SystemExit) as exit_info:
        data_main(["prepare", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for fragment in ("dataset.KEY=VALUE", "dataset.classes=", "dataset.split=random", "paths.cache_dir="):
        assert fragment in out, out


def test_fetch_zip_checks_the_checksum_and_unpacks(tmp_path: Path) -> None:
    archive = _hymenoptera_zip(tmp_path)
    url = archive.as_uri()  # file://: the real download code path, no network
    with pytest.raises(UserError, match="SHA-256"):
        fetch_zip(url, tmp_path / "wrong", "0" * 64, name="hymenoptera_data.zip")
    assert not (tmp_path / "wrong" / "hymenoptera_data.zip").exists()
    dest = fetch_zip(url, tmp_path / "ok", file_sha256(archive), name="hymenoptera_data.zip")
    dm = HymenopteraDataModule(dest, index_dir=tmp_path / "index", num_workers=0)
    assert dm.class_names == ["ants", "bees"]


def test_kaggle_download_without_the_cli_says_how_to_get_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # the CLI is the fallback when kagglehub is missing
    monkeypatch.setattr("shutil.which", lambda _name: None)
    with pytest.raises(UserError, match=r"kaggle CLI is not installed .* or download https://www.kaggle.com"):
        fetch_kaggle(
            "datasets",
            "alexattia/the-simpsons-characters-dataset",
            tmp_path,
            "download https://www.kaggle.com/x",
        )


def test_kaggle_download_unpacks_what_the_cli_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = publishers.simpsons(tmp_path / "src", symlinked=None)
    archive = tmp_path / "prebuilt.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            zf.write(path, path.relative_to(source).as_posix())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "kaggle"  # stands in for the real CLI: "downloads" by copying the prebuilt zip
    fake.write_text(
        '#!/bin/sh\nwhile [ $# -gt 0 ]; do [ "$1" = -p ] && dir="$2"; shift; done\n'
        f'cp {archive} "$dir/the-simpsons-characters-dataset.zip"\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # the CLI is the fallback when kagglehub is missing
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "not-a-real-key")
    root = tmp_path / "simpsons"
    SimpsonsDataModule.download(root)
    dm = SimpsonsDataModule(root, index_dir=tmp_path / "index", num_workers=0)
    assert dm.class_names == list(publishers.STUDY_20)


# --- faults and bad input (the integrity issue) ---------------------------------------------------


def _hymenoptera_zip(tmp_path: Path) -> Path:
    source = publishers.hymenoptera(tmp_path / "src")
    archive = tmp_path / "hymenoptera_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((source / "hymenoptera_data").rglob("*")):
            zf.write(path, path.relative_to(source).as_posix())
    return archive


@pytest.mark.cli
def test_an_extraction_killed_halfway_is_detected_and_finished(tmp_path: Path) -> None:
    """A process unpacking the real archive, SIGKILLed mid-way: the next --download finishes the job."""
    archive = _hymenoptera_zip(tmp_path)
    root = tmp_path / "data"
    root.mkdir()
    (root / archive.name).write_bytes(archive.read_bytes())  # downloaded; the unpacking gets killed
    slow = (
        "import sys, time, zipfile, shutil; from pathlib import Path; from translearn.data import download\n"
        "orig = shutil.copyfileobj\n"
        "def slow(*a, **k):\n    orig(*a, **k); print('member', flush=True); time.sleep(0.3)\n"
        "download.shutil.copyfileobj = slow\n"
        f"download.extract_zip(Path({str(root / archive.name)!r}), Path({str(root)!r}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", slow], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for _ in range(6):  # junk files (.DS_Store, Thumbs.db) come first in the archive, then images
        proc.stdout.readline()
    proc.kill()
    proc.wait()
    unpacked = [p for p in (root / "hymenoptera_data").rglob("*.jpg")]
    assert 0 < len(unpacked) < 19  # cut short: the folder exists but holds part of the data
    assert download.cut_short(root, archive.name) == [archive.name]

    HymenopteraDataModule.download(root)  # what `prepare hymenoptera --download` calls: it resumes
    assert download.cut_short(root, archive.name) == []
    dm = HymenopteraDataModule(root, index_dir=tmp_path / "index", num_workers=0)
    assert sum(dm.index.count(s) for s in ("train", "val")) == 19
    assert not list(root.rglob("*.partial"))


@pytest.mark.cli
@pytest.mark.skipif(sys.platform != "linux", reason="non-UTF-8 names need a byte-name filesystem")
def test_a_non_utf8_file_name_is_skipped_and_listed(tree: Path, tmp_path: Path) -> None:
    source = next((tree / "dog").glob("*.jpg"))
    bad = os.fsencode(str(tree / "dog")) + b"/caf\xe9.jpg"  # Latin-1 bytes: not UTF-8
    with open(bad, "wb") as f:
        f.write(source.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "translearn.data", "prepare", "imagefolder", "--root", str(tree)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "dog/caf\\xe9.jpg\tfile name is not valid UTF-8" in proc.stdout
    again = subprocess.run(
        [sys.executable, "-m", "translearn.data", "prepare", "imagefolder", "--root", str(tree)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0


def test_a_symlink_back_into_the_dataset_does_not_relabel_images(tmp_path: Path) -> None:
    root = publishers.imagefolder(tmp_path / "data")
    (root / "dog" / "everything").symlink_to(root)  # e.g. a "shortcut" someone left in a class folder
    dm = folder_module(root, tmp_path)  # image folders are scanned recursively, links followed
    result = dm.prepare()
    labels = {path: label for split in ("train", "val", "test") for path, label in dm.index.samples[split]}
    assert all(not p.startswith("dog/everything/") for p in labels)
    assert ("dog/everything/", "symlink back into the dataset (its images belong to other classes)") in [
        tuple(x) for x in result.ignored
    ]


def test_classes_without_validation_images_are_warned_about(tmp_path: Path, capsys) -> None:
    root = publishers.imagefolder(tmp_path / "data")
    lonely = root / "zebra"
    lonely.mkdir()
    publishers.write(lonely / "only.jpg")
    dm = folder_module(root, tmp_path, split="seed2017")
    dm.prepare()
    err = capsys.readouterr().err
    assert "1 class(es) get no validation images under split=seed2017: zebra (1 images)" in err


def test_a_full_disk_while_writing_the_index_is_one_line_and_leaves_nothing_half_written(
    tree: Path, tmp_path: Path, monkeypatch
) -> None:
    """The disk fills during the index write: one line naming the folder and the fix, no temporary file."""
    import errno
    import io

    from translearn import storage

    class Full(io.FileIO):
        """A file that takes half of what is written, then reports a full disk, as a full device does."""

        def write(self, data: bytes) -> int:
            super().write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "open", Full, raising=False)
    dm = folder_module(tree, tmp_path)
    with pytest.raises(UserError) as err:
        dm.prepare()
    message = str(err.value)
    assert message.startswith(f"imagefolder: cannot write the dataset index in {dm.index_folder}: no space")
    assert "free space or set paths.cache_dir=DIR" in message and "\n" not in message
    assert not [p.name for p in dm.index_folder.iterdir() if "partial" in p.name or p.suffix != ".lock"]
