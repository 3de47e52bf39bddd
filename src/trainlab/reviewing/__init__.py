"""trainlab review: rank the images most likely mislabelled, with duplicates and blank or unreadable images.

folds      out-of-fold probabilities (the run's recipe retrained on K-1 folds), the run's model on the test set
scores     confident learning: per-class thresholds, label issues, the normalized-margin ranking
duplicates exact (pixel hash) and near (cosine of shrunk images) duplicates, blank images
findings   one ranked list of Suspects, one per image
picture    review.png, the top suspects in a grid
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from pathlib import Path

import torch

from trainlab.config import FILE_DATASETS, TrainConfig
from trainlab.data import DatasetSplits, ImageData, load_dataset, make_loader
from trainlab.engine.runtime import resolve_device
from trainlab.errors import TrainlabError
from trainlab.fileio import atomic_write
from trainlab.inference import Predictor
from trainlab.layout import REVIEW_COLUMNS, REVIEW_CSV, REVIEW_PNG
from trainlab.reviewing.duplicates import exact_pairs, near_pairs
from trainlab.reviewing.findings import Findings, Suspect
from trainlab.reviewing.folds import out_of_fold_probabilities, predicted_probabilities
from trainlab.reviewing.picture import suspects_grid
from trainlab.reviewing.scores import label_scores
from trainlab.training.fit import load_run_config

__all__ = ["Suspect", "review", "DEFAULT_FOLDS"]

DEFAULT_FOLDS = 3
DEFAULT_REPEATS = 1  # differently seeded fold splits whose probabilities are averaged
MAX_FOLDS = 20  # more folds cost more models for hardly better out-of-fold estimates


def check_review_options(folds: int, top: int | None, fold_epochs: int | None, repeats: int = 1) -> None:
    """The numbers a review takes, each refused in one line when out of range."""
    if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= MAX_FOLDS:
        raise TrainlabError(f"--repeats must be a whole number from 1 to {MAX_FOLDS}, got {repeats!r}")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        raise TrainlabError(f"--folds must be a whole number from 2 to {MAX_FOLDS}, got {folds!r}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise TrainlabError(f"--top must be a whole number >= 1, got {top!r}")
    if fold_epochs is not None and (
        isinstance(fold_epochs, bool) or not isinstance(fold_epochs, int) or fold_epochs < 1
    ):
        raise TrainlabError(f"--fold-epochs must be a whole number >= 1, got {fold_epochs!r}")


def review(
    run_dir: str | os.PathLike,
    folds: int = DEFAULT_FOLDS,
    top: int | None = None,
    out: str | os.PathLike | None = None,
    fold_epochs: int | None = None,
    say: Callable[[str], None] | None = None,
    trust_model_code: bool = False,
    write: bool = True,
    repeats: int = DEFAULT_REPEATS,
) -> list[Suspect]:
    """The ranked suspects of a run's data (the `top` surest), written to OUT/review.csv and OUT/review.png.

    Training images are judged by models that never saw them (the run's recipe retrained on folds-1 folds,
    for fold_epochs, default the run's epochs; `repeats` seeded fold splits averaged: about repeats x (folds-1)
    times the run's training), test images by the run's own model. out: default
    RUN/review.
    """
    check_review_options(folds, top, fold_epochs, repeats)
    say = say or (lambda text: None)
    config = load_run_config(run_dir, trust_model_code)
    data = load_dataset(config)
    if len(data.train) < folds:
        raise TrainlabError(f"--folds {folds} needs at least {folds} training images; the run has {len(data.train)}")
    epochs = fold_epochs or config.epochs
    train_probabilities = out_of_fold_probabilities(config, data.train, folds, epochs, say, repeats)
    say(f"predicting the {len(data.test):,} test images with the run's model")
    predictor = Predictor.from_checkpoint(run_dir, model=config.model, device=resolve_device(config.device))
    test_probabilities = predicted_probabilities(predictor, data.test)
    findings = Findings({"train": data.train, "test": data.test})
    findings.add_labels("train", label_scores(train_probabilities, data.train.labels))
    findings.add_labels("test", label_scores(test_probabilities, data.test.labels))
    pixels = {"train": all_pixels(data.train), "test": all_pixels(data.test)}
    say("looking for duplicates and blank images")
    exact = exact_pairs(pixels)
    findings.add_pairs(exact + near_pairs(pixels, exact))
    for split, images in pixels.items():
        findings.add_blanks(split, images)
    findings.add_unreadable("train", unreadable_files(config, data))
    suspects = findings.ranked()[:top]
    if write:
        folder = Path(out) if out is not None else Path(run_dir) / REVIEW_CSV.parent
        write_review(suspects, pixels, folder)
    return suspects


def all_pixels(data: ImageData) -> torch.Tensor:
    """The split's uint8 images as one tensor (streamed sets are read through their loader)."""
    if isinstance(data.images, torch.Tensor):
        return data.images.cpu()
    return torch.cat([images.cpu() for images, _ in make_loader(data, 512)])


def unreadable_files(config: TrainConfig, data: DatasetSplits) -> list[str]:
    """csv/folder files that were left out as unreadable (--skip-bad-images), by name."""
    if config.dataset not in FILE_DATASETS or not config.skip_bad_images:
        return []
    from trainlab.data.file_datasets import file_sources

    loaded = set(data.train.names or ()) | set(data.test.names or ())
    sources = [files for files in file_sources(config, ("train", "test"), need_train=True) if files is not None]
    return sorted({path for files in sources for path in files.paths} - loaded)


def csv_text(suspects: list[Suspect]) -> str:
    """review.csv's text: a header row, then one row per suspect."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(REVIEW_COLUMNS)
    for suspect in suspects:
        row = suspect.to_dict()
        writer.writerow([row[column] for column in REVIEW_COLUMNS])
    return buffer.getvalue()


def write_review(suspects: list[Suspect], pixels: dict[str, torch.Tensor], folder: Path) -> tuple[Path, Path]:
    """folder/review.csv and folder/review.png, each written whole or not at all."""
    if folder.exists() and not folder.is_dir():
        raise TrainlabError(f"--out {folder} is a file; give a folder for review.csv and review.png")
    shown = [suspect for suspect in suspects if suspect.row >= 0]
    images = [pixels[suspect.split][suspect.row] for suspect in shown]
    titles = [f"{s.given} -> {s.suggested or 'keep?'}\n{s.kind} {s.confidence:.0%}" for s in shown]
    if images:  # train and test of other sizes: the picture shows the first suspect's size
        same = [k for k, image in enumerate(images) if image.shape == images[0].shape]
        images, titles = [images[k] for k in same], [titles[k] for k in same]
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = atomic_write(folder / REVIEW_CSV.name, lambda handle: handle.write(csv_text(suspects).encode()))
    png_path = suspects_grid(images, titles, folder / REVIEW_PNG.name)
    return csv_path, png_path
