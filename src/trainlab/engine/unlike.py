"""How unlike the training images a picture is: three checks on what the model sees, calibrated on held-out images.

Each check is a Gaussian per class (its own mean and covariance) over one view of a picture, scored by the squared
Mahalanobis distance to the nearest class:
- features: the penultimate features (the input of the model's classifier head, models.pretrained.classifier_head,
  caught by a forward hook, so every model has them; a convolution head's input is averaged over its positions, a
  model without a head uses its logits), on their first FEATURE_DIMENSIONS principal components;
- pixels: the model's uint8 input averaged down to PIXEL_GRID x PIXEL_GRID per channel;
- levels: the log of the input's mean and standard deviation (a blank or washed-out picture);
and a fourth, neighbours: the cosine distance of the penultimate features to their NEIGHBOURS-th nearest among
BANK_IMAGES training images' (Sun et al., 2022).
Each check's threshold is its held-out images' quantile at one shared level, chosen so that together they flag
`rate` of the held-out images; a picture's unlike_score is the largest distance / threshold: flagged above 1.
benchmarks/unlike.py measured each check alone and together against the top softmax probability, the energy score
and the features' Mahalanobis distance with one shared covariance (BENCHMARKS.md, "Unlike the training data").
checkpoint_records.check_unlike checks the record; the Predictor uses it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from trainlab.config import TrainConfig
from trainlab.data import ImageData, make_loader
from trainlab.data.memory import stratified_split
from trainlab.data.transforms import Preprocessing
from trainlab.errors import ConfigError
from trainlab.models.pretrained import classifier_head
from trainlab.models.tta import with_tta

SCORE = "mahalanobis"
CHECKS = ("features", "pixels", "levels", "neighbours")
DEFAULT_RATE = 0.04  # of held-out images flagged: the model's own test images stay under 5% with room for chance
FEATURE_DIMENSIONS = 64  # principal components of the penultimate features the features check keeps
PIXEL_GRID = 7  # the pixels check's picture: 7x7 per channel
FIT_IMAGES = 10_000  # training images the checks' Gaussians are fitted on (a seeded sample)
HELD_OUT_IMAGES = 10_000  # held-out images the threshold is set on (a seeded sample)
BANK_IMAGES = 3_000  # training images whose features the neighbours check keeps (float16)
NEIGHBOURS = 5  # the neighbours check's distance is to the 5th nearest of them
RIDGE = 1e-3  # added to each covariance's diagonal, times the mean variance: constant dimensions stay finite


def head_input(inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The classifier head's input as (N, D) features: a convolution head's (N, C, H, W) averaged over H and W."""
    features = inputs[0]
    return features.mean((2, 3)) if features.dim() == 4 else features.flatten(1)


@contextlib.contextmanager
def feature_tap(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """While open, each forward pass of this thread appends the classifier head's input (N, D) to the yielded list
    (the server's model-card thread may run the same model meanwhile); a model without a head appends nothing (its
    logits stand in; see forward_features)."""
    seen: list[torch.Tensor] = []
    try:
        _, head = classifier_head(model)
    except ConfigError:
        yield seen
        return
    owner = threading.get_ident()

    def keep(_module: nn.Module, inputs: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
        if threading.get_ident() == owner:
            seen.append(head_input(inputs))

    handle = head.register_forward_hook(keep)
    try:
        yield seen
    finally:
        handle.remove()


def forward_features(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penultimate features) in float32 for a preprocessed batch; test-time augmentation's passes
    are averaged, as its logits are."""
    with feature_tap(model) as seen:
        logits = model(images).float()
    if not seen:
        return logits, logits
    return logits, torch.stack(seen).float().mean(0)


def pixel_views(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels (N, C * PIXEL_GRID²), levels (N, 2)) of a uint8 batch (N, C, H, W) as the model receives it."""
    values = images.float() / 255
    pixels = nn.functional.adaptive_avg_pool2d(values, PIXEL_GRID).flatten(1)
    flat = values.flatten(1)
    levels = torch.stack([flat.mean(1), flat.std(1)], 1).clamp_min(1e-3).log()
    return pixels, levels


def fit_gaussians(values: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per class present: its mean (K, D) and the whitening (K, D, D) of its own covariance, with RIDGE times the
    mean variance over all classes added to the diagonal (constant dimensions and small classes stay finite)."""
    values = values.double()
    present = labels.unique()
    means = torch.stack([values[labels == c].mean(0) for c in present])
    centred = values - means[torch.searchsorted(present, labels)]
    ridge = (RIDGE * float(centred.square().mean()) + 1e-12) * torch.eye(values.shape[1], dtype=torch.float64)
    whitenings = []
    for c in present:
        own = centred[labels == c]
        covariance = own.T @ own / max(len(own) - 1, 1) + ridge
        whitenings.append(torch.linalg.cholesky(torch.linalg.inv(covariance)))  # precision = L Lᵀ
    return {"means": means.float(), "whitening": torch.stack(whitenings).float()}


def gaussian_distance(gaussians: dict[str, Any], values: torch.Tensor) -> torch.Tensor:
    """Each row's squared Mahalanobis distance (N,) to the nearest class of `gaussians`: |(x - m) L|²."""
    means, whitening = gaussians["means"].to(values.device), gaussians["whitening"].to(values.device)
    centred = values.float()[:, None, :] - means[None]  # (N, K, D)
    return torch.einsum("nkd,kde->nke", centred, whitening).square().sum(2).min(1).values


def principal_components(features: torch.Tensor) -> dict[str, torch.Tensor]:
    """The centre (D,) and the projection (D, d) on the first FEATURE_DIMENSIONS principal components."""
    features = features.double()
    centre = features.mean(0)
    centred = features - centre
    _, vectors = torch.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    kept = min(FEATURE_DIMENSIONS, features.shape[1])
    return {"centre": centre.float(), "projection": vectors[:, -kept:].flip(1).float()}


class Scorer:
    """A record's unlike scores: the largest of its checks' scaled distances, over its threshold (above 1: flagged)."""

    def __init__(self, record: dict[str, Any]):
        self.checks = record["checks"]
        self.threshold = float(record["threshold"])
        self.features = self.checks["features"]["projection"].shape[0]  # what the model's head must give
        # (D, M), contiguous: a batch's similarities are one plain matmul (a transposed view costs 1.6x at 16)
        self.bank = self.checks["neighbours"]["bank"].float().T.contiguous()

    def distances(self, images: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each check's squared distance (N,) for uint8 images and their penultimate features."""
        features_check = self.checks["features"]
        centre = features_check["centre"].to(features.device)
        projected = (features.float() - centre) @ features_check["projection"].to(features.device)
        pixels, levels = pixel_views(images.to(features.device))
        views = {"features": projected, "pixels": pixels, "levels": levels}
        distances = {name: gaussian_distance(self.checks[name], views[name]) for name in CHECKS[:3]}
        similarities = nn.functional.normalize(features.float(), dim=1) @ self.bank.to(features.device)
        nearest = similarities.topk(min(NEIGHBOURS, self.bank.shape[1]), dim=1).values[:, -1]
        distances["neighbours"] = 1 - nearest
        return distances

    def __call__(self, images: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Unlike scores (N,) of uint8 images (N, C, H, W) and their penultimate features (N, D)."""
        distances = self.distances(images, features)
        scaled = torch.stack([distances[name] / self.checks[name]["scale"] for name in CHECKS])
        return scaled.max(0).values / self.threshold


def sample(data: ImageData, count: int, seed: int) -> ImageData:
    """At most `count` of `data`'s images, chosen by a seeded permutation that leaves the global RNG alone."""
    if len(data) <= count:
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    return data.select(order.sort().values)


def views_of(
    model: nn.Module, data: ImageData, preprocess: Preprocessing, batch_size: int = 500
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(uint8 images, penultimate features, labels) of every image in `data`, on the CPU."""
    was_training = model.training
    model.eval()
    images, features, labels = [], [], []
    with torch.inference_mode():
        for batch, batch_labels in make_loader(data, batch_size).batches():
            features.append(forward_features(model, preprocess(batch))[1].cpu())
            images.append(batch.cpu())
            labels.append(batch_labels.cpu())
    model.train(was_training)
    return torch.cat(images), torch.cat(features), torch.cat(labels)


def shared_level(distances: dict[str, torch.Tensor], rate: float) -> float:
    """The share of held-out images each check flags alone such that, together, they flag `rate` of them."""
    low, high = 0.0, rate
    for _ in range(30):  # bisection: the union grows with the level
        level = (low + high) / 2
        flagged = torch.zeros(len(next(iter(distances.values()))), dtype=torch.bool)
        for values in distances.values():
            flagged |= values.double() > torch.quantile(values.double(), 1 - level)
        low, high = (level, high) if float(flagged.float().mean()) < rate else (low, level)
    return low


def calibrate(
    model: nn.Module,
    preprocess: Preprocessing,
    train: ImageData,
    held_out: ImageData,
    held_out_name: str,
    rate: float = DEFAULT_RATE,
    seed: int = 0,
) -> dict[str, Any]:
    """The unlike-the-training-data record: the checks' Gaussians from training images, their scales and the
    threshold that flags `rate` of the held-out images (`held_out_name`: "validation" or "test")."""
    images, features, labels = views_of(model, sample(train, FIT_IMAGES, seed), preprocess)
    components = principal_components(features)
    pixels, levels = pixel_views(images)
    projected = (features - components["centre"]) @ components["projection"]
    checks = {
        "features": {**components, **fit_gaussians(projected, labels)},
        "pixels": fit_gaussians(pixels, labels),
        "levels": fit_gaussians(levels, labels),
    }
    every = max(1, len(features) // BANK_IMAGES)
    bank = nn.functional.normalize(features[::every][:BANK_IMAGES], dim=1)
    checks["neighbours"] = {"bank": bank.half()}
    held_images, held_features, _ = views_of(model, sample(held_out, HELD_OUT_IMAGES, seed + 1), preprocess)
    distances = Scorer({"checks": checks, "threshold": 1.0}).distances(held_images, held_features)
    level = shared_level(distances, rate)
    for name in CHECKS:
        checks[name]["scale"] = max(float(torch.quantile(distances[name].double(), 1 - level)), 1e-12)
    # the held-out scores from the distances at hand (what Scorer's __call__ computes, without a second pass)
    scores = torch.stack([distances[name] / checks[name]["scale"] for name in CHECKS]).max(0).values
    return {
        "score": SCORE,
        "checks": checks,
        "threshold": 1.0,
        "check_rate": level,
        "rate": rate,
        "held_out": held_out_name,
        "held_out_images": len(scores),
        "flagged": float((scores > 1).float().mean()),
    }


def held_out(config: TrainConfig, train: ImageData, test: ImageData) -> tuple[ImageData, ImageData, str]:
    """(training images, held-out images, their name): the run's validation split if it has one, else its test
    set, split from the training set exactly as training split it."""
    if config.val_split:
        train, val = stratified_split(train, config.val_split, config.seed)
        return train, val, "validation"
    return train, test, "test"


def calibrated(
    model: nn.Module,
    preprocess: Preprocessing,
    config: TrainConfig,
    train: ImageData,
    test: ImageData,
    rate: float = DEFAULT_RATE,
) -> dict[str, Any]:
    """The unlike record of `model` (as it predicts: test-time augmentation included) for the run of `config`;
    `train` is the whole training set, before any validation split."""
    fit_on, held, name = held_out(config, train, test)
    return calibrate(with_tta(model, config.tta), preprocess, fit_on, held, name, rate, config.seed)
