"""What --val-split leaves each split of a small data set, and a value that leaves every split some images.

A split holds out round(fraction x count) images of each class (data.memory.held_out_count), so on a few images
per class a fraction can hold out none, or all: the messages here name a value that works, or say that the set
is too small to split, instead of sending the user from "raise it" to "lower it" and back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from trainlab.config import TrainConfig
from trainlab.data.memory import held_out_count

USUAL_VAL_SPLIT = 0.1
RECIPE_VAL_SPLIT = 0.15  # the auto recipe's validation share, and the test share it holds out of a single source
CANDIDATES = tuple(round(0.05 * step, 2) for step in range(1, 19))  # 0.05 to 0.9


def split_sizes(class_sizes: Sequence[int], fraction: float, holds_out_test: bool) -> tuple[int, int, int]:
    """(training, validation, test) images: a test part first when the set is its only source, then validation."""
    train = validation = test = 0
    for count in class_sizes:
        tested = held_out_count(count, fraction) if holds_out_test else 0
        validated = held_out_count(count - tested, fraction)
        train, validation, test = train + count - tested - validated, validation + validated, test + tested
    return train, validation, test


def working_val_split(class_sizes: Sequence[int], holds_out_test: bool) -> float | None:
    """The --val-split nearest the usual 0.1 that leaves every split at least one image; None if none does."""
    working = [
        fraction
        for fraction in CANDIDATES
        if all(split_sizes(class_sizes, fraction, holds_out_test)[: 3 if holds_out_test else 2])
    ]
    return min(working, key=lambda fraction: (abs(fraction - USUAL_VAL_SPLIT), fraction)) if working else None


def recipe_test_share(config: TrainConfig, class_sizes: Sequence[int]) -> float:
    """The share of a single source the auto recipe holds out for testing: its validation share where that leaves
    every split images and the user set no --val-split; 0 otherwise (the source is refused as having no test set)."""
    if config.recipe != "auto" or "val_split" in config.recipe_keep:
        return 0.0
    return RECIPE_VAL_SPLIT if all(split_sizes(class_sizes, RECIPE_VAL_SPLIT, holds_out_test=True)) else 0.0


def too_small(class_sizes: Sequence[int], holds_out_test: bool) -> str:
    """Why no --val-split splits these images: how many a class has, and how many it needs."""
    parts, needed = ("training, validation and test", 3) if holds_out_test else ("training and validation", 2)
    return (
        f"too few to split into {parts} images (at most {max(class_sizes, default=0)} in a class; a class needs "
        f"{needed})"
    )


def single_source(config: TrainConfig) -> bool:
    """True for a single CSV or tree: the only source of images, whose test part --val-split holds out."""
    if config.dataset == "csv":
        return not config.test_annotations
    if config.dataset == "folder":
        root = Path(config.image_dir or ".")
        return not ((root / "train").is_dir() and (root / "test").is_dir())
    return False


def separate_test_hint(config: TrainConfig) -> str:
    """Where a separate test set would go, for messages: the test CSV's flag, or the train and test folders."""
    if config.dataset == "csv":
        return "--test-annotations TEST.csv"
    root = Path(config.image_dir or ".")
    return f"{root / 'train'} and {root / 'test'}"
