"""What a resume may not change, and the two commands that do work instead: continue the run as it was
configured, or start a new run from its config (and its weights, when the model is the same)."""

from __future__ import annotations

import json
import shlex
from dataclasses import fields
from pathlib import Path
from typing import Any

from trainlab.config import TrainConfig
from trainlab.layout import CONFIG_FILE, LAST_CHECKPOINT

# a resume trains to the length its config says now (an edited config.toml extends a run), so these may change
RUN_LENGTH_KEYS = ("epochs", "max_steps", "early_stop")
PLANNED_KEYS = ("epochs", "max_steps", "warmup_epochs")  # a --time-budget run's plan moves these itself
# a change here gives weights of other shapes: a new run cannot start from the old run's weights
SHAPING_KEYS = ("model", "extra", "dropout", "auto_width", "image_size", "channels")
RECIPE_GROUPS = ("model", "optimization", "schedule")


def recipe_keys() -> tuple[str, ...]:
    """The config keys that decide what a run computes: model, optimization, schedule, augmentation, split."""
    keys = []
    for item in fields(TrainConfig):
        group, source = item.metadata.get("group"), item.metadata.get("source")
        if group in RECIPE_GROUPS or (group == "data" and not source) or item.name == "extra":
            keys.append(item.name)
    return tuple(key for key in keys if key not in RUN_LENGTH_KEYS)


def recipe_changes(recorded: dict[str, Any], current: dict[str, Any], budget: bool) -> dict[str, tuple[Any, Any]]:
    """key -> (the checkpoint's value, the config's value) for each recipe key that differs (keys the checkpoint
    does not record are new since it was written, and pass)."""
    ignored = PLANNED_KEYS if budget else ()
    return {
        key: (recorded[key], current.get(key))
        for key in recipe_keys()
        if key in recorded and key not in ignored and recorded[key] != current.get(key)
    }


def free_run_dir(run_dir: str | Path) -> Path:
    """RUN-2, RUN-3, ...: the first name beside the run that does not exist, for a new run."""
    number = 2
    while Path(f"{run_dir}-{number}").exists() or Path(f"{run_dir}-{number}").is_symlink():
        number += 1
    return Path(f"{run_dir}-{number}")


def quoted(path: str | Path) -> str:
    return shlex.quote(str(path))


def resume_command(run_dir: str | Path, flags: str = "") -> str:
    """The command that continues the run as it was configured."""
    return " ".join(part for part in ("trainlab train --resume", quoted(run_dir), flags) if part)


def new_run_command(
    run_dir: str | Path,
    flags: str = "",
    shaping: bool = False,
    new_dir: str | Path | None = None,
    init_from: str | Path | None = None,
) -> str:
    """A new run from the run's config.toml with `flags` on top, from `init_from` or else the run's last weights
    unless the flags shape the model anew (shaping), into `new_dir` or the first free RUN-N."""
    parts = ["trainlab train --config", quoted(Path(run_dir) / CONFIG_FILE)]
    if init_from is None and not shaping and (Path(run_dir) / LAST_CHECKPOINT).is_file():
        init_from = Path(run_dir) / LAST_CHECKPOINT
    if init_from is not None:
        parts += ["--init-from", quoted(init_from)]
    parts += [flags, "--run-dir", quoted(new_dir if new_dir is not None else free_run_dir(run_dir))]
    return " ".join(part for part in parts if part)


def edited_config_message(run_dir: str | Path, checkpoint: str | Path, changes: dict[str, tuple[Any, Any]]) -> str:
    """One line: the edited config.toml and its checkpoint disagree (both values named), and what works instead."""
    config = Path(run_dir) / CONFIG_FILE
    said = ", ".join(f"{key} = {json.dumps(new)}" for key, (_, new) in changes.items())  # as TOML writes them
    trained = ", ".join(f"{key} = {json.dumps(old)}" for key, (old, _) in changes.items())
    shaping = any(key in SHAPING_KEYS for key in changes)
    return (
        f"{config} says {said} but {checkpoint} was trained with {trained}, and a resume continues the checkpoint "
        f"exactly; to continue {run_dir}, put back {trained} in {config} and run {resume_command(run_dir)}; for a "
        f"new run with {said}: {new_run_command(run_dir, shaping=shaping)}"
    )
