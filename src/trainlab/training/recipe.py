"""--preset auto: a training recipe chosen from what the data is, each choice with its reason.

The tutorial's data set with no recipe flags keeps the tutorial's recipe (the product's contract). Any other
data with no recipe flags, or `--preset auto`, gets one chosen here from the training images' size, channels,
count, classes and class balance. Every choice but the mirror flip is a rule of the data's shape; the flip is
measured: two short runs on the training part, with and without mirrored images (and flip test-time
augmentation), compared on the held-out validation part. A flip is used only when it did not lower the
validation accuracy: a mirrored 2 or a left-pointing arrow is another class.

The choices become ordinary config values, so the run's config.toml repeats them exactly with `--config`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from trainlab.config import TrainConfig
from trainlab.data import DatasetSplits
from trainlab.data.memory import held_out_count
from trainlab.data.split_advice import RECIPE_VAL_SPLIT, single_source
from trainlab.engine.loop import evaluate
from trainlab.errors import TrainingDiverged
from trainlab.training import fine_tune
from trainlab.training.setup import build_training

DEFAULT_BUDGET = 300.0  # seconds: the whole command, start-up to reports, when the user gives none
MAX_SIDE_PIXELS_PER_EPOCH = 6e6  # pixels: above this, large images are trained downscaled (cost per epoch)
DOWNSCALE_SIDES = (64, 48, 32)  # pixels: the sides tried for large images, largest first
TARGET_STEPS = 3000  # optimizer steps a run aims at; the time budget cuts it on a slow machine
MIN_EPOCHS, MAX_EPOCHS = 15, 150
PROBE_SHARE = 0.06  # of the time budget, at most, for each arm of the mirror-flip test
PROBE_EPOCHS = 6  # each arm of the flip test trains at most this many epochs
PROBE_MIN_VAL_IMAGES = 20  # fewer validation images than this cannot tell a flip's effect
UNBALANCED_RATIO = 3.0  # largest class over smallest: said in the recipe


@dataclass(frozen=True)
class DataProfile:
    """What the recipe looks at: the training images' shape, count, classes and class sizes."""

    train_images: int
    test_images: int
    channels: int
    height: int
    width: int
    class_counts: tuple[int, ...]
    has_test_source: bool = True  # False: a single CSV or tree, whose test part --val-split holds out

    @property
    def side(self) -> int:
        return max(self.height, self.width)

    @property
    def classes(self) -> int:
        return len(self.class_counts)

    def describe(self) -> str:
        color = "gray" if self.channels == 1 else "RGB"
        return (
            f"{self.train_images:,} training images, {self.height}x{self.width} {color}, {self.classes} classes "
            f"({min(self.class_counts):,} to {max(self.class_counts):,} images each)"
        )


def profile_of(data: DatasetSplits) -> DataProfile:
    """The recipe's view of a data set, read from its training split."""
    channels, height, width = data.train.image_shape
    counts = torch.bincount(data.train.labels.cpu().long(), minlength=len(data.classes)).tolist()
    return DataProfile(len(data.train), len(data.test), channels, height, width, tuple(counts))


@dataclass(frozen=True)
class Choice:
    """One config value the recipe chose, and why."""

    key: str
    value: Any
    reason: str


def choose(profile: DataProfile, kept: dict[str, Any]) -> list[Choice]:
    """The recipe's values for data of this profile (all but the mirror flip, which is measured); keys in
    `kept` are the user's and are not chosen."""
    image_size = trained_side(profile)
    trained = image_size or profile.side
    choices = [
        *size_choice(profile, image_size),
        Choice("shuffle", True, "batches must mix the classes (folders are read class by class)"),
        Choice(
            "val_split",
            RECIPE_VAL_SPLIT,
            f"a stratified {RECIPE_VAL_SPLIT:.0%} of the training images chooses the best epoch and stops "
            "the run when it stops improving; the test set is never used for choosing",
        ),
        Choice(
            "model",
            "cnn" if trained >= 4 else "mlp",
            "a small conv net with batch norm suits pictures of this size"
            if trained >= 4
            else "pictures under 4 pixels are too small for the cnn's poolings",
        ),
        *optimization_choices(profile, kept),
        *augmentation_choices(trained),
        Choice("precision", "auto", "bf16 where this machine runs it fast, else fp32"),
        Choice("channels_last", True, "the faster memory layout for conv nets on CPUs"),
        Choice(
            "time_budget",
            DEFAULT_BUDGET,
            "the run ends within 5 minutes (decoding your files aside); --time-budget changes it",
        ),
    ]
    length = {"epochs", "max_steps"} & set(kept)  # a length of the user's: no budget unless they gave one too
    return [choice for choice in choices if choice.key not in kept and not (length and choice.key == "time_budget")]


def size_choice(profile: DataProfile, image_size: int | None) -> list[Choice]:
    """The downscale of large pictures, when there is one."""
    if image_size is None:
        return []
    reason = (
        f"{profile.height}x{profile.width} pictures are trained at {image_size}x{image_size} to fit the time "
        "budget; --image-size changes it"
    )
    return [Choice("image_size", image_size, reason)]


def optimization_choices(profile: DataProfile, kept: dict[str, Any]) -> list[Choice]:
    """Optimizer, schedule, batch size and the run's length for this many images."""
    batch = batch_size_for(profile.train_images)
    steps_per_epoch = max(1, math.ceil(profile.train_images * 0.85 / batch))
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch)))
    return [
        Choice("optimizer", "adamw", "AdamW trains the cnn well at one learning rate across data sets"),
        Choice("lr", 2e-3, "AdamW's peak learning rate for batch-normed conv nets"),
        Choice("weight_decay", 0.05, "decoupled weight decay against overfitting small data"),
        Choice("schedule", "linear", "warm up, then decay linearly to zero at the run's end (the budget moves it)"),
        Choice(  # a tenth of the run, the user's --epochs 2 included (a 3-epoch warm-up would outlast it)
            "warmup_epochs",
            round(min(3.0, kept.get("epochs", epochs) / 10), 2),
            "a short warm-up steadies the first steps",
        ),
        Choice("batch_size", batch, f"about 1/20 of the {profile.train_images:,} images, 16 to 128"),
        Choice(
            "epochs",
            epochs,
            f"about {TARGET_STEPS:,} steps ({steps_per_epoch} per epoch), at most; "
            "early stopping or the time budget may end the run sooner",
        ),
        Choice("early_stop", max(10, epochs // 4), "stop when the validation accuracy has not improved this long"),
        Choice("normalize", True, "inputs scaled by the training images' own mean and spread"),
        Choice("label_smoothing", 0.1, "softer targets generalize better on small data"),
    ]


def augmentation_choices(trained: int) -> list[Choice]:
    """Shifts scaled to the trained side, and erasing only where a picture survives losing a patch."""
    padding = max(1, round(trained / 10))
    large = trained >= 24  # pixels
    return [
        Choice("augment", True, "random shifts make more of few images"),
        Choice("augment_padding", padding, f"shifts of up to {padding} px, a tenth of the {trained} px side"),
        Choice(
            "augment_erasing",
            0.25 if large else 0.0,
            "random erasing on pictures large enough to survive it"
            if large
            else f"no random erasing: {trained} px pictures are too small to lose a patch",
        ),
    ]


def trained_side(profile: DataProfile) -> int | None:
    """The side large images are downscaled to (None: kept as they are): the largest that keeps an epoch's
    pixels under MAX_SIDE_PIXELS_PER_EPOCH."""
    if profile.side <= DOWNSCALE_SIDES[0] and profile.height == profile.width:
        return None
    for side in DOWNSCALE_SIDES:
        if side < profile.side and profile.train_images * side * side <= MAX_SIDE_PIXELS_PER_EPOCH:
            return side
    return min(DOWNSCALE_SIDES[-1], profile.side) if profile.side > DOWNSCALE_SIDES[-1] else None


def batch_size_for(images: int) -> int:
    """A power of two near a twentieth of the training images, from 16 to 128."""
    return int(min(128, max(16, 2 ** math.floor(math.log2(max(images / 20, 1))))))


@dataclass
class Recipe:
    """The chosen config, each choice with its reason, and the notes said about the data."""

    config: TrainConfig
    choices: list[Choice]
    notes: list[str]

    def describe(self) -> str:
        """The recipe as one block of lines: each choice, its value and its reason."""
        lines = ["Recipe chosen from the data (--preset auto; with it, a flag you give replaces its line):"]
        lines += [f"  {choice.key:<16} {shown(choice.value):<8} {choice.reason}" for choice in self.choices]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "choices": [{"key": c.key, "value": c.value, "reason": c.reason} for c in self.choices],
            "notes": list(self.notes),
        }


def shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def kept_values(config: TrainConfig) -> dict[str, Any]:
    """The values the user set (config.recipe_keep) that the recipe leaves as they are."""
    return {key: getattr(config, key) for key in config.recipe_keep}


def resolve_recipe(
    config: TrainConfig, data: DatasetSplits, load: Callable[[TrainConfig], DatasetSplits]
) -> tuple[Recipe, DatasetSplits]:
    """The auto recipe for `data` (reloaded by `load` at a smaller size when the recipe downscales), with the
    mirror flip measured on a validation part; returns the recipe and the data it trains on."""
    profile = replace(profile_of(data), has_test_source=not single_source(config))
    kept = kept_values(config)
    choices = choose(profile, kept) + [Choice(*choice) for choice in fine_tune.recipe_choices(config, kept)]
    values = {choice.key: choice.value for choice in choices}
    notes = data_notes(profile)
    config = config.replace(**values, recipe="none", recipe_keep=[])
    if config.image_size is not None and config.image_size != profile.side:
        data = load(config)  # the one decode path, at the trained size (predict decodes the same way)
    if "augment_flip" not in kept or "tta" not in kept:
        flip = probe_flip(config, data)
        choices += flip_choices(flip, kept)
        config = config.replace(**{c.key: c.value for c in choices if c.key in ("augment_flip", "tta")})
    return Recipe(config, choices, notes), data


def data_notes(profile: DataProfile) -> list[str]:
    """What the recipe says about the data beyond its choices."""
    notes = [f"the data: {profile.describe()}"]
    if not profile.has_test_source:
        notes.append(
            f"the test set: {profile.test_images:,} images, a stratified {RECIPE_VAL_SPLIT:.0%} held out of the "
            "only source of images (the same ones whatever --seed), never used for choosing"
        )
    if max(profile.class_counts) > UNBALANCED_RATIO * max(min(profile.class_counts), 1):
        notes.append(
            "the classes are unbalanced (largest over smallest above 3): accuracy is dominated by the large "
            "classes; look at the per-class figures of `trainlab evaluate`"
        )
    if min(profile.class_counts) < 5:
        notes.append("some classes have fewer than 5 training images: expect noisy figures")
    return notes


@dataclass(frozen=True)
class FlipProbe:
    """The mirror-flip test's outcome: validation accuracy without and with flips, and how it was measured."""

    without: float | None
    with_flip: float | None
    steps: int
    validation_images: int

    @property
    def noise(self) -> float:
        """One standard error of the validation accuracy without flips: a difference under it is chance."""
        p = self.without or 0.0
        return math.sqrt(p * (1 - p) / max(self.validation_images, 1))

    @property
    def helps(self) -> bool:
        """Flips did not lower the validation accuracy by more than its noise."""
        return self.without is not None and self.with_flip is not None and self.with_flip >= self.without - self.noise


def flip_choices(probe: FlipProbe, kept: dict[str, Any]) -> list[Choice]:
    """augment_flip and tta from the flip test (those the user did not set)."""
    if probe.without is None:
        reason = (
            f"no mirror flips: {probe.validation_images} validation images are too few to show that a "
            "mirror image keeps its class"
        )
    elif probe.helps:
        reason = (
            f"mirror flips kept the validation accuracy within its noise of {probe.noise:.1%} ({probe.without:.1%} "
            f"without, {probe.with_flip:.1%} with, {probe.steps} steps each)"
        )
    else:
        reason = (
            f"no mirror flips: they lowered the validation accuracy by more than its noise of {probe.noise:.1%} "
            f"({probe.without:.1%} without, "
            f"{probe.with_flip:.1%} with, {probe.steps} steps each): a mirror image may be another class"
        )
    choices = [Choice("augment_flip", probe.helps, reason), Choice("tta", "flip" if probe.helps else "none", reason)]
    return [choice for choice in choices if choice.key not in kept]


def probe_flip(config: TrainConfig, data: DatasetSplits) -> FlipProbe:
    """Train two short copies of the run (without, then with mirror flips and flip TTA) on the training part and
    compare them on the validation part. Both arms train the same steps from the same seed; the first arm's
    time bounds them (PROBE_SHARE of the budget)."""
    # counted as the split in build_training holds them out, without copying the images
    validation = sum(held_out_count(count, config.val_split) for count in profile_of(data).class_counts)
    if validation < PROBE_MIN_VAL_IMAGES:
        return FlipProbe(None, None, 0, validation)
    seconds = PROBE_SHARE * (config.time_budget or DEFAULT_BUDGET)
    without, steps = probe_arm(config.replace(augment_flip=False, tta="none"), data, seconds, None)
    with_flip, _ = probe_arm(config.replace(augment_flip=True, tta="flip"), data, seconds, steps)
    return FlipProbe(without, with_flip, steps, validation)


def probe_arm(config: TrainConfig, data: DatasetSplits, seconds: float, steps: int | None) -> tuple[float, int]:
    """Validation accuracy after a short run of `config` (`steps` steps, else as many as `seconds` allow, at most
    PROBE_EPOCHS epochs), and the steps it took."""
    setup = build_training(config.replace(epochs=PROBE_EPOCHS, max_steps=None, early_stop=0, time_budget=None), data)
    limit = steps if steps is not None else PROBE_EPOCHS * setup.steps_per_epoch
    deadline = time.perf_counter() + seconds
    taken = 0

    def batches():
        nonlocal taken
        for epoch in range(PROBE_EPOCHS):  # the setup's own epochs: no empty epochs after them to spin through
            for batch in setup.batches(epoch):
                if taken >= limit or (steps is None and taken >= 10 and time.perf_counter() > deadline):
                    return
                taken += 1
                yield batch

    try:
        setup.train_steps(batches(), after_step=lambda *_: setup.scheduler.step() if setup.scheduler else None)
    except TrainingDiverged:  # an arm whose loss exploded is as bad as an arm can be
        torch.manual_seed(config.seed)
        return 0.0, taken
    result = evaluate(
        setup.eval_model,
        setup.val_data,
        setup.loss_fn,
        setup.preprocess,
        config.eval_batch_size,
        autocast=setup.autocast,
    )
    torch.manual_seed(config.seed)  # the run itself starts from its seed as if no test had run
    return float(result["accuracy"]), taken
