"""Evaluating a saved model: its checkpoint's test split (or other data), loss, per-class figures, confusion matrix."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainlab.checkpoint import LoadedCheckpoint, load_checkpoint
from trainlab.config import FILE_DATASETS, TrainConfig, data_source_keys
from trainlab.data import ImageData, load_splits
from trainlab.data.input_styles import RAW
from trainlab.engine.loop import evaluate
from trainlab.engine.losses import make_loss
from trainlab.engine.runtime import resolve_device
from trainlab.errors import TrainlabError
from trainlab.inference.predictor import Predictor
from trainlab.reports.classification import confusion_matrix, per_class_report

# Given a new dataset, or new annotations without new test annotations, these saved values describe other data.
DATASET_SPECIFIC = ("annotations", "test_annotations", "image_dir", "image_size", "channels", "val_split")


def checkpoint_data_config(saved: dict[str, Any] | None, given: dict[str, Any] | None = None) -> TrainConfig:
    """The data a checkpoint is evaluated on: the given data options, falling back to the checkpoint's own.

    `evaluate RUN --annotations other.csv` tests all of other.csv; `--dataset mnist` forgets the csv settings.
    """
    values = {key: value for key, value in (saved or {}).items() if key in (*data_source_keys(), "val_split")}
    given = {key: value for key, value in (given or {}).items() if value is not None}
    if given.get("dataset", values.get("dataset")) != values.get("dataset"):  # another kind of data altogether
        for key in DATASET_SPECIFIC:
            values.pop(key, None)
    if given.get("annotations", values.get("annotations")) != values.get("annotations"):
        if "test_annotations" not in given:
            values.pop("test_annotations", None)
            values.pop("val_split", None)
    values.update(given)
    return TrainConfig.from_dict(values, source="data options")


def load_test_split(
    loaded: LoadedCheckpoint,
    predictor: Predictor,
    given: dict[str, Any] | None = None,
    download: bool = True,
    input_style: str | None = None,
) -> tuple[ImageData, list[str]]:
    """The test split the data options name, decoded to the model's input shape, labels on its classes; and
    notes on how the images were read (in memory or streamed, cached or decoded, the input style).

    input_style (csv/folder pictures only): auto, photo or raw; None: raw for the checkpoint's own test
    pictures (read as in training), auto for pictures the data options name.
    """
    given = given or {}
    config = checkpoint_data_config(loaded.config, given)
    from_files = config.dataset in FILE_DATASETS
    style_notes = []
    if not from_files and input_style not in (None, "raw"):
        raise TrainlabError(
            f"--input-style is for pictures (--dataset csv or folder); {config.dataset}'s test images are used "
            "as they are: leave it out"
        )
    if from_files:
        own = not any(value is not None for value in given.values())
        name = input_style or ("raw" if own else "auto")
        style = predictor.input_style(name)  # measures an old checkpoint's look if needed
        style_notes = [*predictor.notes, *input_style_note(name, own and input_style is None)]
    prep = predictor.preprocessing
    shape = (prep.channels, prep.height, prep.width)
    for name, value, fits in (
        ("--channels", given.get("channels"), (prep.channels,)),
        ("--image-size", given.get("image_size"), (prep.height, prep.width)),
    ):
        if value is not None and value not in fits:
            raise TrainlabError(
                f"{name} {value} does not fit the model, which takes {prep.channels}x{prep.height}x"
                f"{prep.width} images; leave it out"
            )
    splits, notes = load_splits(
        config,
        ("test",),
        download=download,
        classes=predictor.classes if from_files else None,
        image_shape=shape,  # files are decoded to it; a built-in gray set is repeated into a model's RGB
        style=style if from_files else RAW,
    )
    test = splits["test"]
    if test.image_shape != shape or len(test.classes) != len(predictor.classes):
        raise TrainlabError(
            f"{config.dataset} has {len(test.classes)} classes of {'x'.join(map(str, test.image_shape))} images but "
            f"the model takes {'x'.join(map(str, shape))} images in {len(predictor.classes)} classes"
        )
    return test, [*style_notes, *notes]


def input_style_note(name: str, own_default: bool) -> list[str]:
    """The line saying how pictures are read: none when raw was asked for."""
    if own_default:
        return [
            "input style raw: the checkpoint's own test pictures, read as in training (--input-style auto or photo "
            "reads them as it reads photos)"
        ]
    if name == "auto":
        return ["input style auto: each picture used as it is when it looks like the training images, else as a photo"]
    return ["input style photo: every picture trimmed, fitted and matched as a photo"] if name == "photo" else []


@dataclass
class Evaluation:
    """A checkpoint's figures on a test set."""

    checkpoint: Path
    classes: tuple[str, ...]
    samples: int
    correct: int
    accuracy: float
    loss: float  # mean per-sample loss with the run's own loss function (plain files: cross-entropy)
    confusion_matrix: torch.Tensor  # [actual, predicted] counts
    per_class: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "samples": self.samples,
            "correct": self.correct,
            "checkpoint": str(self.checkpoint),
            "per_class": self.per_class,
            "confusion_matrix": self.confusion_matrix.tolist(),
        }


def evaluate_checkpoint(
    checkpoint: str | os.PathLike | LoadedCheckpoint,
    *,
    model: str | None = None,
    device: str = "auto",
    batch_size: int = 1000,
    trust_pickle: bool = False,
    trust_model_code: bool = False,
    download: bool = True,
    input_style: str | None = None,
    **data_options: Any,
) -> Evaluation:
    """Test a checkpoint on its own test split, or on the data that `data_options` (config keys such as
    dataset, data_dir, annotations, image_dir) name; returns accuracy, loss, per-class figures and the
    confusion matrix. `model` names the model of a plain state_dict file; `input_style` (auto, photo, raw) is
    how csv/folder pictures are read (default: raw for the checkpoint's own, auto for others; see
    load_test_split)."""
    if batch_size < 1:
        raise TrainlabError(f"--batch-size must be >= 1, got {batch_size}")
    unknown = sorted(set(data_options) - set(data_source_keys()))
    if unknown:
        raise TypeError(f"evaluate_checkpoint() got unknown data options: {', '.join(unknown)}")
    loaded = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint, trust_pickle)
    device = resolve_device(device)
    predictor = Predictor.from_checkpoint(loaded, model=model, device=device, trust_model_code=trust_model_code)
    test, notes = load_test_split(loaded, predictor, data_options, download, input_style)
    saved = loaded.config or {}  # the run's own loss, so "Avg loss" matches its metrics
    loss_fn = make_loss(saved.get("loss", "cross-entropy"), len(predictor.classes), saved.get("label_smoothing", 0.0))
    result = evaluate(
        predictor.model, test.to(device), loss_fn, predictor.preprocessing, batch_size, return_predictions=True
    )
    matrix = confusion_matrix(result["predictions"], test.labels, len(predictor.classes))
    return Evaluation(
        checkpoint=loaded.path,
        classes=predictor.classes,
        samples=result["samples"],
        correct=result["correct"],
        accuracy=result["accuracy"],
        loss=result["loss"],
        confusion_matrix=matrix,
        per_class=per_class_report(matrix, predictor.classes),
        notes=notes,
    )
