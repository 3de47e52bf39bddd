"""How a data set shows itself: one line of sizes, shape and classes, and the tutorial's 3x3 grid of samples
titled with their labels (a PNG, or HTML with the class counts beside it).

Cheap: the grid indexes its nine images (a streamed set decodes nine files), never the whole set, and is drawn
once per object; matplotlib is imported when a grid is first drawn.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import torch

from trainlab.figures import figure_png, new_figure, png_img

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trainlab.data.memory import ImageData

GRID_ROWS, GRID_COLUMNS = 3, 3  # the tutorial's figure
GRID_SEED = 0  # the same nine samples every time an object is shown
NOTEBOOK_CELL_INCHES = 1.5  # per image in a notebook (the CLI's preview uses 2.5)
NOTEBOOK_DPI = 72
NAMED_CLASSES = 10  # the one-line repr names this many classes and counts the rest
MEMO = "_shown_grid"  # the instance attribute holding the drawn grid: (what it was drawn from, PNG bytes)


def sample_indices(size: int, count: int, seed: int) -> list[int]:
    """`count` random sample indices (distinct when the set is large enough), seeded."""
    generator = torch.Generator().manual_seed(seed)
    if size >= count:
        return torch.randperm(size, generator=generator)[:count].tolist()
    return torch.randint(size, (count,), generator=generator).tolist()


def grid_figure(panels: list[tuple[Any, list[str]]], rows: int, cols: int, cell_inches: float, dpi: int) -> Figure:
    """rows x cols cells of uint8 (N, C, H, W) images titled with their names; several panels interleave
    column by column (a sample, then its augmented version)."""
    columns = cols * len(panels)
    figure = new_figure(figsize=(columns * cell_inches, rows * cell_inches), dpi=dpi)
    for k in range(rows * cols):
        for p, (images, titles) in enumerate(panels):
            axis = figure.add_subplot(rows, columns, k * len(panels) + p + 1)
            axis.set_title(titles[k], fontsize=10)
            axis.axis("off")
            image = images[k]
            if image.shape[0] == 1:
                axis.imshow(image[0].numpy(), cmap="gray", vmin=0, vmax=255)
            else:
                axis.imshow(image.permute(1, 2, 0).numpy())
    figure.tight_layout()
    return figure


def describe(data: ImageData) -> str:
    """'60,000 images 1x28x28' (and 'streamed from files' for a file-backed set)."""
    channels, height, width = data.image_shape
    streamed = "" if isinstance(data.images, torch.Tensor) else ", streamed from files"
    return f"{len(data):,} images {channels}x{height}x{width}{streamed}"


def class_names(classes: tuple[str, ...]) -> str:
    """'10 classes: T-shirt/top, Trouser, ...' with at most NAMED_CLASSES named."""
    named = ", ".join(classes[:NAMED_CLASSES])
    more = f", ... ({len(classes) - NAMED_CLASSES} more)" if len(classes) > NAMED_CLASSES else ""
    return f"{len(classes)} classes: {named}{more}"


def image_data_repr(data: ImageData) -> str:
    """ImageData's one line: its size, image shape and classes, never its pixels."""
    return f"ImageData({describe(data)}, {class_names(data.classes)})"


def splits_repr(splits: dict[str, ImageData]) -> str:
    """DatasetSplits' one line: each split's size, the image shape and the classes."""
    first = next(iter(splits.values()))
    sizes = ", ".join(f"{name} {describe(data)}" for name, data in splits.items())
    return f"DatasetSplits({sizes}; {class_names(first.classes)})"


def grid_png(data: ImageData) -> bytes | None:
    """The 3x3 grid of seeded random samples titled with their classes, as PNG bytes (None for no images);
    drawn once per object while its images and labels stay the same objects."""
    if len(data) == 0:
        return None
    key = (id(data.images), id(data.labels), len(data))
    drawn = data.__dict__.get(MEMO)
    if drawn is not None and drawn[0] == key:
        return drawn[1]
    count = GRID_ROWS * GRID_COLUMNS
    index = torch.tensor(sample_indices(len(data), count, GRID_SEED), dtype=torch.long)
    images = data.images[index].cpu()  # nine images indexed: a streamed set decodes nine files
    titles = [data.classes[label] for label in data.labels.cpu()[index].tolist()]
    figure = grid_figure([(images, titles)], GRID_ROWS, GRID_COLUMNS, NOTEBOOK_CELL_INCHES, NOTEBOOK_DPI)
    png = figure_png(figure, dpi=NOTEBOOK_DPI)
    data.__dict__[MEMO] = (key, png)
    return png


def splits_html(splits: dict[str, ImageData]) -> str:
    """Each split's size, the per-class counts of every split, and the first split's sample grid."""
    first = next(iter(splits.values()))
    header = "".join(f"<th>{html.escape(name)}</th>" for name in splits)
    counts = {
        name: torch.bincount(data.labels.cpu(), minlength=len(data.classes)).tolist() if len(data) else []
        for name, data in splits.items()
    }
    rows = "".join(
        f"<tr><th style='text-align:left'>{html.escape(label)}</th>"
        + "".join(f"<td>{counts[name][i]:,}</td>" if counts[name] else "<td>0</td>" for name in splits)
        + "</tr>"
        for i, label in enumerate(first.classes)
    )
    totals = "".join(f"<td><b>{len(data):,}</b></td>" for data in splits.values())
    table = f"<table><tr><th>class</th>{header}</tr>{rows}<tr><th>total</th>{totals}</tr></table>"
    png = grid_png(first)
    picture = "" if png is None else png_img(png, f"{GRID_ROWS}x{GRID_COLUMNS} samples of {next(iter(splits))}")
    title = html.escape(splits_repr(splits) if len(splits) > 1 else image_data_repr(first))
    return (
        f"<div class='trainlab-data'><b>{title}</b><div style='display:flex;gap:16px;align-items:flex-start'>"
        f"{table}{picture}</div></div>"
    )
