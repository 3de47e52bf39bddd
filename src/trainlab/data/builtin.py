"""Built-in data sets in torchvision's layout: where their files live and how to get them."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trainlab.datasets_registry import BUILTINS
from trainlab.errors import DataError

SPLIT_PREFIX = {"train": "train", "test": "t10k"}


@dataclass(frozen=True)
class IdxDatasetSpec:
    """An IDX data set: its folder under the data directory, files, checksums and mirrors (its shape and classes
    are the registry's, trainlab.datasets_registry)."""

    name: str
    folder: str  # torchvision's class name, e.g. DIR/FashionMNIST/raw
    md5: dict[str, str]  # decompressed file name -> MD5 (of what md5_of says)
    mirrors: tuple[str, ...]
    md5_of: str = "content"  # "content": MD5 of the decompressed file; "gz": of the .gz file as published

    @property
    def classes(self) -> tuple[str, ...]:
        return BUILTINS[self.name].classes

    def raw_dir(self, data_dir: Path) -> Path:
        return data_dir / self.folder / "raw"

    def file_names(self, split: str) -> tuple[str, str]:
        prefix = SPLIT_PREFIX[split]
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"


FASHION_MNIST = IdxDatasetSpec(
    name="fashion-mnist",
    folder="FashionMNIST",
    md5={
        "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
        "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
        "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
    },
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",  # torchvision's mirror
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
)

# MNIST and KMNIST: the MD5s of the published .gz files, as torchvision lists them for its MNIST/KMNIST classes.
MNIST = IdxDatasetSpec(
    name="mnist",
    folder="MNIST",
    md5={
        "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",  # torchvision's mirrors, in its order
        "http://yann.lecun.com/exdb/mnist/",
    ),
    md5_of="gz",
)

KMNIST = IdxDatasetSpec(
    name="kmnist",
    folder="KMNIST",
    md5={
        "train-images-idx3-ubyte": "bdb82020997e1d708af4cf47b453dcf7",
        "train-labels-idx1-ubyte": "e144d726b3acfaa3e44228e80efcd344",
        "t10k-images-idx3-ubyte": "5c965bf0a639b31b8f53240b1b52f4d7",
        "t10k-labels-idx1-ubyte": "7320c461ea6c1c855c0b718fb2a4b134",
    },
    mirrors=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
    md5_of="gz",
)

BUILTIN_DATASETS = {spec.name: spec for spec in (FASHION_MNIST, MNIST, KMNIST)}  # the IDX sets; CIFAR-10: cifar.py


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path:
    """--data-dir, else $TRAINLAB_DATA_DIR, else ./data (the tutorial's root="data")."""
    if data_dir:
        return Path(data_dir)
    return Path(os.environ.get("TRAINLAB_DATA_DIR") or "data")


def check_data_dir(data_dir: Path) -> Path:
    """Refuse a data directory that is a file (it would be reported as holding no data files)."""
    if data_dir.exists() and not data_dir.is_dir():
        raise DataError(
            f"data directory {data_dir} is a file, not a folder; point --data-dir or TRAINLAB_DATA_DIR at a folder"
        )
    return data_dir


def find_file(raw_dir: Path, name: str) -> Path | None:
    """The decompressed file if present, else its .gz twin, else None."""
    for candidate in (raw_dir / name, raw_dir / f"{name}.gz"):
        if candidate.exists():  # a FIFO or folder by that name is refused by name when read, never replaced
            return candidate
    return None


def locate_files(spec: IdxDatasetSpec, data_dir: Path, split: str, download: bool) -> tuple[Path, Path]:
    """Paths to a split's image and label files, downloading the missing ones when allowed."""
    from trainlab.data.download import download_file

    raw_dir = spec.raw_dir(data_dir)
    paths = []
    for name in spec.file_names(split):
        path = find_file(raw_dir, name)
        if path is None:
            if not download:
                raise DataError(
                    f"{spec.name}: {raw_dir / name} (or .gz) not found; put the files there, point --data-dir "
                    "or TRAINLAB_DATA_DIR at a copy, or allow downloading"
                )
            download_file(name, spec.md5[name], spec.mirrors, raw_dir / name, md5_of=spec.md5_of)
            path = raw_dir / name
        paths.append(path)
    return paths[0], paths[1]
