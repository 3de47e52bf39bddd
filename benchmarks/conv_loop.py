"""A hand-written loop against `trainlab train --preset speedrun`: issue 15, item 4 (target: trainlab within 1.03x).

    python benchmarks/conv_loop.py --data-dir DIR --model cnn --epochs 1 --rounds 2 [--precision auto] [--threads N]
    python benchmarks/conv_loop.py --data-dir DIR --model cnn --epochs 1 --rounds 1 --limit-train-batches 20  # smoke

The hand loop trains trainlab's `cnn` (or `resnet`; the one thing taken from trainlab, so the architecture is the
same) at the speedrun preset's settings: channels-last, bf16 autocast where the CPU has avx512_bf16 or amx_bf16
(else fp32; --precision overrides both sides), the data in memory as uint8 tensors, a randperm per epoch and
index slices, the same augmentation on whole batches (random crop with 2 pixels of zero padding, horizontal
flip, random erasing with probability 0.25), SGD with Nesterov momentum 0.9 and weight decay 5e-4, label
smoothing 0.1, batch 256, a one-cycle lr peaking at 0.2, a test pass in batches of 2000 after every epoch. Data,
augmentation and the loop are written here; it prints each epoch's `machine_seconds` (training + testing) and
`machine_samples_per_second` (training) as JSON, the figures trainlab writes to metrics.jsonl. Its process gets
glibc's malloc settings that trainlab makes for itself (bench_common.KEEP_FREED_MEMORY, through the environment;
--no-keep-freed-memory leaves them out).

Each round runs, as whole processes and in turn, the hand loop (this script with --hand-loop) and
`python -m trainlab train --preset speedrun --epochs N --model M --schedule onecycle --warmup-epochs 0 --tta none`
(the preset's recipe before its time budget, as the hand loop has it; run directory in a temporary folder). Then,
in this process: the model's forward FLOPs per image (FlopCounterMode; a training step counts as 3x forward)
and a measured conv peak, a channels-last 3x3 conv2d forward + backward (batch 256, 64 -> 64 channels at
14x14) in the same precision. Prints a Markdown table of training seconds per epoch, their ratio, achieved
GFLOP/s against that peak, and final test accuracy; writes benchmarks/results/conv-loop-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_common import (
    child_environment,
    driver_parser,
    freed_memory_line,
    load_fashion_mnist,
    machine_line,
    parse_driver,
    resolve_precision,
    run_driver,
    run_timed,
    summarize,
    target_line,
)

TARGET_RATIO = 1.03  # trainlab training time per epoch / the hand loop's (issue 15)
IMAGE_SHAPE = (1, 28, 28)
NUM_CLASSES = 10
# the speedrun preset's recipe (trainlab.config.PRESETS["speedrun"]) with a one-cycle schedule and no test-time
# augmentation, written out: this loop does not read trainlab's config
BATCH_SIZE = 256
EVAL_BATCH_SIZE = 2000
MAX_LR = 0.2
MOMENTUM = 0.9
WEIGHT_DECAY = 5e-4
LABEL_SMOOTHING = 0.1
WARMUP_FRACTION = 0.25  # one-cycle: share of the steps spent rising to MAX_LR (cosine both ways)
PADDING = 2  # pixels of random-crop padding
ERASING = 0.25  # probability per image of erasing one rectangle
ERASE_SCALE = (0.02, 0.25)  # area fraction of the erased rectangle
ERASE_RATIO = (0.3, 3.3)  # its aspect ratio, drawn log-uniformly
PEAK_CONV = {"batch": 256, "channels": 64, "side": 14}  # the conv whose forward + backward gives the peak


# ---------------------------------------------------------------------------------------------------------------
# the hand loop (runs in its own process: --hand-loop)


def augment(images):
    """Random crop (zero padding) and flip in one gather, then random erasing; uint8 (N, C, H, W) in and out."""
    import torch
    from torch.nn import functional as F

    n, c, h, w = images.shape
    side = w + 2 * PADDING
    padded = F.pad(images, (PADDING, PADDING, PADDING, PADDING)).view(n, c, -1)
    dy = torch.randint(0, 2 * PADDING + 1, (n, 1, 1))
    dx = torch.randint(0, 2 * PADDING + 1, (n, 1, 1))
    columns = torch.arange(w).view(1, 1, w)
    flipped = torch.rand(n, 1, 1) < 0.5
    columns = torch.where(flipped, w - 1 - columns, columns) + dx  # a flip of the crop reads its columns backwards
    rows = torch.arange(h).view(1, h, 1) + dy
    index = (rows * side + columns).view(n, 1, h * w).expand(n, c, h * w)
    images = padded.gather(2, index).view(n, c, h, w)

    area = torch.empty(n).uniform_(*ERASE_SCALE) * (h * w)
    aspect = torch.empty(n).uniform_(math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1])).exp()
    height = (area * aspect).sqrt().round().clamp(1, h).long().view(n, 1, 1)
    width = (area / aspect).sqrt().round().clamp(1, w).long().view(n, 1, 1)
    top = (torch.rand(n, 1, 1) * (h - height + 1)).long()
    left = (torch.rand(n, 1, 1) * (w - width + 1)).long()
    out_rows, out_columns = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    erase = (torch.rand(n, 1, 1) < ERASING) & (out_rows >= top) & (out_rows < top + height)
    erase = erase & (out_columns >= left) & (out_columns < left + width)
    return images.masked_fill(erase.unsqueeze(1), 0)


def hand_loop(args: argparse.Namespace) -> None:
    """Train and test args.model for args.epochs epochs; one JSON line per epoch, then a summary line."""
    train_by_hand(load_fashion_mnist(args.data_dir), args.model, NUM_CLASSES, args)


def train_by_hand(data: dict[str, Any], model_name: str, classes: int, args: argparse.Namespace) -> None:
    """The hand loop over uint8 tensors (data: train_images, train_labels, test_images, test_labels), the recipe
    above, for args.epochs epochs (args.threads, args.precision, args.seed, args.limit_train_batches); one JSON line
    an epoch with the figures trainlab writes to metrics.jsonl. benchmarks/own_files.py runs it on its folders."""
    import torch
    from torch.nn import functional as F

    from trainlab.models import create_model

    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision)
    train_images, train_labels = data["train_images"], data["train_labels"]
    test_images, test_labels = data["test_images"], data["test_labels"]
    size = len(train_labels)
    steps = math.ceil(size / BATCH_SIZE)
    if args.limit_train_batches:
        steps = min(steps, args.limit_train_batches)
    torch.manual_seed(args.seed)
    shape = tuple(train_images.shape[1:])
    model = create_model(model_name, shape, classes).to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=MAX_LR, momentum=MOMENTUM, nesterov=True, weight_decay=WEIGHT_DECAY
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=MAX_LR,
        total_steps=args.epochs * steps,
        pct_start=WARMUP_FRACTION,
        anneal_strategy="cos",
        cycle_momentum=False,
    )

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def model_input(images):
        return images.contiguous(memory_format=torch.channels_last).to(torch.float32).div_(255)

    for epoch in range(args.epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(size)
        loss_sum, correct, samples = torch.zeros(()), torch.zeros((), dtype=torch.long), 0
        for step in range(steps):
            index = order[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
            labels = train_labels[index]
            with autocast():
                logits = model(model_input(augment(train_images[index])))
                loss = F.cross_entropy(logits, labels, label_smoothing=LABEL_SMOOTHING)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += loss.detach().float() * len(labels)
            correct += (logits.argmax(1) == labels).sum()
            samples += len(labels)
        train_seconds = time.perf_counter() - started
        model.eval()
        test_loss, test_correct = 0.0, 0
        with torch.inference_mode(), autocast():
            for start in range(0, len(test_labels), EVAL_BATCH_SIZE):
                labels = test_labels[start : start + EVAL_BATCH_SIZE]
                logits = model(model_input(test_images[start : start + EVAL_BATCH_SIZE]))
                test_loss += float(F.cross_entropy(logits, labels)) * len(labels)
                test_correct += int((logits.argmax(1) == labels).sum())
        row = {
            "epoch": epoch + 1,
            "train_loss": float(loss_sum) / samples,
            "train_accuracy": int(correct) / samples,
            "test_loss": test_loss / len(test_labels),
            "test_accuracy": test_correct / len(test_labels),
            "machine_seconds": time.perf_counter() - started,  # training + testing, seconds
            "machine_samples_per_second": samples / train_seconds,  # training images/s
            "precision": precision,
            "train_samples": samples,
        }
        print(json.dumps(row), flush=True)


# ---------------------------------------------------------------------------------------------------------------
# the driver


def trainlab_command(args: argparse.Namespace, run_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "trainlab", "train", "--preset", "speedrun", "--epochs", str(args.epochs)]
    command += ["--model", args.model, "--data-dir", args.data_dir, "--seed", str(args.seed), "--run-dir"]
    command += [str(run_dir), "--quiet", "--json"]
    # the preset's recipe before its time budget: what the hand loop writes out (one-cycle, no warm-up, no TTA)
    command += ["--schedule", "onecycle", "--warmup-epochs", "0", "--tta", "none"]
    if args.precision != "auto":
        command += ["--precision", args.precision]
    if args.limit_train_batches:
        command += ["--limit-train-batches", str(args.limit_train_batches)]
    return command


def hand_loop_command(args: argparse.Namespace) -> list[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--hand-loop", "--model", args.model]
    command += ["--data-dir", args.data_dir, "--epochs", str(args.epochs), "--seed", str(args.seed)]
    command += ["--precision", args.precision]
    if args.limit_train_batches:
        command += ["--limit-train-batches", str(args.limit_train_batches)]
    return command


def epoch_figures(rows: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Per epoch: training seconds (images / images per second), machine_seconds, images/s."""
    return [
        {
            "epoch": row["epoch"],
            "train_images_per_second": row["machine_samples_per_second"],
            "machine_seconds": row["machine_seconds"],
            "test_accuracy": row["test_accuracy"],
        }
        for row in rows
    ]


def measure_processes(args: argparse.Namespace) -> dict[str, Any]:
    """Alternating rounds of the hand loop and trainlab; every epoch's figures of each."""
    env = child_environment(args.threads)
    hand_env = child_environment(args.threads, keep_freed_memory=args.keep_freed_memory)
    epochs: dict[str, list[dict[str, float]]] = {"hand loop": [], "trainlab": []}
    walls: dict[str, list[float]] = {"hand loop": [], "trainlab": []}
    with tempfile.TemporaryDirectory(prefix="trainlab-conv-loop-") as temporary:
        for round_number in range(args.rounds):
            run_dir = Path(temporary) / f"run-{round_number}"
            for side, command in (
                ("hand loop", hand_loop_command(args)),
                ("trainlab", trainlab_command(args, run_dir)),
            ):
                wall, stdout = run_timed(command, hand_env if side == "hand loop" else env)
                if side == "trainlab":
                    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
                else:
                    rows = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
                epochs[side] += epoch_figures(rows)
                walls[side].append(wall)
                speeds = ", ".join(f"{row['machine_samples_per_second']:.0f}" for row in rows)
                print(
                    f"  round {round_number + 1}/{args.rounds} {side:<9} {wall:7.1f} s wall, training images/s "
                    f"per epoch {speeds}, test accuracy {rows[-1]['test_accuracy']:.4f}",
                    file=sys.stderr,
                    flush=True,
                )
    return {"epochs": epochs, "wall_seconds": {side: summarize(values) for side, values in walls.items()}}


def forward_flops_per_image(model_name: str) -> int:
    """The model's forward FLOPs for one image, as torch's FlopCounterMode counts them (convs, matmuls)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from trainlab.models import create_model

    model = create_model(model_name, IMAGE_SHAPE, NUM_CLASSES).eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.zeros(1, *IMAGE_SHAPE))
    return int(counter.get_total_flops())


def conv_peak_gflops(precision: str, repeats: int) -> dict[str, float]:
    """GFLOP/s of a channels-last 3x3 conv2d (forward, input and weight gradients) in `precision`: the best of
    `repeats` (the peak: the least disturbed by other work on the machine) and their median."""
    import torch
    from torch.nn import functional as F

    n, c, side = PEAK_CONV["batch"], PEAK_CONV["channels"], PEAK_CONV["side"]
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32  # the tensors themselves: no casts timed
    generator = torch.Generator().manual_seed(0)

    def tensor(*shape: int, requires_grad: bool = False):
        values = torch.randn(*shape, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
        return values.requires_grad_(requires_grad)

    x, weight = tensor(n, c, side, side, requires_grad=True), tensor(c, c, 3, 3, requires_grad=True)
    grad = tensor(n, c, side, side)

    def step() -> None:
        out = F.conv2d(x, weight, padding=1)
        torch.autograd.grad(out, (x, weight), grad)

    for _ in range(3):  # warm-up: oneDNN picks and builds its kernels
        step()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    flops = 3 * 2 * n * c * side * side * c * 9  # forward, input gradient, weight gradient: 2 FLOP per MAC each
    return {"gflops": flops / min(seconds) / 1e9, "median_gflops": flops / statistics.median(seconds) / 1e9}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The processes' figures, then FLOPs and the conv peak measured here, and what they come to."""
    processes = measure_processes(args)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_precision(args.precision)
    forward = forward_flops_per_image(args.model)
    peak = conv_peak_gflops(precision, args.peak_repeats)
    sides = {}
    train_images = train_images_per_epoch(args)
    for side, rows in processes["epochs"].items():
        speed = statistics.median(row["train_images_per_second"] for row in rows)
        sides[side] = {
            "train_seconds_per_epoch": train_images / speed,
            "train_images_per_second": speed,
            "machine_seconds_per_epoch": statistics.median(row["machine_seconds"] for row in rows),
            "achieved_gflops": 3 * forward * speed / 1e9,
            "final_test_accuracy": rows[-1]["test_accuracy"],
            "epochs": rows,
            "wall_seconds": processes["wall_seconds"][side],
        }
        sides[side]["fraction_of_peak"] = sides[side]["achieved_gflops"] / peak["gflops"]
    ratio = sides["trainlab"]["train_seconds_per_epoch"] / sides["hand loop"]["train_seconds_per_epoch"]
    return {
        "precision": precision,
        "forward_flops_per_image": forward,
        "training_flops_per_image": 3 * forward,
        "conv_peak": {**PEAK_CONV, "kernel": 3, "precision": precision, **peak},
        "sides": sides,
        "ratio_trainlab_hand_loop": ratio,
        "target_ratio": TARGET_RATIO,
    }


def train_images_per_epoch(args: argparse.Namespace) -> int:
    """Training images per epoch: Fashion-MNIST's 60,000, or --limit-train-batches of them."""
    full = 60_000
    return min(full, args.limit_train_batches * BATCH_SIZE) if args.limit_train_batches else full


def markdown_report(results: dict[str, Any]) -> str:
    m, settings = results["measured"], results["settings"]
    peak = m["conv_peak"]
    limited = f", first {settings['limit_train_batches']} batches" if settings["limit_train_batches"] else ""
    lines = [
        machine_line(results["machine"]),
        "",
        f"**`{settings['model']}` at the speedrun settings, {m['precision']}, {settings['epochs']} epoch(s){limited}, "
        f"{settings['rounds']} round(s) of whole processes in turn; medians over every epoch**",
        "",
        "| loop | training s/epoch | training images/s | epoch s (train + test) | × hand loop | target "
        "| GFLOP/s | of conv peak | final test accuracy |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    hand = m["sides"]["hand loop"]["train_seconds_per_epoch"]
    for side, figures in m["sides"].items():
        ratio = figures["train_seconds_per_epoch"] / hand
        lines.append(
            f"| {side} | {figures['train_seconds_per_epoch']:.2f} | {figures['train_images_per_second']:.0f} | "
            f"{figures['machine_seconds_per_epoch']:.2f} | {ratio:.3f} | "
            f"{'' if side == 'hand loop' else f'≤ {TARGET_RATIO:.2f}'} | {figures['achieved_gflops']:.1f} | "
            f"{100 * figures['fraction_of_peak']:.0f}% | {100 * figures['final_test_accuracy']:.2f}% |"
        )
    lines += [
        "",
        target_line("trainlab / hand loop, training time per epoch", m["ratio_trainlab_hand_loop"], TARGET_RATIO) + ".",
        f"- FLOPs: {m['forward_flops_per_image']:,} forward per image (FlopCounterMode), a training step counted as "
        f"3x forward ({m['training_flops_per_image']:,}).",
        f"- Conv peak: channels-last 3x3 conv2d forward + backward, batch {peak['batch']}, {peak['channels']} -> "
        f"{peak['channels']} channels at {peak['side']}x{peak['side']}, {peak['precision']}: "
        f"**{peak['gflops']:.1f} GFLOP/s** (the best of {settings['peak_repeats']}; their median "
        f"{peak['median_gflops']:.1f}).",
        freed_memory_line("The hand loop", settings),
    ]
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    parser = driver_parser(__doc__, epochs=1, rounds=2, hand_written="the hand loop")
    parser.add_argument("--model", choices=("cnn", "resnet"), default="cnn", help="trainlab's model (default: cnn)")
    parser.add_argument(
        "--precision",
        choices=("auto", "bf16", "fp32"),
        default="auto",
        help="auto: bf16 where the CPU has avx512_bf16 or amx_bf16, else fp32 (default: auto)",
    )
    parser.add_argument("--peak-repeats", type=int, default=10, help="timed repeats of the peak conv (default: 10)")
    parser.add_argument(
        "--peak-only",
        action="store_true",
        help="print the conv peak in --precision on --threads threads and stop (e.g. under ONEDNN_MAX_CPU_ISA=AVX2)",
    )
    parser.add_argument("--hand-loop", action="store_true", help=argparse.SUPPRESS)  # the driver's child process
    return parse_driver(parser, positive=("peak_repeats",))


def main() -> int:
    args = parse_arguments()
    if args.hand_loop:
        hand_loop(args)
        return 0
    if args.peak_only:
        import torch

        if args.threads:
            torch.set_num_threads(args.threads)
        precision = resolve_precision(args.precision)
        peak = conv_peak_gflops(precision, args.peak_repeats)
        print(
            f"conv peak, {precision}, {torch.get_num_threads()} thread(s), oneDNN ISA cap "
            f"{os.environ.get('ONEDNN_MAX_CPU_ISA', 'none')}: {peak['gflops']:.1f} GFLOP/s (best of "
            f"{args.peak_repeats}; median {peak['median_gflops']:.1f})"
        )
        return 0
    return run_driver("conv-loop", args, measure, markdown_report, settings=("model", "precision", "peak_repeats"))


if __name__ == "__main__":
    raise SystemExit(main())
