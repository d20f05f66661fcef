"""Caltech-256, in the layout ``torchvision.datasets.Caltech256`` downloads and unpacks.

Layout: ``ROOT/caltech256/256_ObjectCategories/NNN.name/NNN_NNNN.jpg`` (``ROOT`` may also be the
``caltech256`` or the ``256_ObjectCategories`` folder). 257 classes counting ``257.clutter``, which
``exclude_clutter: true`` leaves out. The archive's strays are ignored and reported: the subfolder
``056.dog/greg/`` and the file ``198.spider/RENAME2``. Some images are gray or CMYK JPEGs; every
image becomes RGB on load.

Class names are the folder names (``056.dog``); ``dataset.classes`` also accepts the bare name (``dog``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from translearn.data.prepare import PreparedDataModule
from translearn.data.scan import Scan, class_folder_scan
from translearn.errors import UserError
from translearn.log import log

CATEGORIES = "256_ObjectCategories"
CLUTTER = "257.clutter"
_CLASS_DIR = re.compile(r"^\d{3}\.")
MANUAL = (
    "download 256_ObjectCategories.tar from https://data.caltech.edu/records/nyy15-4j048 and untar it "
    "into {root}/caltech256/"
)


class Caltech256DataModule(PreparedDataModule):
    """257 classes of about 100 images, split like the study (which reports train 24491 / val 6116).

    ``split=seed2017`` is the per-class rounding that reproduces the study's Simpsons split exactly;
    Caltech's own per-class counts were not available offline to check its 24491 / 6116 the same way.
    """

    DATASET: ClassVar[str] = "caltech256"
    LAYOUT: ClassVar[str] = "ROOT/caltech256/256_ObjectCategories/NNN.name/NNN_NNNN.jpg"
    HOW_TO_GET: ClassVar[str] = (
        "download it with: python -m translearn.data prepare caltech256 --root {root} --download "
        "(torchvision), or " + MANUAL
    )

    def __init__(self, root: str | Path, exclude_clutter: bool = False, **kwargs: Any):
        self.exclude_clutter = bool(exclude_clutter)
        super().__init__(root, **kwargs)

    def categories_folder(self) -> Path:
        for folder in (self.root / "caltech256" / CATEGORIES, self.root / CATEGORIES, self.root):
            if folder.is_dir() and any(_CLASS_DIR.match(p.name) for p in folder.iterdir() if p.is_dir()):
                return folder
        raise self.layout_error("no 256_ObjectCategories/NNN.name/ folders")

    def scan(self) -> Scan:
        folder = self.categories_folder()
        scan = class_folder_scan(self.root, folder)
        strays = [c for c in scan.class_dirs if not _CLASS_DIR.match(c)]
        scan.class_dirs = [c for c in scan.class_dirs if c not in strays]
        scan.entries = [e for e in scan.entries if e.cls not in strays]
        scan.ignored += [
            (f"{folder.relative_to(self.root).as_posix()}/{c}/", "not an NNN.name class folder")
            for c in strays
        ]
        if self.exclude_clutter:
            scan.class_dirs = [c for c in scan.class_dirs if c != CLUTTER]
            scan.entries = [e for e in scan.entries if e.cls != CLUTTER]
        return scan

    def match_class(self, requested: str, available: dict[str, int]) -> str | None:
        if requested in available:
            return requested
        bare = [c for c in available if c.split(".", 1)[-1] == requested]
        return bare[0] if len(bare) == 1 else None

    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "exclude_clutter": self.exclude_clutter}

    @classmethod
    def download(cls, root: Path) -> None:
        from translearn.data.download import cut_short, extract_tar, marker

        folder = root / "caltech256"
        tar = folder / f"{CATEGORIES}.tar"
        if (folder / CATEGORIES).is_dir() and not cut_short(folder, tar.name):
            log.info(f"{folder / CATEGORIES} already exists; not downloading again")
            return
        if tar.is_file():  # downloaded before; the extraction was cut short
            log.info(f"finishing the extraction of {tar}")
            extract_tar(tar, folder)
            return
        from torchvision.datasets import Caltech256

        root.mkdir(parents=True, exist_ok=True)
        try:
            Caltech256(root=str(root), download=True)
        except Exception as exc:  # network, Google Drive quota, checksum: all end in the manual route
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise UserError(
                f"downloading Caltech256 failed ({message}); {MANUAL.format(root=root)}"
            ) from None
        if tar.is_file():
            marker(tar, folder).write_text(f"{tar.name} unpacked completely\n")
