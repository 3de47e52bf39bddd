"""One config object for a training run: validated once, saved with every run and checkpoint."""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from trainlab.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

LOSSES = ("cross-entropy", "nll", "mse", "l1", "bce", "bce-with-logits")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes; defaults are the tutorial's."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None  # None: $TRAINLAB_DATA_DIR, else ./data
    model: str = "mlp"
    loss: str = "cross-entropy"
    label_smoothing: float = 0.0
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 turns clipping off
    batch_size: int = 64
    eval_batch_size: int = 1000  # evaluation only; does not change the figures
    epochs: int = 10
    seed: int = 0
    shuffle: bool = False  # the tutorial's DataLoader does not shuffle
    device: str = "auto"
    precision: str = "fp32"
    log_every: int = 100  # batches between the tutorial's "loss: ..." lines
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: at epoch ends only
    extra: dict[str, Any] = field(default_factory=dict)  # user model keyword arguments

    def __post_init__(self) -> None:
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_number("lr", self.lr, minimum=0.0, inclusive=False)
        _check_number("momentum", self.momentum, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        _check_number("weight_decay", self.weight_decay, minimum=0.0)
        _check_number("grad_clip", self.grad_clip, minimum=0.0)
        _check_number("label_smoothing", self.label_smoothing, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        _check_integer("batch_size", self.batch_size, minimum=1)
        _check_integer("eval_batch_size", self.eval_batch_size, minimum=1)
        _check_integer("epochs", self.epochs, minimum=1)
        _check_integer("seed", self.seed, minimum=0)
        _check_integer("log_every", self.log_every, minimum=1)
        _check_integer("checkpoint_every", self.checkpoint_every, minimum=0)
        if not isinstance(self.shuffle, bool):
            raise ConfigError(f"shuffle must be true or false, got {self.shuffle!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("model must be a name such as 'mlp'; see `trainlab train --help`")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError("dataset must be a name such as 'fashion-mnist'")
        if self.label_smoothing and self.loss != "cross-entropy":
            raise ConfigError("label_smoothing works with --loss cross-entropy only")
        if not isinstance(self.extra, dict):
            raise ConfigError("extra must be a table of model keyword arguments")

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so it can go into TOML, JSON and weights-only checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping, refusing unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}"
            )
        try:
            return cls(**values)
        except TypeError as exc:  # wrong value types that slipped past the checks
            raise ConfigError(f"{source}: {exc}") from None

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some values changed, validated again."""
        return dataclasses.replace(self, **changes)

    def to_toml(self) -> str:
        """The resolved config as TOML (keys with no value are left out)."""
        import tomli_w

        values = {k: v for k, v in self.to_dict().items() if v is not None and v != {}}
        return tomli_w.dumps(values)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The key/value table of a TOML config file; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from None
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return {key.replace("-", "_"): value for key, value in values.items()}


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def _check_number(
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


def _check_integer(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
