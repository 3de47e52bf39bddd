"""The end of training: each checkpoint of the run gets its unlike-the-training-data record (engine.unlike)."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from trainlab.checkpoint import load_checkpoint, load_weights, unwrap_model
from trainlab.config import TrainConfig
from trainlab.data import ImageData
from trainlab.data.memory import stratified_split
from trainlab.data.transforms import Preprocessing
from trainlab.engine import unlike
from trainlab.models.tta import with_tta
from trainlab.training import rundir


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
    rate: float = unlike.DEFAULT_RATE,
) -> dict[str, Any]:
    """The unlike record of `model` (as it predicts: test-time augmentation included) for the run of `config`;
    `train` is the whole training set, before any validation split."""
    fit_on, held, name = held_out(config, train, test)
    return unlike.calibrate(with_tta(model, config.tta), preprocess, fit_on, held, name, rate, config.seed)


def calibrate_run(trainer: Any) -> None:
    """Add the unlike record to each checkpoint the finished run wrote (best.pt and last.pt), computed with its
    own weights; skipped where the evaluations covered part of the data (--limit-eval-batches)."""
    if not trainer.setup.dist.primary or trainer.config.limit_eval_batches is not None:
        return
    model = copy.deepcopy(unwrap_model(trainer.model)).eval()
    held, held_name = (trainer.val_data, "validation") if trainer.val_data is not None else (trainer.test_data, "test")
    records: dict[tuple[int, int], dict[str, Any]] = {}
    for name in (rundir.BEST_CHECKPOINT, rundir.LAST_CHECKPOINT):
        path = trainer.files.path / name
        if not path.is_file():
            continue
        payload = load_checkpoint(path).payload
        key = (payload["epoch"], payload["step"])  # best.pt and last.pt of one epoch hold the same weights
        if key not in records:
            load_weights(model, payload["model_state"], source=str(path))
            records[key] = unlike.calibrate(
                with_tta(model, trainer.config.tta),
                trainer.setup.preprocess,
                trainer.train_data,
                held,
                held_name,
                seed=trainer.config.seed,
            )
        payload["unlike"] = records[key]
        trainer.files.save_checkpoint(payload, name)
    if records:
        record = records[max(records)]
        trainer.reporter.message(
            f"Unlike the training data: a threshold that flags {record['flagged']:.1%} of the "
            f"{record['held_out_images']:,} {record['held_out']} images is recorded in the checkpoints"
        )
