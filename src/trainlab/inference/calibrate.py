"""`trainlab calibrate`: the unlike-the-training-data record computed for a checkpoint that lacks it (a run from
before trainlab recorded it) or at another rate, and written into the checkpoint atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from trainlab.checkpoint import load_checkpoint, resolve_checkpoint_path, save_checkpoint, unwrap_model
from trainlab.config import FILE_DATASETS
from trainlab.data import load_splits
from trainlab.engine.unlike import DEFAULT_RATE, calibrated
from trainlab.errors import CheckpointError, ConfigError
from trainlab.inference.evaluation import checkpoint_data_config
from trainlab.inference.predictor import Predictor
from trainlab.layout import BEST_CHECKPOINT, LAST_CHECKPOINT

MAX_RATE = 0.5  # flagging more than half of the held-out images would say nothing


def check_rate(rate: float) -> None:
    """--unlike-rate is a share of held-out images, above 0 and at most MAX_RATE."""
    if not (isinstance(rate, int | float) and 0 < rate <= MAX_RATE):
        raise ConfigError(f"--unlike-rate must be above 0 and at most {MAX_RATE} (e.g. 0.04), got {rate}")


def checkpoint_files(path: str | os.PathLike) -> list[Path]:
    """A run directory's best.pt and last.pt (those it has), or the one checkpoint file given."""
    if Path(path).is_dir():
        found = [Path(path) / name for name in (BEST_CHECKPOINT, LAST_CHECKPOINT) if (Path(path) / name).is_file()]
        return found or [resolve_checkpoint_path(path)]  # none: resolve names the problem
    return [resolve_checkpoint_path(path)]


def calibrate_checkpoint(
    path: str | os.PathLike,
    rate: float = DEFAULT_RATE,
    given: dict[str, Any] | None = None,
    download: bool = True,
    trust_model_code: bool = False,
) -> list[tuple[Path, dict[str, Any]]]:
    """Compute and write the unlike record of each checkpoint of `path`; returns (file, record) pairs. The data
    is the checkpoint's own (or what `given` data options name), split as its training split it."""
    check_rate(rate)
    written = []
    for file in checkpoint_files(path):
        loaded = load_checkpoint(file, unlike_record=False)  # the record it replaces may be malformed
        loaded.payload.pop("unlike", None)
        if loaded.kind != "trainlab":
            raise CheckpointError(
                f"{file} is {loaded.kind_name}; only a trainlab checkpoint (a run's checkpoints/best.pt or "
                "last.pt) records how unlike its training images a picture is"
            )
        predictor = Predictor.from_checkpoint(loaded, trust_model_code=trust_model_code)
        saved = loaded.config or {}
        config = checkpoint_data_config(saved, given).replace(seed=saved.get("seed", 0), tta=saved.get("tta", "none"))
        from_files = config.dataset in FILE_DATASETS
        prep = predictor.preprocessing
        splits, _ = load_splits(
            config,
            ("train", "test"),
            download=download,
            classes=predictor.classes if from_files else None,
            image_shape=(prep.channels, prep.height, prep.width) if from_files else None,
        )
        model = unwrap_model(predictor.model)
        record = calibrated(model, prep, config, splits["train"], splits["test"], rate)
        save_checkpoint(file, {**loaded.payload, "unlike": record})
        written.append((file, record))
    return written
