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
SCHEDULES = ("none", "step", "cosine", "onecycle")
DATASETS = ("fashion-mnist", "mnist", "kmnist", "cifar10", "csv", "folder")
FILE_DATASETS = ("csv", "folder")  # the user's own image files
MAX_IMAGE_SIZE = 4096  # pixels per side
BUILTIN_IMAGE_SIDES = {"fashion-mnist": 28, "mnist": 28, "kmnist": 28, "cifar10": 32}  # pixels
MAX_INTEGER = 2**63 - 1  # TOML integers are 64-bit: a config.toml must hold every value
MAX_SEED = 2**32 - 1  # numpy's seeding takes no more
MAX_EPOCHS = 1_000_000  # more is a typo: even a 0.1 s epoch would run for days
MAX_RATE = 1e6  # lr and weight decay: far above any useful value, far below float32's overflow at 3.4e38
MAX_THREADS = 1024  # torch's thread pools crash (segfault, abort) when asked for hundreds of thousands
MAX_WORKERS = 256  # decoding processes; each is a forked copy of this one


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes; defaults are the tutorial's."""

    dataset: str = "fashion-mnist"
    data_dir: str | None = None  # None: $TRAINLAB_DATA_DIR, else ./data
    annotations: str | None = None  # csv: the training CSV, rows of `file name, label`
    test_annotations: str | None = None  # csv: the test CSV; without it, val_split also holds out a test part
    image_dir: str | None = None  # csv: where the CSV's file names live (default: the CSV's folder); folder: the root
    image_size: int | None = None  # csv/folder: square input size in pixels; None: the most common size in the data
    channels: int | None = None  # csv/folder: 1 (gray) or 3 (RGB); None: 3 when any image has color, else 1
    skip_bad_images: bool = False  # csv/folder: leave unreadable images out (reported) instead of stopping
    workers: int | None = None  # csv/folder: decoding processes; None: one per CPU, at most 4
    memory_budget_mb: float | None = None  # csv/folder: stream from the files above this; None: half the RAM
    model: str = "mlp"
    loss: str = "cross-entropy"
    label_smoothing: float = 0.0
    optimizer: str = "sgd"
    lr: float = 1e-3
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 turns clipping off
    schedule: str = "none"
    warmup_epochs: float = 0.0
    step_epochs: int = 10  # the step schedule multiplies the lr by step_gamma every step_epochs epochs
    step_gamma: float = 0.1
    batch_size: int = 64
    eval_batch_size: int = 1000  # evaluation only; does not change the figures
    epochs: int = 10
    seed: int = 0
    shuffle: bool = False  # the tutorial's DataLoader does not shuffle
    val_split: float = 0.0  # fraction of the training set held out (stratified) for validation
    normalize: bool = False  # subtract the training set's mean and divide by its std, after scaling to [0, 1]
    augment: bool = False  # random crop with padding, horizontal flip, random erasing
    augment_padding: int = 2  # pixels
    augment_erasing: float = 0.25  # probability per image
    dropout: float = 0.0  # for models that take it (cnn, resnet, tv:...)
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes that are not trained
    weights: str | None = None  # local pretrained weights for tv:NAME models (state_dict file)
    early_stop: int = 0  # epochs without a better validation accuracy before stopping; 0: never
    device: str = "auto"
    threads: int = 0  # CPU threads for torch; 0: torch's default (one per physical core)
    precision: str = "fp32"
    compile: bool = False  # torch.compile the model
    channels_last: bool = False  # memory format for conv nets
    log_every: int = 100  # batches between the tutorial's "loss: ..." lines
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints; 0: at epoch ends only
    extra: dict[str, Any] = field(default_factory=dict)  # user model keyword arguments

    def __post_init__(self) -> None:
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_number("lr", self.lr, minimum=0.0, inclusive=False, maximum=MAX_RATE)
        _check_number("momentum", self.momentum, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        _check_number("weight_decay", self.weight_decay, minimum=0.0, maximum=MAX_RATE)
        _check_number("grad_clip", self.grad_clip, minimum=0.0)
        _check_number("label_smoothing", self.label_smoothing, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_number("warmup_epochs", self.warmup_epochs, minimum=0.0)
        _check_integer("step_epochs", self.step_epochs, minimum=1)
        _check_number("step_gamma", self.step_gamma, minimum=0.0, maximum=1.0, inclusive=False)
        _check_number("val_split", self.val_split, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        _check_integer("augment_padding", self.augment_padding, minimum=0)
        _check_number("augment_erasing", self.augment_erasing, minimum=0.0, maximum=1.0)
        _check_number("dropout", self.dropout, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        _check_integer("early_stop", self.early_stop, minimum=0)
        _check_integer("batch_size", self.batch_size, minimum=1)
        _check_integer("eval_batch_size", self.eval_batch_size, minimum=1)
        _check_integer("epochs", self.epochs, minimum=1, maximum=MAX_EPOCHS)
        _check_integer("seed", self.seed, minimum=0, maximum=MAX_SEED)
        _check_integer("log_every", self.log_every, minimum=1)
        _check_integer("threads", self.threads, minimum=0, maximum=MAX_THREADS)
        _check_integer("checkpoint_every", self.checkpoint_every, minimum=0)
        for name in ("shuffle", "nesterov", "normalize", "augment", "compile", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.early_stop and not self.val_split:
            raise ConfigError("early_stop watches the validation accuracy; set val_split too (e.g. --val-split 0.1)")
        if self.warmup_epochs >= self.epochs:
            raise ConfigError(f"warmup_epochs ({self.warmup_epochs:g}) must be less than epochs ({self.epochs})")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0):
            raise ConfigError("nesterov needs --optimizer sgd and a --momentum above 0")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("model must be a name such as 'mlp'; see `trainlab train --help`")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ConfigError("dataset must be a name such as 'fashion-mnist'")
        self._check_data_source()
        self._check_augment_padding()
        if self.dropout and self.model == "mlp":
            raise ConfigError("dropout: the mlp (the tutorial's model) has no dropout layer; use --model cnn, resnet "
                              "or tv:NAME, or leave dropout out")
        if self.label_smoothing and self.loss != "cross-entropy":
            raise ConfigError("label_smoothing works with --loss cross-entropy only")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise ConfigError(f"weights must be the path of a state_dict file, got {self.weights!r}")
        if self.weights is not None and not self.model.startswith("tv:"):
            raise ConfigError("weights (local pretrained weights) apply to tv:NAME models; use --init-from for others")
        if not isinstance(self.freeze, (list, tuple)) or not all(isinstance(p, str) and p for p in self.freeze):
            raise ConfigError(f"freeze must be a list of parameter-name prefixes, got {self.freeze!r}")
        if not isinstance(self.extra, dict):
            raise ConfigError("extra must be a table of model keyword arguments")

    def _check_data_source(self) -> None:
        _check_choice("dataset", self.dataset, DATASETS)
        if self.data_dir is not None and (not isinstance(self.data_dir, str) or not self.data_dir):
            raise ConfigError(f"data_dir must be a folder path, got {self.data_dir!r}; leave it out for "
                              "$TRAINLAB_DATA_DIR or ./data")
        for name in ("annotations", "test_annotations", "image_dir"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"{name} must be a file or folder path, got {value!r}")
        if self.image_size is not None:
            _check_integer("image_size", self.image_size, minimum=1, maximum=None)
            if self.image_size > MAX_IMAGE_SIZE:
                raise ConfigError(f"image_size must be <= {MAX_IMAGE_SIZE} pixels, got {self.image_size}")
        if self.channels is not None and (isinstance(self.channels, bool) or self.channels not in (1, 3)):
            raise ConfigError(f"channels must be 1 (gray) or 3 (RGB), got {self.channels!r}")
        if not isinstance(self.skip_bad_images, bool):
            raise ConfigError(f"skip_bad_images must be true or false, got {self.skip_bad_images!r}")
        if self.workers is not None:
            _check_integer("workers", self.workers, minimum=0, maximum=MAX_WORKERS)
        if self.memory_budget_mb is not None:
            _check_number("memory_budget_mb", self.memory_budget_mb, minimum=0.0)
        if self.dataset == "csv" and not (self.annotations or self.test_annotations):
            raise ConfigError("--dataset csv needs --annotations FILE.csv (rows of `file name, label`, e.g. "
                              "`tshirt1.jpg, 0`) and --image-dir DIR")
        if self.dataset == "folder" and not self.image_dir:
            raise ConfigError("--dataset folder needs --image-dir ROOT (ROOT/<class>/*.png, or ROOT/train/<class>/... "
                              "and ROOT/test/<class>/...)")
        if self.dataset != "csv" and (self.annotations or self.test_annotations):
            raise ConfigError(f"--annotations/--test-annotations are for --dataset csv, not {self.dataset}")
        if self.dataset not in FILE_DATASETS:
            given = [name for name in ("image_dir", "image_size", "channels") if getattr(self, name) is not None]
            if given:
                flags = "/".join("--" + name.replace("_", "-") for name in given)
                raise ConfigError(f"{flags}: only for --dataset csv or folder; {self.dataset} has a fixed image size")

    def _check_augment_padding(self) -> None:
        """A crop shifted by the image's own side or more can be all padding: refused where the side is known."""
        if not self.augment:
            return
        side = BUILTIN_IMAGE_SIDES.get(self.dataset, self.image_size)
        if side is None:  # csv/folder at their most common size: bounded by the largest size there is
            side = MAX_IMAGE_SIZE
        if self.augment_padding >= side:
            raise ConfigError(f"augment_padding must be smaller than the images' {side} pixels, got "
                              f"{self.augment_padding} (2 to 4 is usual)")

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


PRESETS: dict[str, dict[str, Any]] = {
    "tutorial": {},  # the tutorial's settings are the defaults
    "speedrun": {  # measured in BENCHMARKS.md: >= 93% test accuracy on Fashion-MNIST in under 5 minutes on 2 CPU cores
        "model": "cnn",
        "optimizer": "sgd",
        "lr": 0.2,
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "schedule": "onecycle",
        "batch_size": 256,
        "epochs": 12,
        "shuffle": True,
        "augment": True,
        "label_smoothing": 0.1,
        "precision": "bf16",
        "channels_last": True,
        "eval_batch_size": 2000,
    },
}


def preset_values(name: str) -> dict[str, Any]:
    """The config values of a named preset."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return dict(PRESETS[name])


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


def _check_integer(name: str, value: Any, minimum: int, maximum: int | None = MAX_INTEGER) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum:,}, got {value:,}")
