"""Generated data sets in the built-in layouts: learnable, small, and the same bytes on every machine."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write a uint8 array as an IDX file (magic 0x0803 for 3-D images, 0x0801 for 1-D labels)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    content = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)
    return path


def make_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 images: class k lights up a horizontal band at row 2 + 2k, plus noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28))
    for i, label in enumerate(labels):
        images[i, 2 + 2 * label : 4 + 2 * label, 4:24] = 200 + rng.integers(0, 55)
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_fashion_layout(root: Path, train_count: int = 640, test_count: int = 160, compress: bool = False) -> Path:
    """A data directory in torchvision's FashionMNIST layout holding generated images."""
    raw = root / "FashionMNIST" / "raw"
    for prefix, count, seed in (("train", train_count, 0), ("t10k", test_count, 1)):
        images, labels = make_images(count, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, compress)
    return root
