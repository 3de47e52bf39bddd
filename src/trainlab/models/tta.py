"""Test-time augmentation: what evaluation, predict, the server and exports compute when a run asks for it."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.config import TTA_CHOICES


class FlipAveraged(nn.Module):
    """The model's logits averaged over the images and their horizontal mirror images (two passes).

    It holds no weights of its own: checkpoints and exported weights are the model's, and
    `trainlab.checkpoint.unwrap_model` sees through it.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.model(images) + self.model(images.flip(-1))) / 2


def with_tta(model: nn.Module, tta: str) -> nn.Module:
    """The module that evaluates `model` under the test-time augmentation `tta` (one of TTA_CHOICES)."""
    return FlipAveraged(model) if tta == "flip" else model


__all__ = ["TTA_CHOICES", "FlipAveraged", "with_tta"]
