"""Pictures a notebook holds (PIL images, numpy arrays, torch tensors) as PIL images for the one decoding path.

An array or tensor is one picture: (H, W), numpy's (H, W, C) or torch's (C, H, W) with C of 1, 3 or 4, of uint8
levels (0-255) or floats (0.0-1.0, scaled to 0-255 and rounded). Anything else is refused in one line naming the
picture, what it is and what to give; a picture that passes then goes through data.decoding.read_input as an
image file's pixels do (mode, transparency, input style, resize).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trainlab.errors import DataError

CHANNELS = (1, 3, 4)  # gray, RGB, RGBA (transparent pixels become black, as in an image file)
ARRAY, TENSOR = "a numpy array", "a tensor"  # what messages call them
TO_UINT8 = {ARRAY: "array.astype('uint8')", TENSOR: "tensor.to(torch.uint8)"}
GIVE = "give a file path, image bytes, a PIL image, or a numpy array or tensor (H, W), (H, W, C) or (C, H, W)"


def picture_image(picture: Any, name: str) -> Any:
    """`picture` (PIL image, numpy array or tensor) as a PIL image; bad input is a DataError naming it."""
    from PIL import Image

    if isinstance(picture, Image.Image):
        return picture
    if isinstance(picture, torch.Tensor):
        pixels = picture.detach().cpu()
        if pixels.dim() == 3 and pixels.shape[0] in CHANNELS:
            pixels = pixels.permute(1, 2, 0)  # torch's (C, H, W) as numpy's (H, W, C)
        elif pixels.dim() == 3:
            raise DataError(
                f"{name}: a tensor of shape {tuple(picture.shape)}, whose first dimension is not 1, 3 or 4 "
                "channels; give one picture as (C, H, W) or (H, W)"
            )
        return array_image(pixels.numpy(), name, TENSOR)
    if isinstance(picture, np.ndarray):
        return array_image(picture, name, ARRAY)
    raise DataError(f"{name}: {type(picture).__name__} is not a picture; {GIVE}")


def check_batch(batch: torch.Tensor) -> None:
    """A (N, C, H, W) batch goes to the model as it is: it must hold uint8 levels, as the training images do."""
    if batch.dtype != torch.uint8:
        raise DataError(
            f"a batch tensor of shape {tuple(batch.shape)} and dtype {str(batch.dtype).replace('torch.', '')}: "
            "a (N, C, H, W) batch goes to the model as it is and must be uint8 (0-255); give "
            "batch.to(torch.uint8), or a list of pictures to have each made into the model's input"
        )


def array_image(pixels: np.ndarray, name: str, kind: str) -> Any:
    """(H, W) or (H, W, C) uint8 or 0-1 float pixels as a PIL image (L, RGB or RGBA)."""
    from PIL import Image

    shape = tuple(pixels.shape)
    if pixels.ndim == 3 and shape[2] in CHANNELS:
        pixels = pixels[:, :, 0] if shape[2] == 1 else pixels
    elif pixels.ndim != 2:
        raise DataError(
            f"{name}: {kind} of shape {shape} ({pixels.ndim} dimensions) is not one picture; give (H, W), "
            "(H, W, C) or (C, H, W) with C of 1, 3 or 4, or a list of pictures"
        )
    if 0 in pixels.shape:
        raise DataError(f"{name}: {kind} of shape {shape} has no pixels")
    return Image.fromarray(np.ascontiguousarray(levels(pixels, name, kind)))


def levels(pixels: np.ndarray, name: str, kind: str) -> np.ndarray:
    """uint8 pixels as they are; floats in 0.0-1.0 scaled to 0-255 and rounded; any other dtype or range refused."""
    if pixels.dtype == np.uint8:
        return pixels
    if not np.issubdtype(pixels.dtype, np.floating):
        raise DataError(
            f"{name}: {kind} of dtype {pixels.dtype}; give uint8 levels (0-255) or floats (0.0-1.0), "
            f"e.g. {TO_UINT8[kind]}"
        )
    values = pixels.astype(np.float32)
    if not np.isfinite(values).all():
        raise DataError(f"{name}: {kind} of floats holding NaN or inf; give floats in 0.0-1.0 or uint8 levels")
    if values.min() < 0.0 or values.max() > 1.0:
        raise DataError(
            f"{name}: {kind} of floats from {values.min():g} to {values.max():g}; floats must lie in 0.0-1.0 "
            "(divide 0-255 levels by 255, or give uint8)"
        )
    return np.rint(values * 255).astype(np.uint8)
