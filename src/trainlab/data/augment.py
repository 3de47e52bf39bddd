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
        if self.padding:
            images = random_crop(images, self.padding)
        if self.flip:
            images = random_flip(images)
        if self.erasing:
            images = random_erase(images, self.erasing)
        return images


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image shifted by up to `padding` pixels in each direction, the border filled with zeros."""
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding, padding, padding, padding))
    device = images.device
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device)
    rows = torch.arange(h, device=device).view(1, h, 1) + dy  # (n, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w) + dx  # (n, 1, w)
    batch = torch.arange(n, device=device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_flip(images: torch.Tensor) -> torch.Tensor:
    """Half of the images mirrored left-right."""
    flip = torch.rand(images.shape[0], device=images.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), images.flip(3), images)


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
