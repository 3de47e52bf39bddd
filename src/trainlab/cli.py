"""The command line: parses, calls the Python API, prints. Heavy imports happen inside the commands."""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from trainlab import __version__
from trainlab.config import DEVICES, MAX_IMAGE_SIZE, MAX_RATE, MAX_THREADS, MAX_WORKERS
from trainlab.errors import TrainingInterrupted, TrainlabError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
AUTO_LR_PLACEHOLDER = 1e-3  # validated in the config, then replaced by the range test's suggestion
MAX_LR_STEPS = 100_000  # lr range test steps; its default is 200, fastai's 100
MAX_CLASSES = 10_000  # summary --num-classes; the data readers accept no more either
MAX_INPUT_CHANNELS = 64  # summary --input-size C; trainlab's own data has 1 or 3


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Output:
    """Human text to stdout, or to stderr when --json reserves stdout for the final JSON line."""

    def __init__(self, as_json: bool):
        self.as_json = as_json
        self.human = sys.stderr if as_json else sys.stdout

    def say(self, text: str = "") -> None:
        print(text, file=self.human, flush=True)

    def result(self, values: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps(values), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# parsers

def path_argument(text: str) -> str:
    """A file or folder name; an empty one would silently mean the current folder or the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a file or folder name, got an empty string")
    return text


def name_argument(text: str) -> str:
    """A model, preset or parameter-prefix name; an empty one would silently mean the default, or everything."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a name, got an empty string")
    return text


def device_argument(text: str) -> str:
    """--device: one of DEVICES, checked here because evaluate, predict and data use it without a config."""
    if text not in DEVICES:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; choose one of: {', '.join(DEVICES)}")
    return text


def learning_rate(text: str) -> float | str:
    """--lr: a number, or 'auto' for the lr range test."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


TRAIN_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--model", {"type": name_argument,
                 "help": "mlp (the tutorial's), cnn, resnet, tv:NAME (torchvision, e.g. tv:resnet18), "
                         "or package.module:Class (default: mlp)"}),
    ("--loss", {"help": "cross-entropy, nll, mse, l1, bce, bce-with-logits (default: cross-entropy)"}),
    ("--label-smoothing", {"type": float, "help": "cross-entropy label smoothing (default: 0)"}),
    ("--optimizer", {"help": "sgd, rmsprop, adam, adamw (default: sgd)"}),
    ("--lr", {"type": learning_rate, "metavar": "LR|auto",
              "help": "learning rate, or auto to run the lr range test first (default: 1e-3)"}),
    ("--momentum", {"type": float, "help": "SGD/RMSprop momentum (default: 0)"}),
    ("--weight-decay", {"type": float, "help": "L2 weight decay (default: 0)"}),
    ("--grad-clip", {"type": float, "help": "clip the gradient norm to this value; 0: off (default: 0)"}),
    ("--nesterov", {"action": argparse.BooleanOptionalAction, "help": "Nesterov momentum for SGD"}),
    ("--schedule", {"help": "none, step, cosine or onecycle, stepped every batch (default: none)"}),
    ("--warmup-epochs", {"type": float, "help": "linear lr warmup length in epochs (default: 0)"}),
    ("--step-epochs", {"type": int, "help": "step schedule: epochs between lr drops (default: 10)"}),
    ("--step-gamma", {"type": float, "help": "step schedule: lr multiplier at each drop (default: 0.1)"}),
    ("--batch-size", {"type": int, "help": "training batch size (default: 64)"}),
    ("--eval-batch-size", {"type": int, "help": "evaluation batch size; does not change results (default: 1000)"}),
    ("--epochs", {"type": int, "help": "number of epochs (default: 10)"}),
    ("--seed", {"type": int, "help": "random seed for init and shuffling (default: 0)"}),
    ("--shuffle", {"action": argparse.BooleanOptionalAction,
                   "help": "reshuffle the training set each epoch (default: off, as in the tutorial)"}),
    ("--val-split", {"type": float, "help": "fraction of the training set held out for validation (default: 0)"}),
    ("--normalize", {"action": argparse.BooleanOptionalAction,
                     "help": "normalize with the training set's mean/std (default: off)"}),
    ("--augment", {"action": argparse.BooleanOptionalAction,
                   "help": "random crop with padding, horizontal flip, random erasing (default: off)"}),
    ("--augment-padding", {"type": int, "help": "random crop padding in pixels (default: 2)"}),
    ("--augment-erasing", {"type": float, "help": "random erasing probability per image (default: 0.25)"}),
    ("--dropout", {"type": float, "help": "dropout for models that have it (cnn) (default: 0)"}),
    ("--freeze", {"action": "append", "metavar": "PREFIX", "type": name_argument,
                  "help": "do not train parameters whose names start with PREFIX (repeatable)"}),
    ("--weights", {"type": path_argument, "help": "local pretrained weights (a state_dict file) for tv:NAME models"}),
    ("--early-stop", {"type": int, "help": "stop after this many epochs without a better val accuracy"}),
    ("--precision", {"help": "fp32, bf16 or fp16 autocast (default: fp32)"}),
    ("--compile", {"action": argparse.BooleanOptionalAction, "help": "torch.compile the model (default: off)"}),
    ("--channels-last", {"action": argparse.BooleanOptionalAction,
                         "help": "channels-last memory format for conv nets (default: off)"}),
    ("--log-every", {"type": int, "help": "batches between loss lines (default: 100)"}),
    ("--checkpoint-every", {"type": int, "help": "steps between mid-epoch checkpoints; 0: epoch ends only"}),
]


# Where the images come from: the same flags for train, lr-find, evaluate, predict and data. evaluate and
# predict fall back to the checkpoint's values for the ones not given.
DATA_FLAGS: list[tuple[str, dict[str, Any]]] = [
    ("--dataset", {"help": "fashion-mnist, mnist, kmnist, cifar10, csv (--annotations) or folder (--image-dir) "
                           "(default: fashion-mnist; evaluate/predict: the checkpoint's)"}),
    ("--data-dir", {"type": path_argument,
                    "help": "built-in data sets' directory (default: $TRAINLAB_DATA_DIR, else ./data)"}),
    ("--annotations", {"metavar": "CSV", "type": path_argument,
                       "help": "csv: training rows `file name, label` (header optional; labels are class numbers or "
                               "class names)"}),
    ("--test-annotations", {"metavar": "CSV", "type": path_argument,
                            "help": "csv: test rows; without it, --val-split also holds out a test part of "
                                    "--annotations"}),
    ("--image-dir", {"metavar": "DIR", "type": path_argument,
                     "help": "csv: the folder the file names are relative to (default: the CSV's folder); folder: "
                             "ROOT/<class>/* or ROOT/train|test/<class>/*"}),
    ("--image-size", {"type": int, "metavar": "PIXELS",
                      "help": "csv/folder: resize images to PIXELS x PIXELS (default: the most common size)"}),
    ("--channels", {"type": int, "help": "csv/folder: 1 (gray) or 3 (RGB) (default: 3 if any image has color)"}),
    ("--skip-bad-images", {"action": argparse.BooleanOptionalAction,
                           "help": "csv/folder: leave out unreadable images, listed, instead of stopping"}),
    ("--workers", {"type": int, "help": "csv/folder: decoding processes (default: one per CPU, at most 4; "
                                        "more than the CPUs: a warning)"}),
    ("--memory-budget-mb", {"type": float, "metavar": "MB",
                            "help": "csv/folder: stream images from the files when, decoded, they would take more "
                                    "(default: half the RAM)"}),
]
DATA_KEYS = tuple(flag.lstrip("-").replace("-", "_") for flag, _ in DATA_FLAGS)
PATH_KEYS = ("data_dir", "annotations", "test_annotations", "image_dir", "weights")


def add_data_options(parser: argparse.ArgumentParser) -> None:
    for flag, options in DATA_FLAGS:
        parser.add_argument(flag, **options)
    parser.add_argument("--device", type=device_argument, help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--threads", type=int,
                        help=f"CPU threads for torch, at most {MAX_THREADS} (default: torch's choice, one per physical "
                             "core; more than the CPUs: a warning)")
    parser.add_argument("--no-download", action="store_true", help="never download missing data files")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", type=path_argument,
                        help="run directory, trainlab checkpoint or state_dict file")
    parser.add_argument("--model", type=name_argument, help="model of a plain state_dict file (e.g. mlp)")
    parser.add_argument("--trust-pickle", action="store_true",
                        help="allow loading a whole pickled model (runs code from the file: trusted files only)")
    add_trust_option(parser)


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-model-code", action="store_true",
                        help="build a package.module:Class model that a checkpoint or config file names (imports "
                             "and runs that module: trusted files only; --model NAME trusts that one model)")


def build_parser() -> Parser:
    parser = Parser(prog="trainlab", description="Train, evaluate, save and use image classifiers with PyTorch.")
    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    train = commands.add_parser("train", help="train a model (defaults: the tutorial's)",
                                description="Train a model; flags override --config, which overrides defaults.")
    train.add_argument("--config", type=path_argument, help="TOML file with any of the flags below as keys")
    train.add_argument("--preset", type=name_argument, help="named recipe applied before --config and flags: "
                                        "tutorial (the defaults), speedrun (>= 93%% on Fashion-MNIST, fast)")
    for flag, options in TRAIN_FLAGS:
        train.add_argument(flag, **options)
    add_data_options(train)
    train.add_argument("--run-dir", type=path_argument, help="where the run is written (default: runs/<time stamp>)")
    train.add_argument("--resume", metavar="RUN_DIR", type=path_argument,
                       help="continue a stopped run exactly where it stopped")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    train.add_argument("--init-from", metavar="CHECKPOINT", type=path_argument,
                       help="start from these weights with a fresh optimizer")
    train.add_argument("--allow-other-data", action="store_true",
                       help="with --resume: continue even though the data differs from what the run was trained on")
    train.add_argument("--quiet", action="store_true", help="one line per epoch")
    add_trust_option(train)
    add_output_options(train)
    train.set_defaults(handler=cmd_train)

    lr_find = commands.add_parser("lr-find", help="learning-rate range test: plot loss against lr, suggest an lr",
                                  description="Train a throwaway copy of the model while the lr rises exponentially.")
    lr_find.add_argument("--config", type=path_argument, help="TOML file with train flags as keys")
    lr_find.add_argument("--preset", type=name_argument, help="named recipe (tutorial, speedrun)")
    for flag, options in TRAIN_FLAGS:
        lr_find.add_argument(flag, **options)
    add_data_options(lr_find)
    lr_find.add_argument("--start-lr", type=float, default=1e-7, help="first lr of the range (default: 1e-7)")
    lr_find.add_argument("--end-lr", type=float, default=10.0, help="last lr of the range (default: 10)")
    lr_find.add_argument("--steps", type=int, default=200,
                         help=f"number of steps, 10 to {MAX_LR_STEPS:,} (default: 200)")
    lr_find.add_argument("--out", type=path_argument, default="lr_find.png",
                         help="PNG plot to write (default: lr_find.png; a name not ending in .png: a warning)")
    add_trust_option(lr_find)
    add_output_options(lr_find)
    lr_find.set_defaults(handler=cmd_lr_find)

    evaluate = commands.add_parser("evaluate", help="test a checkpoint on the test set")
    add_checkpoint_options(evaluate)
    evaluate.add_argument("--batch-size", type=int, default=1000, help="evaluation batch size (default: 1000)")
    evaluate.add_argument("--confusion-matrix", metavar="PNG", type=path_argument,
                          help="where to draw the confusion matrix (default: in the run directory, else beside the "
                               "checkpoint; a name not ending in .png: a warning)")
    add_data_options(evaluate)
    add_output_options(evaluate)
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", help="predict the class of images")
    add_checkpoint_options(predict)
    predict.add_argument("images", nargs="*", metavar="IMAGE", type=path_argument,
                         help="PNG/JPEG/... files of any size and mode")
    predict.add_argument("--test-index", type=int, help="predict test-set image N and show its true class")
    predict.add_argument("--top-k", type=int, default=3,
                         help="how many classes to list (default: 3; more than the model's classes: a warning)")
    add_data_options(predict)
    add_output_options(predict)
    predict.set_defaults(handler=cmd_predict)

    export = commands.add_parser("export",
                                 help="write the model as a state_dict, safetensors, TorchScript or ONNX file")
    add_checkpoint_options(export)
    export.add_argument("--format", required=True, choices=("state-dict", "safetensors", "torchscript", "onnx"),
                        help="state-dict (the tutorial's model.pth), safetensors, or a TorchScript/ONNX graph that "
                             "takes uint8 images and includes the preprocessing")
    export.add_argument("--out", required=True, type=path_argument, help="output file")
    add_output_options(export)
    export.set_defaults(handler=cmd_export)

    runs = commands.add_parser("runs", help="list runs as a table")
    runs.add_argument("directory", nargs="?", default="runs", type=path_argument,
                      help="folder of run directories (default: runs)")
    add_output_options(runs)
    runs.set_defaults(handler=cmd_runs)

    plot = commands.add_parser("plot", help="overlay the learning curves of several runs")
    plot.add_argument("runs", nargs="+", metavar="RUN", type=path_argument, help="run directories")
    plot.add_argument("--out", type=path_argument, default="runs_compared.png",
                      help="PNG file to write (default: runs_compared.png; a name not ending in .png: a warning)")
    add_output_options(plot)
    plot.set_defaults(handler=cmd_plot)

    summary = commands.add_parser("summary", help="print a model and its parameters")
    summary.add_argument("--model", type=name_argument, default="mlp", help="model name (default: mlp)")
    summary.add_argument("--input-size", default="1,28,28",
                         help=f"C,H,W of one input, H and W at most {MAX_IMAGE_SIZE} (default: 1,28,28)")
    summary.add_argument("--num-classes", type=int, default=10,
                         help=f"number of classes, 1 to {MAX_CLASSES:,} (default: 10)")
    summary.add_argument("--freeze", action="append", metavar="PREFIX", type=name_argument, default=[],
                         help="show parameters starting with PREFIX as frozen (repeatable)")
    add_output_options(summary)
    summary.set_defaults(handler=cmd_summary)
    add_data_command(commands)
    return parser


def add_data_command(commands: argparse._SubParsersAction) -> None:
    """`trainlab data show|info`: a look at a data set, with the same data flags as train."""
    data = commands.add_parser("data", help="look at a data set: sample grid (show), counts and statistics (info)")
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser, required=True)
    shared = {"--val-split", "--seed", "--augment", "--augment-padding", "--augment-erasing"}
    for name, text in (("show", "draw random samples with their class names into a PNG"),
                       ("info", "count images per class and split; image size, channels, pixel mean/std")):
        action = actions.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        action.add_argument("--config", type=path_argument,
                            help="TOML file (e.g. a run's config.toml) with data flags as keys")
        for flag, options in TRAIN_FLAGS:
            if flag in shared:
                action.add_argument(flag, **options)
        add_data_options(action)
        if name == "show":
            action.add_argument("--split", choices=("train", "val", "test"), default="train",
                                help="which split to draw from (default: train)")
            action.add_argument("--rows", type=int, default=3, help="rows of images (default: 3)")
            action.add_argument("--cols", type=int, default=3, help="columns of images (default: 3)")
            action.add_argument("--out", type=path_argument, default="samples.png",
                                help="PNG file to write (default: samples.png; a name not ending in .png: a "
                                     "warning)")
        add_output_options(action)
        action.set_defaults(handler=cmd_data_show if name == "show" else cmd_data_info)


# ---------------------------------------------------------------------------------------------------------------
# commands


def train_config(args: argparse.Namespace):
    """Defaults < --config file < flags, validated once."""
    from trainlab.config import TrainConfig, preset_values, read_config_file

    values: dict[str, Any] = preset_values(args.preset) if args.preset else {}
    if args.config:
        from trainlab.models import check_model_from_file

        from_file = read_config_file(args.config)
        if "model" in from_file or "extra" in from_file:  # the file's model, unless --model replaces it
            check_model_from_file(args.model or from_file.get("model", "mlp"), from_file.get("extra", {}),
                                  f"config file {args.config}", named_by_user=args.model,
                                  trusted=args.trust_model_code)
            check_built_in_model(args.model or from_file.get("model", "mlp"), from_file.get("extra", {}),
                                 args.config, name_from_file=args.model is None)
        values.update(from_file)
    for flag, _ in TRAIN_FLAGS:
        key = flag.lstrip("-").replace("-", "_")
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    if values.get("lr") == "auto":
        values["lr"] = AUTO_LR_PLACEHOLDER
    for key in (*DATA_KEYS, "device", "threads"):
        if getattr(args, key) is not None:
            values[key] = getattr(args, key)
    for key in PATH_KEYS:  # absolute, so that evaluate/predict/resume find them from any folder
        if isinstance(values.get(key), str) and values[key]:
            values[key] = str(Path(values[key]).expanduser().resolve())
    try:
        return TrainConfig.from_dict(values, source=args.config or "flags")
    except TrainlabError as exc:
        raise _blame_config_file(exc, values, args) from None


def check_built_in_model(name: str, extra: dict[str, Any], config_file: str, name_from_file: bool) -> None:
    """A config file's model name and arguments, checked here so that the error names the file (only the
    built-in models: tv:NAME and package.module:Class are checked when they are built)."""
    import inspect

    from trainlab.errors import ConfigError
    from trainlab.models import ZOO_PREFIX, is_code_reference, list_models, registered_class

    if is_code_reference(name) or name.startswith(ZOO_PREFIX):
        return
    if name not in list_models():
        if name_from_file:
            raise ConfigError(f"{config_file}: unknown model {name!r}; choose one of: {', '.join(list_models())}, "
                              "tv:NAME (torchvision), or your own as package.module:Class")
        return  # the flag's model: refused with the flag's message when it is built
    model_class = registered_class(name)
    if model_class is not None:
        try:
            inspect.signature(model_class).bind_partial(**extra)
        except TypeError as exc:
            raise ConfigError(f"{config_file}: model {name!r} cannot be built with these arguments (extra): "
                              f"{exc}") from None


def _blame_config_file(error: TrainlabError, values: dict[str, Any], args: argparse.Namespace) -> TrainlabError:
    """Name the config file in the error when its values, not the flags, are what fails."""
    from trainlab.config import TrainConfig, read_config_file

    if not args.config or str(error).startswith(str(args.config)):
        return error
    flags = {flag.lstrip("-").replace("-", "_") for flag, _ in TRAIN_FLAGS} | {*DATA_KEYS, "device"}
    from_file = {key for key in read_config_file(args.config) if getattr(args, key, None) is None or key not in flags}
    try:
        TrainConfig.from_dict({key: value for key, value in values.items() if key not in from_file})
    except TrainlabError:
        return error  # the flags fail on their own
    return type(error)(f"{args.config}: {error}")


def run_lr_finder(config, args: argparse.Namespace, out: Output, start_lr: float = 1e-7, end_lr: float = 10.0,
                  steps: int = 200):
    """The lr range test for `config`, reported on the human stream."""
    from trainlab.data import load_dataset
    from trainlab.training.lr_finder import find_lr

    for name, value in (("--start-lr", start_lr), ("--end-lr", end_lr)):
        if not math.isfinite(value) or value > MAX_RATE:  # the optimizers overflow float32 far below inf
            raise TrainlabError(f"{name} must be a finite number up to {MAX_RATE:g}, got {value:g}")
    if not 0 < start_lr < end_lr:
        raise TrainlabError(f"--start-lr must be > 0 and below --end-lr, got {start_lr:g} and {end_lr:g}")
    if steps < 10:
        raise TrainlabError(f"--steps must be >= 10, got {steps}")
    if steps > MAX_LR_STEPS:
        raise TrainlabError(f"--steps must be <= {MAX_LR_STEPS:,}, got {steps:,} (the default, 200, is usually enough)")
    data = load_dataset(config, download=not args.no_download)
    result = find_lr(config, data, start_lr=start_lr, end_lr=end_lr, steps=steps)
    out.say(f"lr range test: {len(result.lrs)} steps from {start_lr:g} to {result.lrs[-1]:.3g}")
    out.say(f"Suggested lr: {result.suggestion:.3g} ({result.confidence} confidence; steepest descent at "
            f"{result.steepest:.3g})")
    out.say(f"Rule: {result.rule}")
    for note in result.notes:
        out.say(f"Note: {note}")
    return result


def wants_auto_lr(args: argparse.Namespace) -> bool:
    """--lr auto, or lr = "auto" in the --config file without an --lr flag."""
    from trainlab.config import read_config_file

    if args.lr is not None:
        return args.lr == "auto"
    return bool(args.config) and read_config_file(args.config).get("lr") == "auto"


def cmd_lr_find(args: argparse.Namespace, out: Output) -> int:
    from trainlab.reports.plots import lr_finder_plot

    config = train_config(args)
    result = run_lr_finder(config, args, out, args.start_lr, args.end_lr, args.steps)
    try:
        path = lr_finder_plot(result, args.out)
    except OSError as exc:
        raise TrainlabError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    out.say(f"Plot: {path}")
    out.result({**result.to_dict(), "plot": str(path)})
    return EXIT_OK


def cmd_train(args: argparse.Namespace, out: Output) -> int:
    if args.resume:
        from trainlab.training import load_run_config

        if args.config or args.preset or args.run_dir or args.init_from:
            raise TrainlabError(
                "--resume continues a run with its own config; drop --config/--preset/--run-dir/--init-from")
        ignored = [flag for flag, _ in TRAIN_FLAGS
                   if getattr(args, flag.lstrip("-").replace("-", "_"), None) is not None]
        if ignored or args.overwrite:
            raise TrainlabError(f"--resume continues a run exactly as it was configured; drop "
                                f"{', '.join(ignored + ['--overwrite'] * args.overwrite)}")
        config = load_run_config(args.resume, trust_model_code=args.trust_model_code)
        run_dir, resume = args.resume, True
    else:
        config = train_config(args)  # bad values are refused here, before torch is imported (seconds)
        run_dir, resume = args.run_dir, False
        if wants_auto_lr(args):
            config = config.replace(lr=run_lr_finder(config, args, out).suggestion)
            out.say(f"Training with lr {config.lr:.3g} (--lr auto)")
    from trainlab.reports.console import ConsoleReporter
    from trainlab.reports.tensorboard import TensorBoardReporter, tensorboard_available
    from trainlab.training import fit
    from trainlab.training.trainer import Reporters

    reporter = ConsoleReporter(out.human, quiet=args.quiet)
    if tensorboard_available():
        reporter = Reporters(reporter, TensorBoardReporter())
    if args.allow_other_data and not resume:
        raise TrainlabError("--allow-other-data is for --resume RUN_DIR only")
    summary = fit(config, run_dir=run_dir, resume=resume, overwrite=args.overwrite, init_from=args.init_from,
                  download=not args.no_download, reporter=reporter, allow_other_data=args.allow_other_data,
                  reports=True)
    out.result(summary)
    return EXIT_OK


def checkpoint_data_config(args: argparse.Namespace, saved: dict | None):
    """The data options of evaluate/predict/data: flags, falling back to the checkpoint's (or the defaults)."""
    from trainlab.config import TrainConfig

    values = {key: value for key, value in (saved or {}).items() if key in (*DATA_KEYS, "val_split")}
    given = {key: getattr(args, key) for key in DATA_KEYS if getattr(args, key, None) is not None}
    if given.get("dataset", values.get("dataset")) != values.get("dataset"):  # another kind of data altogether
        for key in ("annotations", "test_annotations", "image_dir", "image_size", "channels", "val_split"):
            values.pop(key, None)
    if given.get("annotations", values.get("annotations")) != values.get("annotations"):
        if "test_annotations" not in given:  # `evaluate RUN --annotations other.csv`: all of other.csv is tested
            values.pop("test_annotations", None)
            values.pop("val_split", None)
    values.update(given)
    return TrainConfig.from_dict(values, source="data options")


def load_test_split(args: argparse.Namespace, loaded, predictor, out: Output):
    """The test split the data options name, decoded to the model's input shape, labels on its classes."""
    from trainlab.config import FILE_DATASETS
    from trainlab.data import load_splits

    config = checkpoint_data_config(args, loaded.config)
    prep = predictor.preprocessing
    shape = (prep.channels, prep.height, prep.width)
    from_files = config.dataset in FILE_DATASETS
    for name, value in (("--channels", args.channels), ("--image-size", args.image_size)):
        if value is not None and value not in ((prep.channels,) if name == "--channels" else (prep.height, prep.width)):
            raise TrainlabError(f"{name} {value} does not fit the model, which takes {prep.channels}x{prep.height}x"
                                f"{prep.width} images; leave it out")
    loaded_splits, notes = load_splits(config, ("test",), download=not args.no_download,
                                       classes=predictor.classes if from_files else None,
                                       image_shape=shape if from_files else None)
    test = loaded_splits["test"]
    if test.image_shape != shape or len(test.classes) != len(predictor.classes):
        raise TrainlabError(
            f"{config.dataset} has {len(test.classes)} classes of {'x'.join(map(str, test.image_shape))} images but "
            f"the model takes {'x'.join(map(str, shape))} images in {len(predictor.classes)} classes")
    for note in notes:  # csv/folder data: in memory or streamed, cached or decoded
        out.say(note)
    return test


def cmd_evaluate(args: argparse.Namespace, out: Output) -> int:
    from trainlab.checkpoint import load_checkpoint
    from trainlab.inference import Predictor
    from trainlab.reports.classification import confusion_matrix, format_per_class, per_class_report
    from trainlab.reports.console import format_test_block
    from trainlab.reports.plots import confusion_matrix_plot
    from trainlab.training import evaluate, resolve_device
    from trainlab.training.losses import make_loss

    if args.batch_size < 1:
        raise TrainlabError(f"--batch-size must be >= 1, got {args.batch_size}")
    loaded = load_checkpoint(args.checkpoint, args.trust_pickle)
    device = resolve_device(args.device or "auto")
    predictor = Predictor.from_checkpoint(loaded, model=args.model, device=device,
                                          trust_model_code=args.trust_model_code)
    test = load_test_split(args, loaded, predictor, out)
    saved = loaded.config or {}  # the run's own loss, so "Avg loss" matches its metrics; plain files: cross-entropy
    loss_fn = make_loss(saved.get("loss", "cross-entropy"), len(predictor.classes), saved.get("label_smoothing", 0.0))
    result = evaluate(predictor.model, test.to(device), loss_fn, predictor.preprocessing, args.batch_size,
                      return_predictions=True)
    matrix = confusion_matrix(result.pop("predictions"), test.labels, len(predictor.classes))
    result.pop("confidences")
    per_class = per_class_report(matrix, predictor.classes)
    out.say(f"Evaluating {loaded.path} on {len(test)} test images")
    out.say(format_test_block(result["accuracy"], result["loss"]))
    out.say(format_per_class(per_class))
    plot_path = Path(args.confusion_matrix) if args.confusion_matrix else default_report_path(loaded.path)
    try:
        confusion_matrix_plot(matrix, predictor.classes, plot_path)
    except OSError as exc:
        raise TrainlabError(f"cannot write {plot_path}: {exc.strerror or exc}") from None
    out.say(f"Confusion matrix: {plot_path}")
    out.result({**result, "checkpoint": str(loaded.path), "per_class": per_class,
                "confusion_matrix": matrix.tolist(), "confusion_matrix_png": str(plot_path)})
    return EXIT_OK


def default_report_path(checkpoint: Path) -> Path:
    """confusion_matrix.png in the checkpoint's run directory, else <name>_confusion_matrix.png beside the file."""
    if checkpoint.parent.name == "checkpoints":
        return checkpoint.parent.parent / "confusion_matrix.png"
    return checkpoint.with_name(f"{checkpoint.stem}_confusion_matrix.png")


def cmd_predict(args: argparse.Namespace, out: Output) -> int:
    from trainlab.checkpoint import load_checkpoint
    from trainlab.inference import Predictor

    if (args.test_index is None) == (not args.images):
        raise TrainlabError("give image files or --test-index N (one of the two)")
    if args.top_k < 1:
        raise TrainlabError(f"--top-k must be >= 1, got {args.top_k}")
    if any(not image.strip() for image in args.images):  # image names after the options skip argparse's type
        raise TrainlabError("IMAGE: expected a file name, got an empty string")
    loaded = load_checkpoint(args.checkpoint, args.trust_pickle)
    device = "cpu"
    if args.device is not None:
        from trainlab.training import resolve_device

        device = resolve_device(args.device)
    predictor = Predictor.from_checkpoint(loaded, model=args.model, device=device,
                                          trust_model_code=args.trust_model_code)
    if args.top_k > len(predictor.classes):
        warn(args, f"--top-k {args.top_k} is more than the model's {len(predictor.classes)} classes; listing all "
                   f"{len(predictor.classes)}")
    if args.test_index is not None:
        test = load_test_split(args, loaded, predictor, out)
        if not 0 <= args.test_index < len(test):
            raise TrainlabError(f"--test-index must be between 0 and {len(test) - 1}, got {args.test_index}")
        prediction = predictor.predict(test.images[args.test_index:args.test_index + 1], args.top_k)[0]
        actual = test.classes[int(test.labels[args.test_index])]
        out.say(f'Predicted: "{prediction.label}", Actual: "{actual}"')
        out.result({**prediction.to_dict(), "test_index": args.test_index, "actual": actual})
        return EXIT_OK
    predictions = predictor.predict_files(args.images, args.top_k)
    for path, prediction in zip(args.images, predictions):
        prefix = f"{path}: " if len(args.images) > 1 else ""
        out.say(f'{prefix}Predicted: "{prediction.label}" ({100 * prediction.probability:.1f}%)')
        for rank, (name, probability) in enumerate(prediction.top, start=1):
            out.say(f"  {rank}. {name:<12} {100 * probability:5.1f}%")
    out.result({"predictions": [{"image": str(p), **pred.to_dict()} for p, pred in zip(args.images, predictions)]})
    return EXIT_OK


def cmd_export(args: argparse.Namespace, out: Output) -> int:
    from trainlab.inference import Predictor
    from trainlab.inference.export import export_model

    from trainlab.checkpoint import load_checkpoint

    loaded = load_checkpoint(args.checkpoint, args.trust_pickle)
    predictor = Predictor.from_checkpoint(loaded, model=args.model, trust_model_code=args.trust_model_code)
    try:
        path = export_model(predictor, args.format, args.out, source=loaded.path)
    except OSError as exc:
        raise TrainlabError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    out.say(f"Wrote {args.format} to {path}")
    out.result({"format": args.format, "out": str(path)})
    return EXIT_OK


def cmd_runs(args: argparse.Namespace, out: Output) -> int:
    from trainlab.reports.runs import format_runs, list_runs

    rows = list_runs(args.directory)
    out.say(format_runs(rows) if rows else f"no runs in {args.directory}")
    out.result({"runs": rows})
    return EXIT_OK


def cmd_plot(args: argparse.Namespace, out: Output) -> int:
    from trainlab.reports.plots import learning_curves
    from trainlab.reports.runs import is_run_dir, read_metrics

    curves = {}
    for run in args.runs:
        path = Path(run)
        if not is_run_dir(path):
            raise TrainlabError(f"{run}: not a trainlab run directory (no config.toml)")
        metrics = read_metrics(path)
        if not metrics:
            raise TrainlabError(f"{run}: has no finished epoch to plot yet")
        check_metrics_rows(path, metrics)
        curves[str(path)] = metrics
    try:
        written = learning_curves(curves, args.out)
    except OSError as exc:
        raise TrainlabError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    out.say(f"Wrote {written}")
    out.result({"out": str(written), "runs": list(curves)})
    return EXIT_OK


def check_metrics_rows(run_dir: Path, metrics: list) -> None:
    """Each row of metrics.jsonl a JSON object with a whole epoch number and numbers for the figures it holds."""
    from trainlab.layout import METRICS_FILE

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for line, row in enumerate(metrics, start=1):
        damaged = not isinstance(row, dict) or not isinstance(row.get("epoch"), int) or isinstance(row["epoch"], bool)
        if not damaged:
            damaged = any(not is_number(value) for key, value in row.items() if key.endswith(("_loss", "_accuracy")))
        if damaged:
            raise TrainlabError(f"{run_dir / METRICS_FILE}: row {line} is not an epoch's figures (expected a JSON "
                                "object with a whole epoch number and numeric losses and accuracies); the file is "
                                "damaged, so it cannot be plotted")


def data_command_config(args: argparse.Namespace):
    """--config file < flags, for `trainlab data`: the data options plus split and augmentation settings."""
    from trainlab.config import TrainConfig, read_config_file

    values: dict[str, Any] = read_config_file(args.config) if args.config else {}
    for key in (*DATA_KEYS, "val_split", "seed", "augment", "augment_padding", "augment_erasing"):
        if getattr(args, key, None) is not None:
            values[key] = getattr(args, key)
    return TrainConfig.from_dict(values, source=args.config or "flags")


def data_command_splits(config, args: argparse.Namespace, out: Output) -> tuple[dict, tuple[str, ...], list[str]]:
    """{split: ImageData} as training sees them (train without its validation part), the classes, and notes."""
    from trainlab.data import load_splits
    from trainlab.data.imagefiles import NoTestSet
    from trainlab.data.memory import stratified_split

    try:
        splits, notes = load_splits(config, ("train", "test"), download=not args.no_download)
    except NoTestSet:
        splits, notes = load_splits(config, ("train",), download=not args.no_download)
        notes.append("no test set: give --test-annotations (csv), ROOT/train and ROOT/test (folder), or --val-split")
    if config.val_split:
        splits["train"], splits["val"] = stratified_split(splits["train"], config.val_split, config.seed)
        splits = {name: splits[name] for name in ("train", "val", "test") if name in splits}
    return splits, splits["train"].classes, notes


def cmd_data_show(args: argparse.Namespace, out: Output) -> int:
    from trainlab.data.augment import Augmentation
    from trainlab.reports.preview import figure_size, sample_grid

    if args.rows < 1 or args.cols < 1 or args.rows * args.cols > 400:
        raise TrainlabError(f"--rows and --cols must be >= 1 with at most 400 images, got {args.rows}x{args.cols}")
    config = data_command_config(args)
    splits, _, notes = data_command_splits(config, args, out)
    if args.split not in splits:
        how = ("--split val needs --val-split (e.g. 0.1)" if args.split == "val" else
               "give --test-annotations (csv), ROOT/train and ROOT/test (folder), or --val-split (e.g. 0.1)")
        raise TrainlabError(f"there is no {args.split} split here; {how}")
    data = splits[args.split]
    if len(data) == 0:
        raise TrainlabError(f"the {args.split} split is empty")
    side = min(data.image_shape[1:])
    if config.augment and config.augment_padding >= side:  # csv/folder: the images' size is known only now
        raise TrainlabError(f"augment_padding must be smaller than the images' {side} pixels, got "
                            f"{config.augment_padding} (2 to 4 is usual)")
    augmentation = Augmentation(config.augment_padding, True, config.augment_erasing) if config.augment else None
    try:
        path = sample_grid(data, args.out, args.rows, args.cols, config.seed, augmentation)
    except OSError as exc:
        raise TrainlabError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    for note in notes:
        out.say(note)
    width, height = figure_size(args.rows, args.cols * (2 if augmentation else 1))
    out.say(f"Wrote {args.rows}x{args.cols} {args.split} samples{' with their augmented versions' if augmentation else ''}"
            f" to {path} ({width}x{height} pixels)")
    out.result({"out": str(path), "split": args.split, "rows": args.rows, "cols": args.cols,
                "augment": bool(augmentation), "width": width, "height": height})
    return EXIT_OK


def cmd_data_info(args: argparse.Namespace, out: Output) -> int:
    from trainlab.data.streaming import is_streaming
    from trainlab.reports.preview import format_summary, split_summary

    config = data_command_config(args)
    splits, classes, notes = data_command_splits(config, args, out)
    summary = {"dataset": config.dataset, "classes": list(classes),
               "splits": {name: split_summary(data) for name, data in splits.items()},
               "storage": "streamed from files" if any(is_streaming(d) for d in splits.values()) else "in memory",
               "notes": notes}
    out.say(format_summary(summary))
    out.result(summary)
    return EXIT_OK


def cmd_summary(args: argparse.Namespace, out: Output) -> int:
    from trainlab.models import create_model, freeze_parameters
    from trainlab.reports.summary import layer_table, parameter_table

    try:
        input_size = tuple(int(part) for part in args.input_size.split(","))
    except ValueError:
        input_size = ()
    if len(input_size) != 3 or min(input_size) < 1:
        raise TrainlabError(f"--input-size must be C,H,W such as 1,28,28, got {args.input_size!r}")
    if input_size[0] > MAX_INPUT_CHANNELS or max(input_size[1:]) > MAX_IMAGE_SIZE:
        raise TrainlabError(f"--input-size must have at most {MAX_INPUT_CHANNELS} channels and {MAX_IMAGE_SIZE} "
                            f"pixels a side, got {args.input_size!r}")
    if not 1 <= args.num_classes <= MAX_CLASSES:
        raise TrainlabError(f"--num-classes must be between 1 and {MAX_CLASSES:,}, got {args.num_classes:,}")
    model = create_model(args.model, input_size, args.num_classes)
    freeze_parameters(model, args.freeze)
    out.say(str(model))
    table, totals = parameter_table(model)
    out.say(table)
    layers, flops = layer_table(model, input_size)
    out.say(layers)
    out.result({**totals, **flops})
    return EXIT_OK


# ---------------------------------------------------------------------------------------------------------------


def set_threads(threads: int) -> None:
    """Apply --threads for commands that do not carry it in a TrainConfig."""
    if threads < 1:
        raise TrainlabError(f"--threads must be >= 1, got {threads}")
    if threads > MAX_THREADS:
        raise TrainlabError(f"--threads must be <= {MAX_THREADS:,}, got {threads:,}")
    import torch

    torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: exit 0 on success, 2 on bad input or usage, 1 on anything else."""
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        if getattr(args, "command", None) == "predict" and not any(extra.startswith("-") for extra in extras):
            args.images.extend(extras)  # image files after options: predict RUN --top-k 5 a.png b.png
        else:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    out = Output(getattr(args, "json", False))
    try:
        return run_command(args, out)
    except BrokenPipeError:  # the reader of our output went away (`trainlab ... | head`): end quietly
        quiet_closed_streams()
        return 128 + signal.SIGPIPE


def run_command(args: argparse.Namespace, out: Output) -> int:
    """The command's handler, with every error turned into one line and its exit status."""
    args.warnings = suspicious_inputs(args)
    try:
        if getattr(args, "threads", None) is not None and args.command != "train":
            set_threads(args.threads)
        status = args.handler(args, out)
        for text in args.warnings:  # after success only: a bad input's one error line stays the only line
            print(f"trainlab {args.command}: warning: {text}", file=sys.stderr, flush=True)
        return status
    except TrainingInterrupted as exc:
        if exc.signal_name == "SIGPIPE":
            quiet_closed_streams()
        print(str(exc), file=sys.stderr)
        return 128 + signal.Signals[exc.signal_name].value
    except TrainlabError as exc:
        if args.debug:
            raise
        print(f"trainlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        raise  # main ends quietly
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except Exception as exc:  # noqa: BLE001 - one line for users; --debug shows the traceback
        if args.debug:
            raise
        print(f"trainlab {args.command}: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for "
              "the traceback)", file=sys.stderr)
        return EXIT_FAILURE


def warn(args: argparse.Namespace, text: str) -> None:
    """Note a legal but probably unmeant input; the note goes to stderr once the command has succeeded."""
    args.warnings.append(text)


def suspicious_inputs(args: argparse.Namespace) -> list[str]:
    """Warnings for legal flag values that are likely mistakes (each documented in its flag's --help)."""
    notes = []
    cpus = os.cpu_count() or 1
    for flag, value in (("--threads", getattr(args, "threads", None)), ("--workers", getattr(args, "workers", None))):
        if isinstance(value, int) and cpus < value <= (MAX_THREADS if flag == "--threads" else MAX_WORKERS):
            notes.append(f"{flag} {value} is more than the {cpus} CPUs here; they will compete for them")
    pngs = [getattr(args, "confusion_matrix", None)]
    if args.command in ("lr-find", "plot") or getattr(args, "data_command", None) == "show":
        pngs.append(args.out)
    for path in filter(None, pngs):
        if Path(path).suffix.lower() != ".png":
            notes.append(f"{path} does not end in .png; a PNG image is written to it all the same")
    return notes


def quiet_closed_streams() -> None:
    """Point stdout (and stderr, if it is the closed pipe too) at /dev/null so that exiting prints nothing."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - for the rest of the process
            try:
                os.dup2(getattr(sys, name).fileno(), 1 if name == "stdout" else 2)
            except OSError:
                pass


if __name__ == "__main__":
    raise SystemExit(main())
