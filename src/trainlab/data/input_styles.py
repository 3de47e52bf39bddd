"""Input styles: a user's picture made to look like the training images before the model sees it.

raw:   the whole frame resized to the model's input, polarity kept (inputs that already look like the data).
photo: the Fashion-MNIST paper's recipe (Xiao et al. 2017, section 2): trim the background by the corner
       colour (5 % tolerance), fit the longest edge, centre, pad, and match the training images' polarity,
       background level and channels.
auto:  raw when the picture already looks like the training images (their size and background), else photo.

What the training images look like (DataLook) is measured when a run starts and saved with its preprocessing,
so the styles work for any data set: Fashion-MNIST, MNIST, CIFAR-10 (where auto keeps raw), a user's folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from trainlab.config import INPUT_STYLES  # noqa: F401 - re-exported beside the styles

TRIM_TOLERANCE = 0.05 * 255  # the paper's "within 5 % of the corner colour", in 0-255 levels
UNIFORM_SPREAD = 24.0  # levels: corners that differ less are one background colour
LEVEL_TOLERANCE = 48.0  # levels: a background this close to the training images' is the same background
PLAIN_BACKGROUNDS = 0.5  # the share of training images with a plain background for photo to apply
LOOK_SAMPLE = 1000  # training images measured: evenly spaced, no random numbers drawn
CORNER = 0.08  # of each side: the corner patches that give a picture's background colour
GRID = 64  # cells on a picture's longest side when telling the object from specks apart from it
SPECK = 0.2  # parts of the mask smaller than this share of the largest are specks, not the object
NOISE_TOLERANCE = 6.0  # background noise (mean absolute deviation) times this is not the object either


@dataclass(frozen=True)
class DataLook:
    """What the training images look like: background level, how many have a plain one, how much the object fills."""

    background: float  # median corner level, 0-255 (Fashion-MNIST: 0, black)
    plain: float  # share of the images whose four corners are one colour close to `background`
    fill: float  # median of the object's longest side over the frame's (Fashion-MNIST: 1.0, MNIST: about 0.7)

    @property
    def dark(self) -> bool:
        """Light objects on a dark background, as in Fashion-MNIST and MNIST."""
        return self.background < 128

    def to_dict(self) -> dict[str, float]:
        return {"background": self.background, "plain": self.plain, "fill": self.fill}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataLook:
        return cls(float(values["background"]), float(values["plain"]), float(values["fill"]))

    def describe(self) -> str:
        shade = "dark" if self.dark else "light"
        return f"{shade} background ({self.background:.0f}), objects filling {100 * self.fill:.0f}% of the frame"


@dataclass(frozen=True)
class InputStyle:
    """A style asked for, with the training images' look it matches pictures to (picklable, for workers)."""

    name: str = "raw"
    look: DataLook | None = None
    resize: int | None = None  # raw: shorter side resized to this (pixels), then centre-cropped (pretrained weights')

    def key(self) -> str:
        """What sets the pixels apart from raw's, for cache names: empty for raw."""
        if self.name == "raw":
            return f"-resize{self.resize}" if self.resize is not None else ""
        look = self.look.to_dict() if self.look is not None else {}
        return "-" + "-".join([self.name, *(f"{value:g}" for value in look.values())])


RAW = InputStyle()


@dataclass(frozen=True)
class StyleChoice:
    """The style an image went through and why."""

    style: str  # "raw" or "photo"
    reason: str


def corner_patches(gray: np.ndarray) -> list[np.ndarray]:
    """The four corner patches (CORNER of each side, at least 3 pixels) of a (H, W) or (H, W, C) image."""
    height, width = gray.shape[:2]
    h, w = max(3, round(CORNER * height)), max(3, round(CORNER * width))
    return [gray[:h, :w], gray[:h, -w:], gray[-h:, :w], gray[-h:, -w:]]


def corner_level(gray: np.ndarray) -> tuple[float, float, float]:
    """(background level, spread, noise) of a (H, W) picture from its corner patches: the median of their
    medians, the range of their medians, and their median mean absolute deviation from the level, in levels.

    auto runs this for every picture a server receives, so it makes few numpy calls: the four patches taken
    by one index per shape, and the medians of four values from one sorted row (row_medians' own arithmetic).
    """
    rows, cols = corner_index(*gray.shape)
    patches = gray[rows, cols]  # (4, patch pixels)
    medians = row_medians(patches)
    ordered = np.sort(medians)
    level = float((ordered[1] + ordered[2]) / 2)
    deviations = np.sort(np.abs(patches - level).mean(axis=1))
    return level, float(ordered[3] - ordered[0]), float((deviations[1] + deviations[2]) / 2)


@lru_cache(maxsize=64)
def corner_index(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indexes (4, patch pixels) of corner_patches' four patches in a (height, width) picture."""
    h, w = min(height, max(3, round(CORNER * height))), min(width, max(3, round(CORNER * width)))
    top, bottom = np.arange(h), np.arange(height - h, height)
    left, right = np.arange(w), np.arange(width - w, width)
    rows = np.stack([np.repeat(part, w) for part in (top, top, bottom, bottom)])
    cols = np.stack([np.tile(part, h) for part in (left, right, left, right)])
    return rows, cols


def row_medians(values: np.ndarray) -> np.ndarray:
    """np.median(values, axis=1) by one sort: the same figures, without np.median's 25 us of overhead a call
    (this runs for every picture a server receives)."""
    ordered = np.sort(values, axis=1)
    middle = ordered.shape[1] // 2
    if ordered.shape[1] % 2:
        return ordered[:, middle]
    return (ordered[:, middle - 1] + ordered[:, middle]) / 2


def plain_corners(spread: float, noise: float) -> bool:
    """Corners of one colour: their medians closer than UNIFORM_SPREAD, or than the noise makes them differ."""
    return spread < max(UNIFORM_SPREAD, 2 * noise)


def trim_tolerance(noise: float) -> float:
    """Levels from the background that still count as background: the paper's 5 %, or more on a noisy one."""
    return max(TRIM_TOLERANCE, NOISE_TOLERANCE * noise)


def object_box(
    gray: np.ndarray, background: float, tolerance: float, specks: bool = True
) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right), exclusive ends, of the object: the pixels farther than `tolerance` from the
    background, less (with `specks`) the specks of texture or dirt apart from it (see `object_cells`)."""
    mask = np.abs(gray - background) > tolerance
    rows = np.flatnonzero(mask.sum(axis=1) > max(1, 0.01 * gray.shape[1]))
    cols = np.flatnonzero(mask.sum(axis=0) > max(1, 0.01 * gray.shape[0]))
    if not len(rows) or not len(cols):
        return None
    if not specks:
        return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    cell = max(1, -(-max(gray.shape) // GRID))
    kept = object_cells(mask, cell)
    rows = np.flatnonzero(kept.any(axis=1))
    cols = np.flatnonzero(kept.any(axis=0))
    top, left = int(rows[0]) * cell, int(cols[0]) * cell
    bottom, right = min(gray.shape[0], (int(rows[-1]) + 1) * cell), min(gray.shape[1], (int(cols[-1]) + 1) * cell)
    inside = mask[top:bottom, left:right]  # the box tightened to the object's own pixels within its cells
    rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
    return top + int(rows[0]), top + int(rows[-1]) + 1, left + int(cols[0]), left + int(cols[-1]) + 1


def object_cells(mask: np.ndarray, cell: int) -> np.ndarray:
    """The object on a grid of `cell`-pixel squares: the largest connected part of the mask's cells (two cells
    apart still count as connected) and every other part at least SPECK times its size."""
    height, width = -(-mask.shape[0] // cell), -(-mask.shape[1] // cell)
    padded = np.zeros((height * cell, width * cell), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    grid = padded.reshape(height, cell, width, cell).any(axis=(1, 3))
    joined = grid.copy()  # grown by one cell so that parts with one empty cell between them join
    joined[1:] |= grid[:-1]
    joined[:-1] |= grid[1:]
    joined[:, 1:] |= joined[:, :-1].copy()
    joined[:, :-1] |= joined[:, 1:].copy()
    labels = np.zeros(joined.shape, dtype=np.int32)
    sizes = [0]
    for start in zip(*np.nonzero(joined), strict=True):
        if labels[start]:
            continue
        sizes.append(0)
        labels[start] = len(sizes) - 1
        stack = [start]
        while stack:
            y, x = stack.pop()
            sizes[-1] += int(grid[y, x])
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and joined[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = len(sizes) - 1
                    stack.append((ny, nx))
    sizes_array = np.asarray(sizes)
    keep = sizes_array >= SPECK * sizes_array.max()
    keep[0] = False
    return keep[labels] & grid


def gray_levels(images: torch.Tensor) -> np.ndarray:
    """uint8 (N, C, H, W) as float (N, H, W) luminance (ITU-R 601-2, as PIL's convert("L"))."""
    values = images.to(torch.float32)
    if values.shape[1] == 3:
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        values = (values * weights).sum(dim=1, keepdim=True)
    return values[:, 0].numpy()


def measure_look(images: torch.Tensor) -> DataLook | None:
    """The look of uint8 training images (N, C, H, W), from up to LOOK_SAMPLE of them; None for no images."""
    count = int(images.shape[0])
    if count == 0:
        return None
    positions = torch.linspace(0, count - 1, min(count, LOOK_SAMPLE)).round().long().unique()
    gray = gray_levels(images[positions].cpu())
    levels = [corner_level(image) for image in gray]
    background = float(np.median([level for level, _, _ in levels]))
    plain = np.mean(
        [plain_corners(spread, noise) and abs(level - background) < LEVEL_TOLERANCE for level, spread, noise in levels]
    )
    fills = []
    for image, (level, _, noise) in zip(gray, levels, strict=True):
        box = object_box(image, level, trim_tolerance(noise), specks=False)  # the data set's own: clean
        if box is not None:
            fills.append(max((box[1] - box[0]) / image.shape[0], (box[3] - box[2]) / image.shape[1]))
    fill = float(np.median(fills)) if fills else 1.0
    return DataLook(round(background, 2), round(float(plain), 4), round(fill, 4))


def choose_style(gray: np.ndarray, height: int, width: int, look: DataLook | None) -> StyleChoice:
    """auto's decision for one picture (its gray levels at its own size) and a model taking height x width."""
    if look is None:
        return StyleChoice("raw", "no figures of the training images' look: the picture is used as it is")
    if look.plain < PLAIN_BACKGROUNDS:
        return StyleChoice(
            "raw", f"the training images have no plain background (only {100 * look.plain:.0f}% do): used as it is"
        )
    level, spread, noise = corner_level(gray)
    size = f"{gray.shape[1]}x{gray.shape[0]}"
    if not plain_corners(spread, noise):
        return StyleChoice("raw", f"its corners are not one background colour (they differ by {spread:.0f} levels)")
    if gray.shape == (height, width) and abs(level - look.background) < LEVEL_TOLERANCE:
        return StyleChoice(
            "raw", f"{size} on a background of {level:.0f}, like the training images ({look.background:.0f})"
        )
    shade = "dark" if level < 128 else "light"
    return StyleChoice(
        "photo",
        f"{size} on a {shade} background ({level:.0f}); the training images are {width}x{height} with a "
        f"{look.describe()}",
    )


def photo_input(
    image: Any, gray: np.ndarray, channels: int, height: int, width: int, look: DataLook | None
) -> torch.Tensor:
    """The paper's recipe on a PIL image in the model's mode (L or RGB) and its gray levels: uint8 (channels,
    height, width) shaped like the training images."""
    from torchvision.transforms.v2 import functional as F

    look = look or DataLook(background=0.0, plain=1.0, fill=1.0)  # Fashion-MNIST's
    level, _, noise = corner_level(gray)
    tolerance = trim_tolerance(noise)
    box = object_box(gray, level, tolerance) or (0, gray.shape[0], 0, gray.shape[1])
    full = np.asarray(image, dtype=np.float32)
    full = full.reshape(*full.shape[:2], -1)  # (H, W, C)
    patches = [np.median(patch.reshape(-1, full.shape[2]), axis=0) for patch in corner_patches(full)]
    background = np.median(np.stack(patches), axis=0)  # per channel
    pixels = full[box[0] : box[1], box[2] : box[3]]
    if (level < 128) != look.dark:  # dark-on-light photo for light-on-dark data, or the other way round
        pixels, background = 255 - pixels, 255 - background
    pixels = match_background(pixels, background, look, tolerance)
    tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
    scale = min(look.fill * height / tensor.shape[1], look.fill * width / tensor.shape[2])
    size = [max(1, min(height, round(tensor.shape[1] * scale))), max(1, min(width, round(tensor.shape[2] * scale)))]
    fitted = F.adjust_sharpness(F.resize(tensor, size, antialias=True).round().clamp(0, 255).to(torch.uint8), 2.0)
    canvas = torch.full((channels, height, width), round(look.background), dtype=torch.uint8)
    top, left = (height - size[0]) // 2, (width - size[1]) // 2
    canvas[:, top : top + size[0], left : left + size[1]] = fitted
    return canvas


def match_background(pixels: np.ndarray, background: np.ndarray, look: DataLook, tolerance: float) -> np.ndarray:
    """Levels stretched so that the picture's background, up to `tolerance` levels of noise and texture past it,
    becomes the training images' background level and the far end (255 or 0) stays put."""
    target = look.background
    if look.dark:  # objects brighter than the background: background + tolerance -> target, 255 -> 255
        start = np.minimum(background + tolerance, 254)
        stretched = np.maximum(target + (pixels - start) * (255 - target) / (255 - start), target)
    else:  # objects darker: background - tolerance -> target, 0 -> 0
        start = np.maximum(background - tolerance, 1)
        stretched = np.minimum(pixels * target / start, target)
    return np.clip(stretched, 0, 255)
