"""Any folder of images, one subfolder per class: ``ROOT/<class>/**/<image>``.

If ``ROOT`` holds split folders, each holding class folders, that split is used as is (``split:
folders``; ``auto`` picks it when a val folder exists). Split folders are recognised by name, in any
case (``Train``/``Val`` from Windows and Kaggle archives are as common as ``train``/``val``):

* train: ``train``, ``training``
* val: ``val``, ``valid``, ``validation``, ``dev``
* test: ``test``, ``testing``

Otherwise ``split: random`` (fractions, seeded) or ``seed2017`` (first 80% by name) splits each class;
a test folder stays the test split under every rule. The class count is read from disk, and
``translearn.train`` passes it to the model, so it is never typed.

A misread layout would train on the wrong labels without a word, so what is ambiguous is said:

* a split folder (``Test/``, ``val/``) with no train folder beside it is an error (it would become a
  class holding every class's images), and so are two folders for one split (``val/`` and ``valid/``);
* top-level folders under other names that hold no images of their own but the same subfolders with
  images (``part1/{ant,bee}``, ``part2/{ant,bee}``) look like splits: they are read as classes, with a
  warning naming the fix (rename them), since class folders grouped alike inside are legitimate;
* entries beside the split folders are not read, and are listed in the report as ignored.

Classes come from the train (and val) folders. Under ``folders``, a class with val images but none in
train is an error: the model could never predict it, capping validation accuracy, and it is most often
a misspelt or misplaced folder; ``dataset.classes`` leaves it out, ``split=random`` pools train and val.
Test images of a class without training images cannot be scored: they are set aside with a warning and
counted among the report's ignored entries.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

from translearn.data.images import is_image_name
from translearn.data.prepare import PreparedDataModule, names_shown
from translearn.data.scan import Scan, class_folder_scan, is_dir, is_junk, list_dir, merge, undecodable
from translearn.data.splits import SPLIT_RULES, Entry, assign_splits, natural_key
from translearn.errors import UserError
from translearn.log import warn_once

# Top-level folder names (compared in lower case) that are split folders, not classes.
SPLIT_NAMES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "val": ("val", "valid", "validation", "dev"),
    "test": ("test", "testing"),
}
VAL_NAMES = SPLIT_NAMES["val"]
_SPLIT_OF = {name: split for split, names in SPLIT_NAMES.items() for name in names}
_SPLIT_WORD = {"train": "training", "val": "validation", "test": "test"}


def split_of(name: str) -> str | None:
    """The split a top-level folder's name stands for (``Train`` → ``train``), or None for a class."""
    return _SPLIT_OF.get(name.lower())


def looks_like_splits(scan: Scan) -> tuple[list[str], list[str]] | None:
    """(top folders, their shared subfolders) when the class folders of ``scan`` look like split folders.

    A split layout under names no list knows (``part1/{ant,bee}``, ``part2/{ant,bee}``) reads as classes
    ``part1`` and ``part2``. Its sign: two or more folders with images, none with images of its own, all
    sharing two or more subfolders that hold images. Class folders grouped alike (``cat/{indoor,outdoor}``)
    show the same sign, so this is a warning, not an error.
    """
    groups: dict[str, set[str]] = {}
    own: set[str] = set()
    for entry in scan.entries:
        parts = entry.rel.split("/")
        if len(parts) == 2:
            own.add(entry.cls)
        groups.setdefault(entry.cls, set()).update(parts[1:2] if len(parts) > 2 else ())
    if len(groups) < 2 or own:
        return None
    shared = set.intersection(*groups.values())
    if len(shared) < 2:
        return None
    return sorted(groups, key=natural_key), sorted(shared, key=natural_key)


class ImageFolderDataModule(PreparedDataModule):
    """Generic class folders, with or without the user's own train/val[/test] folders."""

    DATASET: ClassVar[str] = "imagefolder"
    LAYOUT: ClassVar[str] = "ROOT/<class>/<image> or ROOT/{train,val[,test]}/<class>/<image>"
    HOW_TO_GET: ClassVar[str] = "point dataset.root at a folder laid out as ROOT/<class>/<image>"
    DEFAULT_SPLIT: ClassVar[str] = "auto"

    def split_rules(self) -> tuple[str, ...]:
        return ("auto", *SPLIT_RULES)

    def split_folders(self) -> dict[str, Path]:
        """The root's split folders by split (see :data:`SPLIT_NAMES`, any case); two for one split is
        an error, since either choice would silently drop the other's images."""
        found: dict[str, list[Path]] = {}
        for entry in list_dir(self.root):
            split = split_of(entry.name)
            if split and not is_junk(entry.name) and is_dir(entry):
                found.setdefault(split, []).append(Path(entry.path))
        for split, folders in found.items():
            if len(folders) > 1:
                shown = " and ".join(f"{f.name}/" for f in folders)
                raise UserError(
                    f"{self.name}: dataset.root {self.root} holds {shown}, which "
                    f"{'both' if len(folders) == 2 else 'all'} name the {_SPLIT_WORD[split]} split; merge "
                    "them into one folder or rename the others"
                )
        return {s: found[s][0] for s in SPLIT_NAMES if s in found}

    def scan(self) -> Scan:
        folders = self.split_folders()
        if "train" not in folders:
            if folders:
                shown = " and ".join(f"{f.name}/" for f in folders.values())
                one = len(folders) == 1
                raise UserError(
                    f"{self.name}: dataset.root {self.root} has {shown} but no train/ folder beside "
                    f"{'it' if one else 'them'}; put the training images in {self.root / 'train'}/<class>/ "
                    f"(validation images in val/<class>/), or rename {shown} if "
                    f"{'it is a class' if one else 'they are classes'}"
                )
            scan = class_folder_scan(self.root, self.root, recursive=True)
            if (alike := looks_like_splits(scan)) is not None:
                tops, shared = alike
                warn_once(
                    f"{self.name}: the folders under {self.root} ({names_shown(tops, 6)}) each hold the same "
                    f"subfolders with images ({names_shown(shared, 6)}): they look like split folders, not "
                    f"classes, yet are read as {len(tops)} classes; if they are splits, rename them "
                    "train/ and val/ (and test/; any case, or training, valid, validation, dev, testing); "
                    "if they are classes grouped alike inside, ignore this warning"
                )
            return scan
        scans = [
            class_folder_scan(self.root, folder, split, recursive=True) for split, folder in folders.items()
        ]
        for scan, split in zip(scans, folders, strict=True):
            if split == "test":  # classes come from train/val; a test-only folder makes no class
                scan.class_dirs = []
        scan = merge(Scan(ignored=self._beside(folders)), *scans)
        self._set_aside_test_only(scan, folders)
        return scan

    def _beside(self, folders: dict[str, Path]) -> list[tuple[str, str]]:
        """Entries beside the split folders: not read, so listed (they were skipped without a word)."""
        used = {f.name for f in folders.values()}
        out = []
        for entry in list_dir(self.root):
            if entry.name in used or is_junk(entry.name):
                continue
            name = undecodable(entry.name) or entry.name
            if is_dir(entry):
                out.append((f"{name}/", "not a split folder (train, val or test, or a synonym): not read"))
            elif is_image_name(entry.name):
                out.append((name, "image outside any split folder"))
            else:
                out.append((name, "not part of the layout"))
        return out

    def _set_aside_test_only(self, scan: Scan, folders: dict[str, Path]) -> None:
        """Test images of a class with no train or val images cannot be scored: move them to ignored
        (so the report counts them) and say so; they used to vanish from every count."""
        known = {e.cls for e in scan.entries if e.split != "test"}
        orphans = [e for e in scan.entries if e.split == "test" and e.cls not in known]
        if not orphans:
            return
        scan.entries = [e for e in scan.entries if e.split != "test" or e.cls in known]
        scan.ignored += [
            (e.rel, f"test image of class {e.cls}, which has no training images: not used") for e in orphans
        ]
        counts = Counter(e.cls for e in orphans)
        classes = sorted(counts, key=natural_key)
        shown = ", ".join(f"{c} ({counts[c]} in {folders['test'].name}/)" for c in classes[:5])
        more = f" and {len(classes) - 5} more" if len(classes) > 5 else ""
        warn_once(
            f"{self.name}: test images of {len(classes)} class(es) without training images are not used: "
            f"{shown}{more} under {self.root}; the model has no such class (the report lists them as ignored)"
        )

    def discover(self) -> tuple[Scan, list[str]]:
        """As for every dataset, then: under ``folders``, a selected class with no training images is an
        error (it would be a class the model can never predict, silently capping validation accuracy)."""
        scan, classes = super().discover()
        if self._rule(scan) == "folders":
            self._check_trainable(scan, classes)
        return scan, classes

    def _check_trainable(self, scan: Scan, classes: list[str]) -> None:
        folders = {split: folder.name for split, folder in self.split_folders().items()}
        self.check_every_class_trains(scan, classes, folders)

    def _rule(self, scan: Scan) -> str:
        if self.split != "auto":
            return self.split
        return "folders" if any(e.split == "val" for e in scan.entries) else "random"

    def rule(self) -> str:
        """``auto`` resolved: the user's folders when the layout has a val folder, else random."""
        return self._rule(self._scan)

    def split_name(self) -> str:
        return f"{self.rule()} (auto)" if self.split == "auto" else self.split

    def split_entries(self, entries: list[Entry]) -> dict[str, list[Entry]]:
        rule = self.rule()
        if rule != "folders":  # re-split train (+ val); a test folder stays the test split
            entries = [e if e.split == "test" else Entry(e.rel, e.cls) for e in entries]
        return assign_splits(entries, rule, self.val_fraction, self.test_fraction, self.seed)
