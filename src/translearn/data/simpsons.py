"""The Simpsons characters (Kaggle ``alexattia/the-simpsons-characters-dataset``), as the archive ships.

Layout as unzipped into ``ROOT``:

* ``simpsons_dataset/<character>/pic_NNNN.jpg``: 42 characters, the training data. The archive also
  carries a nested duplicate ``simpsons_dataset/simpsons_dataset/``; it is ignored, never counted twice
  (and used only when it is the sole copy);
* ``kaggle_simpson_testset/<character>_NN.jpg``: a flat test set labelled by file-name prefix (also
  found one folder deeper, ``kaggle_simpson_testset/kaggle_simpson_testset/``). With ``test_set: true``
  it becomes the test split for the selected characters.

``classes: seed2017`` (the default) is the 2017 study's 20 characters, those with the most images;
``all`` takes every character, a list picks some, and ``top_n`` keeps the N largest.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from translearn.data.download import cut_short, fetch_kaggle
from translearn.data.prepare import PreparedDataModule
from translearn.data.scan import Scan, class_folder_scan, images_in, subfolders
from translearn.data.splits import Entry
from translearn.errors import UserError
from translearn.log import log

KAGGLE_REF = "alexattia/the-simpsons-characters-dataset"
TRAIN_FOLDER = "simpsons_dataset"
TEST_FOLDER = "kaggle_simpson_testset"
SEED2017_CLASSES = (
    "abraham_grampa_simpson",
    "apu_nahasapeemapetilon",
    "bart_simpson",
    "charles_montgomery_burns",
    "chief_wiggum",
    "comic_book_guy",
    "edna_krabappel",
    "homer_simpson",
    "kent_brockman",
    "krusty_the_clown",
    "lenny_leonard",
    "lisa_simpson",
    "marge_simpson",
    "mayor_quimby",
    "milhouse_van_houten",
    "moe_szyslak",
    "ned_flanders",
    "nelson_muntz",
    "principal_skinner",
    "sideshow_bob",
)
MANUAL = f"download https://www.kaggle.com/datasets/{KAGGLE_REF} and unzip it into {{root}}"
_TEST_NAME = re.compile(r"^(?P<cls>.+)_\d+$")


class SimpsonsDataModule(PreparedDataModule):
    """20 (or any number of) characters; ``split=seed2017`` gives train 15638 / val 3910 on the study's 20."""

    DATASET: ClassVar[str] = "simpsons"
    LAYOUT: ClassVar[str] = (
        "ROOT/simpsons_dataset/<character>/pic_NNNN.jpg (+ ROOT/kaggle_simpson_testset/<character>_NN.jpg)"
    )
    HOW_TO_GET: ClassVar[str] = (
        MANUAL
        + " (or, with the kaggle CLI: python -m translearn.data prepare simpsons --root {root} --download)"
    )

    def __init__(self, root: str | Path, classes: Any = "seed2017", test_set: bool = True, **kwargs: Any):
        self.test_set = bool(test_set)
        super().__init__(root, classes=classes, **kwargs)
        if self.test_set and self.split == "random" and self.test_fraction > 0:
            raise UserError(
                "simpsons: the Kaggle test set is already the test split; set dataset.test_fraction=0 "
                "or dataset.test_set=false"
            )

    def class_preset(self, name: str) -> list[str] | None:
        return list(SEED2017_CLASSES) if name == "seed2017" else None

    def train_folder(self) -> Path:
        top = self.root / TRAIN_FOLDER
        if not top.is_dir():
            raise self.layout_error("no simpsons_dataset/ folder")
        nested = top / TRAIN_FOLDER
        has_own = any(p.name != TRAIN_FOLDER for p in subfolders(top))
        return top if has_own or not nested.is_dir() else nested

    def test_files(self) -> tuple[list[str], list[tuple[str, str]]]:
        folder = self.root / TEST_FOLDER
        if (folder / TEST_FOLDER).is_dir():
            folder = folder / TEST_FOLDER
        if not folder.is_dir():
            return [], []
        return images_in(folder, self.root)

    def scan(self) -> Scan:
        train = self.train_folder()
        scan = class_folder_scan(self.root, train, skip=(TRAIN_FOLDER,))
        if (train / TRAIN_FOLDER).is_dir():
            scan.ignored.append((f"{TRAIN_FOLDER}/{TRAIN_FOLDER}/", "nested duplicate of simpsons_dataset/"))
        if self.test_set:
            images, ignored = self.test_files()
            scan.ignored += ignored
            for rel in images:
                match = _TEST_NAME.match(Path(rel).stem)
                if match is None:
                    scan.ignored.append((rel, "test image not named <character>_NN"))
                else:
                    scan.entries.append(Entry(rel, match["cls"], "test"))
        return scan

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "test_set": self.test_set}

    @classmethod
    def download(cls, root: Path) -> None:
        if (root / TRAIN_FOLDER).is_dir() and not cut_short(root, KAGGLE_REF.rsplit("/", 1)[-1] + ".zip"):
            log.info(f"{root / TRAIN_FOLDER} already exists; not downloading again")
            return
        fetch_kaggle("datasets", KAGGLE_REF, root, manual=MANUAL.format(root=root))
