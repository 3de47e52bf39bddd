"""What every command shares: argument types, the flags made from TrainConfig's fields, output, errors."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import sys
from typing import Any, NoReturn

from trainlab.config import DEVICES, GROUPS, data_source_keys, flag_fields
from trainlab.errors import TrainlabError
from trainlab.resolution import resolve
from trainlab.validation import parse_duration

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: the problem and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def refuse_unknown_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> NoReturn:
    """Arguments no parser took, refused by the command that was given (its name, its --help), naming the flag
    nearest a misspelt one: `trainlab train --epochz 3` is train's mistake, not trainlab's."""
    command = command_parser(parser, args)
    flags = [name for action in command._actions for name in action.option_strings if name.startswith("--")]
    typed = [extra.split("=")[0] for extra in extras if extra.startswith("--")]
    nearest = [match for name in typed for match in difflib.get_close_matches(name, flags, n=1, cutoff=0.7)]
    hint = f"; did you mean {nearest[0]}?" if nearest else ""
    command.error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command `args` were parsed for: `trainlab data show`'s, not `trainlab`'s."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and getattr(args, action.dest, None) in action.choices:
            return command_parser(action.choices[getattr(args, action.dest)], args)
    return parser


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


def cannot_write(path: Any, exc: OSError) -> TrainlabError:
    """The one-line error for an output file that could not be written."""
    return TrainlabError(f"cannot write {path}: {exc.strerror or exc}")


def warn(args: argparse.Namespace, text: str) -> None:
    """Note a legal but probably unmeant input; the note goes to stderr once the command has succeeded."""
    args.warnings.append(text)


# argument types ---------------------------------------------------------------------------------------------


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


def batch_limit(text: str) -> int | float:
    """--limit-*-batches: a whole number of batches (5) or a fraction of them (0.1; 1.0 is all)."""
    try:
        return int(text) if text.strip().lstrip("+").isdigit() else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of batches (e.g. 5) or a fraction (e.g. 0.1), got {text!r}"
        ) from None


def duration(text: str) -> float:
    """--time-budget: seconds (300) or a duration (90s, 5m, 1.5h)."""
    try:
        return parse_duration("the time budget", text)
    except TrainlabError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("the time budget ")) from None


KINDS = {
    "path": path_argument,
    "name": name_argument,
    "device": device_argument,
    "lr": learning_rate,
    "limit": batch_limit,
    "duration": duration,
}


# flags <-> config keys --------------------------------------------------------------------------------------


def flag_of(key: str) -> str:
    """The command-line flag of a config key: val_split -> --val-split."""
    return "--" + key.replace("_", "-")


def key_of(flag: str) -> str:
    """The config key of a command-line flag: --val-split -> val_split."""
    return flag.lstrip("-").replace("-", "_")


def given(args: argparse.Namespace, keys: tuple[str, ...]) -> dict[str, Any]:
    """The values of those keys' flags that were given on the command line."""
    return {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}


def train_config(args: argparse.Namespace, ignore: tuple[str, ...] = ()) -> Any:
    """The TrainConfig of --preset < --config < the flags given (trainlab.resolve); `ignore`: config-file tables
    another command reads (tune's [search])."""
    flags = given(args, TRAIN_KEYS)
    return resolve(
        args.preset, args.config, flags, trust_model_code=args.trust_model_code, named_model=args.model, ignore=ignore
    )


def _default_text(item: dataclasses.Field) -> str:
    if item.metadata.get("default_text"):
        return f" (default: {item.metadata['default_text']})"
    if item.default is dataclasses.MISSING or item.default is None:
        return ""  # a list: repeatable, empty by default
    if isinstance(item.default, bool):
        return f" (default: {'on' if item.default else 'off'})"
    return f" (default: {item.default:g})" if isinstance(item.default, float) else f" (default: {item.default})"


def config_flag(item: dataclasses.Field) -> tuple[str, dict[str, Any]]:
    """The argparse flag of a TrainConfig field, its help and default taken from the field.

    Every flag defaults to None (not given), so that presets and config files can fill in what flags leave out.
    """
    meta = item.metadata
    options: dict[str, Any] = {"help": (meta["help"] + _default_text(item)).replace("%", "%%")}
    type_name = str(item.type)
    if type_name.startswith("bool"):
        options["action"] = argparse.BooleanOptionalAction
    elif type_name.startswith("list"):
        options["action"] = "append"
    if meta.get("kind"):
        options["type"] = KINDS[meta["kind"]]
    elif type_name.startswith(("int", "float")):
        options["type"] = int if type_name.startswith("int") else float
    if meta.get("metavar"):
        options["metavar"] = meta["metavar"]
    return flag_of(item.name), options


FIELDS = {item.name: item for item in flag_fields()}
TRAIN_KEYS = tuple(FIELDS)  # every config key but `extra` is a train flag
DATA_KEYS = data_source_keys()  # where the images come from: train, lr-find, evaluate, predict and data take these
DATA_FLAGS = [config_flag(FIELDS[key]) for key in DATA_KEYS]
RUNTIME_KEYS = ("device", "threads")  # how, not what: every command that computes takes these


def add_config_flags(
    parser: argparse.ArgumentParser, keys: tuple[str, ...], groups: dict[str, argparse._ArgumentGroup] | None = None
) -> dict[str, argparse._ArgumentGroup]:
    """Add the flags of these config keys to parser, in --help groups (data, model, optimization, ...)."""
    groups = {} if groups is None else groups
    for group in GROUPS:
        for key in keys:
            if FIELDS[key].metadata["group"] == group:
                if group not in groups:
                    groups[group] = parser.add_argument_group(group)
                flag, options = config_flag(FIELDS[key])
                groups[group].add_argument(flag, **options)
    return groups


def add_data_options(
    parser: argparse.ArgumentParser, extra_keys: tuple[str, ...] = (), note: str | None = None, all_groups: bool = False
) -> dict[str, argparse._ArgumentGroup]:
    """The data source flags (and extra_keys), --device, --threads and --no-download; all_groups: make every
    --help group first, so that they are listed in their order (data, model, optimization, ...)."""
    groups = {"data": parser.add_argument_group("data", note)}
    if all_groups:
        groups.update((name, parser.add_argument_group(name)) for name in GROUPS[1:])
    add_config_flags(parser, (*DATA_KEYS, *extra_keys, *RUNTIME_KEYS), groups)
    groups["data"].add_argument("--no-download", action="store_true", help="never download missing data files")
    return groups


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def add_trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trust-model-code",
        action="store_true",
        help="build a package.module:Class model that a checkpoint or config file names (imports "
        "and runs that module: trusted files only; --model NAME trusts that one model)",
    )


def add_checkpoint_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint",
        metavar="CHECKPOINT",
        type=path_argument,
        help="run directory, trainlab checkpoint or state_dict file",
    )
    parser.add_argument("--model", type=name_argument, help="model of a plain state_dict file (e.g. mlp)")
    parser.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow loading a whole pickled model (runs code from the file: trusted files only)",
    )
    add_trust_option(parser)
