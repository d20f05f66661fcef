"""Data modules: one per dataset on a shared base (:mod:`translearn.data.base`)."""

from translearn.data.base import DatasetIndex, ImageDataModule, ImageFileDataset
from translearn.data.shapes import ShapesDataModule

__all__ = ["DatasetIndex", "ImageDataModule", "ImageFileDataset", "ShapesDataModule"]
