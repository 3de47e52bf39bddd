"""The floor against trainlab and the tutorial: issue 15, item 1 (target: trainlab within 1.10x of the floor).

    python benchmarks/floor.py --data-dir DIR [--epochs 10] [--rounds 3] [--threads N]
    python benchmarks/floor.py --data-dir DIR --epochs 1 --rounds 1 --limit-train-batches 50   # smoke check

Each round runs, as whole processes and in turn (so that the machine's drift hits all three alike):
(a) the floor, benchmarks/floor_program.py: the leanest PyTorch program computing what the tutorial computes;
(b) `python -m trainlab train` with the tutorial's settings (the defaults), a normal run whose run directory,
checkpoints and reports go to a temporary folder; (c) benchmarks/tutorial_loop.py, the tutorial's own loop.
Reports the median wall time of each (interpreter start-up included), trainlab/floor against the 1.10x
target, trainlab/tutorial, each side's final test accuracy, and whether the floor's final weights equal those
in trainlab's checkpoint (max abs difference), then writes the figures to benchmarks/results/floor-<time>.json.

--limit-train-batches N trains the floor and trainlab on their first N batches (the weights still compare);
the tutorial's loop has no such flag and always trains on every image. Reads trainlab's checkpoint with
torch.load(weights_only=True): nothing here imports trainlab. The floor's process gets glibc's malloc settings
that trainlab makes for itself (bench_common.KEEP_FREED_MEMORY, through the environment; --no-keep-freed-memory
leaves them out); the tutorial's loop runs as it is written.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_common import (
    BENCHMARKS,
    child_environment,
    driver_parser,
    freed_memory_line,
    last_json_line,
    machine_line,
    parse_driver,
    run_driver,
    run_timed,
    summarize,
    target_line,
)

FLOOR_PROGRAM = BENCHMARKS / "floor_program.py"
TUTORIAL_SCRIPT = BENCHMARKS / "tutorial_loop.py"
TARGET_RATIO = 1.10  # trainlab wall time / the floor's, tutorial workload (issue 15)
SIDES = ("floor", "trainlab", "tutorial")


def commands(args: argparse.Namespace, work_dir: Path, round_number: int) -> dict[str, list[str]]:
    """The three programs of one round; the floor and trainlab leave their final weights in work_dir."""
    common = ["--data-dir", args.data_dir, "--epochs", str(args.epochs), "--seed", str(args.seed)]
    limit = ["--limit-train-batches", str(args.limit_train_batches)] if args.limit_train_batches else []
    return {
        "floor": [
            sys.executable,
            str(FLOOR_PROGRAM),
            *common,
            "--save",
            str(floor_weights(work_dir, round_number)),
            *limit,
        ],
        "trainlab": [
            sys.executable,
            "-m",
            "trainlab",
            "train",
            *common,
            "--run-dir",
            str(trainlab_run_dir(work_dir, round_number)),
            "--json",
            *limit,
        ],
        "tutorial": [sys.executable, str(TUTORIAL_SCRIPT), *common],
    }


def floor_weights(work_dir: Path, round_number: int) -> Path:
    return work_dir / f"floor-{round_number}.pt"


def trainlab_run_dir(work_dir: Path, round_number: int) -> Path:
    return work_dir / f"trainlab-{round_number}"


def final_accuracy(side: str, stdout: str) -> float | None:
    """The last test accuracy a program reported, as a fraction (the tutorial prints one decimal of a percent)."""
    if side == "tutorial":
        found = re.findall(r"Accuracy:\s*([0-9.]+)%", stdout)
        return float(found[-1]) / 100 if found else None
    return last_json_line(stdout).get("test_accuracy")


def compare_weights(floor_path: Path, run_dir: Path) -> dict[str, Any]:
    """Whether the floor's final state_dict equals the model weights in trainlab's last checkpoint."""
    import torch

    floor = torch.load(floor_path, map_location="cpu", weights_only=True)
    trainlab = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model_state"]
    if set(floor) != set(trainlab):
        return {"equal": False, "max_abs_difference": None, "keys": sorted(set(floor) ^ set(trainlab))}
    difference = max(float((floor[key].float() - trainlab[key].float()).abs().max()) for key in floor)
    return {"equal": all(torch.equal(floor[key], trainlab[key]) for key in floor), "max_abs_difference": difference}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every round of the three programs, then the weight comparisons."""
    env = child_environment(args.threads)
    hand_env = child_environment(args.threads, keep_freed_memory=args.keep_freed_memory)
    seconds: dict[str, list[float]] = {side: [] for side in SIDES}
    accuracy: dict[str, float | None] = {}
    in_epochs: dict[str, list[float]] = {"floor": [], "trainlab": []}
    weights = []
    with tempfile.TemporaryDirectory(prefix="trainlab-floor-") as temporary:
        work_dir = Path(temporary)
        for round_number in range(args.rounds):
            for side, command in commands(args, work_dir, round_number).items():
                wall, stdout = run_timed(command, hand_env if side == "floor" else env)
                seconds[side].append(wall)
                accuracy[side] = final_accuracy(side, stdout)
                if side in in_epochs:
                    in_epochs[side].append(last_json_line(stdout).get("machine_seconds"))
                print(
                    f"  round {round_number + 1}/{args.rounds} {side:<9} {wall:7.2f} s  accuracy {accuracy[side]}",
                    file=sys.stderr,
                    flush=True,
                )
            weights.append(
                compare_weights(floor_weights(work_dir, round_number), trainlab_run_dir(work_dir, round_number))
            )
    sides = {
        side: {
            "command": " ".join(commands(args, Path("TMP"), 0)[side]),
            "wall_seconds": summarize(seconds[side]),
            "test_accuracy": accuracy[side],
        }
        for side in SIDES
    }
    for side, values in in_epochs.items():
        if all(isinstance(value, (int, float)) for value in values):
            sides[side]["epoch_seconds"] = summarize(values)  # training + testing by the program's own clock
    floor, trainlab = sides["floor"]["wall_seconds"]["median"], sides["trainlab"]["wall_seconds"]["median"]
    differences = [w["max_abs_difference"] for w in weights]
    return {
        "sides": sides,
        "ratio_trainlab_floor": trainlab / floor,
        "target_ratio_trainlab_floor": TARGET_RATIO,
        "ratio_trainlab_tutorial": trainlab / sides["tutorial"]["wall_seconds"]["median"],
        "weights_equal": all(w["equal"] for w in weights),
        "weights_max_abs_difference": None if None in differences else max(differences),
        "weights_per_round": weights,
    }


def markdown_report(results: dict[str, Any]) -> str:
    """The figures as a Markdown table and a few lines, ready for BENCHMARKS.md."""
    m = results["measured"]
    floor = m["sides"]["floor"]["wall_seconds"]["median"]
    tutorial = m["sides"]["tutorial"]["wall_seconds"]["median"]
    settings = results["settings"]
    batches = settings["limit_train_batches"]
    limited = f" (floor and trainlab on their first {batches} batches)" if batches else ""
    lines = [
        machine_line(results["machine"]),
        "",
        f"**The tutorial workload, {settings['epochs']} epoch(s), whole processes in turn, median of "
        f"{settings['rounds']} round(s)**{limited}",
        "",
        "| program | wall s (median) | min–max s | in epochs s | × floor | × tutorial | final test accuracy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for side, figures in m["sides"].items():
        wall = figures["wall_seconds"]
        epochs = figures.get("epoch_seconds", {}).get("median")
        accuracy = figures["test_accuracy"]
        lines.append(
            f"| {side} | {wall['median']:.2f} | {wall['min']:.2f}–{wall['max']:.2f} | "
            f"{'' if epochs is None else f'{epochs:.2f}'} | {wall['median'] / floor:.2f} | "
            f"{wall['median'] / tutorial:.2f} | {'n/a' if accuracy is None else f'{100 * accuracy:.2f}%'} |"
        )
    difference = m["weights_max_abs_difference"]
    lines += [
        "",
        target_line("trainlab / floor", m["ratio_trainlab_floor"], m["target_ratio_trainlab_floor"])
        + f"; trainlab / tutorial: {m['ratio_trainlab_tutorial']:.3f}x.",
        f"- The floor's final weights {'equal' if m['weights_equal'] else 'differ from'} trainlab's checkpoint "
        f"(max abs difference {'n/a (different keys)' if difference is None else f'{difference:.3g}'}, "
        f"every round).",
        freed_memory_line("The floor", settings),
    ]
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    parser = driver_parser(__doc__, epochs=10, rounds=3, hand_written="the floor")
    return parse_driver(parser)


def main() -> int:
    return run_driver("floor", parse_arguments(), measure, markdown_report)


if __name__ == "__main__":
    raise SystemExit(main())
