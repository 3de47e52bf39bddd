"""The one preprocessing path: uint8 images to model input, shared by training, predict and export."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainlab.data.input_styles import DataLook


@dataclass(frozen=True)
class Preprocessing:
    """How raw uint8 images become model input; saved in every checkpoint."""

    channels: int = 1
    height: int = 28
    width: int = 28
    mean: tuple[float, ...] | None = None  # per channel, after scaling to [0, 1]; None: no normalization
    std: tuple[float, ...] | None = None
    look: DataLook | None = None  # what the training images look like, for the photo and auto input styles
    resize: int | None = None  # pixels: shorter side resized to this, then centre-cropped (pretrained weights')

    def to_dict(self) -> dict:
        values = {
            "channels": self.channels,
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean) if self.mean is not None else None,
            "std": list(self.std) if self.std is not None else None,
        }
        if self.look is not None:
            values["look"] = self.look.to_dict()
        if self.resize is not None:  # only then: older readers and records stay as they were
            values["resize"] = self.resize
        return values

    @classmethod
    def from_dict(cls, values: dict) -> Preprocessing:
        mean, std = values.get("mean"), values.get("std")
        return cls(
            channels=int(values["channels"]),
            height=int(values["height"]),
            width=int(values["width"]),
            mean=tuple(mean) if mean is not None else None,
            std=tuple(std) if std is not None else None,
            look=DataLook.from_dict(values["look"]) if isinstance(values.get("look"), dict) else None,
            resize=int(values["resize"]) if values.get("resize") is not None else None,
        )

    def __call__(self, images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """uint8 (N, C, H, W) -> float in [0, 1] (the tutorial's ToTensor), then normalized if set."""
        x = images.to(dtype).div_(255)
        if self.mean is not None and x.shape[1] < len(self.mean):  # gray pictures, RGB weights: channels repeated
            x = x.expand(-1, len(self.mean), -1, -1).clone()
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=dtype, device=x.device).view(1, -1, 1, 1)
            std = torch.tensor(self.std, dtype=dtype, device=x.device).view(1, -1, 1, 1)
            x = x.sub_(mean).div_(std)
        return x


def one_hot(labels: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Index targets as one-hot rows (the tutorial's Lambda transform with scatter_)."""
    return torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device).scatter_(
        1, labels.view(-1, 1), 1.0
    )
