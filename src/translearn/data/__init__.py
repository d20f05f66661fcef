"""Data modules: one per dataset on a shared base (:mod:`translearn.data.base`).

Datasets read in their publishers' layouts are verified and indexed once (:mod:`translearn.data.prepare`,
``python -m translearn.data prepare DATASET --root DIR``) and split by the rules of
:mod:`translearn.data.splits`.
"""

from __future__ import annotations

import importlib
from typing import Any

# Each name is imported on first use (PEP 562), not here: importing any part of the package (the weights'
# preprocessing reads translearn.data.transforms) ran this file, and with it every data module and
# Lightning, 3 s of a mistyped command's one-line error.
_HOME = {
    "DatasetIndex": "base",
    "ImageDataModule": "base",
    "ImageFileDataset": "base",
    "Caltech256DataModule": "caltech256",
    "DogsVsCatsDataModule": "dogs_vs_cats",
    "HymenopteraDataModule": "hymenoptera",
    "ImageFolderDataModule": "imagefolder",
    "PreparedDataModule": "prepare",
    "ShapesDataModule": "shapes",
    "SimpsonsDataModule": "simpsons",
}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'translearn.data' has no attribute '{name}'")
    return getattr(importlib.import_module(f"translearn.data.{_HOME[name]}"), name)
