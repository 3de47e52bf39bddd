"""Augmentation as whole-batch tensor math on uint8 images (on the training device): no per-sample Python."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augmentation:
    """Random crop with zero padding, horizontal flip, random erasing; draws from torch's global RNG."""

    padding: int = 2  # pixels; 0 turns cropping off
    flip: bool = True
    erasing: float = 0.0  # probability per image of erasing one rectangle

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.padding or self.flip:
            images = random_crop_and_flip(images, self.padding, self.flip)
        if self.erasing:
            images = random_erase(images, self.erasing)
        return images


def random_crop_and_flip(images: torch.Tensor, padding: int, flip: bool) -> torch.Tensor:
    """Each image shifted by up to `padding` pixels each way (zeros around it), half of them mirrored left-right.

    One gather over the padded batch reads every output pixel (a mirrored crop reads its columns backwards): a
    third of the time of cropping and flipping in two passes. Draws the shifts (rows, then columns) and then the
    flips from torch's global RNG.
    """
    n, c, h, w = images.shape
    device = images.device
    side = w + 2 * padding
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding)) if padding else images
    rows = torch.arange(h, device=device).view(1, h, 1)
    columns = torch.arange(w, device=device).view(1, 1, w)
    if padding:
        rows = rows + torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device)
        shift = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device)
    if flip:
        mirrored = torch.rand(n, device=device).view(n, 1, 1) < 0.5
        columns = torch.where(mirrored, w - 1 - columns, columns)
    if padding:
        columns = columns + shift
    index = (rows * side + columns).view(-1, 1, h * w).expand(n, c, h * w)
    return padded.reshape(n, c, -1).gather(2, index).view(n, c, h, w)


def random_erase(
    images: torch.Tensor,
    probability: float,
    scale: tuple[float, float] = (0.02, 0.25),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """With `probability`, one rectangle per image (area fraction in `scale`, aspect in `ratio`) set to zero."""
    n, _, h, w = images.shape
    device = images.device
    area = torch.empty(n, device=device).uniform_(*scale) * h * w
    log_ratio = torch.empty(n, device=device).uniform_(math.log(ratio[0]), math.log(ratio[1]))
    aspect = log_ratio.exp()
    eh = (area * aspect).sqrt().round().clamp(1, h).long()
    ew = (area / aspect).sqrt().round().clamp(1, w).long()
    y0 = (torch.rand(n, device=device) * (h - eh + 1)).long()
    x0 = (torch.rand(n, device=device) * (w - ew + 1)).long()
    apply = torch.rand(n, device=device) < probability
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    inside = (
        (rows >= y0.view(-1, 1, 1))
        & (rows < (y0 + eh).view(-1, 1, 1))
        & (cols >= x0.view(-1, 1, 1))
        & (cols < (x0 + ew).view(-1, 1, 1))
        & apply.view(-1, 1, 1)
    )
    return images.masked_fill(inside.unsqueeze(1), 0)
