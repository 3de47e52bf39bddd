"""One process with 2 threads against 2 processes with 1 thread each (torchrun, DDP on gloo), and what share of a
DDP step is communication.

    python benchmarks/distributed.py --data-dir ../shared/data [--models mlp cnn] [--rounds 2]

Part 1 runs whole `trainlab train --epochs 1` processes, alternating, and reports each epoch's training time
(machine_seconds of metrics.jsonl: train + evaluation, start-up excluded) and the wall time. Part 2 starts
2 processes under torchrun that time training steps of the model with DDP's gradient all-reduce and without it
(`no_sync`), on random batches: the difference is the communication share of a step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BATCH = {"mlp": 64, "cnn": 256}  # the tutorial's batch for the mlp, the speedrun preset's for the cnn (global)


def epoch_run(model: str, data_dir: str, processes: int) -> dict[str, float]:
    """One `trainlab train --epochs 1` process (or --nproc 2 launch); its epoch time and wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "run"
        command = [sys.executable, "-m", "trainlab", "train", "--model", model, "--epochs", "1", "--quiet"]
        command += ["--data-dir", data_dir, "--run-dir", str(run_dir), "--device", "cpu"]
        command += ["--global-batch-size", str(BATCH[model])]
        env = dict(os.environ)
        if processes == 1:
            command += ["--threads", "2"]
        else:
            command += ["--nproc", str(processes)]
            env["OMP_NUM_THREADS"] = "1"
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"{' '.join(command)} failed: {result.stderr.strip().splitlines()[-1:]}")
        row = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    return {"epoch_seconds": row["machine_seconds"], "wall_seconds": wall, "test_accuracy": row["test_accuracy"]}


def worker(model_name: str, steps: int) -> None:
    """Under torchrun: time `steps` DDP training steps with and without the gradient all-reduce."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from trainlab.models import create_model

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = DistributedDataParallel(create_model(model_name, (1, 28, 28), 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    batch = BATCH[model_name] // dist.get_world_size()
    images, labels = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()

    timings = {}
    for name in ("with all-reduce", "without (no_sync)", "with all-reduce again"):
        for _ in range(3):
            step()
        dist.barrier()
        started = time.perf_counter()
        for _ in range(steps):
            if name.startswith("without"):
                with model.no_sync():
                    step()
            else:
                step()
        dist.barrier()
        timings[name] = (time.perf_counter() - started) / steps
    if dist.get_rank() == 0:
        print(json.dumps(timings))
    dist.destroy_process_group()


def communication_share(model: str, steps: int) -> dict[str, float]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", __file__]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*command, "--worker", model, "--steps", str(steps)], capture_output=True, text=True, env=env
    )
    if result.returncode != 0:
        sys.exit(f"the torchrun worker failed: {result.stderr.strip().splitlines()[-3:]}")
    timings = json.loads(result.stdout.strip().splitlines()[-1])
    synced = (timings["with all-reduce"] + timings["with all-reduce again"]) / 2
    local = timings["without (no_sync)"]
    return {"step_ms": 1000 * synced, "no_sync_ms": 1000 * local, "share": max(0.0, 1 - local / synced)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR", "data"))
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return 0
    print(
        "| model | global batch | 1 process x 2 threads: epoch s (wall s) | 2 processes x 1 thread: epoch s (wall s) "
        "| ratio | DDP step ms | no_sync step ms | communication share |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in args.models:
        single, double = [], []
        for _ in range(args.rounds):  # alternating, so that a slower spell of a shared machine hits both
            single.append(epoch_run(model, args.data_dir, 1))
            double.append(epoch_run(model, args.data_dir, 2))
        one = statistics.median(r["epoch_seconds"] for r in single)
        two = statistics.median(r["epoch_seconds"] for r in double)
        one_wall = statistics.median(r["wall_seconds"] for r in single)
        two_wall = statistics.median(r["wall_seconds"] for r in double)
        share = communication_share(model, args.steps)
        print(
            f"| {model} | {BATCH[model]} | {one:.1f} ({one_wall:.1f}) | {two:.1f} ({two_wall:.1f}) | {two / one:.2f} "
            f"| {share['step_ms']:.2f} | {share['no_sync_ms']:.2f} | {100 * share['share']:.0f}% |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
