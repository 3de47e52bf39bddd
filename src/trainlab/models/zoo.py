"""torchvision's model zoo by name ('tv:resnet18'), adapted to the data's channels, size and classes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from trainlab.errors import ConfigError

MIN_SIZE = 32  # pixels; smaller inputs are upsampled so that deep zoo models (vgg) keep a non-empty feature map


class TorchvisionClassifier(nn.Module):
    """A torchvision classifier; grayscale inputs are repeated to 3 channels, small ones upsampled to 32x32."""

    def __init__(
        self,
        name: str,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        num_classes: int = 10,
        dropout: float | None = None,
    ):
        super().__init__()
        from torchvision import models

        if name not in models.list_models(module=models):
            raise ConfigError(f"unknown torchvision model {name!r}; e.g. tv:resnet18, tv:vgg11, tv:mobilenet_v3_small")
        arguments = {"weights": None, "num_classes": num_classes}
        if dropout is not None:
            arguments["dropout"] = dropout
        try:
            self.net = models.get_model(name, **arguments)
        except TypeError as exc:
            raise ConfigError(f"tv:{name} cannot be built with these arguments ({exc})") from None
        self.in_channels = input_shape[0]
        self.size = max(MIN_SIZE, input_shape[1], input_shape[2])
        self.pretrained_note: str | None = None  # what load_pretrained took from its file, for the user

    def forward(self, x):
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] < self.size or x.shape[-2] < self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.net(x)

    def load_pretrained(self, state: dict[str, torch.Tensor], path: str) -> list[str]:
        """Take the tensors of `state` (read from the weights file `path`) that fit; layers whose shape differs
        (the head) are skipped and returned."""
        own = self.net.state_dict()
        compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        skipped = sorted(set(own) - set(compatible))
        if not compatible:
            raise ConfigError(f"{path}: none of its weights fit tv model {type(self.net).__name__}")
        own.update(compatible)
        self.net.load_state_dict(own)
        self.pretrained_note = f"Loaded {len(compatible)} of {len(own)} weight tensors from {path}" + (
            f"; not in it or shaped differently, so trained from scratch: {', '.join(skipped)}" if skipped else ""
        )
        return skipped


def build_zoo_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **kwargs) -> nn.Module:
    """A torchvision model by name; its --weights are loaded by the training setup (training.setup)."""
    return TorchvisionClassifier(name, input_shape, num_classes, **kwargs)


__all__ = ["TorchvisionClassifier", "build_zoo_model"]
