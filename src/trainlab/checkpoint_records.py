"""Checks of the records a checkpoint or export carries beside its weights, so that a damaged or crafted file
is refused in one line when it is loaded rather than failing later wherever the record is used."""

from __future__ import annotations

import math
import os
from typing import Any

from trainlab.config import MAX_IMAGE_SIZE
from trainlab.errors import CheckpointError


def check_preprocessing(record: Any, path: str | os.PathLike) -> None:
    """Refuse a preprocessing record that cannot describe a model input, in one line naming the file."""
    problem = _preprocessing_problem(record)
    if problem is not None:
        raise CheckpointError(
            f"{path}: its preprocessing record is malformed ({problem}); the file is damaged or was not written by "
            "trainlab: use another checkpoint or export"
        )


def _preprocessing_problem(record: Any) -> str | None:
    """What is wrong with a recorded Preprocessing (see data.transforms), or None when it is sound."""
    if record is None:
        return None
    if not isinstance(record, dict):
        return f"{type(record).__name__}, not a table"
    for key in ("channels", "height", "width"):
        value = record.get(key)
        if not _is_integer(value):
            return f"{key} is {value!r}, not a whole number"
    if record["channels"] not in (1, 3):
        return f"channels is {record['channels']}, not 1 or 3"
    for key in ("height", "width"):
        if not 1 <= record[key] <= MAX_IMAGE_SIZE:
            return f"{key} is {record[key]}, not 1 to {MAX_IMAGE_SIZE}"
    for key in ("mean", "std"):
        values = record.get(key)
        if values is not None and not (
            isinstance(values, list | tuple) and len(values) == record["channels"] and all(map(_is_finite, values))
        ):
            return f"{key} is {values!r}, not {record['channels']} finite number(s)"
    if record.get("std") is not None and min(record["std"]) <= 0:
        return f"std is {record['std']!r}: a value is not above 0"
    resize = record.get("resize")  # pretrained weights' shorter side before their centre crop
    if resize is not None and not (_is_integer(resize) and 1 <= resize <= MAX_IMAGE_SIZE):
        return f"resize is {resize!r}, not a whole number from 1 to {MAX_IMAGE_SIZE}"
    look = record.get("look")
    if look is not None and not (
        isinstance(look, dict) and all(_is_finite(look.get(key)) for key in ("background", "plain", "fill"))
    ):
        return f"look is {look!r}, not background, plain and fill numbers"
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
