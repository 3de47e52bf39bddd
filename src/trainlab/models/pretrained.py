"""Pretrained weights for a model: torchvision's named weights through torch's own cache, the classifier head,
and a body taken from another model's tensors (the head new where the classes differ)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.config import TrainConfig
from trainlab.data.weights_input import check_against, named_weights, weights_input
from trainlab.errors import ConfigError

DOWNLOAD_TIMEOUT = 10.0  # seconds without an answer before a download attempt gives up (no network: one line)
# what torchvision's builders set themselves when they load weights, recorded as model arguments so that a
# resume, evaluate, predict and serve rebuild the same network without the weights file
BUILDER_ARGUMENTS = {"googlenet": {"transform_input": True}, "inception_v3": {"transform_input": True}}


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


def with_new_head(
    model: nn.Module, state: dict[str, torch.Tensor], other_classes: bool = False
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """`state` (a whole model's tensors) with `model`'s own freshly initialised head wherever the state's head has
    another shape (another number of classes), or always when `other_classes` (as many classes, other ones: its
    outputs mean other things); returns the state and the replaced keys (none: `state` as it is).

    Everything else is left as it is, so a strict load still names any other mismatch.
    """
    own = model.state_dict()
    keys = head_keys(model)
    if not other_classes and not any(key in state and state[key].shape != own[key].shape for key in keys):
        return state, []
    merged = dict(state)
    for key in keys:  # the whole head is new, its bias too, even where one tensor's shape happened to match
        merged[key] = own[key]
    return merged, keys


def pretrained_config(config: TrainConfig, fetch: bool = True) -> TrainConfig:
    """A config naming torchvision weights, checked against its other flags, with the weights' member name
    (DEFAULT resolved) and the builder arguments they need; `fetch`: their file made sure of in torch's cache."""
    wanted = weights_input(config.model, config.weights)
    if wanted is None:
        return config
    check_against(config, wanted)
    if fetch:
        cached_weights(config.model, config.weights)
    name = config.model.removeprefix("tv:")
    arguments = dict(BUILDER_ARGUMENTS.get(name, {}))
    if name.startswith("vit_"):  # a vision transformer's position embedding is made for one picture size
        arguments["image_size"] = wanted.crop
    return config.replace(weights=wanted.name, extra={**arguments, **config.extra})


def cache_folder() -> Path:
    """torch's own cache of downloaded weights: $TORCH_HOME/hub/checkpoints."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_weights(model: str, value: str) -> Path:
    """The file of the weights `value` names in torch's cache, downloaded (hash-checked, as torchvision does)
    when absent; no network is one line naming the file, its URL and the folder to put it in."""
    weights = named_weights(model, value)
    path = cache_folder() / os.path.basename(weights.url)
    if path.is_file():
        return path
    match = torch.hub.HASH_REGEX.search(path.name)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # urllib waits forever by default: a dead network must end soon
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            weights.url, str(path), match.group(1) if match else None, progress=sys.stderr.isatty()
        )
    except (OSError, RuntimeError) as exc:  # no network, a refused or cut download, a hash that differs
        raise ConfigError(
            f"--weights {value}: {path.name} ({type(weights).__name__}.{weights.name}) is not in torch's cache "
            f"and could not be downloaded ({reason(exc)}); download {weights.url} and put it in {path.parent}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)
    return path


def reason(error: BaseException) -> str:
    """A download or loading failure in a few words: its first sentence (torch's messages run on for paragraphs)."""
    inner = getattr(error, "reason", None)
    lines = str(inner if inner is not None else error).strip().splitlines()
    return (lines[0].split(". ")[0][:200] if lines else "") or type(error).__name__


def load_named_weights(model: nn.Module, model_name: str, value: str) -> str:
    """Torchvision's weights `value` from torch's cache (tensors only) into a tv:NAME model's body; its classifier
    head (and any other layer shaped for their 1,000 classes) stays new. Returns what was done, for the user."""
    weights = named_weights(model_name, value)
    path = cached_weights(model_name, value)
    try:
        state = torch.hub.load_state_dict_from_url(
            weights.url, model_dir=str(path.parent), map_location="cpu", check_hash=True, weights_only=True
        )
    except Exception as exc:  # a damaged or planted file in the cache: torch.load's many errors
        raise ConfigError(
            f"--weights {value}: {path} cannot be read as weights ({reason(exc)}); delete it to download it again"
        ) from None
    net = model.net
    own = net.state_dict()
    head = set(head_keys(net))
    body = {k: v for k, v in state.items() if k in own and k not in head and v.shape == own[k].shape}
    if not body:
        raise ConfigError(f"--weights {value}: none of {path.name}'s tensors fit {model_name}")
    net.load_state_dict({**own, **body})
    new = sorted(f"net.{key}" for key in set(own) - set(body))  # named as --freeze and the checkpoint name them
    return (
        f"Pretrained weights {type(weights).__name__}.{weights.name} from {path}: {len(body)} of {len(own)} tensors; "
        f"new for the data's classes: {', '.join(new)}"
    )


def init_from_state(
    model: nn.Module, state: dict[str, Any], source: str, other_classes: bool = False
) -> tuple[dict[str, Any], str]:
    """--init-from: the checkpoint's tensors with `model`'s new head where its classes differ (in number, or in
    names: `other_classes`); the note says what was taken and what replaced."""
    own = model.state_dict()
    count_differs = any(key in state and state[key].shape != own[key].shape for key in head_keys(model))
    state, replaced = with_new_head(model, state, other_classes)
    if not replaced:
        return state, f"Initialized weights from {source}"
    why = "shaped for another number of classes" if count_differs else "made for other classes"
    note = f"Initialized weights from {source} but its classifier head, which is {why}"
    return state, f"{note}: new {', '.join(replaced)}"


__all__ = [
    "cached_weights",
    "classifier_head",
    "head_keys",
    "init_from_state",
    "load_named_weights",
    "pretrained_config",
    "with_new_head",
]
