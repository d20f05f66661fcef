"""Image files a user names (files and folders), read through a trained run's own eval transform.

What ``translearn.predict`` feeds its model, and any ``trainer.predict`` that wants the same: a data
module whose batches are ``(images, paths)``, so a prediction never loses the file it belongs to.

Pitfalls it exists for:

* a model is only right on inputs preprocessed as in its validation: the transform is built from the
  checkpoint's own ``preprocessing``, ``color`` and ``gray_mode`` (:func:`eval_transform`), never from
  defaults;
* one unreadable file (a cut download, a text file among the photos) must not end a run over thousands:
  it is dropped from its batch (:func:`collate_readable`) and the caller lists it (:func:`why_unreadable`);
  the reason is looked up again there rather than carried out of a loader worker;
* folders hold junk (``.DS_Store``, ``Thumbs.db``, notes): only image file names are taken from folders,
  while a file named on the command line is always tried, whatever its extension;
* folders are read as training reads them (:mod:`translearn.data.scan`): symlinked subfolders are
  followed (``Path.rglob`` on Python 3.11 skips them: a folder of links gave "no image files"), each real
  folder once, so a link loop ends, and junk folders (``__MACOSX``, hidden ones) are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from translearn.data.images import is_image_name, load_rgb
from translearn.data.scan import is_junk
from translearn.data.transforms import Preprocessing, build_transform

# What decoding a file that is not an image (or is cut short) raises: PIL's UnidentifiedImageError is an
# OSError; truncated files raise OSError or SyntaxError; a decompression bomb its own error.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def preprocessing_of(hparams: Mapping[str, Any]) -> Preprocessing:
    """The eval preprocessing a checkpoint stored (``TransferModule``'s ``preprocessing`` hparam)."""
    stored = dict(hparams["preprocessing"])
    for key in ("mean", "std"):
        stored[key] = tuple(float(v) for v in stored[key])
    return Preprocessing(**stored)


def eval_transform(hparams: Mapping[str, Any]):
    """PIL image → the tensor the run validated on: its resize, crop, colour mode and normalisation."""
    return build_transform(
        train=False,
        color=str(hparams.get("color", "rgb")),
        gray_mode=str(hparams.get("gray_mode", "replicate")),
        preprocessing=preprocessing_of(hparams),
    )


@dataclass
class FoundImages:
    """The image files under the inputs, in the order given, and the inputs that are not there."""

    files: list[Path] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)
    ignored: int = 0  # files in the folders whose names are not image names


def walk_files(folder: Path) -> Iterator[Path]:
    """Every file under ``folder``, symlinked folders followed and each real folder visited once.

    ``os.walk(followlinks=True)`` as training's scan follows links; alone it would walk a link loop
    until the path got too long, so folders already seen (by resolved path) are not entered again.
    Junk folders (``__MACOSX``, hidden ones) are skipped, as training skips them. Subfolders are walked
    in sorted order, so which path of a twice-linked folder is kept does not depend on the disk.
    """
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d))
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file():  # a dangling link is no file
                yield path


def find_images(inputs: Sequence[str | Path]) -> FoundImages:
    """Files as given, folders walked recursively (sorted, links followed) for image file names; each
    file once."""
    found = FoundImages()
    seen: set[Path] = set()

    def add(path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.files.append(path)

    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            for child in sorted(walk_files(path)):
                if is_image_name(child):
                    add(child)
                else:
                    found.ignored += 1
        elif path.is_file():
            add(path)
        else:
            found.missing.append(path)
    return found


def why_unreadable(path: Path) -> str | None:
    """None if ``path`` decodes as an image; else why not, in a few words."""
    try:
        load_rgb(path)
    except DECODE_ERRORS as exc:
        text = " ".join(str(exc).split())
        return text[:160] or type(exc).__name__
    return None


class ImageFiles(Dataset):
    """``(image tensor, path)`` per file; ``None`` for a file that does not decode (dropped when batched)."""

    def __init__(self, files: Sequence[str | Path], transform):
        self.files = [str(f) for f in files]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str] | None:
        path = self.files[index]
        try:
            image = load_rgb(path)
        except DECODE_ERRORS:
            return None
        return self.transform(image), path


def collate_readable(items: list[tuple[torch.Tensor, str] | None]) -> tuple[torch.Tensor, list[str]]:
    """Stack the images that decoded; a batch of only unreadable files is an empty tensor."""
    good = [item for item in items if item is not None]
    if not good:
        return torch.empty(0), []
    return torch.stack([x for x, _ in good]), [p for _, p in good]


class ImageFilesDataModule(pl.LightningDataModule):
    """A predict-only data module over image files: batches are ``(images, paths)``, in file order."""

    def __init__(self, files: Sequence[str | Path], transform, batch_size: int = 64, num_workers: int = 0):
        super().__init__()
        self.dataset = ImageFiles(files, transform)
        self.batch_size, self.num_workers = batch_size, num_workers

    @classmethod
    def for_checkpoint(
        cls,
        files: Sequence[str | Path],
        hparams: Mapping[str, Any],
        batch_size: int = 64,
        num_workers: int = 0,
    ) -> ImageFilesDataModule:
        """Files read as the checkpoint's run read its validation images."""
        return cls(files, eval_transform(hparams), batch_size, num_workers)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_readable,
        )
