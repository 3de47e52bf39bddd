"""The frozen-body feature cache: with the body frozen and no augmentation, what the body makes of each image never
changes, so it is computed once (for the training, validation and test images) and the head trains on it: an
epoch then costs a linear layer.

The features are the classifier head's input, taken with a forward pre-hook while the whole model runs in eval
mode (the frozen body's batch norm on its running statistics, no dropout), so the head trained on them is the
head trained through the frozen body in eval mode, to float rounding. A model whose head is not called exactly
once per image, or whose output is not the head's output, is not cached: it trains through the body as before.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from trainlab.data import make_loader
from trainlab.data.memory import ImageData
from trainlab.data.transforms import Preprocessing

MATCH_TOLERANCE = 1e-4  # relative: the head on the captured input against the model's own output


def as_features(features: torch.Tensor) -> torch.Tensor:
    """The preprocessing of cached features: they are the head's input already."""
    return features


def body_features(
    model: nn.Module,
    head: nn.Module,
    data: ImageData,
    preprocess: Preprocessing,
    batch_size: int,
    autocast: Callable[[], Any],
) -> ImageData | None:
    """`data` as the head's inputs (float32, one row per image, same labels and order), computed by the whole model
    in eval mode; None when the head's input does not decide the model's output (then nothing can be cached)."""
    captured: list[torch.Tensor] = []
    handle = head.register_forward_pre_hook(lambda _module, inputs: captured.append(inputs[0]))
    was_training = model.training
    model.eval()
    rows = []
    try:
        with torch.no_grad():  # not inference_mode: the head's training keeps these tensors for its backward
            for number, (images, _labels) in enumerate(make_loader(data, batch_size).batches()):
                captured.clear()
                with autocast():
                    logits = model(preprocess(images))
                    if len(captured) != 1 or (number == 0 and not same_output(head(captured[0]), logits)):
                        return None
                rows.append(captured[0].float())
    finally:
        handle.remove()
        model.train(was_training)
    features = torch.cat(rows) if rows else torch.empty(0)
    return ImageData(features, data.labels, data.classes)


def same_output(from_head: torch.Tensor, logits: torch.Tensor) -> bool:
    """Whether the head on its captured input gave the model's output (a head called last, on that input)."""
    if not isinstance(logits, torch.Tensor) or from_head.shape != logits.shape:
        return False
    scale = float(logits.abs().max()) if logits.numel() else 0.0
    return bool(torch.allclose(from_head.float(), logits.float(), rtol=MATCH_TOLERANCE, atol=MATCH_TOLERANCE * scale))


class FeatureCache:
    """The head's inputs of every image a run trains and evaluates on, computed on first use; `usable` is False
    when the model cannot be cached (said once by the caller)."""

    def __init__(self, setup: Any, head: nn.Module):
        self.setup, self.head = setup, head
        self.features: dict[int, tuple[ImageData, ImageData]] = {}  # id(images) -> (images, their features)
        self.usable = True

    def of(self, data: ImageData) -> ImageData | None:
        """The cached features of `data` (a split of the run), computed the first time they are asked for."""
        if not self.usable:
            return None
        kept = self.features.get(id(data))
        if kept is not None and kept[0] is data:
            return kept[1]
        setup = self.setup
        features = body_features(
            setup.model, self.head, data, setup.preprocess, setup.config.eval_batch_size, setup.autocast
        )
        if features is None:
            self.usable = False
            return None
        self.features[id(data)] = (data, features)
        return features

    def batches(self, epoch: int, start_batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training features in exactly the batches the run's loader gives its images (same order, same
        limits), so the cached epoch steps as the uncached one does."""
        setup = self.setup
        features = self.of(setup.train_data)
        batch_size = setup.config.per_process_batch_size(setup.dist.world)
        loader = make_loader(features, batch_size, setup.config.shuffle, setup.config.seed)
        return itertools.islice(loader.batches(epoch, start_batch), setup.steps_in_epoch(epoch) - start_batch)
