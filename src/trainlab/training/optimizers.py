"""Optimizers by name, over the trainable parameters only."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from trainlab.config import TrainConfig
from trainlab.errors import ConfigError


def make_optimizer(config: TrainConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """SGD, RMSprop, Adam or AdamW with the config's lr, momentum and weight decay."""
    trainable = [p for p in parameters if p.requires_grad]
    if not trainable:
        raise ConfigError(f"--freeze {' '.join(config.freeze)} leaves no parameter to train; freeze fewer prefixes")
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            trainable,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(trainable, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")
