"""Loss functions by name; each takes logits and index targets and returns the batch mean."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from trainlab.data.transforms import one_hot

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Losses meant for classification; the others are there because the tutorial shows them.
CLASSIFICATION_LOSSES = ("cross-entropy", "nll")


def make_loss(name: str, num_classes: int, label_smoothing: float = 0.0) -> LossFn:
    """The loss called `name`; targets are class indices, one-hot encoded where the loss needs it."""
    if name == "cross-entropy":
        return nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    if name == "nll":
        criterion = nn.NLLLoss()
        return lambda logits, target: criterion(F.log_softmax(logits, dim=1), target)
    paired: dict[str, tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]] = {
        "mse": (nn.MSELoss(), _softmax),
        "l1": (nn.L1Loss(), _softmax),
        "bce": (nn.BCELoss(), torch.sigmoid),
        "bce-with-logits": (nn.BCEWithLogitsLoss(), _identity),
    }
    if name not in paired:
        raise ValueError(f"unknown loss {name!r}")
    criterion, activation = paired[name]

    def one_hot_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return criterion(activation(logits.float()), one_hot(target, num_classes))

    return one_hot_loss


def _softmax(logits: torch.Tensor) -> torch.Tensor:
    return torch.softmax(logits, dim=1)


def _identity(logits: torch.Tensor) -> torch.Tensor:
    return logits
