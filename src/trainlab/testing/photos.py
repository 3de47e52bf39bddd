"""Realistic pictures made from 28x28 test images: how users' photos, shop shots and drawings differ from the data.

Each variant turns a light-on-black uint8 (28, 28) image into a PIL image: dark on light, RGB, a few hundred
pixels, off-centre on a non-square canvas, on gray or textured backgrounds, JPEG-compressed, with a drop
shadow or a coloured garment, or a canvas drawing in either polarity. Deterministic for a given index.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class Scene:
    """How one picture is made: canvas, background, scale, placement, colours, compression."""

    canvas: tuple[int, int] = (300, 300)  # width, height in pixels
    background: tuple[int, int, int] = (255, 255, 255)
    garment: tuple[int, int, int] = (0, 0, 0)  # the colour of the garment's brightest pixels in the data
    scale: float = 8.0  # pixels of the picture per pixel of the 28x28 image
    offset: tuple[float, float] = (0.0, 0.0)  # of the free margin, -1 to 1: left/top to right/bottom
    texture: float = 0.0  # levels of smooth background noise
    shadow: int = 0  # pixels of drop-shadow offset (0: none)
    jpeg: int | None = None  # JPEG quality, or None for lossless


def render(image: np.ndarray, scene: Scene, seed: int = 0) -> Image.Image:
    """The 28x28 light-on-black `image` as a picture of `scene` (RGB)."""
    rng = np.random.default_rng(seed)
    width, height = scene.canvas
    side = round(28 * scene.scale)
    alpha = np.asarray(Image.fromarray(image).resize((side, side), Image.Resampling.BICUBIC), dtype=np.float32) / 255
    alpha = np.clip(alpha, 0, 1)[:, :, None]
    canvas = np.empty((height, width, 3), dtype=np.float32)
    canvas[:] = np.asarray(scene.background, dtype=np.float32)
    if scene.texture:
        noise = rng.normal(0, 1, (height // 8 + 1, width // 8 + 1)).astype(np.float32)
        smooth = np.asarray(Image.fromarray(noise).resize((width, height), Image.Resampling.BILINEAR))
        canvas += scene.texture * smooth[:, :, None]
    left = round((width - side) / 2 * (1 + scene.offset[0]))
    top = round((height - side) / 2 * (1 + scene.offset[1]))
    if scene.shadow:
        blurred = Image.fromarray((alpha[:, :, 0] * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(2))
        shade = np.asarray(blurred, dtype=np.float32)[:, :, None] / 255 * 0.35
        region = canvas[
            top + scene.shadow : top + scene.shadow + side, left + scene.shadow : left + scene.shadow + side
        ]
        region *= 1 - shade[: region.shape[0], : region.shape[1]]
    region = canvas[top : top + side, left : left + side]
    garment = np.asarray(scene.garment, dtype=np.float32)
    region[:] = region * (1 - alpha) + garment * alpha
    picture = Image.fromarray(np.clip(np.rint(canvas), 0, 255).astype(np.uint8))
    if scene.jpeg is not None:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=scene.jpeg)
        picture = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    return picture


def plain(image: np.ndarray, index: int) -> Image.Image:
    """The test image itself, 28x28 gray."""
    return Image.fromarray(image)


VARIANTS: dict[str, Callable[[np.ndarray, int], Image.Image]] = {
    "plain 28x28": plain,
    "dark on white, 300x300 RGB": lambda image, i: render(image, Scene(), i),
    "off-centre on a 420x300 light-gray canvas": lambda image, i: render(
        image, Scene((420, 300), (222, 222, 222), scale=6, offset=(0.7 if i % 2 else -0.7, 0.4)), i
    ),
    "textured background, JPEG 75": lambda image, i: render(
        image, Scene((320, 360), (236, 233, 228), scale=9, texture=6, jpeg=75), i
    ),
    "white background, JPEG 30": lambda image, i: render(image, Scene((260, 260), scale=8, jpeg=30), i),
    "drop shadow on light gray": lambda image, i: render(image, Scene((340, 340), (240, 240, 240), shadow=5), i),
    "coloured garment on white": lambda image, i: render(
        image, Scene((300, 340), garment=((20, 40, 140), (140, 20, 30), (30, 90, 40))[i % 3], scale=9), i
    ),
    "canvas: white strokes on black, 280x280": lambda image, i: render(
        image, Scene((280, 280), (0, 0, 0), (255, 255, 255), scale=7), i
    ),
    "canvas: black strokes on white, 280x280": lambda image, i: render(image, Scene((280, 280), scale=7), i),
}
