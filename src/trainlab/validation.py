"""Checks of one configuration value, each raising ConfigError with a message that names the key and the bound."""

from __future__ import annotations

import math
from typing import Any

from trainlab.errors import ConfigError

MAX_INTEGER = 2**63 - 1  # TOML integers are 64-bit: a config.toml must hold every value


def check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def check_number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    inclusive: bool = True,
    maximum_inclusive: bool = True,
) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if minimum is not None and (value < minimum or (not inclusive and value == minimum)):
        bound = f"> {minimum:g}" if not inclusive else f">= {minimum:g}"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")
    if maximum is not None and (value > maximum or (not maximum_inclusive and value == maximum)):
        bound = f"< {maximum:g}" if not maximum_inclusive else f"<= {maximum:g}"
        raise ConfigError(f"{name} must be {bound}, got {value!r}")


def check_integer(name: str, value: Any, minimum: int, maximum: int | None = MAX_INTEGER) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum:,}, got {value:,}")
