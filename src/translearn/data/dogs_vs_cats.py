"""Dogs vs Cats (Kaggle competition ``dogs-vs-cats``): labels come from the file names.

Layout as unzipped into ``ROOT``: ``train/cat.N.jpg`` and ``train/dog.N.jpg`` (12500 of each), and
``test1/N.jpg``, which is unlabelled and therefore never indexed. ``split=seed2017`` takes, per class,
the files in numeric order and puts the first 80% in train: 10000 train / 2500 val per class.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

from translearn.data.download import cut_short, fetch_kaggle
from translearn.data.prepare import PreparedDataModule
from translearn.data.scan import Scan, images_in
from translearn.data.splits import Entry
from translearn.log import log

KAGGLE_REF = "dogs-vs-cats"
CLASSES = ("cat", "dog")
_NAME = re.compile(r"^(?P<cls>cat|dog)\.\d+$", re.IGNORECASE)
MANUAL = (
    "download https://www.kaggle.com/c/dogs-vs-cats/data, unzip it into {root}, then unzip train.zip "
    "there too, so that {root}/train/cat.0.jpg exists"
)


class DogsVsCatsDataModule(PreparedDataModule):
    """2 classes, 25000 labelled images; the unlabelled ``test1/`` is not used."""

    DATASET: ClassVar[str] = "dogs_vs_cats"
    LAYOUT: ClassVar[str] = "ROOT/train/{cat,dog}.N.jpg (ROOT/test1/ is unlabelled and not used)"
    HOW_TO_GET: ClassVar[str] = (
        MANUAL + " (or, with the kaggle CLI: python -m translearn.data prepare dogs_vs_cats "
        "--root {root} --download)"
    )

    def scan(self) -> Scan:
        train = self.root / "train"
        if not train.is_dir():
            hint = " (unzip train.zip first)" if (self.root / "train.zip").is_file() else ""
            raise self.layout_error(f"no train/ folder{hint}")
        images, ignored = images_in(train, self.root)
        scan = Scan(ignored=ignored)
        for rel in images:
            match = _NAME.match(Path(rel).stem)
            if match is None:
                scan.ignored.append((rel, "not named cat.N or dog.N"))
            else:
                scan.entries.append(Entry(rel, match["cls"].lower()))
        return scan

    @classmethod
    def download(cls, root: Path) -> None:
        if (root / "train").is_dir() and not cut_short(root, KAGGLE_REF + ".zip", "train.zip"):
            log.info(f"{root / 'train'} already exists; not downloading again")
            return
        fetch_kaggle(
            "competitions", KAGGLE_REF, root, MANUAL.format(root=root), inner_zips=("train.zip", "test1.zip")
        )
