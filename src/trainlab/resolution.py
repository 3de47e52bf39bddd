"""One training config from its sources: defaults < preset < config file < flags, validated once.

`resolve` is what `trainlab train`, `lr-find`, `tune` and Python callers share: a preset's budget giving way to
the user's length, the auto recipe switched on where it applies, a file's model checked (naming the file) before
anything is imported, paths made absolute, and an error blamed on the config file when its values are what fail.
No torch: a bad value is refused before torch is imported.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from trainlab.config import MAX_RATE, WIDTH_MODELS, TrainConfig, read_config_file
from trainlab.errors import ConfigError, TrainlabError
from trainlab.model_names import check_built_in_model, check_model_from_file, is_weights_name

AUTO_LR_PLACEHOLDER = 1e-3  # lr "auto": validated in the config, then replaced by the range test's suggestion
MAX_LR_STEPS = 100_000  # lr range test steps; its default is 200, fastai's 100
PATH_KEYS = tuple(item.name for item in fields(TrainConfig) if item.metadata.get("kind") == "path")

PRESETS: dict[str, dict[str, Any]] = {
    "tutorial": {},  # the tutorial's settings are the defaults
    "auto": {"recipe": "auto"},  # chosen from the data once it is loaded (training/recipe.py)
    "speedrun": {  # the best Fashion-MNIST model in 300 s on this machine (BENCHMARKS.md: the recipe, its ablation)
        "model": "cnn",
        "optimizer": "sgd",
        "lr": 0.2,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "linear",  # warm up, then decay to zero exactly at the budget's end
        "warmup_epochs": 1.0,
        "batch_size": 256,
        "epochs": 12,  # the length when --epochs or --max-steps replaces the budget
        "shuffle": True,
        "augment": True,
        "label_smoothing": 0.1,
        "tta": "flip",
        "precision": "auto",  # bf16 where it is fast; on an AVX2-only CPU one bf16 epoch took over 420 s
        "channels_last": True,
        "eval_batch_size": 2000,
        "time_budget": 300.0,  # start-up, data, training, evaluation and reports: epochs fitted to this machine
        "auto_width": True,  # a narrower cnn where the full one would get fewer than 10 epochs
    },
}

# what makes a run's recipe the user's own: with any of these set, other data keeps the flags as given
MANUAL_RECIPE_KEYS = tuple(
    """model loss label_smoothing optimizer lr momentum nesterov weight_decay grad_clip schedule warmup_epochs
    step_epochs step_gamma batch_size global_batch_size epochs max_steps auto_width shuffle val_split normalize
    augment augment_flip augment_padding augment_erasing dropout tta freeze weights early_stop precision
    extra""".split()
)
PRESET_DATASETS = {"speedrun": "fashion-mnist"}  # presets written for one data set
DATA_FITTED_KEYS = ("augment_flip", "tta", "augment_padding", "augment_erasing", "image_size")  # not carried over
TUTORIAL_DATASET = "fashion-mnist"  # the tutorial's own data: its recipe stays the default, bit for bit


def resolve(
    preset: str | None = None,
    config_file: str | os.PathLike | None = None,
    flags: dict[str, Any] | None = None,
    *,
    trust_model_code: bool = False,
    named_model: str | None = None,
    ignore: tuple[str, ...] = (),
) -> TrainConfig:
    """Defaults < preset < config file < flags (config keys), validated once; a package.module:Class model that
    the file names is built only when trusted or named (named_model: default, the flags' model); `ignore`:
    config-file tables another command reads (tune's [search]). lr "auto" stands for AUTO_LR_PLACEHOLDER."""
    flags = dict(flags or {})
    preset_config: dict[str, Any] = preset_values(preset) if preset else {}
    values, chosen = dict(preset_config), {}  # chosen: what the config file and the flags set
    from_file = checked_file(config_file, flags, trust_model_code, named_model, ignore) if config_file else {}
    chosen.update(from_file)
    chosen.update(flags)
    values.update(chosen)
    drop_preset_budget(values, preset_config, chosen)
    values = with_recipe(values, chosen, preset)
    if values.get("lr") == "auto":
        values["lr"] = AUTO_LR_PLACEHOLDER
    for key in PATH_KEYS:  # absolute, so that evaluate/predict/resume find them from any folder
        if isinstance(values.get(key), str) and values[key] and not (key == "weights" and is_weights_name(values[key])):
            values[key] = str(Path(values[key]).expanduser().resolve())
    try:
        return TrainConfig.from_dict(values, source=str(config_file) if config_file else "flags")
    except TrainlabError as exc:
        raise blame_config_file(exc, values, config_file, from_file.keys() - flags.keys()) from None


def checked_file(
    config_file: str | os.PathLike,
    flags: dict[str, Any],
    trust_model_code: bool,
    named_model: str | None,
    ignore: tuple[str, ...],
) -> dict[str, Any]:
    """The config file's keys; a [search] table and a model the file may not name are refused naming it."""
    from_file = read_config_file(config_file)
    for key in ignore:
        from_file.pop(key, None)
    if "search" in from_file:
        raise TrainlabError(
            f"{config_file}: its [search] table is read by `trainlab tune`; train one config without it "
            "(a study's best.toml has none)"
        )
    if "model" in from_file or "extra" in from_file:  # the file's model, unless the flags replace it
        name, extra = flags.get("model") or from_file.get("model", "mlp"), from_file.get("extra", {})
        named = named_model if named_model is not None else flags.get("model")
        check_model_from_file(name, extra, f"config file {config_file}", named_by_user=named, trusted=trust_model_code)
        check_built_in_model(name, extra, str(config_file), name_from_file=flags.get("model") is None)
    return from_file


def drop_preset_budget(values: dict[str, Any], preset: dict[str, Any], chosen: dict[str, Any]) -> None:
    """A preset's time budget gives way to a length the user chose (--epochs or --max-steps, by flag or file),
    its warm-up to fewer epochs, and its auto width to a model that has no width; what the user set stays, and
    is checked."""
    if "time_budget" in preset and "time_budget" not in chosen and {"epochs", "max_steps"} & chosen.keys():
        values.pop("time_budget")
    epochs = chosen.get("epochs")
    if "warmup_epochs" in preset and "warmup_epochs" not in chosen and isinstance(epochs, int) and epochs > 0:
        values["warmup_epochs"] = min(preset["warmup_epochs"], epochs / 2)  # --epochs 1: half of it
    if "auto_width" in preset and "auto_width" not in chosen:
        if values.get("time_budget") is None or values.get("model") not in WIDTH_MODELS:
            values.pop("auto_width")


def blame_config_file(
    error: TrainlabError, values: dict[str, Any], config_file: str | os.PathLike | None, from_file: set[str]
) -> TrainlabError:
    """Name the config file in the error when its values (the keys `from_file` set and no flag replaced), not the
    flags, are what fails."""
    if not config_file or str(error).startswith(str(config_file)):
        return error
    try:
        TrainConfig.from_dict({key: value for key, value in values.items() if key not in from_file})
    except TrainlabError:
        return error  # the flags fail on their own
    return type(error)(f"{config_file}: {error}")


def with_recipe(values: dict[str, Any], chosen: dict[str, Any], preset: str | None) -> dict[str, Any]:
    """The values with the auto recipe switched on where it applies: `--preset auto`, or data other than the
    tutorial's with no recipe key chosen (by the config file or the flags) and no preset; the keys chosen are
    kept as given. Class folders given a recipe of the user's are shuffled unless shuffle is set (--no-shuffle).
    --image-dir (or --annotations) without --dataset means the user's folder (or CSV)."""
    own = [key for key in ("annotations", "image_dir") if isinstance(chosen.get(key), str) and chosen[key].strip()]
    if "dataset" not in chosen and own:  # the user's own images; a wrong-typed path is refused by its own check
        values = {**values, "dataset": "csv" if "annotations" in own else "folder"}
    dataset = values.get("dataset", TUTORIAL_DATASET)
    written_for = PRESET_DATASETS.get(preset or "")
    if written_for is not None and dataset != written_for:  # what does not carry over is chosen from the data
        fitted = set(DATA_FITTED_KEYS) - set(chosen)
        keep = (set(PRESETS[preset]) | set(chosen)) - fitted - {"recipe", "recipe_keep"}
        return {**values, "recipe": "auto", "recipe_keep": sorted(keep)}
    implicit = preset is None and dataset != TUTORIAL_DATASET and not set(chosen) & set(MANUAL_RECIPE_KEYS)
    if values.get("recipe") != "auto" and not implicit:
        if dataset == "folder" and "shuffle" not in chosen:  # read class by class, every batch would hold one
            return {**values, "shuffle": True}
        return values
    return {**values, "recipe": "auto", "recipe_keep": sorted(set(chosen) - {"recipe", "recipe_keep"})}


def preset_values(name: str) -> dict[str, Any]:
    """The config values of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def check_lr_range(start_lr: float, end_lr: float, steps: int) -> None:
    """The lr range test's own values: a rising range of finite rates and a number of steps it can read."""
    for name, value in (("--start-lr", start_lr), ("--end-lr", end_lr)):
        if not math.isfinite(value) or value > MAX_RATE:  # the optimizers overflow float32 far below inf
            raise TrainlabError(f"{name} must be a finite number up to {MAX_RATE:g}, got {value:g}")
    if not 0 < start_lr < end_lr:
        raise TrainlabError(f"--start-lr must be > 0 and below --end-lr, got {start_lr:g} and {end_lr:g}")
    if steps < 10:
        raise TrainlabError(f"--steps must be >= 10, got {steps}")
    if steps > MAX_LR_STEPS:
        raise TrainlabError(f"--steps must be <= {MAX_LR_STEPS:,}, got {steps:,} (the default, 200, is usually enough)")
