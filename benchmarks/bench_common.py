"""What floor.py, floor_program.py and conv_loop.py share: Fashion-MNIST read from its IDX files, the machine's
description, whole-process timing, medians and the JSON results file. Standard library and torch only: no trainlab.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
RESULTS_DIR = BENCHMARKS / "results"
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # CPUs that compute bf16 natively; others emulate it, slowly
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def fashion_mnist_raw(data_dir: str | Path) -> Path:
    """DIR/FashionMNIST/raw, torchvision's layout; exits with a message when its training images are missing."""
    raw = Path(data_dir) / "FashionMNIST" / "raw"
    name = IDX_FILES["train_images"]
    if not (raw / name).exists() and not (raw / f"{name}.gz").exists():
        sys.exit(f"no Fashion-MNIST under {raw}; pass --data-dir (these benchmarks never download)")
    return raw


def read_idx(path: Path):
    """One IDX file (plain or .gz) as a uint8 tensor of its shape: (N,) labels or (N, H, W) images."""
    import torch

    if path.exists():
        data = bytearray(path.read_bytes())
    else:
        with gzip.open(path.with_name(path.name + ".gz"), "rb") as handle:
            data = bytearray(handle.read())
    dimensions = data[3]  # magic: 0, 0, type (8: uint8), number of dimensions
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions)]
    return torch.frombuffer(data, dtype=torch.uint8, offset=4 + 4 * dimensions).view(shape)


def load_fashion_mnist(data_dir: str | Path) -> dict[str, Any]:
    """Fashion-MNIST as uint8 images (N, 1, 28, 28) and int64 labels (N,), keyed like IDX_FILES."""
    raw = fashion_mnist_raw(data_dir)
    arrays = {key: read_idx(raw / name) for key, name in IDX_FILES.items()}
    for split in ("train", "test"):
        arrays[f"{split}_images"] = arrays[f"{split}_images"].unsqueeze(1)
        arrays[f"{split}_labels"] = arrays[f"{split}_labels"].long()
    return arrays


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where they cannot be read."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(precision: str) -> str:
    """auto: bf16 where the CPU has avx512_bf16 or amx_bf16, else fp32; fp32 and bf16 stay as asked."""
    if precision != "auto":
        return precision
    return "bf16" if cpu_flags() & set(CPU_BF16_FLAGS) else "fp32"


def machine_info(threads: int | None) -> dict[str, Any]:
    """What the figures were measured on: CPU model and bf16 flags, torch version and threads, load average."""
    import torch

    flags = cpu_flags()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "bf16_flags": {flag: flag in flags for flag in (*CPU_BF16_FLAGS, "amx_tile")},
        "torch_threads": threads or torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "git_commit": git_commit(),
        "load_average_at_start": load_average(),
    }


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    """The checkout's short commit, or None outside git."""
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=BENCHMARKS, capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return completed.stdout.strip() or None


def machine_line(machine: dict[str, Any]) -> str:
    """machine_info as one Markdown sentence, for the top of a report."""
    flags = ", ".join(f"{flag} {'yes' if present else 'no'}" for flag, present in machine["bf16_flags"].items())
    return (
        f"Measured {machine['date']} on {machine['cpu_model']}, {machine['cpu_cores']} cores ({flags}); "
        f"{machine['torch_threads']} torch threads, Python {machine['python']}, torch {machine['torch']}, "
        f"commit {machine['git_commit']}; load average at start {machine['load_average_at_start']}, "
        f"at end {load_average()}."
    )


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages; one near the core count means noisy timings."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


# glibc keeps freed blocks instead of unmapping them after every step: what trainlab's keep_freed_memory() asks
# with mallopt for a CPU run (each activation over 128 KiB is otherwise mmapped afresh at every step, and the page
# faults cost 5-10% of an epoch); given to the hand-written programs through the environment, so that they start
# on the same footing without code of their own for it
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30), "MALLOC_TRIM_THRESHOLD_": str((1 << 31) - 1)}  # bytes


def child_environment(threads: int | None, keep_freed_memory: bool = False) -> dict[str, str]:
    """This process's environment, with OMP_NUM_THREADS set when a thread count was asked for, and glibc's
    KEEP_FREED_MEMORY settings when asked for."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    if keep_freed_memory:
        env.update(KEEP_FREED_MEMORY)
    return env


def run_timed(command: Sequence[str], env: dict[str, str]) -> tuple[float, str]:
    """Run `command` to completion: (wall seconds, start-up included; stdout). Exits loudly on a failure."""
    started = time.perf_counter()
    completed = subprocess.run(list(command), env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-20:])
        sys.exit(f"benchmark command failed with exit status {completed.returncode}: {' '.join(command)}\n{tail}")
    return seconds, completed.stdout


def last_json_line(stdout: str) -> dict[str, Any]:
    """The JSON object a program printed as its last stdout line ({} when there is none)."""
    lines = stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and every value."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def write_results(name: str, results: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    """results as JSON in results_dir/<name>-<time stamp>.json; returns the path."""
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = results_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def script_parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the first paragraph of a script's docstring, with --data-dir."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TRAINLAB_DATA_DIR", "data"),
        help="torchvision-layout data directory holding FashionMNIST/raw (default: $TRAINLAB_DATA_DIR, else ./data)",
    )
    return parser


def driver_parser(doc: str, epochs: int, rounds: int, hand_written: str) -> argparse.ArgumentParser:
    """The flags every driver here takes: data, epochs, rounds, threads, seed, a batch limit for smoke runs,
    glibc's malloc setting for the hand-written program, and where the JSON goes. Finish with parse_driver."""
    parser = script_parser(doc)
    parser.add_argument("--epochs", type=int, default=epochs, help=f"epochs of every process (default: {epochs})")
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"rounds of the processes, in turn (default: {rounds})"
    )
    parser.add_argument("--threads", type=int, help="torch threads of every process (sets OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=int, default=0, help="the seed of every process (default: 0)")
    parser.add_argument(
        "--limit-train-batches", type=int, help="train on the first N batches of every epoch only (smoke runs)"
    )
    parser.add_argument(
        "--no-keep-freed-memory",
        dest="keep_freed_memory",
        action="store_false",
        help=f"leave glibc's malloc as it is for {hand_written} (by default it gets trainlab's setting, through "
        "MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    return parser


def parse_driver(parser: argparse.ArgumentParser, positive: Sequence[str] = ()) -> argparse.Namespace:
    """The parsed flags: counts checked to be >= 1 (driver_parser's and `positive`), the data directory checked
    and made absolute."""
    args = parser.parse_args()
    for name in ("epochs", "rounds", "threads", "limit_train_batches", *positive):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    fashion_mnist_raw(args.data_dir)
    args.data_dir = str(Path(args.data_dir).resolve())
    return args


DRIVER_SETTINGS = ("epochs", "rounds", "threads", "seed", "limit_train_batches", "keep_freed_memory")  # flags saved


def run_driver(
    name: str,
    args: argparse.Namespace,
    measure: Callable[[argparse.Namespace], dict[str, Any]],
    report: Callable[[dict[str, Any]], str],
    settings: Sequence[str] = (),
) -> int:
    """Describe the machine, measure, write results/<name>-<time>.json and print the Markdown report."""
    results = {
        "machine": machine_info(args.threads),
        "settings": {key: getattr(args, key) for key in (*settings, *DRIVER_SETTINGS)},
        "measured": measure(args),
    }
    path = write_results(name, results, args.results_dir)
    print(report(results))
    print(f"\nResults written to {path}", file=sys.stderr)
    return 0


def freed_memory_line(who: str, settings: dict[str, Any]) -> str:
    """The report's line saying whether the hand-written program got glibc's KEEP_FREED_MEMORY settings."""
    given = "yes" if settings["keep_freed_memory"] else "no (--no-keep-freed-memory)"
    return f"- {who} ran with glibc keeping freed memory as trainlab asks for it: {given}."


def target_line(what: str, ratio: float, target: float) -> str:
    """The report's line for a ratio and its target (at most `target` is met)."""
    return f"- {what}: **{ratio:.3f}x** (target ≤ {target:.2f}x: {'met' if ratio <= target else 'not met'})"
