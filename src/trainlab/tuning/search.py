"""Search spaces for `trainlab tune`: `KEY=LOW:HIGH[:log]` ranges and `KEY=A,B,C` choices over config keys.

Every spec is checked against TrainConfig before any trial runs: the key must be one a trial may change, the
range non-empty, a log range positive, whole numbers for whole-number keys, and every value one the config
accepts. A model that a file's search space names is built only if the user named it or trusts the file.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from trainlab.config import TrainConfig, flag_fields
from trainlab.errors import ConfigError, TrainlabError
from trainlab.models import ZOO_PREFIX, check_model_from_file, is_code_reference, list_models

# keys a trial may not change: where the data comes from, how the machine runs, what the run writes, and the
# validation split the trials are compared on; a time budget (and the width it picks) is the same for every trial,
# or the trials would not be compared on equal terms
FIXED_GROUPS = ("run",)
FIXED_KEYS = ("device", "threads", "val_split", "eval_batch_size", "weights", "freeze", "time_budget", "auto_width")
# names that hold a colon (tv:resnet18, package.module:Class): A:B is one choice there, never a range
COLON_NAME_KEYS = ("model",)


def tunable_keys() -> dict[str, str]:
    """The config keys a search may vary, with their value kind (bool, int, float or str)."""
    keys = {}
    for item in flag_fields():
        meta = item.metadata
        if meta.get("source") or meta["group"] in FIXED_GROUPS or item.name in FIXED_KEYS:
            continue
        keys[item.name] = str(item.type).split(" ")[0].split("|")[0].strip()
    return keys


@dataclass(frozen=True)
class Dimension:
    """One searched key: a float or int range (log-uniform or uniform), or a list of choices."""

    key: str
    kind: str  # float, int or categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """This dimension's value for an Optuna trial."""
        if self.kind == "float":
            return trial.suggest_float(self.key, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.key, list(self.choices))

    def spec(self) -> str:
        """The canonical KEY=SPEC text (what study.toml records and the table shows)."""
        if self.kind == "categorical":
            return f"{self.key}={','.join(_text(choice) for choice in self.choices)}"
        return f"{self.key}={_text(self.low)}:{_text(self.high)}{':log' if self.log else ''}"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_search(specs: list[str] | dict[str, Any], base: TrainConfig, source: str = "--search") -> list[Dimension]:
    """The dimensions of `--search KEY=SPEC ...` (or a config file's [search] table), checked against `base`."""
    if isinstance(specs, dict):
        items = [(key.replace("-", "_"), value) for key, value in specs.items()]
    else:
        items = []
        for text in specs:
            key, sep, value = text.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise ConfigError(
                    f"{source} {text!r}: expected KEY=LOW:HIGH[:log] or KEY=A,B,C (e.g. lr=1e-4:1e-1:log)"
                )
            items.append((key.strip().replace("-", "_"), value.strip()))
    if not items:
        raise ConfigError(f"{source}: nothing to search; give at least one KEY=SPEC (e.g. lr=1e-4:1e-1:log)")
    keys = tunable_keys()
    dimensions, seen = [], set()
    for key, value in items:
        where = f"{source} {key}={value}" if isinstance(value, str) else f"{source} {key}"
        if key not in keys:
            raise ConfigError(
                f"{where}: {key!r} is not a key a trial can vary; tunable keys: {', '.join(sorted(keys))}"
            )
        if key in seen:
            raise ConfigError(f"{where}: {key} is searched twice; give each key once")
        seen.add(key)
        dimension = parse_dimension(key, keys[key], value, where)
        check_values(dimension, base, where)
        if key == "model":
            check_model_choices(dimension.choices, where)
        dimensions.append(dimension)
    return dimensions


def parse_dimension(key: str, kind: str, value: Any, where: str) -> Dimension:
    """One KEY=SPEC: a list (TOML array or A,B,C) is choices; LOW:HIGH[:log] (or a TOML table) a range."""
    if isinstance(value, list):
        return Dimension(key, "categorical", choices=tuple(_choice(kind, item, where) for item in value))
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"low", "high", "log"})
        if unknown or not {"low", "high"} <= set(value):
            raise ConfigError(f"{where}: a range table needs low and high (and optionally log), got {sorted(value)}")
        return _range(key, kind, value["low"], value["high"], bool(value.get("log", False)), where)
    if not isinstance(value, str):
        raise ConfigError(f'{where}: expected "LOW:HIGH[:log]", a list of choices or a table, got {value!r}')
    if ":" in value and key not in COLON_NAME_KEYS:
        parts = [part.strip() for part in value.split(":")]
        log = parts[-1].lower() == "log"
        if log:
            parts = parts[:-1]
        if len(parts) != 2:
            raise ConfigError(f"{where}: expected LOW:HIGH or LOW:HIGH:log (e.g. 1e-4:1e-1:log)")
        if kind not in ("int", "float"):
            raise ConfigError(f"{where}: {key} takes {_kind_text(kind)}, not a range; list the choices as A,B")
        low, high = (_number(kind, part, where) for part in parts)
        return _range(key, kind, low, high, log, where)
    choices = [part.strip() for part in value.split(",")]
    if any(not choice for choice in choices):
        raise ConfigError(f"{where}: an empty choice; write A,B,C")
    return Dimension(key, "categorical", choices=tuple(_choice(kind, choice, where) for choice in choices))


def _range(key: str, kind: str, low: Any, high: Any, log: bool, where: str) -> Dimension:
    if kind not in ("int", "float"):
        raise ConfigError(f"{where}: {key} takes {_kind_text(kind)}, not a range; list the choices")
    for bound in (low, high):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound):
            raise ConfigError(f"{where}: the range's bounds must be finite numbers, got {bound!r}")
        if kind == "int" and not float(bound).is_integer():
            raise ConfigError(f"{where}: {key} takes whole numbers; give whole-number bounds (e.g. 16:256)")
    if not low < high:
        raise ConfigError(f"{where}: the range is empty; LOW must be below HIGH (got {low:g} and {high:g})")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs LOW > 0 (got {low:g}); use a linear range or a LOW such as 1e-6")
    if kind == "int":
        return Dimension(key, "int", int(low), int(high), log)
    return Dimension(key, "float", float(low), float(high), log)


def _number(kind: str, text: str, where: str) -> float | int:
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a number") from None
    if kind == "int" and number.is_integer() and "." not in text and "e" not in text.lower():
        return int(number)
    return number


def _choice(kind: str, value: Any, where: str) -> Any:
    """A choice converted to the key's type: 'true' for a bool, 64 for an int, 0.1 for a float."""
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "on", "off"):
            return value.lower() in ("true", "on")
        raise ConfigError(f"{where}: choices for this key are true and false, got {value!r}")
    if kind in ("int", "float"):
        if isinstance(value, str):
            value = _number(kind, value, where)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected {_kind_text(kind)}, got {value!r}")
        if kind == "int":
            if not float(value).is_integer():
                raise ConfigError(f"{where}: this key takes whole numbers, got {value!r}")
            return int(value)
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a name, got {value!r}")
    return value


def _kind_text(kind: str) -> str:
    return {"bool": "true or false", "str": "a name", "int": "whole numbers", "float": "numbers"}.get(kind, kind)


def check_values(dimension: Dimension, base: TrainConfig, where: str) -> None:
    """Every choice, and both ends of a range, make a valid config on their own."""
    values = dimension.choices if dimension.kind == "categorical" else (dimension.low, dimension.high)
    if dimension.kind == "categorical" and len(set(values)) != len(values):
        raise ConfigError(f"{where}: a choice is listed twice")
    for value in values:
        try:
            dataclasses.replace(base, **{dimension.key: value})
        except TrainlabError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def check_model_choices(choices: tuple[Any, ...], where: str) -> None:
    """Every built-in model a search names exists (a config accepts any name; a trial would fail on it)."""
    for name in choices:
        if not (is_code_reference(name) or name.startswith(ZOO_PREFIX) or name in list_models()):
            raise ConfigError(
                f"{where}: unknown model {name!r}; choose from: {', '.join(list_models())}, tv:NAME (torchvision), "
                "or your own as package.module:Class"
            )


@dataclass(frozen=True)
class ModelTrust:
    """The package.module:Class models the user named on the command line, or every one (--trust-model-code)."""

    named: frozenset[str] = frozenset()
    everything: bool = False

    @classmethod
    def of_command_line(cls, model: str | None, search: list[str] | None, trust_model_code: bool) -> ModelTrust:
        """--model NAME and the model choices of `--search model=A,B` are the user's own words; files are not."""
        named = {model} if model else set()
        for text in search or ():
            key, _, value = text.partition("=")
            if key.strip().replace("-", "_") == "model":
                named.update(choice.strip() for choice in value.split(","))
        return cls(frozenset(named), trust_model_code)


def check_named_models(base: TrainConfig, dimensions: list[Dimension], source: str, trust: ModelTrust) -> None:
    """The base model and every model choice that the file `source` names: code only if the user trusts it."""
    names = [base.model] + [choice for item in dimensions if item.key == "model" for choice in item.choices]
    for name in names:
        named_by_user = name if name in trust.named else None
        check_model_from_file(name, base.extra, source, named_by_user=named_by_user, trusted=trust.everything)
