"""Probabilities from models that never trained on the image: out-of-fold for training images, the run's own
model for test images.

Out-of-fold: the training images are dealt into K stratified folds; for each fold, the run's own config trains
a fresh model on the other K-1 folds (into a temporary run directory) and predicts the held-out fold. Each
fold model trains for `fold_epochs` (default: the run's epochs) on (K-1)/K of the images, so a review costs
about (K-1) x fold_epochs / run epochs times the run's own training: twice it for the default 3 folds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from trainlab.config import TrainConfig
from trainlab.data import DatasetSplits, ImageData, make_loader
from trainlab.engine.runtime import resolve_device
from trainlab.inference import Predictor
from trainlab.layout import LAST_CHECKPOINT
from trainlab.training.fit import fit

BATCH = 512  # images per forward pass when predicting
REPEAT_SEED_STEP = 1009  # seeds of the repeated fold splits: far apart from the fold models' seed + k


def fold_of(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """Each image's fold, 0..folds-1: a seeded shuffle of each class dealt round, so every fold holds every class."""
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(labels), dtype=torch.long)
    for label in labels.cpu().unique():
        members = torch.nonzero(labels.cpu() == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        fold[members] = torch.arange(len(members)) % folds
    return fold


def predicted_probabilities(predictor: Predictor, data: ImageData) -> torch.Tensor:
    """(N, K) softmax probabilities of the predictor for every image of `data`, in order."""
    loader = make_loader(data, BATCH)
    return torch.cat([predictor.probabilities(images) for images, _ in loader])


def fold_config(config: TrainConfig, epochs: int, seed: int) -> TrainConfig:
    """The run's recipe for one fold model: its epochs bounded, no time budget, no tracking, nothing resumed."""
    return config.replace(epochs=epochs, time_budget=None, max_steps=None, tracking="none", seed=seed)


def out_of_fold_probabilities(
    config: TrainConfig,
    train: ImageData,
    folds: int,
    epochs: int,
    say: Callable[[str], None],
    repeats: int = 1,
    work_dir: Path | None = None,
) -> torch.Tensor:
    """(N, K) probabilities of each training image from models trained on the other folds; with repeats > 1,
    the mean over that many differently seeded fold splits (an ensemble: models disagree on hard images, and
    agree on a wrong label)."""
    probabilities = torch.zeros(len(train), len(train.classes))
    device = resolve_device(config.device)
    with tempfile.TemporaryDirectory(prefix="trainlab-review-", dir=work_dir) as scratch:
        for repeat in range(repeats):
            seed = config.seed + REPEAT_SEED_STEP * repeat
            fold = fold_of(train.labels, folds, seed)
            for k in range(folds):
                held = torch.nonzero(fold == k).flatten()
                kept = torch.nonzero(fold != k).flatten()
                name = f"fold {k + 1}/{folds}" + (f" of split {repeat + 1}/{repeats}" if repeats > 1 else "")
                say(f"{name}: training on {len(kept):,} images for {epochs} epoch(s), predicting {len(held):,}")
                run = Path(scratch) / f"split-{repeat + 1}-fold-{k + 1}"
                splits = DatasetSplits(train.select(kept), train.select(held))
                fit(fold_config(config, epochs, seed + k), data=splits, run_dir=run)
                predictor = Predictor.from_checkpoint(run / LAST_CHECKPOINT, model=config.model, device=device)
                probabilities[held] += predicted_probabilities(predictor, splits.test) / repeats
    return probabilities
