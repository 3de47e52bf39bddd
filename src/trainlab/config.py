"""One config object for a training run: validated once, saved with every run and checkpoint."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from trainlab.config_checks import check_combinations
from trainlab.config_file import read_config_file  # noqa: F401 - where callers have always imported it from
from trainlab.data_source import MAX_IMAGE_SIZE, MAX_WORKERS, check_augment_padding, check_data_source  # noqa: F401
from trainlab.datasets_registry import DATASETS, FILE_DATASETS  # noqa: F401 - re-exported for data and training
from trainlab.errors import ConfigError
from trainlab.validation import check_choice, check_integer, check_limit, check_number, limited_batches, parse_duration  # noqa: F401

LOSSES = ("cross-entropy", "nll", "mse", "l1", "bce", "bce-with-logits")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "adamw")
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # auto: bf16 where the hardware runs it fast, else fp32
INPUT_STYLES = ("auto", "photo", "raw")  # how a picture is made to look like the training images
SCHEDULES = ("none", "step", "cosine", "onecycle", "linear")  # linear: decay to zero at the end
TTA_CHOICES = ("none", "flip")  # flip: the mean of the logits of each image and of its left-right mirror image
RECIPES = ("none", "auto")  # auto: chosen from the data (training/recipe.py)
TRACKERS = ("none", "mlflow")  # experiment tracking beside the run directory (TensorBoard is always on when installed)
MAX_IMAGE_PIXELS = 50_000_000  # larger images are refused as likely decompression bombs
MAX_SEED = 2**32 - 1  # numpy's seeding takes no more
WIDTH_MODELS = ("cnn", "resnet")  # built-in models that take a width (auto_width)
MAX_BUDGET_SECONDS = 366 * 86400  # a year: more is a typo
MAX_EPOCHS = 1_000_000  # more is a typo: even a 0.1 s epoch would run for days
MAX_RATE = 1e6  # lr and weight decay: far above any useful value, far below float32's overflow at 3.4e38
MAX_THREADS = 1024  # torch's thread pools crash (segfault, abort) when asked for hundreds of thousands


GROUPS = ("data", "model", "optimization", "schedule", "precision and speed", "run")  # of the train flags


def option(
    default: Any,
    group: str | None,
    help: str,
    *,
    kind: str | None = None,
    metavar: str | None = None,
    source: bool = False,
    factory: Any = None,
    default_text: str | None = None,
) -> Any:
    """A config field with what its command-line flag needs: the --help group and text, the kind of value
    (path, name, device, lr) and whether it says where the images come from (source: every command takes it).
    The flag's default in --help is the field's default (or default_text, for what None means), so the two
    cannot drift apart."""
    metadata = {
        "group": group,
        "help": help,
        "kind": kind,
        "metavar": metavar,
        "source": source,
        "default_text": default_text,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a training run computes; defaults are the tutorial's."""

    dataset: str = option(
        "fashion-mnist", "data", f"{', '.join(DATASETS[:-2])}, csv (--annotations) or folder (--image-dir)", source=True
    )
    data_dir: str | None = option(
        None,
        "data",
        "built-in data sets' directory",
        kind="path",
        source=True,
        default_text="$TRAINLAB_DATA_DIR, else ./data",
    )
    annotations: str | None = option(
        None,
        "data",
        "csv: training rows `file name, label` (header optional; labels are class numbers or class names)",
        kind="path",
        metavar="CSV",
        source=True,
    )
    test_annotations: str | None = option(
        None,
        "data",
        "csv: test rows; without it, --val-split also holds out a test part of --annotations",
        kind="path",
        metavar="CSV",
        source=True,
    )
    image_dir: str | None = option(
        None,
        "data",
        "csv: the folder the file names are relative to; folder: ROOT/<class>/* or ROOT/train|test/<class>/*",
        kind="path",
        metavar="DIR",
        source=True,
        default_text="csv: the CSV's folder",
    )
    image_size: int | None = option(
        None,
        "data",
        "csv/folder: resize images to PIXELS x PIXELS",
        metavar="PIXELS",
        source=True,
        default_text="the most common size",
    )
    channels: int | None = option(
        None, "data", "csv/folder: 1 (gray) or 3 (RGB)", source=True, default_text="3 if any image has color"
    )
    skip_bad_images: bool = option(
        False, "data", "csv/folder: leave out unreadable images, listed, instead of stopping", source=True
    )
    workers: int | None = option(
        None,
        "data",
        "csv/folder: decoding processes; more than the CPUs: a warning",
        source=True,
        default_text="one per CPU, at most 4",
    )
    memory_budget_mb: float | None = option(
        None,
        "data",
        "csv/folder: stream images from the files when, decoded, they would take more",
        metavar="MB",
        source=True,
        default_text="half the RAM",
    )
    relabel: str | None = option(
        None,
        "data",
        "a reviewed CSV (trainlab review's, edited): its `label`, else `suggested`, column relabels each file "
        "listed; drop leaves it out",
        kind="path",
        metavar="CSV",
        source=True,
    )
    model: str = option(
        "mlp",
        "model",
        "mlp (the tutorial's), cnn, resnet, tv:NAME (torchvision, e.g. tv:resnet18), or package.module:Class",
        kind="name",
    )
    loss: str = option("cross-entropy", "optimization", ", ".join(LOSSES))
    label_smoothing: float = option(0.0, "optimization", "cross-entropy label smoothing")
    optimizer: str = option("sgd", "optimization", ", ".join(OPTIMIZERS))
    lr: float = option(
        1e-3, "optimization", "learning rate, or auto to run the lr range test first", kind="lr", metavar="LR|auto"
    )
    momentum: float = option(0.0, "optimization", "SGD/RMSprop momentum")
    nesterov: bool = option(False, "optimization", "Nesterov momentum for SGD")
    weight_decay: float = option(0.0, "optimization", "L2 weight decay")
    grad_clip: float = option(0.0, "optimization", "clip the gradient norm to this value; 0: off")
    schedule: str = option("none", "schedule", f"{', '.join(SCHEDULES)}, stepped every batch")
    warmup_epochs: float = option(0.0, "schedule", "linear lr warmup length in epochs")
    step_epochs: int = option(10, "schedule", "step schedule: epochs between lr drops (x step-gamma)")
    step_gamma: float = option(0.1, "schedule", "step schedule: lr multiplier at each drop")
    batch_size: int = option(64, "optimization", "training batch size, per process under torchrun")
    global_batch_size: int | None = option(
        None,
        "optimization",
        "the batch size over all processes (each takes its share); keeps the effective batch whatever --nproc is",
        default_text="batch size x processes",
    )
    eval_batch_size: int = option(1000, "precision and speed", "evaluation batch size; does not change results")
    epochs: int = option(10, "optimization", "number of epochs")
    max_steps: int | None = option(
        None,
        "optimization",
        "stop after this many optimizer steps in all (the last epoch may be partial); the lr schedule spans them",
        default_text="epochs x batches per epoch",
    )
    time_budget: float | None = option(
        None,
        "optimization",
        "end the whole run (start-up, data, evaluation and reports included) within this wall time, e.g. 300, "
        "90s, 5m: the run measures this machine's speed in its first steps and sets --epochs and --max-steps "
        "to fit; with --schedule none the lr decays linearly to zero at the end",
        kind="duration",
        metavar="SECONDS|5m",
    )
    auto_width: bool = option(
        False,
        "model",
        "with --time-budget: the widest cnn or resnet (the configured width, 3/4, 1/2, 3/8 or 1/4 of it) that "
        "trains at least 10 epochs within the budget",
    )
    seed: int = option(0, "optimization", "random seed for init, shuffling, splits and augmentation")
    shuffle: bool = option(False, "data", "reshuffle the training set each epoch (the tutorial's DataLoader does not)")
    val_split: float = option(0.0, "data", "fraction of the training set held out (stratified) for validation")
    normalize: bool = option(
        False, "data", "subtract the training set's mean and divide by its std, after scaling to [0, 1]"
    )
    augment: bool = option(False, "data", "random crop with padding, horizontal flip, random erasing")
    augment_flip: bool = option(
        True, "data", "with --augment: mirror half the images left-right (off where a mirror image is another class)"
    )
    augment_padding: int = option(2, "data", "random crop padding in pixels")
    augment_erasing: float = option(0.25, "data", "random erasing probability per image")
    dropout: float = option(0.0, "model", "dropout for models that have it (cnn, resnet, tv:NAME; not the mlp)")
    tta: str = option(
        "none",
        "model",
        "test-time augmentation in every evaluation, predict, serve and export: none, or flip (the mean of the "
        "logits of each image and its mirror image; for pictures that a left-right flip leaves the same class)",
    )
    freeze: list[str] = option(
        None,
        "model",
        "do not train parameters whose names start with PREFIX (repeatable)",
        kind="name",
        metavar="PREFIX",
        factory=list,
    )
    weights: str | None = option(
        None,
        "model",
        "tv:NAME pretrained weights: torchvision's by name (DEFAULT, IMAGENET1K_V1; kept in $TORCH_HOME) or a "
        "local state_dict file",
        kind="path",
    )
    fine_tune: bool | None = option(
        None,
        "model",
        "the first --freeze-epochs train the head alone (body frozen), then all layers, earlier ones slower (fastai)",
        default_text="on with --weights or --init-from",
    )
    freeze_epochs: int = option(1, "model", "--fine-tune: the epochs that train the head alone")
    early_stop: int = option(
        0, "schedule", "stop after this many epochs without a better validation accuracy; 0: never"
    )
    device: str = option("auto", "precision and speed", ", ".join(DEVICES), kind="device")
    threads: int = option(
        0,
        "precision and speed",
        f"CPU threads for torch, at most {MAX_THREADS}; more than the CPUs: a warning",
        default_text="torch's choice, one per physical core",
    )
    precision: str = option(
        "fp32",
        "precision and speed",
        f"{', '.join(PRECISIONS)} autocast; auto: bf16 on a GPU or CPU that runs it fast (AVX-512 BF16 or AMX), "
        "else fp32 (bf16 is emulated and far slower on AVX2-only CPUs)",
    )
    compile: bool = option(False, "precision and speed", "torch.compile the model")
    sync_batchnorm: bool = option(
        False, "precision and speed", "several processes: batch-norm statistics over the global batch (SyncBatchNorm)"
    )
    channels_last: bool = option(False, "precision and speed", "channels-last memory format for conv nets")
    log_every: int = option(100, "run", "batches between the tutorial's loss lines")
    checkpoint_every: int = option(0, "run", "steps between mid-epoch checkpoints; 0: at epoch ends only")
    limit_train_batches: int | float | None = option(
        None,
        "run",
        "train on this many batches per epoch, or this fraction of them (e.g. 0.1) for a quick check",
        kind="limit",
        metavar="N|FRACTION",
        default_text="all",
    )
    limit_eval_batches: int | float | None = option(
        None,
        "run",
        "evaluate on this many batches (or this fraction) of the validation and test sets; the figures then "
        "describe that part only",
        kind="limit",
        metavar="N|FRACTION",
        default_text="all",
    )
    tracking: str = option("none", "run", f"{', '.join(TRACKERS)}: log params, metrics and artifacts there too")
    tracking_uri: str | None = option(
        None,
        "run",
        "the tracking server or database (an MLflow tracking URI)",
        metavar="URI",
        default_text="$MLFLOW_TRACKING_URI, else MLflow's own default in this folder",
    )
    tracking_experiment: str | None = option(
        None, "run", "the MLflow experiment the run is logged under", metavar="NAME", default_text="trainlab"
    )
    extra: dict[str, Any] = option(None, None, "user model keyword arguments (config files only)", factory=dict)
    recipe: str = option("none", None, "auto: choose the recipe from the data (--preset auto)")
    recipe_keep: list[str] = option(None, None, "recipe auto: the keys the user set, kept as given", factory=list)

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        check_number("lr", self.lr, minimum=0.0, inclusive=False, maximum=MAX_RATE)
        check_number("momentum", self.momentum, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        check_number("weight_decay", self.weight_decay, minimum=0.0, maximum=MAX_RATE)
        check_number("grad_clip", self.grad_clip, minimum=0.0)
        check_number("label_smoothing", self.label_smoothing, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("tta", self.tta, TTA_CHOICES)
        check_choice("recipe", self.recipe, RECIPES)
        known = {item.name for item in fields(self)}
        if not isinstance(self.recipe_keep, (list, tuple)) or not set(self.recipe_keep) <= known:
            raise ConfigError(f"recipe_keep must be a list of config keys, got {self.recipe_keep!r}")
        check_number("warmup_epochs", self.warmup_epochs, minimum=0.0)
        check_integer("step_epochs", self.step_epochs, minimum=1)
        check_number("step_gamma", self.step_gamma, minimum=0.0, maximum=1.0, inclusive=False)
        check_number("val_split", self.val_split, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        check_integer("augment_padding", self.augment_padding, minimum=0)
        check_number("augment_erasing", self.augment_erasing, minimum=0.0, maximum=1.0)
        check_number("dropout", self.dropout, minimum=0.0, maximum=1.0, maximum_inclusive=False)
        check_integer("early_stop", self.early_stop, minimum=0)
        check_integer("batch_size", self.batch_size, minimum=1)
        check_integer("eval_batch_size", self.eval_batch_size, minimum=1)
        check_integer("epochs", self.epochs, minimum=1, maximum=MAX_EPOCHS)
        check_integer("seed", self.seed, minimum=0, maximum=MAX_SEED)
        check_integer("log_every", self.log_every, minimum=1)
        check_integer("threads", self.threads, minimum=0, maximum=MAX_THREADS)
        check_integer("checkpoint_every", self.checkpoint_every, minimum=0)
        check_limit("limit_train_batches", self.limit_train_batches)
        check_limit("limit_eval_batches", self.limit_eval_batches)
        check_choice("tracking", self.tracking, TRACKERS)
        for name in ("tracking_uri", "tracking_experiment"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{name} must be a non-empty string, got {value!r}")
        if self.global_batch_size is not None:
            check_integer("global_batch_size", self.global_batch_size, minimum=1)
        if self.max_steps is not None:
            check_integer("max_steps", self.max_steps, minimum=1)
        if self.time_budget is not None:  # '5m' in a config file too
            object.__setattr__(self, "time_budget", parse_duration("time_budget", self.time_budget))
            check_number("time_budget", self.time_budget, maximum=MAX_BUDGET_SECONDS)
        if self.auto_width is True and (self.time_budget is None or self.model not in WIDTH_MODELS):
            raise ConfigError(
                f"auto_width picks the width of the {' or '.join(WIDTH_MODELS)} for a --time-budget; give both "
                "(e.g. --model cnn --time-budget 5m) or leave it out"
            )
        check_combinations(self)

    def per_process_batch_size(self, world: int) -> int:
        """The batch each of `world` processes takes: global_batch_size / world, else batch_size."""
        if self.global_batch_size is None:
            return self.batch_size
        if self.global_batch_size % world:
            raise ConfigError(
                f"global_batch_size {self.global_batch_size} does not divide among {world} processes; "
                f"choose a multiple of {world}"
            )
        return self.global_batch_size // world

    def to_dict(self) -> dict[str, Any]:
        """Plain types only, so it can go into TOML, JSON and weights-only checkpoints."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """Build from a mapping, refusing unknown keys by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
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
        for key in ("recipe", "recipe_keep"):  # a resolved recipe is written as its values
            if values.get(key) in ("none", []):
                del values[key]
        return tomli_w.dumps(values)


def flag_fields() -> tuple[dataclasses.Field, ...]:
    """The TrainConfig fields that are command-line flags (all but `extra`, which config files hold)."""
    return tuple(item for item in fields(TrainConfig) if item.metadata.get("group"))


def data_source_keys() -> tuple[str, ...]:
    """The keys that say where the images come from; every command that reads data takes them."""
    return tuple(item.name for item in fields(TrainConfig) if item.metadata.get("source"))
