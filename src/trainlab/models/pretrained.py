"""Pretrained weights for a model: its classifier head, and a body taken from another model's tensors."""

from __future__ import annotations

import torch
from torch import nn

from trainlab.errors import ConfigError


def classifier_head(model: nn.Module) -> tuple[str, nn.Linear | nn.Conv2d]:
    """(qualified name, module) of the layer that maps features to classes: the last nn.Linear registered (resnet
    `fc`, vgg/efficientnet/mobilenet `classifier.N`, vit `heads.head`, the mlp's last layer), else the last
    nn.Conv2d (squeezenet's classifier is a 1x1 convolution)."""
    for kind in (nn.Linear, nn.Conv2d):
        found = [(name, module) for name, module in model.named_modules() if isinstance(module, kind)]
        if found:
            return found[-1]
    raise ConfigError(f"{type(model).__name__} has no Linear or Conv2d layer to serve as its classifier head")


def head_keys(model: nn.Module) -> list[str]:
    """The state_dict keys of `model`'s classifier head (its weight and bias)."""
    name, head = classifier_head(model)
    return [f"{name}.{key}" for key in head.state_dict()]


def with_new_head(model: nn.Module, state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`state` (a whole model's tensors) with `model`'s own freshly initialised head wherever the state's head has
    another shape (another number of classes); returns the state and the replaced keys (none: `state` as it is).

    Everything else is left as it is, so a strict load still names any other mismatch.
    """
    own = model.state_dict()
    keys = head_keys(model)
    if not any(key in state and state[key].shape != own[key].shape for key in keys):
        return state, []
    merged = dict(state)
    for key in keys:  # the whole head is new, its bias too, even where one tensor's shape happened to match
        merged[key] = own[key]
    return merged, keys


__all__ = ["classifier_head", "head_keys", "with_new_head"]
