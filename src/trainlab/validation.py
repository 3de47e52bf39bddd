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


DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(name: str, value: Any) -> float:
    """Seconds from a number or a text such as '300', '90s', '5m', '1.5h' (a config file's or a flag's)."""
    if isinstance(value, str):
        text = value.strip().lower()
        scale = DURATION_UNITS.get(text[-1:], None) if text else None
        number = text[:-1] if scale is not None else text
        try:
            value = float(number) * (scale or 1.0)
        except ValueError:
            raise ConfigError(
                f"{name} must be seconds or a duration such as 300, 90s, 5m or 1.5h, got {value!r}"
            ) from None
    check_number(name, value, minimum=0.0, inclusive=False)
    return float(value)


def check_limit(name: str, value: Any) -> None:
    """A batch limit: None (all), a whole number of batches >= 1, or a fraction in (0, 1]."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number of batches (e.g. 5) or a fraction (e.g. 0.1), got {value!r}")
    if isinstance(value, int):
        check_integer(name, value, minimum=1)
    elif not 0.0 < value <= 1.0:
        raise ConfigError(
            f"{name} must be a whole number of batches (e.g. 5) or a fraction in (0, 1] (e.g. 0.1), got {value!r}"
        )


def limited_batches(limit: int | float | None, batches: int) -> int:
    """How many of `batches` a limit allows: all, at most N, or that fraction of them (at least one)."""
    if limit is None:
        return batches
    if isinstance(limit, int):
        return min(limit, batches)
    return min(batches, max(1, int(batches * limit)))
