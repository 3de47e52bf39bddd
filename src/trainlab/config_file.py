"""Reading a TOML config file (`--config`, a run's config.toml) into config keys; errors name the file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from trainlab.errors import ConfigError
from trainlab.fileio import read_text_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TRACKING_TABLE_KEYS = {"backend": "tracking", "uri": "tracking_uri", "experiment": "tracking_experiment"}


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The key/value table of a TOML config file (`batch-size` and `batch_size` alike); errors name the file."""
    path = Path(path)
    # utf-8-sig: editors on Windows start a UTF-8 file with a byte-order mark, which TOML itself does not allow
    text = read_text_file(path, "config file", ConfigError, encoding="utf-8-sig")
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name in spelled:  # one would silently win over the other
            raise ConfigError(
                f"config file {path} sets {name} twice, as {spelled[name]} and as {key}; keep one of them"
            )
        spelled[name] = key
        values[name] = value
    if isinstance(values.get("tracking"), dict):
        values.update(tracking_table(values.pop("tracking"), path))
    return values


def tracking_table(table: dict[str, Any], path: Path) -> dict[str, Any]:
    """A config file's [tracking] table (backend, uri, experiment) as the tracking_* config keys."""
    unknown = sorted(set(table) - set(TRACKING_TABLE_KEYS))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)} in [tracking]; "
            f"valid keys: {', '.join(TRACKING_TABLE_KEYS)}"
        )
    values = {TRACKING_TABLE_KEYS[key]: value for key, value in table.items()}
    values.setdefault("tracking", "mlflow")  # a [tracking] table with only a uri or experiment means MLflow
    return values
