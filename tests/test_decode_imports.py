"""Decoding a user's folder imports only what its pictures need: torchvision (seconds to import: it pulls in
torch._dynamo) only for pictures that must be resized."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from trainlab.config import TrainConfig
from trainlab.data import load_splits


def write_folder(root, side: int) -> int:
    """Two class folders of three gray PNGs side x side; the sum of their pixels."""
    rng = np.random.default_rng(0)
    total = 0
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for number in range(3):
            pixels = rng.integers(0, 256, (side, side), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{number}.png")
            total += int(pixels.sum())
    return total


def test_a_folder_at_its_own_size_is_decoded_without_torchvision(tmp_path, monkeypatch):
    total = write_folder(tmp_path, 8)
    with monkeypatch.context() as patch:  # importing torchvision's transforms now fails, as if absent
        for module in ("torchvision.transforms.v2", "torchvision.transforms.v2.functional"):  # even if imported
            patch.setitem(sys.modules, module, None)
        images = load_splits(TrainConfig(dataset="folder", image_dir=str(tmp_path)), ("train",))[0]["train"].images
        assert (list(images.shape), int(images.sum())) == ([6, 1, 8, 8], total)
        with pytest.raises(ImportError):  # a picture of another size is what needs torchvision
            load_splits(TrainConfig(dataset="folder", image_dir=str(tmp_path), image_size=6), ("train",))
    resized = load_splits(TrainConfig(dataset="folder", image_dir=str(tmp_path), image_size=6), ("train",))
    assert list(resized[0]["train"].images.shape) == [6, 1, 6, 6]
