"""`trainlab train --nproc N`: checks made once before any process starts, torchrun, and the one line it ends with.

The processes torchrun starts do not print their last line (an error, "stopped", the resume command): each
writes it into a folder the launcher made (LAUNCH_REPORTS_ENV), and the launcher prints the one that tells
what happened, so a launch ends with one line from one place whatever the number of processes.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

from trainlab.cli.options import EXIT_FAILURE, EXIT_OK
from trainlab.errors import TrainlabError

NPROC_FLAG = "--nproc"
LAUNCH_REPORTS_ENV = "TRAINLAB_LAUNCH_REPORTS"  # the folder where each process leaves its last line


def process_count(text: str) -> int:
    """--nproc N: a whole number of processes, at least one."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 1024:
        raise argparse.ArgumentTypeError(f"expected a number of processes from 1 to 1024, got {text!r}")
    return int(text)


def _is_nproc_flag(option: str) -> bool:
    """--nproc, or an abbreviation of it that argparse accepted (--npro, --np): never an option of its own."""
    return len(option) > len("--n") and NPROC_FLAG.startswith(option)


def without_nproc(argv: list[str]) -> list[str]:
    """The command line minus --nproc N (or --nproc=N, or an abbreviation): what each process torchrun starts
    is given."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif _is_nproc_flag(arg):
            skip = True
        elif not (arg.startswith("--") and "=" in arg and _is_nproc_flag(arg.split("=", 1)[0])):
            kept.append(arg)
    return kept


def tell_launcher(line: str, secondary: bool = False) -> bool:
    """Leave this process's last line for the launcher to print; False when no trainlab launcher waits for it.

    `secondary`: this process only stopped because another one failed (that one's line tells the story).
    """
    folder = os.environ.get(LAUNCH_REPORTS_ENV)
    if not folder:
        return False
    rank = int(os.environ.get("RANK", "0"))
    try:
        (Path(folder) / f"rank-{rank}.json").write_text(json.dumps({"line": line, "secondary": secondary}))
    except OSError:
        return False  # the launcher's folder is gone: say it here rather than not at all
    return True


def _reports(folder: Path, first_rank: int | None) -> list[tuple[int, dict]]:
    """The lines the processes left, the first failed process's first, then by rank; the main lines before
    the "stopped because another failed" ones."""
    found = []
    for path in folder.glob("rank-*.json"):
        try:
            found.append((int(path.stem.removeprefix("rank-")), json.loads(path.read_text())))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda item: (bool(item[1].get("secondary")), item[0] != first_rank, item[0]))


def launch_torchrun(processes: int, argv: list[str]) -> int:
    """trainlab train --nproc N: torchrun (in this process) starts N processes of the same command.

    Ends with one line: the failed process's own error (its exit status, 2 for a bad input), or on SIGINT or
    SIGTERM the resume command the processes printed after saving their checkpoint (exit 128 + the signal).
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launch = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={processes}", "-m", "trainlab", *without_nproc(argv)]
    )
    for name in list(logging.root.manager.loggerDict):  # torch sets each logger's level: its notes are not ours
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    with tempfile.TemporaryDirectory(prefix="trainlab-launch-") as folder:
        os.environ[LAUNCH_REPORTS_ENV] = folder  # torchrun's processes inherit this process's environment
        try:
            run(launch)
        except ChildFailedError as failed:
            rank, failure = failed.get_first_failure()
            return _say_last_line(Path(folder), rank, {r: f.exitcode for r, f in failed.failures.items()})
        except SignalException as stop:
            return _say_last_line(Path(folder), None, {}, stop.sigval)
        finally:
            os.environ.pop(LAUNCH_REPORTS_ENV, None)
    return EXIT_OK


def _say_last_line(
    folder: Path, first_rank: int | None, exit_codes: dict[int, int], stop: signal.Signals | None = None
) -> int:
    """Print the one line that tells how the launch ended; return its exit status."""
    reports = _reports(folder, first_rank)
    if reports:
        rank, report = reports[0]
        print(report["line"], file=sys.stderr)
        code = exit_codes.get(rank, 128 + stop if stop else EXIT_FAILURE)
        return code if code > 0 else EXIT_FAILURE
    if stop is not None:
        print(f"trainlab train: stopped by {stop.name} before the processes saved anything", file=sys.stderr)
        return 128 + stop
    rank = first_rank if first_rank is not None else min(exit_codes, default=0)
    code = exit_codes.get(rank, EXIT_FAILURE)
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
    print(f"trainlab train: the run stopped: process {rank} {how}", file=sys.stderr)
    return code if code > 0 else EXIT_FAILURE


def check_before_launch(args: argparse.Namespace, config) -> None:
    """What every process would refuse, refused once here before any starts: the collective timeout, missing
    annotations files, a resume with another number of processes (an existing run directory: cmd_train)."""
    from trainlab.checkpoint import load_checkpoint
    from trainlab.engine import distributed
    from trainlab.layout import LAST_CHECKPOINT

    if distributed.launched_by_torchrun():
        raise TrainlabError("--nproc starts torchrun itself; under torchrun, leave --nproc out")
    distributed.collective_timeout()
    if args.resume:
        last = Path(args.resume) / LAST_CHECKPOINT
        if last.is_file():  # a run killed before its first checkpoint starts again with any number
            rng = load_checkpoint(last).payload.get("rng") or {}
            distributed.check_same_process_count(last, int(rng.get("world_size", 1)), args.nproc)
        return
    if config.dataset == "csv":
        from trainlab.data.annotations import read_csv_annotations

        for csv_file in filter(None, (config.annotations, config.test_annotations)):
            read_csv_annotations(csv_file, config.image_dir)
