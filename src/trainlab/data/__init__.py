"""Data sets: built-in (IDX, CIFAR-10) and the user's image files (CSV or class folders), one entry point.

load_dataset() returns ImageData for every kind: uint8 (N, C, H, W) images in memory, batched by index
slicing, or, for image files larger than the memory budget, file-backed images streamed by DataLoader workers;
make_loader() batches either kind the same way. Modules: builtin/idx/cifar/download (the built-in sets; their
names, shapes and classes are trainlab.datasets_registry's), annotations (a CSV or class folders to a FileSet, and
the walk that finds image files), file_datasets (a FileSet to ImageData: in memory or streamed), decoding (one
image file to a tensor), workers (many files read in DataLoader worker processes), cache (the eager decode of a
FileSet and the cache that keeps it), memory and streaming (the two ImageData kinds and their loaders).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from trainlab.config import DATASETS, FILE_DATASETS, TrainConfig
from trainlab.data import showing
from trainlab.data.builtin import BUILTIN_DATASETS, check_data_dir, locate_files, resolve_data_dir
from trainlab.data.idx import read_idx_pair
from trainlab.data.input_styles import RAW, InputStyle
from trainlab.data.memory import BatchLoader, ImageData, epoch_order
from trainlab.data.streaming import StreamingLoader, is_streaming
from trainlab.data.transforms import Preprocessing, one_hot
from trainlab.data.weights_input import repeated_channels, weights_input
from trainlab.errors import DataError

__all__ = [
    "BatchLoader",
    "DatasetSplits",
    "ImageData",
    "Preprocessing",
    "epoch_order",
    "load_dataset",
    "load_split",
    "load_splits",
    "one_hot",
    "resolve_data_dir",
    "BUILTIN_DATASETS",
    "DATASETS",
    "make_loader",
]


@dataclass
class DatasetSplits:
    """The splits of a data set, its class names, and lines saying how the images are held."""

    train: ImageData
    test: ImageData
    notes: list[str] = field(default_factory=list)  # e.g. "labels.csv: 1,000 images 1x28x28 in memory, ..."

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    def __repr__(self) -> str:
        return showing.splits_repr({"train": self.train, "test": self.test})

    def _repr_png_(self) -> bytes | None:
        """The tutorial's 3x3 grid of training samples titled with their classes (a notebook shows it)."""
        return showing.grid_png(self.train)

    def _repr_html_(self) -> str:
        return showing.splits_html({"train": self.train, "test": self.test})


def data_config(source: TrainConfig | str, data_dir: str | os.PathLike | None) -> TrainConfig:
    """A TrainConfig for `source`: the given one (data_dir overriding), or the defaults with dataset=source."""
    if isinstance(source, TrainConfig):
        return source.replace(data_dir=str(data_dir)) if data_dir is not None else source
    if source not in DATASETS:
        raise DataError(f"unknown dataset {source!r}; choose one of: {', '.join(DATASETS)}")
    if source in FILE_DATASETS:
        raise DataError(f"--dataset {source} needs its options (annotations, image_dir): pass a TrainConfig")
    return TrainConfig(dataset=source, data_dir=str(data_dir) if data_dir is not None else None)


def load_splits(
    source: TrainConfig | str,
    splits: tuple[str, ...] = ("train", "test"),
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    classes: tuple[str, ...] | None = None,
    image_shape: tuple[int, int, int] | None = None,
    style: InputStyle = RAW,
) -> tuple[dict[str, ImageData], list[str]]:
    """The named splits of a data set, and lines saying how csv/folder images are held (memory or stream);
    csv/folder pictures go through the input style `style` (see data.input_styles); a config's --relabel CSV
    changes or drops the labels it lists (data.relabel)."""
    config = data_config(source, data_dir)
    loaded, notes = stored_splits(config, splits, download, classes, image_shape, style)
    if config.relabel is None:
        return loaded, notes
    from trainlab.data.relabel import apply_relabel

    return apply_relabel(loaded, config.relabel), notes


def stored_splits(
    config: TrainConfig,
    splits: tuple[str, ...],
    download: bool,
    classes: tuple[str, ...] | None,
    image_shape: tuple[int, int, int] | None,
    style: InputStyle,
) -> tuple[dict[str, ImageData], list[str]]:
    """The named splits with the labels their files give."""
    unknown = [split for split in splits if split not in ("train", "test")]
    if unknown:
        raise DataError(f"unknown split {unknown[0]!r}; choose train or test")
    if config.dataset in FILE_DATASETS:
        from trainlab.data.file_datasets import load_image_files

        return load_image_files(config, splits, classes, image_shape, style)
    root = check_data_dir(resolve_data_dir(config.data_dir))
    if config.dataset == "cifar10":
        from trainlab.data.cifar import load_cifar10

        return {split: load_cifar10(root, split, download) for split in splits}, []
    spec = BUILTIN_DATASETS[config.dataset]
    loaded = {}
    for split in splits:
        images_path, labels_path = locate_files(spec, root, split, download)
        images, labels = read_idx_pair(images_path, labels_path, len(spec.classes))
        loaded[split] = ImageData(images, labels, spec.classes)
    pretrained = weights_input(config.model, config.weights)  # RGB weights: a gray set is repeated into 3 channels
    channels = image_shape[0] if image_shape is not None else len(pretrained.mean) if pretrained else None
    return repeated_channels(loaded, channels), []


def load_split(
    source: TrainConfig | str,
    split: str,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    classes: tuple[str, ...] | None = None,
    image_shape: tuple[int, int, int] | None = None,
) -> ImageData:
    """One split ("train" or "test") of a data set.

    source: a TrainConfig (its data options are used) or a built-in name. For csv/folder data, `classes`
    maps labels onto a checkpoint's classes and `image_shape` (C, H, W) decodes to its input size; a single
    CSV or tree without --val-split is all test set here (to evaluate a model on it).
    """
    loaded, _ = load_splits(source, (split,), data_dir, download, classes=classes, image_shape=image_shape)
    return loaded[split]


def load_dataset(
    source: TrainConfig | str = "fashion-mnist",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    *,
    classes: tuple[str, ...] | None = None,
    image_shape: tuple[int, int, int] | None = None,
) -> DatasetSplits:
    """The train and test splits of a data set: a built-in name, or a TrainConfig for any kind (csv/folder too)."""
    loaded, notes = load_splits(source, ("train", "test"), data_dir, download, classes=classes, image_shape=image_shape)
    return DatasetSplits(loaded["train"], loaded["test"], notes)


def make_loader(
    data: ImageData, batch_size: int, shuffle: bool = False, seed: int = 0, shard: tuple[int, int] = (0, 1)
) -> BatchLoader | StreamingLoader:
    """BatchLoader for data in memory, StreamingLoader for file-backed data: the same interface and batches."""
    if is_streaming(data):
        return StreamingLoader(data, batch_size, shuffle, seed, shard)
    return BatchLoader(data, batch_size, shuffle, seed, shard)
