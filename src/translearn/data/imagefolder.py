"""Any folder of images, one subfolder per class: ``ROOT/<class>/**/<image>``.

If ``ROOT`` holds ``train/`` (and ``val/``, ``valid/`` or ``validation/``, and optionally ``test/``),
each holding class folders, that split is used as is (``split: folders``; ``auto`` picks it when a
val folder exists). Otherwise ``split: random`` (fractions, seeded) or ``seed2017`` (first 80% by name)
splits each class; a ``test/`` folder stays the test split under every rule. The class count is read
from disk, and ``translearn.train`` passes it to the model, so it is never typed.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from translearn.data.prepare import PreparedDataModule
from translearn.data.scan import Scan, class_folder_scan, merge
from translearn.data.splits import SPLIT_RULES, Entry, assign_splits

VAL_NAMES = ("val", "valid", "validation")


class ImageFolderDataModule(PreparedDataModule):
    """Generic class folders, with or without the user's own train/val[/test] folders."""

    DATASET: ClassVar[str] = "imagefolder"
    LAYOUT: ClassVar[str] = "ROOT/<class>/<image> or ROOT/{train,val[,test]}/<class>/<image>"
    HOW_TO_GET: ClassVar[str] = "point dataset.root at a folder laid out as ROOT/<class>/<image>"
    DEFAULT_SPLIT: ClassVar[str] = "auto"

    def split_rules(self) -> tuple[str, ...]:
        return ("auto", *SPLIT_RULES)

    def split_folders(self) -> dict[str, Path]:
        val = next((self.root / n for n in VAL_NAMES if (self.root / n).is_dir()), self.root / "val")
        folders = {"train": self.root / "train", "val": val, "test": self.root / "test"}
        return {s: f for s, f in folders.items() if f.is_dir()}

    def scan(self) -> Scan:
        folders = self.split_folders()
        if "train" not in folders:
            return class_folder_scan(self.root, self.root, recursive=True)
        scans = [
            class_folder_scan(self.root, folder, split, recursive=True) for split, folder in folders.items()
        ]
        for scan, split in zip(scans, folders, strict=True):
            if split == "test":  # classes come from train/val; a test-only folder makes no class
                scan.class_dirs = []
        return merge(*scans)

    def rule(self) -> str:
        """``auto`` resolved: the user's folders when the layout has a val folder, else random."""
        if self.split != "auto":
            return self.split
        return "folders" if any(e.split == "val" for e in self._scan.entries) else "random"

    def split_name(self) -> str:
        return f"{self.rule()} (auto)" if self.split == "auto" else self.split

    def split_entries(self, entries: list[Entry]) -> dict[str, list[Entry]]:
        rule = self.rule()
        if rule != "folders":  # re-split train (+ val); a test folder stays the test split
            entries = [e if e.split == "test" else Entry(e.rel, e.cls) for e in entries]
        return assign_splits(entries, rule, self.val_fraction, self.test_fraction, self.seed)
