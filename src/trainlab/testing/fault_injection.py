"""Fault injection: SIGKILL a short training run at many moments, resume it each time, compare with a clean run.

    .venv/bin/python scripts/fault_injection.py [--kills 40] [--seed 0] [--work-dir DIR] [--keep]
    .venv/bin/python -m trainlab.testing.fault_injection  (the same)

The kills are real SIGKILLs sent from outside at varied moments; nothing in trainlab knows it is being tested.
The script watches the run directory to aim them: during start-up, during training steps, during evaluation
(just after the checkpoint that ends an epoch's last step), during a checkpoint write (a temporary file is
present) and just after an epoch-end checkpoint (before metrics.jsonl is rewritten). After every kill it checks
that checkpoints/last.pt, if present, loads; then it resumes with `trainlab train --resume`. At the end the final
checkpoint and metrics.jsonl must equal those of a run that was never interrupted, with the same settings, bit
for bit, except the two metrics fields that time the machine (`machine_seconds`, `machine_samples_per_second`).

The uninterrupted run trains in this process, the interrupted ones in child processes; all of them on one CPU
thread: floating-point sums depend on the thread count, and the promise is "same settings, same results".
tests/test_reliability.py runs a short version of this in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainlab.layout import BEST_CHECKPOINT, CHECKPOINT_FOLDER, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE, SUMMARY_FILE
from trainlab.testing.compare import compare_runs
from trainlab.testing.synthetic import write_fashion_layout

TRAIN_IMAGES, TEST_IMAGES = 640, 1000  # a large test set makes evaluation long enough to be hit
VAL_SPLIT = 0.25  # 16 of each class's 64 images: 480 left to train on, and best.pt is written too
BATCH_SIZE, CHECKPOINT_EVERY = 16, 3
STEPS_PER_EPOCH = 30  # 480 / 16: a multiple of CHECKPOINT_EVERY, so a checkpoint lands right after each epoch's
# last step and evaluation follows at once
SETTINGS = [
    "--batch-size",
    str(BATCH_SIZE),
    "--checkpoint-every",
    str(CHECKPOINT_EVERY),
    "--val-split",
    str(VAL_SPLIT),
    "--shuffle",
    "--augment",
    "--schedule",
    "cosine",
    "--optimizer",
    "adam",
    "--seed",
    "3",
    "--device",
    "cpu",
    "--no-download",
    "--quiet",
]
FIRST_MOMENT = "before first checkpoint"  # the first kill of every run: its resume must start from the beginning
MOMENTS = ("training step", "evaluation", "checkpoint write", "after epoch checkpoint", "start-up")
ENVIRONMENT = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
POLL = 0.002  # seconds between looks at the run directory
PATIENCE = 120.0  # seconds to wait for a moment before giving up on it


@dataclass
class Kill:
    """One SIGKILL: the moment aimed at and what the run directory showed."""

    moment: str
    observed: str
    killed: bool


@dataclass
class Report:
    kills: list[Kill] = field(default_factory=list)
    launches: int = 0
    differences: list[str] = field(default_factory=list)

    def moments_hit(self) -> set[str]:
        return {kill.moment for kill in self.kills if kill.killed}


def trainlab(*args: str | os.PathLike) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trainlab", *map(str, args)],
        env={**os.environ, **ENVIRONMENT},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def train_in_this_process(args: list[str | os.PathLike]) -> None:
    """The uninterrupted run, on one thread like the child processes."""
    from trainlab.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
            status = main([str(arg) for arg in args])
    finally:
        torch.set_num_threads(threads)
    if status != 0:
        raise RuntimeError(f"the uninterrupted run failed with exit status {status}")


def train_command(data_dir: Path, run_dir: Path, epochs: int = 3) -> list[str | os.PathLike]:
    """The original command, or --resume once the run has written its config."""
    if (run_dir / CONFIG_FILE).is_file():
        return ["train", "--resume", run_dir]
    return ["train", "--data-dir", data_dir, "--run-dir", run_dir, "--epochs", str(epochs), *SETTINGS]


def checkpoint_identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def read_position(path: Path) -> tuple[int, int] | None:
    """(epochs finished, batches into the next epoch) of a checkpoint, or None if it was replaced meanwhile."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (FileNotFoundError, RuntimeError):
        return None
    return int(payload["epoch"]), int(payload["epoch_progress"]["batch"])


def wait_for(process: subprocess.Popen, condition, timeout: float = PATIENCE) -> Any:
    """Poll condition() until it returns something truthy; None if the process ends first."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(POLL)
    return None


def temporary_file_in(folder: Path, skip: int):
    """A condition: the name of a checkpoint being written in `folder`, after `skip` such writes are passed over
    (to spread the kills over the run)."""
    seen: set[str] = set()

    def condition() -> str | None:
        nonlocal skip
        try:
            names = [entry for entry in os.listdir(folder) if entry.endswith(".tmp") and entry not in seen]
        except FileNotFoundError:
            return None
        if names and skip:
            skip -= 1
            seen.update(names)
            return None
        return names[0] if names else None

    return condition


def aim_and_kill(process: subprocess.Popen, run_dir: Path, moment: str, rng: random.Random) -> Kill:
    """Wait for `moment` in the run, then SIGKILL the process."""
    last = run_dir / LAST_CHECKPOINT
    before = checkpoint_identity(last)

    def new_checkpoint() -> tuple[int, int] | None:
        now = checkpoint_identity(last)
        if now is None or now == before:
            return None
        return read_position(last)

    def checkpoint_at_batch(batch: int):
        """A condition: the next new checkpoint written at `batch` of an epoch (others are passed over)."""

        def condition() -> tuple[int, int] | None:
            nonlocal before
            position = new_checkpoint()
            if position is not None and position[1] != batch:
                before = checkpoint_identity(last)
                return None
            return position

        return condition

    observed = None
    if moment == FIRST_MOMENT:
        if wait_for(process, lambda: (run_dir / CONFIG_FILE).is_file()):  # written just before the first step
            observed = "as training began" if not last.exists() else "too late: a checkpoint was already written"
    elif moment == "start-up":
        delay = rng.uniform(0.0, 3.0)
        time.sleep(delay)
        observed = f"{delay:.2f} s after launch"
    elif moment == "training step":
        for _ in range(rng.randint(1, 4)):  # spread the kills over the run
            position = wait_for(process, new_checkpoint)
            before = checkpoint_identity(last)
        if position:
            delay = rng.uniform(0.0, 0.03)
            time.sleep(delay)
            observed = f"{1000 * delay:.0f} ms after the checkpoint at epoch {position[0] + 1} batch {position[1]}"
    elif moment == "evaluation":
        position = wait_for(process, checkpoint_at_batch(STEPS_PER_EPOCH))
        if position:
            observed = f"just after epoch {position[0] + 1}'s last step"
    elif moment == "checkpoint write":
        name = wait_for(process, temporary_file_in(run_dir / CHECKPOINT_FOLDER, skip=rng.randint(0, 3)))
        if name:
            observed = f"while {name} was being written"
    elif moment == "after epoch checkpoint":
        position = wait_for(process, checkpoint_at_batch(0))
        if position:
            observed = f"just after the checkpoint that ends epoch {position[0]}"
    else:
        raise ValueError(f"unknown moment {moment!r}")
    if process.poll() is not None:
        return Kill(moment, f"the run ended first (exit {process.returncode})", killed=False)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return Kill(moment, observed or "timed out waiting", killed=True)


def check_survivors(run_dir: Path) -> list[str]:
    """What a kill may leave: the previous or the new checkpoint, never a broken one; metrics that parse."""
    from trainlab.checkpoint import load_checkpoint

    problems = []
    for checkpoint in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        path = run_dir / checkpoint
        if path.is_file():
            try:
                if load_checkpoint(path).kind != "trainlab":
                    problems.append(f"{path} is not a trainlab checkpoint")
            except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
                problems.append(f"{path} does not load after a kill: {exc}")
    metrics = run_dir / METRICS_FILE
    if metrics.is_file():
        try:
            [json.loads(line) for line in metrics.read_text().splitlines()]
        except ValueError as exc:
            problems.append(f"{metrics} is broken after a kill: {exc}")
    return problems


def finish(run_dir: Path, data_dir: Path, report: Report) -> None:
    """Resume until the run says it is done."""
    for _ in range(5):
        process = trainlab(*train_command(data_dir, run_dir))
        report.launches += 1
        _, stderr = process.communicate(timeout=600)
        if process.returncode == 0:
            return
        report.differences.append(f"resume exited {process.returncode}: {stderr.strip()[-500:]}")
    raise RuntimeError(f"{run_dir} did not finish: {report.differences}")


def run_fault_injection(
    work_dir: Path, kills: int, seed: int = 0, moments: tuple[str, ...] = MOMENTS, epochs: int = 3
) -> Report:
    """Kill a run `kills` times (first before its first checkpoint, then at `moments` in turn), resume it each
    time, and compare it with a run that was never interrupted."""
    rng = random.Random(seed)
    data_dir = write_fashion_layout(work_dir / "data", TRAIN_IMAGES, TEST_IMAGES)
    reference_dir, run_dir = work_dir / "reference", work_dir / "interrupted"
    train_in_this_process(train_command(data_dir, reference_dir, epochs))
    report = Report()
    for index in range(kills):
        if (run_dir / SUMMARY_FILE).is_file():
            finish(run_dir, data_dir, report)  # a kill may have landed after the last write; the resume says so
            break
        process = trainlab(*train_command(data_dir, run_dir, epochs))
        report.launches += 1
        moment = FIRST_MOMENT if index == 0 else moments[(index - 1) % len(moments)]
        kill = aim_and_kill(process, run_dir, moment, rng)
        report.kills.append(kill)
        if not kill.killed:
            if process.returncode != 0:
                report.differences.append(f"the run failed: {process.stderr.read().strip()[-500:]}")
            break
        report.differences += check_survivors(run_dir)
    finish(run_dir, data_dir, report)
    report.differences += compare_runs(reference_dir, run_dir)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=40, help="how many SIGKILLs, spread over the moments")
    parser.add_argument("--epochs", type=int, default=6, help="epochs of each run (default: 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random delays")
    parser.add_argument("--work-dir", type=Path, help="where data and runs go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="trainlab-faults-"))
    started = time.monotonic()
    report = Report()
    round_number = 0
    # A run ends after a dozen or two kills; as many runs as it takes.
    while sum(kill.killed for kill in report.kills) < args.kills:
        wanted = min(4 * args.epochs, args.kills - sum(kill.killed for kill in report.kills))
        round_report = run_fault_injection(
            work_dir / f"round-{round_number}", wanted, args.seed + round_number, epochs=args.epochs
        )
        report.kills += round_report.kills
        report.launches += round_report.launches
        report.differences += [f"round {round_number}: {d}" for d in round_report.differences]
        for kill in round_report.kills:
            print(
                f"round {round_number}: {'killed' if kill.killed else 'no kill'} at {kill.moment}: {kill.observed}",
                flush=True,
            )
        round_number += 1
        if not any(kill.killed for kill in round_report.kills):
            report.differences.append("a whole run ended before any kill landed")
            break
    hit = sorted({kill.moment for kill in report.kills if kill.killed})
    print(
        f"{sum(k.killed for k in report.kills)} kills, {report.launches} launches, "
        f"moments hit: {', '.join(hit)}; {time.monotonic() - started:.0f} s"
    )
    if not args.work_dir and not args.keep:
        shutil.rmtree(work_dir, ignore_errors=True)
    if report.differences:
        print("DIFFERENCES:\n" + "\n".join(report.differences))
        return 1
    print("identical: every interrupted run ended bit for bit like the uninterrupted one")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
