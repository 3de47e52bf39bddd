"""A look at the data: the tutorial's grid of random samples with class names, and per-split figures."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from trainlab.data.augment import Augmentation
from trainlab.data.memory import ImageData, channel_stats
from trainlab.data.showing import grid_figure, sample_indices
from trainlab.fileio import atomic_write, check_replaceable

CELL_INCHES = 2.5  # per image: the tutorial's 8x8-inch figure holds 3x3 images
DPI = 100  # so a cell is 250x250 pixels


def augmented_copy(images: torch.Tensor, augmentation: Augmentation, seed: int) -> torch.Tensor:
    """The images as one training batch would see them, drawn with a seeded RNG (the global one is left as is)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return augmentation(images)


def figure_size(rows: int, cols: int) -> tuple[int, int]:
    """(width, height) in pixels of the sample grid."""
    return int(round(cols * CELL_INCHES * DPI)), int(round(rows * CELL_INCHES * DPI))


def sample_grid(
    data: ImageData,
    path: str | os.PathLike,
    rows: int = 3,
    cols: int = 3,
    seed: int = 0,
    augmentation: Augmentation | None = None,
) -> Path:
    """Draw rows x cols random samples titled with their class names (the tutorial's figure) as a PNG.

    With an augmentation, each sample is followed by its augmented version, so the grid has 2 x cols columns.
    """
    picked = sample_indices(len(data), rows * cols, seed)
    index = torch.tensor(picked, dtype=torch.long)
    images = data.images[index].cpu()
    labels = data.labels.cpu()[index].tolist()
    panels = [(images, [data.classes[label] for label in labels])]
    if augmentation is not None:
        panels.append((augmented_copy(images, augmentation, seed), ["augmented"] * len(labels)))
    figure = grid_figure(panels, rows, cols, CELL_INCHES, DPI)
    check_replaceable(path, "PNG image")
    return atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=DPI))


def split_summary(data: ImageData) -> dict[str, Any]:
    """Counts per class, image shape and pixel statistics of one split, as plain types."""
    counts = (
        torch.bincount(data.labels.cpu(), minlength=len(data.classes)).tolist()
        if len(data)
        else [0] * len(data.classes)
    )
    mean, std = channel_stats(data) if len(data) else ((), ())
    channels, height, width = data.image_shape
    return {
        "samples": len(data),
        "channels": channels,
        "height": height,
        "width": width,
        "mean": list(mean),
        "std": list(std),
        "per_class": dict(zip(data.classes, counts, strict=True)),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A table: one row per class, one column per split; then shape and pixel mean/std per split."""
    splits = list(summary["splits"])
    classes = summary["classes"]
    name_width = max([len("class"), *(len(name) for name in classes)])
    lines = [f"{summary['dataset']}: {len(classes)} classes"]
    lines.append(f"{'class':<{name_width}}" + "".join(f"{split:>10}" for split in splits))
    for name in classes:
        lines.append(
            f"{name:<{name_width}}" + "".join(f"{summary['splits'][s]['per_class'][name]:>10,}" for s in splits)
        )
    lines.append(f"{'total':<{name_width}}" + "".join(f"{summary['splits'][s]['samples']:>10,}" for s in splits))
    for split in splits:
        values = summary["splits"][split]
        figures = ", ".join(f"{m:.4f}/{s:.4f}" for m, s in zip(values["mean"], values["std"], strict=True))
        lines.append(
            f"{split}: {values['channels']}x{values['height']}x{values['width']} "
            f"({'gray' if values['channels'] == 1 else 'RGB'}), pixel mean/std in [0, 1]: {figures}"
        )
    for note in summary.get("notes", []):
        lines.append(note)
    return "\n".join(lines)
