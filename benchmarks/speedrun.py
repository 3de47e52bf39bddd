"""Time the speedrun preset as a user runs it: whole `trainlab train --preset speedrun` processes, one per seed.

    python benchmarks/speedrun.py --data-dir ../shared/data [--seeds 0 1 2] [--target 0.94] [--avx2] [-- train flags]

Prints a Markdown table: seed, wall seconds (start-up and data loading included) against the preset's time
budget (honoured when the wall time is within [0.97, 1.0] of it), the width and epochs the budget chose, the
test accuracy and its target, and the test accuracy per epoch.

--avx2 runs each process as an AVX2-only CPU would: oneDNN's convolutions, ATen's vector kernels and MKL's
matrix products capped at AVX2 (their own environment switches), and fp32 (`--precision fp32`, which `auto`
picks on such a CPU). With `-- --threads 1` besides, one core of this machine stands for the two of an
AVX2-only machine (about 120 GFLOP/s of 3x3 convolution in all).
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

BUDGET_TOLERANCE = 0.03  # the "honoured within 3%"
AVX2_ONLY = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def run_seed(seed: int, data_dir: str, extra: list[str], avx2: bool = False) -> dict:
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
            *(["--precision", "fp32"] if avx2 else []),
            *extra,
        ]
        environment = {**os.environ, **(AVX2_ONLY if avx2 else {})}
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=environment)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"seed {seed} failed: {result.stderr.strip().splitlines()[-1:]}")
        metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads(result.stdout.splitlines()[-1])
    plan = summary.get("time_budget", {})
    return {
        "seed": seed,
        "wall_seconds": wall,
        "budget": plan.get("time_budget"),
        "width": plan.get("width"),
        "epochs": len(metrics),
        "steps": summary.get("steps"),
        "test_accuracy": metrics[-1]["test_accuracy"],
        "per_epoch": [row["test_accuracy"] for row in metrics],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR", "data"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.94, help="test accuracy to reach (default 0.94)")
    parser.add_argument("--avx2", action="store_true", help="run as an AVX2-only CPU would: AVX2 kernels, fp32")
    parser.add_argument("extra", nargs="*", help="more train flags, after --")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        row = run_seed(seed, args.data_dir, args.extra, args.avx2)
        rows.append(row)
        print(
            f"seed {seed}: {row['wall_seconds']:.0f} s, {100 * row['test_accuracy']:.2f}%", file=sys.stderr, flush=True
        )
    print(f"load average after the runs: {os.getloadavg()[0]:.2f}")
    print("| seed | wall time | budget honoured | width | epochs (steps) | test accuracy | target met | per epoch |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        budget = row["budget"]
        within = budget is not None and (1 - BUDGET_TOLERANCE) * budget <= row["wall_seconds"] <= budget
        honoured = "no budget" if budget is None else "yes" if within else "no"
        met = row["test_accuracy"] >= args.target and (budget is None or row["wall_seconds"] <= budget)
        epochs = " ".join(f"{100 * a:.1f}" for a in row["per_epoch"])
        print(
            f"| {row['seed']} | {row['wall_seconds']:.1f} s{f' of {budget:g} s' if budget else ''} | {honoured} | "
            f"{row['width']} | {row['epochs']} ({row['steps']}) | {100 * row['test_accuracy']:.2f}% | "
            f"{'yes' if met else 'no'} (>= {100 * args.target:g}%) | {epochs} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
