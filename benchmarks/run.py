"""trainlab's benchmark suite: the tutorial's loop against `trainlab train`, and the figures behind them.

    python benchmarks/run.py --data-dir DIR            # full run (about 10-20 minutes on 2 CPU cores)
    python benchmarks/run.py --data-dir DIR --quick    # smoke check (about 1 minute)

End to end, as whole subprocesses with interpreter start-up included and taken in turn
(tutorial, trainlab fp32, trainlab bf16, tutorial, ...): wall time, peak RSS and final test accuracy.
In this process, through trainlab's Python API: training images/s against batch size, epoch time against
data set size, evaluation images/s, single-image predict latency, achieved GFLOP/s of a training epoch
against a measured matmul peak, and `trainlab --help` wall time.

Prints a Markdown report (paste it into BENCHMARKS.md) and writes every figure as JSON to
benchmarks/results/<timestamp>.json. Nothing here asserts a timing: the targets are printed beside the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_common import cpu_model, git_commit

BENCHMARKS = Path(__file__).resolve().parent
TUTORIAL_SCRIPT = BENCHMARKS / "tutorial_loop.py"
RESULTS_DIR = BENCHMARKS / "results"
GNU_TIME = Path("/usr/bin/time")

# The product's targets (issue 6); printed beside the measured figures, never asserted.
TARGET_FP32_RATIO = 0.30  # trainlab fp32 wall / tutorial wall, 10 epochs
TARGET_BF16_RATIO = 0.20  # trainlab bf16 wall / tutorial wall, 10 epochs
TARGET_PREDICT_MS = 2.0  # single-image in-process predict latency, median, milliseconds
TARGET_HELP_SECONDS = 1.0  # `trainlab --help` wall time

SECTIONS = ("help", "end-to-end", "batch-size", "dataset-size", "evaluate", "predict", "flops")


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much to measure: the full run or the quick smoke check."""

    epochs: int  # epochs of the end-to-end workload
    repeats: int  # end-to-end repetitions of each side
    help_repeats: int
    batch_sizes: tuple[int, ...]
    throughput_samples: int  # training samples per throughput measurement
    dataset_sizes: tuple[int, ...]
    epoch_repeats: int  # in-process epochs per measurement (median taken)
    evaluate_repeats: int
    predict_repeats: int
    matmul_size: int
    matmul_repeats: int


FULL = Plan(
    epochs=10,
    repeats=3,
    help_repeats=7,
    batch_sizes=(64, 128, 256, 512, 1024, 2048, 4096),
    throughput_samples=60_000,
    dataset_sizes=(10_000, 30_000, 60_000),
    epoch_repeats=3,
    evaluate_repeats=5,
    predict_repeats=2000,
    matmul_size=2048,
    matmul_repeats=10,
)
QUICK = Plan(
    epochs=1,
    repeats=1,
    help_repeats=3,
    batch_sizes=(64, 1024, 4096),
    throughput_samples=10_000,
    dataset_sizes=(10_000, 30_000),
    epoch_repeats=3,
    evaluate_repeats=3,
    predict_repeats=300,
    matmul_size=2048,
    matmul_repeats=5,
)


# ---------------------------------------------------------------------------------------------------------------
# the machine


def machine_info(threads: int | None) -> dict[str, Any]:
    """What the figures were measured on."""
    import torch
    import torchvision

    import trainlab

    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "trainlab": trainlab.__version__,
        "git_commit": git_commit(),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages; a figure near or above the core count means noisy timings."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# subprocesses: wall time and peak RSS

RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as report:
    report.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))  # KiB on Linux
sys.exit(code)
"""


@dataclasses.dataclass
class ProcessResult:
    seconds: float  # wall time, start-up included
    peak_rss_mib: float | None
    stdout: str
    stderr: str


def run_measured(command: Sequence[str], env: dict[str, str], work_dir: Path) -> ProcessResult:
    """Run `command` to completion; its wall time and peak resident memory. Fails loudly on a non-zero exit."""
    report = work_dir / "rusage.txt"
    report.unlink(missing_ok=True)
    if GNU_TIME.exists():
        wrapped = [str(GNU_TIME), "-v", "-o", str(report), *command]
    else:
        wrapped = [sys.executable, "-c", RSS_WRAPPER, str(report), *command]
    started = time.perf_counter()
    completed = subprocess.run(wrapped, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-20:])
        raise SystemExit(
            f"benchmark command failed with exit status {completed.returncode}: {' '.join(command)}\n{tail}"
        )
    return ProcessResult(seconds, read_peak_rss_mib(report), completed.stdout, completed.stderr)


def read_peak_rss_mib(report: Path) -> float | None:
    try:
        text = report.read_text()
    except OSError:
        return None
    match = re.search(r"Maximum resident set size \(kbytes\):\s*(\d+)", text) or re.fullmatch(r"\s*(\d+)\s*", text)
    return int(match.group(1)) / 1024 if match else None


def trainlab_command() -> list[str]:
    """The installed `trainlab` script beside this interpreter, else `python -m trainlab`."""
    script = Path(sys.executable).parent / "trainlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "trainlab"]


def child_environment(threads: int | None) -> dict[str, str]:
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def summarize(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


# ---------------------------------------------------------------------------------------------------------------
# sections


def bench_help(plan: Plan, env: dict[str, str], work_dir: Path) -> dict[str, Any]:
    """`trainlab --help` wall time (seconds), after one untimed run to warm the file cache."""
    command = [*trainlab_command(), "--help"]
    run_measured(command, env, work_dir)
    seconds = [run_measured(command, env, work_dir).seconds for _ in range(plan.help_repeats)]
    return {"command": " ".join(command), "seconds": summarize(seconds), "target_seconds": TARGET_HELP_SECONDS}


def end_to_end_commands(plan: Plan, data_dir: str, work_dir: Path) -> dict[str, list[str]]:
    run_dir = str(work_dir / "run")
    trainlab_train = [
        *trainlab_command(),
        "train",
        "--epochs",
        str(plan.epochs),
        "--data-dir",
        data_dir,
        "--run-dir",
        run_dir,
        "--overwrite",
        "--json",
    ]
    return {
        "tutorial": [
            sys.executable,
            str(TUTORIAL_SCRIPT),
            "--data-dir",
            data_dir,
            "--epochs",
            str(plan.epochs),
            "--save",
            str(work_dir / "model.pth"),
        ],
        "trainlab_fp32": trainlab_train,
        "trainlab_bf16": [*trainlab_train, "--precision", "bf16"],
    }


def final_accuracy(name: str, result: ProcessResult) -> float | None:
    """The last test accuracy a run reported, as a fraction."""
    if name == "tutorial":
        found = re.findall(r"Accuracy:\s*([0-9.]+)%", result.stdout)
        return float(found[-1]) / 100 if found else None
    return trainlab_summary(result).get("test_accuracy")


def trainlab_summary(result: ProcessResult) -> dict[str, Any]:
    """The JSON object `trainlab train --json` prints as its last stdout line."""
    lines = result.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        return {}


def bench_end_to_end(plan: Plan, data_dir: str, env: dict[str, str], work_dir: Path) -> dict[str, Any]:
    """The tutorial workload, each side as a whole subprocess, taken in turn so that drift hits all sides alike."""
    commands = end_to_end_commands(plan, data_dir, work_dir)
    runs: dict[str, list[ProcessResult]] = {name: [] for name in commands}
    for repeat in range(plan.repeats):
        for name, command in commands.items():
            result = run_measured(command, env, work_dir)
            runs[name].append(result)
            print(
                f"  end-to-end {repeat + 1}/{plan.repeats} {name:<14} {result.seconds:7.2f} s  "
                f"peak RSS {result.peak_rss_mib or 0:6.0f} MiB  accuracy {final_accuracy(name, result)}",
                file=sys.stderr,
                flush=True,
            )
    sides = {}
    for name, results in runs.items():
        rss = [r.peak_rss_mib for r in results if r.peak_rss_mib is not None]
        sides[name] = {
            "command": " ".join(commands[name]),
            "seconds": summarize([r.seconds for r in results]),
            "peak_rss_mib": max(rss) if rss else None,
            "test_accuracy": final_accuracy(name, results[-1]),
        }
        if name != "tutorial":
            # seconds spent in the epochs (training + testing) by trainlab's own clock; the rest of the
            # wall time is start-up: interpreter, imports, reading the data, writing the run directory
            epoch_seconds = [trainlab_summary(r).get("machine_seconds") for r in results]
            if all(isinstance(value, (int, float)) for value in epoch_seconds):
                sides[name]["epoch_seconds"] = summarize(epoch_seconds)
    tutorial = sides["tutorial"]["seconds"]["median"]
    return {
        "epochs": plan.epochs,
        "repeats": plan.repeats,
        "sides": sides,
        "ratio_fp32": sides["trainlab_fp32"]["seconds"]["median"] / tutorial,
        "ratio_bf16": sides["trainlab_bf16"]["seconds"]["median"] / tutorial,
        "target_ratio_fp32": TARGET_FP32_RATIO,
        "target_ratio_bf16": TARGET_BF16_RATIO,
    }


class InProcess:
    """The in-process measurements, sharing one loaded copy of Fashion-MNIST."""

    def __init__(self, plan: Plan, data_dir: str):
        import torch

        from trainlab.data import load_dataset
        from trainlab.data.transforms import Preprocessing
        from trainlab.engine.losses import make_loss

        self.torch = torch
        self.plan = plan
        self.data = load_dataset("fashion-mnist", data_dir, download=False)
        self.preprocess = Preprocessing(*self.data.train.image_shape)
        self.loss_fn = make_loss("cross-entropy", len(self.data.classes))
        self.training_cache: dict[tuple[int, str, int], dict[str, float]] = {}

    def new_model(self):
        from trainlab.models import create_model

        self.torch.manual_seed(0)
        return create_model("mlp", self.data.train.image_shape, len(self.data.classes))

    def autocast(self, precision: str):
        from trainlab.engine.loop import autocast_for

        return autocast_for(self.torch.device("cpu"), precision)

    def training_speed(self, batch_size: int, precision: str, samples: int) -> dict[str, float]:
        """Seconds per epoch and images/s of train_one_epoch over `samples` images (median of plan.epoch_repeats)."""
        key = (batch_size, precision, samples)
        if key in self.training_cache:
            return self.training_cache[key]
        from trainlab.data.memory import BatchLoader
        from trainlab.engine.loop import train_one_epoch

        data = self.data.train.subset(samples)
        model = self.new_model()
        optimizer = self.torch.optim.SGD(model.parameters(), lr=1e-3)
        loader = BatchLoader(data, batch_size)
        autocast = self.autocast(precision)
        warm_up = BatchLoader(data.subset(min(samples, 8 * batch_size)), batch_size)
        train_one_epoch(model, warm_up.batches(), self.loss_fn, optimizer, self.preprocess, autocast=autocast)
        seconds = []
        for epoch in range(self.plan.epoch_repeats):
            started = time.perf_counter()
            train_one_epoch(model, loader.batches(epoch), self.loss_fn, optimizer, self.preprocess, autocast=autocast)
            seconds.append(time.perf_counter() - started)
        median = statistics.median(seconds)
        result = {
            "batch_size": batch_size,
            "precision": precision,
            "samples": samples,
            "epoch_seconds": median,
            "images_per_second": samples / median,
        }
        self.training_cache[key] = result
        return result

    def bench_batch_size(self) -> list[dict[str, float]]:
        """Training images/s against batch size, fp32 and bf16."""
        rows = []
        for batch_size in self.plan.batch_sizes:
            row = {"batch_size": batch_size}
            for precision in ("fp32", "bf16"):
                measured = self.training_speed(batch_size, precision, self.plan.throughput_samples)
                row[f"{precision}_images_per_second"] = measured["images_per_second"]
            print(
                f"  batch {batch_size:>5}: fp32 {row['fp32_images_per_second']:9.0f} images/s, "
                f"bf16 {row['bf16_images_per_second']:9.0f} images/s",
                file=sys.stderr,
                flush=True,
            )
            rows.append(row)
        return rows

    def bench_dataset_size(self) -> list[dict[str, float]]:
        """Epoch time against training set size, batch 64, fp32."""
        rows = []
        for samples in self.plan.dataset_sizes:
            measured = self.training_speed(64, "fp32", samples)
            rows.append(
                {
                    "samples": samples,
                    "epoch_seconds": measured["epoch_seconds"],
                    "images_per_second": measured["images_per_second"],
                }
            )
            print(f"  {samples:>6} samples: {measured['epoch_seconds']:6.2f} s/epoch", file=sys.stderr, flush=True)
        return rows

    def bench_evaluate(self) -> dict[str, Any]:
        """evaluate() on the 10k test set, batch 1000: images/s, fp32 and bf16."""
        from trainlab.engine.loop import evaluate

        model = self.new_model()
        test = self.data.test
        result: dict[str, Any] = {"samples": len(test), "batch_size": 1000}
        for precision in ("fp32", "bf16"):
            autocast = self.autocast(precision)
            evaluate(model, test, self.loss_fn, self.preprocess, 1000, autocast=autocast)  # warm-up
            seconds = []
            for _ in range(self.plan.evaluate_repeats):
                started = time.perf_counter()
                evaluate(model, test, self.loss_fn, self.preprocess, 1000, autocast=autocast)
                seconds.append(time.perf_counter() - started)
            result[f"{precision}_images_per_second"] = len(test) / statistics.median(seconds)
        return result

    def bench_predict(self) -> dict[str, Any]:
        """Predictor.predict on one uint8 image: latency in milliseconds over many calls."""
        from trainlab.inference import Predictor

        predictor = Predictor(self.new_model(), self.data.classes, self.preprocess)
        image = self.data.test.images[:1]
        for _ in range(50):
            predictor.predict(image)
        milliseconds = []
        for _ in range(self.plan.predict_repeats):
            started = time.perf_counter_ns()
            predictor.predict(image)
            milliseconds.append((time.perf_counter_ns() - started) / 1e6)
        milliseconds.sort()
        return {
            "calls": len(milliseconds),
            "median_ms": statistics.median(milliseconds),
            "p90_ms": milliseconds[int(0.9 * (len(milliseconds) - 1))],
            "min_ms": milliseconds[0],
            "target_ms": TARGET_PREDICT_MS,
        }

    def matmul_peak(self, dtype_name: str) -> float:
        """GFLOP/s of a square torch.mm, median of repeats: the practical ceiling for this MLP."""
        dtype = {"fp32": self.torch.float32, "bf16": self.torch.bfloat16}[dtype_name]
        size = self.plan.matmul_size
        generator = self.torch.Generator().manual_seed(0)
        a = self.torch.randn(size, size, generator=generator).to(dtype)
        b = self.torch.randn(size, size, generator=generator).to(dtype)
        out = self.torch.empty(size, size, dtype=dtype)
        self.torch.mm(a, b, out=out)  # warm-up
        seconds = []
        for _ in range(self.plan.matmul_repeats):
            started = time.perf_counter()
            self.torch.mm(a, b, out=out)
            seconds.append(time.perf_counter() - started)
        return 2 * size**3 / statistics.median(seconds) / 1e9

    def training_flops_per_sample(self) -> int:
        """FLOP per sample of one training step: forward 2*in*out per Linear layer, training about 3x forward."""
        model = self.new_model()
        forward = sum(
            2 * m.in_features * m.out_features for m in model.modules() if isinstance(m, self.torch.nn.Linear)
        )
        return 3 * forward

    def bench_flops(self) -> dict[str, Any]:
        """Achieved GFLOP/s of a training epoch at batch 64 against the matmul peak, fp32 and bf16."""
        flops = self.training_flops_per_sample()
        result: dict[str, Any] = {
            "training_flop_per_sample": flops,
            "batch_size": 64,
            "matmul_size": self.plan.matmul_size,
        }
        for precision in ("fp32", "bf16"):
            speed = self.training_speed(64, precision, self.plan.throughput_samples)
            achieved = flops * speed["images_per_second"] / 1e9
            peak = self.matmul_peak(precision)
            result[precision] = {
                "achieved_gflops": achieved,
                "matmul_peak_gflops": peak,
                "fraction_of_peak": achieved / peak,
            }
        return result


# ---------------------------------------------------------------------------------------------------------------
# the report


def markdown_report(results: dict[str, Any]) -> str:
    """The figures as Markdown tables, ready for BENCHMARKS.md."""
    m = results["machine"]
    lines = [
        f"Measured {m['date']} ({'quick' if results['quick'] else 'full'} run) on {m['cpu_model']}, "
        f"{m['cpu_cores']} cores, {m['torch_threads']} torch threads; Python {m['python']}, torch {m['torch']}, "
        f"torchvision {m['torchvision']}, trainlab {m['trainlab']} ({m['git_commit']}). "
        f"Load average at start {m['load_average_at_start']}, at end {results.get('load_average_at_end')}.",
        "",
    ]
    e2e = results.get("end_to_end")
    if e2e:
        lines += [
            f"**Tutorial workload, {e2e['epochs']} epoch(s), whole processes, median of {e2e['repeats']}**",
            "",
            "| side | wall s (median) | min–max s | × tutorial | target | in epochs s | peak RSS MiB "
            "| final test accuracy |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        ratios = {
            "tutorial": (1.0, ""),
            "trainlab_fp32": (e2e["ratio_fp32"], f"≤ {e2e['target_ratio_fp32']:.2f}×"),
            "trainlab_bf16": (e2e["ratio_bf16"], f"≤ {e2e['target_ratio_bf16']:.2f}×"),
        }
        for name, side in e2e["sides"].items():
            ratio, target = ratios[name]
            seconds = side["seconds"]
            accuracy = side["test_accuracy"]
            lines.append(
                f"| {name.replace('_', ' ')} | {seconds['median']:.2f} | {seconds['min']:.2f}–{seconds['max']:.2f} | "
                f"{ratio:.2f} | {target} | {_fmt(side.get('epoch_seconds', {}).get('median'), '.2f')} | "
                f"{_fmt(side['peak_rss_mib'], '.0f')} | "
                f"{_fmt(100 * accuracy if accuracy is not None else None, '.1f')}% |"
            )
        lines.append("")
    rows = results.get("batch_size")
    if rows:
        samples = results["plan"]["throughput_samples"]
        lines += [
            f"**Training throughput (mlp, train_one_epoch over {samples} images)**",
            "",
            "| batch size | fp32 images/s | bf16 images/s |",
            "| ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['batch_size']} | {r['fp32_images_per_second']:.0f} | {r['bf16_images_per_second']:.0f} |"
            for r in rows
        ]
        lines.append("")
    rows = results.get("dataset_size")
    if rows:
        lines += [
            "**Epoch time against data set size (mlp, batch 64, fp32)**",
            "",
            "| samples | s/epoch | images/s |",
            "| ---: | ---: | ---: |",
        ]
        lines += [f"| {r['samples']} | {r['epoch_seconds']:.2f} | {r['images_per_second']:.0f} |" for r in rows]
        lines.append("")
    lines += ["**Other figures**", "", "| figure | measured | target |", "| --- | ---: | ---: |"]
    if "evaluate" in results:
        ev = results["evaluate"]
        lines.append(
            f"| evaluate() on the {ev['samples']} test images, batch {ev['batch_size']}, fp32 | "
            f"{ev['fp32_images_per_second']:.0f} images/s | |"
        )
        lines.append(f"| evaluate(), bf16 autocast | {ev['bf16_images_per_second']:.0f} images/s | |")
    if "predict" in results:
        p = results["predict"]
        lines.append(
            f"| Predictor.predict, one uint8 image, median of {p['calls']} | {p['median_ms']:.3f} ms "
            f"(p90 {p['p90_ms']:.3f}) | ≤ {p['target_ms']:g} ms |"
        )
    if "flops" in results:
        f = results["flops"]
        for precision in ("fp32", "bf16"):
            x = f[precision]
            lines.append(
                f"| training GFLOP/s at batch 64, {precision} ({f['training_flop_per_sample']:,} FLOP/sample) "
                f"| {x['achieved_gflops']:.1f} ({100 * x['fraction_of_peak']:.0f}% of a "
                f"{f['matmul_size']}² mm: {x['matmul_peak_gflops']:.1f}) | |"
            )
    if "help" in results:
        h = results["help"]
        lines.append(
            f"| `trainlab --help` wall, median of {len(h['seconds']['runs'])} | "
            f"{h['seconds']['median']:.3f} s | < {h['target_seconds']:g} s |"
        )
    return "\n".join(lines)


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


# ---------------------------------------------------------------------------------------------------------------


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="reduced smoke run: 1 epoch, 1 repetition, 3 batch sizes (about a minute)"
    )
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TRAINLAB_DATA_DIR", "data"),
        help="torchvision-layout data directory holding FashionMNIST/raw (default: $TRAINLAB_DATA_DIR, else ./data)",
    )
    parser.add_argument("--epochs", type=int, help="epochs of the end-to-end workload (default: 10; quick: 1)")
    parser.add_argument("--repeats", type=int, help="end-to-end repetitions of each side (default: 3; quick: 1)")
    parser.add_argument(
        "--threads", type=int, help="torch threads for every measurement (sets OMP_NUM_THREADS; default: torch's own)"
    )
    parser.add_argument(
        "--only", nargs="+", choices=SECTIONS, metavar="SECTION", help=f"run only these sections: {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON results go (default: benchmarks/results)"
    )
    args = parser.parse_args(argv)
    for name in ("epochs", "repeats", "threads"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name} must be >= 1, got {value}")
    raw = Path(args.data_dir) / "FashionMNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte").exists() and not (raw / "train-images-idx3-ubyte.gz").exists():
        parser.error(f"no Fashion-MNIST under {raw}; pass --data-dir (the benchmark never downloads)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv)
    plan = QUICK if args.quick else FULL
    if args.epochs or args.repeats:
        plan = dataclasses.replace(plan, epochs=args.epochs or plan.epochs, repeats=args.repeats or plan.repeats)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sections = args.only or SECTIONS
    data_dir = str(Path(args.data_dir).resolve())
    env = child_environment(args.threads)
    results: dict[str, Any] = {
        "quick": args.quick,
        "plan": dataclasses.asdict(plan),
        "machine": machine_info(args.threads),
    }
    load = results["machine"]["load_average_at_start"]
    if load and load[0] > 0.5 * (os.cpu_count() or 1):
        print(
            f"warning: load average {load[0]} on {os.cpu_count()} cores: other work is running and the "
            "timings will be noisy",
            file=sys.stderr,
        )
    started = time.perf_counter()

    def section(name: str, measure: Callable[[], Any]) -> None:
        if name in sections:
            print(f"[{name}]", file=sys.stderr, flush=True)
            results[name.replace("-", "_")] = measure()

    with tempfile.TemporaryDirectory(prefix="trainlab-bench-") as temporary:
        work_dir = Path(temporary)
        section("help", lambda: bench_help(plan, env, work_dir))
        section("end-to-end", lambda: bench_end_to_end(plan, data_dir, env, work_dir))
    if set(sections) & {"batch-size", "dataset-size", "evaluate", "predict", "flops"}:
        in_process = InProcess(plan, data_dir)
        section("batch-size", in_process.bench_batch_size)
        section("dataset-size", in_process.bench_dataset_size)
        section("evaluate", in_process.bench_evaluate)
        section("predict", in_process.bench_predict)
        section("flops", in_process.bench_flops)
    results["total_seconds"] = time.perf_counter() - started
    results["load_average_at_end"] = load_average()

    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = args.results_dir / f"{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(markdown_report(results))
    print(f"\nResults written to {path} ({results['total_seconds']:.0f} s in all)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
