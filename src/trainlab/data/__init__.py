"""Data sets: built-in IDX sets held in memory, batched by index slicing, with one preprocessing path."""

from __future__ import annotations

import os
from dataclasses import dataclass

from trainlab.data.builtin import BUILTIN_DATASETS, locate_files, resolve_data_dir
from trainlab.data.idx import read_idx_pair
from trainlab.data.memory import BatchLoader, ImageData, epoch_order
from trainlab.data.transforms import Preprocessing, one_hot
from trainlab.errors import DataError

__all__ = [
    "BatchLoader", "DatasetSplits", "ImageData", "Preprocessing", "epoch_order", "load_dataset",
    "load_split", "one_hot", "resolve_data_dir", "BUILTIN_DATASETS",
]


@dataclass
class DatasetSplits:
    """The splits of a data set and its class names."""

    train: ImageData
    test: ImageData

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes


def load_split(name: str, split: str, data_dir: str | os.PathLike | None = None, download: bool = True) -> ImageData:
    """One split ("train" or "test") of a built-in data set, as uint8 tensors in memory."""
    spec = BUILTIN_DATASETS.get(name)
    if spec is None:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(BUILTIN_DATASETS)}")
    images_path, labels_path = locate_files(spec, resolve_data_dir(data_dir), split, download)
    images, labels = read_idx_pair(images_path, labels_path, len(spec.classes))
    return ImageData(images, labels, spec.classes)


def load_dataset(name: str = "fashion-mnist", data_dir: str | os.PathLike | None = None,
                 download: bool = True) -> DatasetSplits:
    """The train and test splits of a built-in data set (files found or downloaded)."""
    return DatasetSplits(load_split(name, "train", data_dir, download), load_split(name, "test", data_dir, download))
