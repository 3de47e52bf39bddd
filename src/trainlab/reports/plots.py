"""PNG reports drawn with matplotlib: learning curves, confusion matrix, most confidently wrong images.

matplotlib is imported by the functions that draw, never by this module, and without pyplot: a `Figure` saved
to PNG is drawn by the Agg backend with no global figure registry or GUI backend to set up. Nor does this
module import torch: a process that only draws never pays for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainlab.figures import figure_png, new_figure  # noqa: F401 - re-exported: the reports draw on these
from trainlab.fileio import atomic_write, check_replaceable, open_regular

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure


CONTENT_KEYWORD = "trainlab-content"  # a PNG text chunk: the digest of what the picture shows
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_TEXT_CHUNK = 4096  # bytes: a digest's text chunk is 81


def save_figure(figure: Figure, path: str | os.PathLike, content: str | None = None) -> Path:
    """Write the figure as a PNG atomically (with its content digest, if given); a non-PNG file is never replaced."""
    check_replaceable(path, "PNG image")
    metadata = {CONTENT_KEYWORD: content} if content else None
    return atomic_write(
        path,
        lambda handle: figure.savefig(handle, format="png", dpi=100, bbox_inches="tight", metadata=metadata),
    )


def content_digest(*parts: Any) -> str:
    """A digest of the plain values (numbers, strings, lists) a picture is drawn from."""
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def png_content(path: str | os.PathLike) -> str | None:
    """The content digest save_figure wrote into a PNG, or None (no file, not a regular file, not a PNG, no digest)."""
    try:
        with open_regular(path) as handle:  # a FIFO would block open() until a writer came
            if handle.read(8) != PNG_SIGNATURE:
                return None
            while header := handle.read(8):
                if len(header) < 8:
                    return None
                length, kind = struct.unpack(">I4s", header)
                if kind in (b"IDAT", b"IEND"):  # Agg writes its text chunks before the pixels
                    return None
                if kind != b"tEXt" or length > MAX_TEXT_CHUNK:  # skipped unread, whatever length a file claims
                    handle.seek(length + 4, os.SEEK_CUR)  # the chunk and its CRC
                    continue
                body = handle.read(length + 4)[:length]
                if body.startswith(CONTENT_KEYWORD.encode() + b"\0"):
                    return body[len(CONTENT_KEYWORD) + 1 :].decode("latin-1")
    except OSError:
        return None
    return None


def learning_curves(runs: dict[str, list[dict]], path: str | os.PathLike) -> Path:
    """Loss and accuracy per epoch (train/val/test) for one or more runs, side by side."""
    return save_figure(learning_curves_figure(runs), path)


def learning_curves_figure(runs: dict[str, list[dict]], size: tuple[float, float] = (11, 4)) -> Figure:
    """The learning_curves figure, `size` inches wide and high, not yet saved."""
    figure = new_figure(figsize=size)
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    several = len(runs) > 1
    for number, (label, metrics) in enumerate(runs.items()):
        epochs = [row["epoch"] for row in metrics]
        prefix = f"{label} " if several else ""
        for split_number, (split, style) in enumerate((("train", "-"), ("val", "--"), ("test", ":"))):
            color = f"C{number if several else split_number}"  # one color per run when comparing runs
            for axis, key, scale in ((loss_axis, f"{split}_loss", 1), (accuracy_axis, f"{split}_accuracy", 100)):
                if metrics and key in metrics[0]:
                    axis.plot(
                        epochs,
                        [scale * row[key] for row in metrics],
                        style,
                        color=color,
                        marker=".",
                        label=f"{prefix}{split}",
                    )
    loss_axis.set(xlabel="epoch", ylabel="loss (mean per sample)", title="Loss")
    accuracy_axis.set(xlabel="epoch", ylabel="accuracy (%)", title="Accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return figure


MAX_COUNTED_CLASSES = 30  # above this many classes the cells carry no count text (it would not fit)
MAX_LABELLED_CLASSES = 60  # above this many, every k-th class is labelled so that at most this many are
MAX_FIGURE_INCHES = 20.0  # at dpi 100: at most 2,000 pixels a side before the margins
MAX_NAME_CHARACTERS = 32  # longer class names are cut on the axes, so the margins stay bounded too
CONFUSION_DRAWING = 1  # raise when confusion_matrix_plot draws differently: older PNGs are then drawn again


def short_name(name: str) -> str:
    return name if len(name) <= MAX_NAME_CHARACTERS else name[: MAX_NAME_CHARACTERS - 1] + "…"


def confusion_matrix_plot(matrix: Any, classes: tuple[str, ...], path: str | os.PathLike) -> Path:
    """The confusion matrix (a [actual, predicted] tensor or array of counts) with class names on both axes and,
    for up to 30 classes, the count in each cell.

    Many classes degrade gracefully: no counts above 30 classes, every k-th name above 60, a figure at most
    20 inches a side; the colours still show every cell. A PNG already at path that shows the same counts and
    classes is left as it is: importing matplotlib and drawing take longer (0.4 s) than evaluating a small model.
    """
    import numpy as np

    counts = np.asarray(matrix)
    count = len(classes)
    content = content_digest("confusion matrix", CONFUSION_DRAWING, counts.astype(np.int64).tolist(), list(classes))
    if png_content(path) == content:
        return Path(path)
    size = min(MAX_FIGURE_INCHES, max(5.0, 0.6 * count + 2))
    figure = new_figure(figsize=(size, size))
    axis = figure.subplots()
    axis.imshow(counts, cmap="Blues")
    step = -(-count // MAX_LABELLED_CLASSES)  # 1 up to 60 classes, 2 up to 120, ...
    ticks = list(range(0, count, step))
    fontsize = 10 if count <= MAX_COUNTED_CLASSES else 7
    names = [short_name(classes[i]) for i in ticks]
    axis.set_xticks(
        ticks, names, rotation=45 if step == 1 else 90, ha="right" if step == 1 else "center", fontsize=fontsize
    )
    axis.set_yticks(ticks, names, fontsize=fontsize)
    shown = "" if step == 1 else f", {count} classes, one in {step} named"
    axis.set(xlabel="predicted", ylabel="true", title=f"Confusion matrix (test set{shown})")
    if count <= MAX_COUNTED_CLASSES:
        threshold = counts.max() / 2
        for i in range(count):
            for j in range(count):
                value = int(counts[i, j])
                axis.text(
                    j,
                    i,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > threshold else "black",
                )
    return save_figure(figure, path, content)


def top_losses_plot(
    images: torch.Tensor,
    predicted: list[str],
    actual: list[str],
    confidence: list[float],
    path: str | os.PathLike,
    columns: int = 4,
) -> Path:
    """A grid of the most confidently wrong images, titled with predicted / true labels.

    The grid is one picture on one set of axes, each image in its own cell with its title above it: a set of
    axes for each of 16 images took twice as long to draw (0.22 s against 0.11 s, benchmarks/report_cost.py).
    """
    import numpy as np

    count = max(len(predicted), 1)
    rows = -(-count // columns)
    channels, height, width = images.shape[1:] if predicted else (1, 28, 28)
    title_space, margin = round(0.45 * height), max(1, round(0.1 * width))  # pixels of the grid around each image
    cell_height, cell_width = height + title_space, width + 2 * margin
    inches = 2.4 * columns  # wide; as tall as the grid's shape and the title need
    figure = new_figure(figsize=(inches, inches * rows * cell_height / (columns * cell_width) + 0.4))
    axis = figure.subplots()
    axis.axis("off")
    axis.set_title("Most confidently wrong test images", fontsize=12)
    if not predicted:  # a page that says so, rather than a blank one
        figure.text(
            0.5,
            0.45,
            "No wrong predictions: every test image was classified correctly",
            ha="center",
            va="center",
            fontsize=11,
        )
        return save_figure(figure, path)
    grid = np.full((rows * cell_height, columns * cell_width, channels), 255, dtype=np.uint8)  # white between
    for k in range(len(predicted)):
        top = (k // columns) * cell_height + title_space
        left = (k % columns) * cell_width + margin
        grid[top : top + height, left : left + width] = images[k].permute(1, 2, 0).numpy()
        axis.text(
            left + width / 2,
            top - 1,
            f"pred {predicted[k]} ({100 * confidence[k]:.0f}%)\ntrue {actual[k]}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    if channels == 1:  # uint8 pixels as they are, not stretched to the images' own range
        axis.imshow(grid[:, :, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        axis.imshow(grid, interpolation="nearest")
    return save_figure(figure, path)


def lr_finder_plot(result: Any, path: str | os.PathLike) -> Path:
    """Loss against lr (log scale), raw and smoothed, with the suggestion marked (an LrFinderResult)."""
    figure = new_figure(figsize=(7, 4.5))
    axis = figure.subplots()
    axis.plot(result.lrs, result.losses, alpha=0.3, label="loss")
    axis.plot(result.lrs, result.smoothed, label="smoothed loss")
    axis.axvline(
        result.suggestion,
        color="C2",
        linestyle="--",
        label=f"suggested lr {result.suggestion:.2g} ({result.confidence} confidence)",
    )
    axis.axvline(result.steepest, color="C3", linestyle=":", label=f"steepest descent {result.steepest:.2g}")
    low, high = min(result.smoothed), result.smoothed[0]
    axis.set_ylim(low - 0.1 * (high - low) - 1e-3, high + 0.5 * (high - low) + 1e-3)  # hide the final blow-up
    axis.set(xscale="log", xlabel="learning rate", ylabel="loss", title="Learning-rate range test")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def show_image(axis: Any, image: Any) -> None:
    """A uint8 (C, H, W) tensor or a PIL image, its pixels as they are (not stretched to its own range)."""
    import numpy as np
    import torch

    pixels = image.permute(1, 2, 0).numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    axis.imshow(pixels, cmap="gray" if pixels.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
    axis.axis("off")


def model_input_plot(inputs: list[Any], predictions: list[Any], names: list[str], path: str | os.PathLike) -> Path:
    """One row a picture: the original beside what the model received, with the input style and the prediction."""
    figure = new_figure(figsize=(6.4, 3.2 * len(inputs)))
    axes = figure.subplots(len(inputs), 2, squeeze=False)
    for row, (item, prediction, name) in enumerate(zip(inputs, predictions, names, strict=True)):
        show_image(axes[row, 0], item.original)
        axes[row, 0].set_title(f"{short_name(name)} ({item.original.width}x{item.original.height})", fontsize=9)
        show_image(axes[row, 1], item.tensor)
        height, width = item.tensor.shape[1:]
        axes[row, 1].set_title(
            f"model input ({width}x{height}, {item.choice.style})\n"
            f"{prediction.label} ({100 * prediction.probability:.0f}%)",
            fontsize=9,
        )
    return save_figure(figure, path)
