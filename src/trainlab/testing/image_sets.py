"""Small generated image sets laid out as a user's own: class folders of PNG files (tests of the auto recipe)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

ARROW_CLASSES = ("left", "right", "up", "down")  # a left-right mirror turns left into right: another class
SHAPE_CLASSES = ("disc", "ring", "square", "cross")  # a left-right mirror keeps every class


def arrows(count: int, side: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(count, side, side) uint8 arrows pointing left, right, up or down, shifted and noisy, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(ARROW_CLASSES)
    images = np.zeros((count, side, side), dtype=np.float32)
    grid = np.mgrid[0:side, 0:side].astype(np.float32)
    for index, label in enumerate(labels):
        y, x = grid - side / 2 - rng.uniform(-side / 8, side / 8, size=(2, 1, 1))
        along, across = {0: (-x, y), 1: (x, y), 2: (-y, x), 3: (y, x)}[int(label)]
        head = (along > 0) & (np.abs(across) < side / 3 - along * 0.8)  # the triangle points along +along
        shaft = (along <= 0) & (along > -side / 3) & (np.abs(across) < side / 12 + 0.5)
        images[index] = 200.0 * (head | shaft)
    images += rng.normal(0, 20, images.shape)
    return images.clip(0, 255).astype(np.uint8), labels


def shapes(count: int, side: int = 16, seed: int = 0, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(count, side, side[, 3]) uint8 symmetric shapes of random colour and place, and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(SHAPE_CLASSES)
    grid = np.mgrid[0:side, 0:side].astype(np.float32)
    out = np.zeros((count, side, side, channels), dtype=np.float32)
    for index, label in enumerate(labels):
        y, x = grid - side / 2 - rng.uniform(-side / 6, side / 6, size=(2, 1, 1))
        radius = side * rng.uniform(0.22, 0.32)
        distance = np.hypot(y, x)
        mask = {
            0: distance < radius,
            1: (distance < radius) & (distance > radius * 0.6),
            2: (np.abs(y) < radius * 0.8) & (np.abs(x) < radius * 0.8),
            3: ((np.abs(y) < radius / 3) | (np.abs(x) < radius / 3)) & (distance < radius * 1.2),
        }[int(label)]
        colour = rng.uniform(120, 255, size=channels)
        out[index] = mask[..., None] * colour + rng.uniform(0, 60, size=channels)
    out += rng.normal(0, 15, out.shape)
    images = out.clip(0, 255).astype(np.uint8)
    return (images[..., 0] if channels == 1 else images), labels


def write_class_folders(root: Path, images: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> Path:
    """ROOT/<class>/NNNNN.png for each image (gray (N, H, W) or RGB (N, H, W, 3))."""
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / classes[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{index:05d}.png")
    return root


def write_split_set(root: Path, make, classes: tuple[str, ...], train: int, test: int, **options) -> Path:
    """ROOT/train/<class>/* and ROOT/test/<class>/* from a generator `make(count, seed=...)`."""
    images, labels = make(train + test, seed=0, **options)
    write_class_folders(root / "train", images[:train], labels[:train], classes)
    write_class_folders(root / "test", images[train:], labels[train:], classes)
    return root
