"""trainlab on a user's own images with zero recipe flags, against a hand-tuned run and scikit-learn (issue 29).

    python benchmarks/own_images.py [--sets digits,mirrored] [--out DIR] [--json-out FILE] [--quick]

Builds small, varied image sets on disk (see own_image_sets.py: class folders, or the tutorial's CSV layout),
then for each one runs, one after another:
  zero-flag   `trainlab train --dataset folder --image-dir D --run-dir R --json` (or the CSV flags), as a user would;
  hand-tuned  the same data with the flags an expert would pick for that set (HAND_TUNED below, printed);
  SVC, LogReg scikit-learn's SVC() and LogisticRegression(max_iter=2000) on the raw pixels scaled to [0, 1],
              decoded from the same files.
Accuracy is on each set's test split; trainlab's is that of the model the run keeps, from its --json summary (the
last stdout line): the best epoch by validation accuracy (best.pt, what `trainlab evaluate RUN` reads) where the
run holds out a validation part, else the last epoch; seconds are the whole command's wall time (start-up and
decoding included: each trainlab run starts without the decoded-image cache, like a user's first run), and fit +
predict for scikit-learn.
Prints a markdown table and writes the figures as JSON. --quick cuts every run to a few steps: it checks that the
script works, its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import RESULTS_DIR, machine_info
from own_image_sets import SETS, SetUnavailable, WrittenSet, read_pixels, write_set

REPO = Path(__file__).resolve().parents[1]
TRAINLAB = [sys.executable, "-m", "trainlab"]
RUN_TIMEOUT = 1200  # seconds: a zero-flag run promises 5 minutes; far past that it is recorded as timed out
# --quick: the zero-flag run gets a short budget (a budget is no recipe flag, so the recipe is still chosen from
# the data), the hand-tuned one a few steps
QUICK_ZERO_FLAG = ["--time-budget", "40"]
QUICK_HAND_TUNED = ["--epochs", "1", "--max-steps", "5"]
QUICK_BASELINE_ROWS = 300  # --quick: scikit-learn fits on at most this many training images

# What an expert would pass for each set. A mirror flip (--augment's flip, --tta flip) is left out where a mirror
# changes the class: digits, the arrows and b/d, the patterns; those get shifts only.
COMMON = "--model cnn --optimizer adamw --lr 2e-3 --weight-decay 5e-4 --label-smoothing 0.1 --schedule onecycle"
COMMON += " --shuffle --normalize"
SHIFTS = "--augment --no-augment-flip --augment-erasing 0"  # shifts only: a mirror would change the class
HAND_TUNED = {
    "digits": f"{COMMON} {SHIFTS} --augment-padding 1 --batch-size 32 --epochs 40",
    "digits-csv": f"{COMMON} {SHIFTS} --augment-padding 1 --batch-size 32 --epochs 40",
    "textures": f"{COMMON} --augment --augment-padding 4 --tta flip --epochs 40",
    "mirrored": f"{COMMON} {SHIFTS} --epochs 40",
    "colour-shapes": f"{COMMON} --augment --tta flip --epochs 40",
    # 28x28 garments enlarged to 60-92 pixels: 48 pixels keeps their detail at a quarter of the cost of 96
    "products": f"{COMMON} --image-size 48 --augment --augment-padding 4 --tta flip --time-budget 5m",
    "many-classes": f"{COMMON} {SHIFTS} --augment-padding 1 --batch-size 32 --epochs 60",
    "tiny": f"{COMMON} --batch-size 16 --augment --tta flip --epochs 60",
}
CHOSEN_KEYS = (
    "model",
    "optimizer",
    "lr",
    "batch_size",
    "epochs",
    "max_steps",
    "time_budget",
    "schedule",
    "shuffle",
    "normalize",
    "augment",
    "augment_flip",
    "tta",
    "val_split",
    "early_stop",
    "image_size",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of: {', '.join(SETS)} (default: all)")
    parser.add_argument("--out", help="folder for the sets and runs (default: a new temporary folder)")
    parser.add_argument("--json-out", default=str(RESULTS_DIR / "own_images.json"), help="the figures as JSON")
    data_dir = os.environ.get("TRAINLAB_DATA_DIR") or str(REPO.parent / "shared/data")
    parser.add_argument(
        "--data-dir",
        default=data_dir,
        help="FashionMNIST/raw's parent, for products (default: $TRAINLAB_DATA_DIR, else ../shared/data)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of every generated set and split (default: 0)")
    parser.add_argument("--quick", action="store_true", help="a few steps per run: checks the script, not trainlab")
    parser.add_argument("--extra-args", default="", help="flags appended to the zero-flag command, e.g. '--device cpu'")
    parser.add_argument(
        "--only",
        choices=("zero-flag", "hand-tuned", "baselines"),
        help="run only this column (the others are left out of the table): e.g. the zero-flag runs again after a "
        "change to the recipe",
    )
    args = parser.parse_args()
    args.sets = [name.strip() for name in args.sets.split(",") if name.strip()]
    unknown = [name for name in args.sets if name not in SETS]
    if unknown:
        parser.error(f"unknown set {unknown[0]!r}; choose from {', '.join(SETS)}")
    return args


def run_trainlab(written: WrittenSet, flags: list[str], run_dir: Path) -> dict[str, Any]:
    """One `trainlab train` on the set, from a cold cache: its test accuracy, wall seconds and chosen recipe."""
    for cache in written.root.rglob(".trainlab-cache"):  # each run decodes the files, as a user's first run does
        shutil.rmtree(cache)
    command = [*TRAINLAB, "train", *written.data_flags, "--run-dir", str(run_dir), "--json", *flags]
    started = time.perf_counter()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"command": shlex.join(command), "error": f"timed out after {RUN_TIMEOUT} s"}
    wall = round(time.perf_counter() - started, 2)  # seconds
    result: dict[str, Any] = {"command": shlex.join(command), "seconds": wall, "exit": completed.returncode}
    lines = [line for line in completed.stdout.splitlines() if line.strip()]
    try:
        summary = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        summary = None
    if completed.returncode != 0 or not isinstance(summary, dict) or "test_accuracy" not in summary:
        errors = [line for line in completed.stderr.splitlines() if line.strip()]
        result["error"] = errors[-1] if errors else f"no JSON summary on stdout (exit {completed.returncode})"
        return result
    # the model the run keeps: best.pt (chosen on validation) where there is one, as `trainlab evaluate RUN` reads
    kept = summary.get("best_test_accuracy")
    result["accuracy"] = kept if kept is not None else summary["test_accuracy"]
    result["status"] = summary.get("status")
    result["chosen"] = chosen_recipe(run_dir)
    return result


def chosen_recipe(run_dir: Path) -> dict[str, Any]:
    """The recipe a run ended up with (its config.toml), cut to the fields that make a recipe."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: trainlab depends on tomli there
        import tomli as tomllib
    try:
        config = tomllib.loads((run_dir / "config.toml").read_text())
    except (OSError, ValueError):
        return {}
    return {key: config[key] for key in CHOSEN_KEYS if key in config}


def run_baselines(written: WrittenSet, quick: bool, seed: int) -> dict[str, dict[str, Any]]:
    """SVC() and LogisticRegression(max_iter=2000) on the decoded pixels in [0, 1]: accuracy and fit+predict s."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import SVC

    rgb = len(written.image_set.shape) == 3
    train_x, train_y = read_pixels(written.train_files, rgb)
    test_x, test_y = read_pixels(written.test_files, rgb)
    if quick and len(train_y) > QUICK_BASELINE_ROWS:
        keep = np.random.default_rng(seed).permutation(len(train_y))[:QUICK_BASELINE_ROWS]
        train_x, train_y = train_x[keep], train_y[keep]
    results = {}
    for name, model in (("SVC", SVC()), ("LogReg", LogisticRegression(max_iter=2000))):
        started = time.perf_counter()
        model.fit(train_x, train_y)
        accuracy = float((model.predict(test_x) == test_y).mean())
        results[name] = {"accuracy": accuracy, "seconds": round(time.perf_counter() - started, 2)}
    return results


def without_option(flags: list[str], option: str) -> list[str]:
    """flags without `option` and the value after it."""
    if option not in flags:
        return flags
    index = flags.index(option)
    return flags[:index] + flags[index + 2 :]


def benchmark_set(name: str, args: argparse.Namespace, out: Path, runs: Path) -> dict[str, Any]:
    """Build one set, then train and fit on it every way; a set whose source is missing says why."""
    spec = SETS[name]
    started = time.perf_counter()
    try:
        image_set = spec.make(args.seed, Path(args.data_dir))
    except SetUnavailable as exc:
        print(f"{name}: skipped: {exc}", flush=True)
        return {"set": name, "skipped": str(exc)}
    written = write_set(image_set, out / name, spec.layout)
    row: dict[str, Any] = {
        "set": name,
        "layout": spec.layout,
        "source": image_set.source,
        "notes": image_set.notes,
        "train_images": len(written.train_files),
        "test_images": len(written.test_files),
        "shape": "x".join(map(str, image_set.shape)),
        "classes": len(image_set.classes),
        "file_format": image_set.file_format,
        "root": str(written.root),
        "build_seconds": round(time.perf_counter() - started, 2),
    }
    print(
        f"{name}: {row['train_images']} train / {row['test_images']} test, {row['shape']}, "
        f"{row['classes']} classes, {spec.layout}, {image_set.source} ({row['build_seconds']} s)",
        flush=True,
    )
    zero_flags = [*shlex.split(args.extra_args), *(QUICK_ZERO_FLAG if args.quick else [])]
    tuned = shlex.split(HAND_TUNED[name])
    if args.quick:  # a time budget would plan its own steps: the quick run takes QUICK_HAND_TUNED's few instead
        tuned = [*without_option(tuned, "--time-budget"), *QUICK_HAND_TUNED]
    row["hand_tuned_flags"] = shlex.join(tuned)
    row["zero_flag"] = row["hand_tuned"] = {}
    if args.only in (None, "zero-flag"):
        row["zero_flag"] = run_trainlab(written, zero_flags, runs / f"{name}-zero-flag")
    if args.only in (None, "hand-tuned"):
        row["hand_tuned"] = run_trainlab(written, tuned, runs / f"{name}-hand-tuned")
    if args.only in (None, "baselines"):
        row.update(run_baselines(written, args.quick, args.seed))
    for key in ("zero_flag", "hand_tuned"):
        if "error" in row[key]:
            print(f"{name}: {key} failed: {row[key]['command']}\n  {row[key]['error']}", flush=True)
    return row


def percent(result: dict[str, Any] | None) -> str:
    if not result:
        return "-"
    if "error" in result:
        return "error"
    return f"{100 * result['accuracy']:.2f}%"


def seconds(result: dict[str, Any] | None) -> str:
    return f"{result['seconds']:.2f}" if result and "seconds" in result else "-"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The results table, then each set's hand-tuned flags and the recipe the zero-flag run chose."""
    lines = [
        "| set | train / test | shape | classes | zero-flag | s | hand-tuned | s | SVC | s | LogReg | s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['set']} | skipped: {row['skipped']} |" + " |" * 10)
            continue
        figures = [row["zero_flag"], row["hand_tuned"], row.get("SVC"), row.get("LogReg")]
        cells = " | ".join(f"{percent(result)} | {seconds(result)}" for result in figures)
        lines.append(
            f"| {row['set']} | {row['train_images']} / {row['test_images']} | {row['shape']} | "
            f"{row['classes']} | {cells} |"
        )
    lines += ["", "| set | hand-tuned flags | zero-flag run chose |", "| --- | --- | --- |"]
    for row in rows:
        if "skipped" not in row:
            chosen = ", ".join(f"{k}={v}" for k, v in row["zero_flag"].get("chosen", {}).items()) or "-"
            lines.append(f"| {row['set']} | `{row['hand_tuned_flags']}` | {chosen} |")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="trainlab-own-images-"))
    runs = out / "runs" / time.strftime("%Y%m%d-%H%M%S")  # a new folder per invocation: no run is ever replaced
    runs.mkdir(parents=True, exist_ok=True)
    print(f"sets and runs in {out}", flush=True)
    rows = [benchmark_set(name, args, out, runs) for name in args.sets]
    table = markdown(rows)
    print(("\n(--quick: a few steps per run, the figures mean nothing)\n" if args.quick else "\n") + table)
    results = {
        "machine": machine_info(None),
        "quick": args.quick,
        "extra_args": args.extra_args,
        "out": str(out),
        "hand_tuned": HAND_TUNED,
        "sets": rows,
    }
    json_out = Path(args.json_out)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {json_out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
