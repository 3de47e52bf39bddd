"""The command line: parses, calls the Python API, prints. Heavy imports happen inside the commands.

options.py      argument types, the flags made from TrainConfig's fields, output, one-line errors
train.py        train, lr-find
checkpoints.py  evaluate, predict, export
data.py         data show, data info
runs.py         runs, plot, summary
serve.py        serve
review.py       review
tune.py         tune
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from trainlab import __version__
from trainlab.cli import checkpoints, data, review, runs, serve, train, tune
from trainlab.cli.launch import LAUNCH_REPORTS_ENV, tell_launcher
from trainlab.cli.options import (  # noqa: F401 - DATA_FLAGS and train_config re-exported for the tests
    DATA_FLAGS,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    Output,
    Parser,
    refuse_unknown_arguments,
    train_config,
)
from trainlab.config import MAX_THREADS, MAX_WORKERS
from trainlab.errors import TrainingInterrupted, TrainlabError


def build_parser() -> Parser:
    parser = Parser(prog="trainlab", description="Train, evaluate, save and use image classifiers with PyTorch.")
    parser.add_argument("--version", action="version", version=f"trainlab {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for module in (train, tune, checkpoints, review, runs, data, serve):
        module.add_commands(commands)
    return parser


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
            refuse_unknown_arguments(parser, args, extras)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    args.argv = [str(arg) for arg in (argv if argv is not None else sys.argv[1:])]  # for train --nproc
    out = Output(getattr(args, "json", False) and process_rank() == 0)
    try:
        return run_command(args, out)
    except BrokenPipeError:  # the reader of our output went away (`trainlab ... | head`): end quietly
        quiet_closed_streams()
        return 128 + signal.SIGPIPE


def under_torchrun() -> bool:
    """One of several processes torchrun started (read from its environment: no torch import here)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def process_rank() -> int:
    """This process's rank when torchrun started several (0 otherwise)."""
    return int(os.environ.get("RANK", "0")) if under_torchrun() else 0


def lost_another_process(exc: Exception) -> bool:
    """A collective failed because another process of the run died (it printed its own error)."""
    text = str(exc)
    return type(exc).__name__ == "DistBackendError" or any(
        part in text for part in ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
    )


def run_command(args: argparse.Namespace, out: Output) -> int:
    """The command's handler, with every error turned into one line and its exit status."""
    args.warnings = suspicious_inputs(args)
    label = f"{args.command} (rank {process_rank()})" if under_torchrun() else args.command  # who is speaking
    try:
        if getattr(args, "threads", None) is not None and args.command != "train":
            set_threads(args.threads)
        status = args.handler(args, out)
        for text in args.warnings if not (process_rank() or os.environ.get(LAUNCH_REPORTS_ENV)) else ():
            print(f"trainlab {label}: warning: {text}", file=sys.stderr, flush=True)  # the launcher, or rank 0
        return status
    except TrainingInterrupted as exc:
        if exc.signal_name == "SIGPIPE":
            quiet_closed_streams()
        last_line(str(exc), once=True)  # every process of a launch stopped together
        return 128 + signal.Signals[exc.signal_name].value
    except TrainlabError as exc:
        if args.debug:
            raise
        last_line(f"trainlab {label}: error: {exc}", once=True)  # every process refuses the same input
        return EXIT_USAGE
    except BrokenPipeError:
        raise  # main ends quietly
    except KeyboardInterrupt:
        last_line("interrupted")
        return 128 + signal.SIGINT
    except Exception as exc:  # noqa: BLE001 - one line for users; --debug shows the traceback
        if args.debug:
            raise
        if lost_another_process(exc):
            last_line(f"trainlab {label}: stopped: another process of the run failed", secondary=True)
            return EXIT_FAILURE
        last_line(
            f"trainlab {label}: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)"
        )
        return EXIT_FAILURE


def last_line(line: str, secondary: bool = False, once: bool = False) -> None:
    """A command's last line on stderr; under `train --nproc` the launcher prints it (one line, one place).

    `once`: a line every process of a launch says alike, printed by rank 0 alone under a torchrun of the user's.
    """
    if tell_launcher(line, secondary):
        return
    if not (once and process_rank()):
        print(line, file=sys.stderr, flush=True)


def suspicious_inputs(args: argparse.Namespace) -> list[str]:
    """Warnings for legal flag values that are likely mistakes (each documented in its flag's --help)."""
    notes = []
    cpus = os.cpu_count() or 1
    for flag, value in (("--threads", getattr(args, "threads", None)), ("--workers", getattr(args, "workers", None))):
        if isinstance(value, int) and cpus < value <= (MAX_THREADS if flag == "--threads" else MAX_WORKERS):
            notes.append(f"{flag} {value} is more than the {cpus} CPUs here; they will compete for them")
    pngs = [getattr(args, "confusion_matrix", None), getattr(args, "show_input", None)]
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
