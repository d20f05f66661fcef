"""Data modules: one per dataset on a shared base (:mod:`translearn.data.base`).

Datasets read in their publishers' layouts are verified and indexed once (:mod:`translearn.data.prepare`,
``python -m translearn.data prepare DATASET --root DIR``) and split by the rules of
:mod:`translearn.data.splits`.
"""

from translearn.data.base import DatasetIndex, ImageDataModule, ImageFileDataset
from translearn.data.caltech256 import Caltech256DataModule
from translearn.data.dogs_vs_cats import DogsVsCatsDataModule
from translearn.data.hymenoptera import HymenopteraDataModule
from translearn.data.imagefolder import ImageFolderDataModule
from translearn.data.prepare import PreparedDataModule
from translearn.data.shapes import ShapesDataModule
from translearn.data.simpsons import SimpsonsDataModule

__all__ = [
    "Caltech256DataModule",
    "DatasetIndex",
    "DogsVsCatsDataModule",
    "HymenopteraDataModule",
    "ImageDataModule",
    "ImageFileDataset",
    "ImageFolderDataModule",
    "PreparedDataModule",
    "ShapesDataModule",
    "SimpsonsDataModule",
]
