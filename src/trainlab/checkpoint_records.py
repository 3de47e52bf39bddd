"""Checks of the records a checkpoint or export carries beside its weights, so that a damaged or crafted file
is refused in one line when it is loaded rather than failing later wherever the record is used."""

from __future__ import annotations

import math
import os
from typing import Any

import torch

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


UNLIKE_SCORES = ("mahalanobis",)  # the scores engine.unlike computes
UNLIKE_CHECKS = ("features", "pixels", "levels", "neighbours")  # its checks: Gaussians per class, a feature bank


def check_unlike(record: Any, path: str | os.PathLike) -> None:
    """Refuse an unlike-the-training-data record that cannot flag a picture, in one line naming the file."""
    problem = _unlike_problem(record)
    if problem is not None:
        raise CheckpointError(
            f"{path}: its unlike-the-training-data record is malformed ({problem}); recompute it with "
            f"`trainlab calibrate {path}` or use another checkpoint"
        )


def _unlike_problem(record: Any) -> str | None:
    """What is wrong with a recorded engine.unlike.calibrate record, or None when it is sound (or absent)."""
    if record is None:
        return None
    if not isinstance(record, dict):
        return f"{type(record).__name__}, not a table"
    if record.get("score") not in UNLIKE_SCORES:
        return f"score is {record.get('score')!r}, not one of {', '.join(UNLIKE_SCORES)}"
    for key in ("threshold", "rate"):
        if not (_is_finite(record.get(key)) and 0 < record[key] and (key != "rate" or record[key] < 1)):
            return f"{key} is {record.get(key)!r}, not a number above 0" + (" and below 1" if key == "rate" else "")
    checks = record.get("checks")
    if not (isinstance(checks, dict) and set(checks) == set(UNLIKE_CHECKS)):
        return f"checks are {sorted(checks) if isinstance(checks, dict) else checks!r}, not {', '.join(UNLIKE_CHECKS)}"
    for name in UNLIKE_CHECKS:
        problem = _check_problem(checks[name], name)
        if problem is not None:
            return f"its {name} check: {problem}"
    if checks["neighbours"]["bank"].shape[1] != checks["features"]["projection"].shape[0]:
        return "its neighbours' bank and its features' projection are for different features"
    return None


def _check_problem(check: Any, name: str) -> str | None:
    """What is wrong with one check (engine.unlike.fit_gaussians' tensors, or the neighbours' bank; its scale)."""
    if not isinstance(check, dict):
        return f"{type(check).__name__}, not a table"
    with_projection = name == "features"
    expected = {"means": 2, "whitening": 3, **({"centre": 1, "projection": 2} if with_projection else {})}
    if name == "neighbours":
        expected = {"bank": 2}
    for key, dimensions in expected.items():
        value = check.get(key)
        if not (isinstance(value, torch.Tensor) and value.dim() == dimensions and value.is_floating_point()):
            return f"{key} is not a {dimensions}-D float tensor"
        if not bool(value.isfinite().all()):
            return f"{key} holds values that are not finite"
    if not (_is_finite(check.get("scale")) and check["scale"] > 0):
        return f"scale is {check.get('scale')!r}, not a number above 0"
    if name == "neighbours":
        return None
    classes, size = check["means"].shape
    if check["whitening"].shape != (classes, size, size):
        return f"means {tuple(check['means'].shape)} and whitening {tuple(check['whitening'].shape)} do not fit"
    if with_projection and check["projection"].shape != (check["centre"].shape[0], size):
        return f"projection {tuple(check['projection'].shape)} does not fit centre and means"
    return None
