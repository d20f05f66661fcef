"""Hymenoptera (ants vs bees): the PyTorch transfer-learning tutorial's zip, with its own train/val split.

Layout as unzipped: ``ROOT/hymenoptera_data/{train,val}/{ants,bees}/*.jpg`` (``ROOT`` may also be the
``hymenoptera_data`` folder itself). Train 244 (123 ants, 121 bees), val 153 (70, 83).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from translearn.data.download import cut_short, fetch_zip
from translearn.data.prepare import PreparedDataModule
from translearn.data.scan import Scan, class_folder_scan, merge
from translearn.data.splits import Entry, assign_splits
from translearn.log import log

URL = "https://download.pytorch.org/tutorial/hymenoptera_data.zip"
# The zip's SHA-256 is not pinned: no trustworthy published value could be found offline. The download
# prints the digest it got; pin it here once verified so later downloads are checked against it.
SHA256: str | None = None
FOLDER = "hymenoptera_data"


class HymenopteraDataModule(PreparedDataModule):
    """2 classes; ``split=seed2017`` (= ``folders``) keeps the zip's own train/val, as the 2017 study did."""

    DATASET: ClassVar[str] = "hymenoptera"
    LAYOUT: ClassVar[str] = "ROOT/hymenoptera_data/{train,val}/{ants,bees}/*.jpg"
    HOW_TO_GET: ClassVar[str] = (
        "download it with: python -m translearn.data prepare hymenoptera --root {root} --download "
        f"(or unzip {URL} into {{root}})"
    )

    def data_folder(self) -> Path:
        for folder in (self.root / FOLDER, self.root):
            if (folder / "train").is_dir() and (folder / "val").is_dir():
                return folder
        raise self.layout_error("no hymenoptera_data/train and hymenoptera_data/val folders")

    def scan(self) -> Scan:
        folder = self.data_folder()
        return merge(*(class_folder_scan(self.root, folder / split, split) for split in ("train", "val")))

    def discover(self) -> tuple[Scan, list[str]]:
        scan, classes = super().discover()
        if self.split in ("seed2017", "folders"):  # val/wasps beside train/{ants,bees}: never predictable
            self.check_every_class_trains(scan, classes, {"train": "train", "val": "val"})
        return scan, classes

    def split_entries(self, entries: list[Entry]) -> dict[str, list[Entry]]:
        if self.split in ("seed2017", "folders"):
            return assign_splits(entries, "folders")
        pooled = [Entry(e.rel, e.cls) for e in entries]  # split=random re-splits train+val together
        return assign_splits(pooled, self.split, self.val_fraction, self.test_fraction, self.seed)

    @classmethod
    def download(cls, root: Path) -> None:
        if (root / FOLDER / "train").is_dir() and not cut_short(root, "hymenoptera_data.zip"):
            log.info(f"{root / FOLDER} already exists; not downloading again")
            return
        fetch_zip(URL, root, SHA256, name="hymenoptera_data.zip")
