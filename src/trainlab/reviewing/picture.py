"""review.png: the top suspects in a grid, each titled with its given -> suggested label and why."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from trainlab.reports.plots import new_figure, save_figure

MAX_SHOWN = 24  # suspects in the picture; the CSV has them all
COLUMNS = 6


def suspects_grid(images: list[torch.Tensor], titles: list[str], path: str | os.PathLike) -> Path:
    """A grid of uint8 (C, H, W) images of one shape, each titled; a page saying so when there are none."""
    import numpy as np

    images, titles = images[:MAX_SHOWN], titles[:MAX_SHOWN]
    columns = min(COLUMNS, max(len(images), 1))
    rows = max(-(-len(images) // columns), 1)
    channels, height, width = images[0].shape if images else (1, 28, 28)
    title_space, margin = round(0.6 * height), max(1, round(0.1 * width))  # pixels around each image
    cell_height, cell_width = height + title_space, width + 2 * margin
    inches = 2.2 * columns
    figure = new_figure(figsize=(inches, inches * rows * cell_height / (columns * cell_width) + 0.4))
    axis = figure.subplots()
    axis.axis("off")
    axis.set_title("Review: the likeliest bad labels and duplicates (given -> suggested)", fontsize=11)
    if not images:
        figure.text(0.5, 0.45, "No suspects: every label agrees with the models", ha="center", fontsize=11)
        return save_figure(figure, path)
    grid = np.full((rows * cell_height, columns * cell_width, channels), 255, dtype=np.uint8)
    for k, (image, title) in enumerate(zip(images, titles, strict=True)):
        top, left = (k // columns) * cell_height + title_space, (k % columns) * cell_width + margin
        grid[top : top + height, left : left + width] = image.permute(1, 2, 0).cpu().numpy()
        axis.text(left + width / 2, top - 1, title, ha="center", va="bottom", fontsize=7)
    if channels == 1:
        axis.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        axis.imshow(grid, interpolation="nearest")
    return save_figure(figure, path)
