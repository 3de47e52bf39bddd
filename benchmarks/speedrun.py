"""Time the speedrun preset as a user runs it: whole `trainlab train --preset speedrun` processes, one per seed.

    python benchmarks/speedrun.py --data-dir ../shared/data [--seeds 0 1 2]

Prints a Markdown table: seed, wall seconds (start-up and data loading included), test accuracy per epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_ACCURACY = 0.93
TARGET_SECONDS = 300.0


def run_seed(seed: int, data_dir: str, extra: list[str]) -> dict:
    """One speedrun process; its wall time and metrics."""
    trainlab = Path(sys.executable).with_name("trainlab")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [
            str(trainlab),
            "train",
            "--preset",
            "speedrun",
            "--seed",
            str(seed),
            "--data-dir",
            data_dir,
            "--run-dir",
            str(run_dir),
            "--quiet",
            "--json",
            *extra,
        ]
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"seed {seed} failed: {result.stderr.strip().splitlines()[-1:]}")
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "seed": seed,
        "wall_seconds": wall,
        "test_accuracy": metrics[-1]["test_accuracy"],
        "per_epoch": [row["test_accuracy"] for row in metrics],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR", "data"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("extra", nargs="*", help="more train flags, after --")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        row = run_seed(seed, args.data_dir, args.extra)
        rows.append(row)
        print(
            f"seed {seed}: {row['wall_seconds']:.0f} s, {100 * row['test_accuracy']:.2f}%", file=sys.stderr, flush=True
        )
    print(f"load average after the runs: {os.getloadavg()[0]:.2f}")
    print("| seed | wall time | test accuracy | target met | accuracy per epoch |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        met = row["test_accuracy"] >= TARGET_ACCURACY and row["wall_seconds"] <= TARGET_SECONDS
        epochs = " ".join(f"{100 * a:.1f}" for a in row["per_epoch"])
        print(
            f"| {row['seed']} | {row['wall_seconds']:.0f} s | {100 * row['test_accuracy']:.2f}% | "
            f"{'yes' if met else 'no'} | {epochs} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
