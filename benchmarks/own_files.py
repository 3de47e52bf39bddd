"""The user's files as fast as the built-in set: issue 31, target 4 (a folder of JPEG photos, one of PNGs).

    python benchmarks/own_files.py [--count 10000] [--rounds 3] [--only decode|start|epoch] [--set jpeg|png]
    python benchmarks/own_files.py --smoke        # tiny sets, one round, two batches: checks that it all runs

Writes two sets of class folders once (deterministic, seed 0) under --sets-dir and reuses them while their
marker file names the same parameters: `jpeg`, COUNT 96x96 RGB JPEG photos (quality 90), and `png`, COUNT
28x28 gray PNGs, in ROOT/train/<class>/ (ten classes), with COUNT/10 more in ROOT/test/<class>/ for the epoch's
test pass. With Fashion-MNIST in --data-dir the pictures are its training garments (jpeg: tinted and enlarged to
60-92 pixels on a gradient backdrop, own_image_sets.product_photo; png: the garments as they are); without it,
generated ones (a class is a grating's angle, with random frequency, phase, colours and noise). The report says
which.

Then, as whole processes taken in turn, on each set:

a. decode: the first decode of ROOT/train into trainlab's cache (`trainlab.data.load_splits` of a folder
   TrainConfig, as `trainlab train` reads it; the cache folder removed before each round) against torchvision's
   `ImageFolder(transform=PILToTensor())` + `DataLoader(num_workers=2, batch_size=256)` reading the same files
   once into uint8 tensors (its loader opens each file in the set's mode, L or RGB, as trainlab decodes it:
   torchvision's default loader would make three channels of a gray PNG). Each child times itself from after
   `import torch` to the tensors in memory (trainlab: cache written); target: trainlab >= 2x faster.
b. start: a second, cached run's start: process start to the first training step of `trainlab train
   --dataset folder --image-dir ROOT` (the flags of c; the time to its first `loss:` line, which the console
   flushes right after step 1), minus the same round's `python -c "import torch"`; target: under 1 s. Step 1's
   own arithmetic is in that figure (about 400 GFLOP for the cnn on a batch of 256 96x96 RGB images), so the time
   to its `Epoch 1` line, printed as step 1 begins, is shown beside it.
c. epoch: `trainlab train --model cnn` on the set against a hand-written loop over the same uint8 tensors
   (decoded once by PIL into ROOT/hand-loop-tensors.pt): trainlab's cnn class, and conv_loop.py's recipe on both
   sides, pinned by flags (SGD, Nesterov momentum 0.9, weight decay 5e-4, lr 0.2 one-cycle, batch 256, label
   smoothing 0.1, crop with 2 pixels of padding, flip, erasing 0.25, channels-last, bf16 autocast where the CPU
   computes it, no normalization, no TTA); training seconds per epoch from trainlab's metrics.jsonl and the hand
   loop's own lines (images / machine_samples_per_second, as conv_loop.py reads them); target: <= 1.05x.

Prints a Markdown table with the targets beside the figures, writes benchmarks/results/own-files-<time>.json,
and asserts nothing.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import (
    RESULTS_DIR,
    child_environment,
    load_fashion_mnist,
    machine_info,
    machine_line,
    resolve_precision,
    run_timed,
    script_parser,
    summarize,
    write_results,
)
from conv_loop import (  # the recipe both loops follow, and the hand loop itself
    BATCH_SIZE,
    ERASING,
    EVAL_BATCH_SIZE,
    LABEL_SMOOTHING,
    MAX_LR,
    MOMENTUM,
    PADDING,
    WEIGHT_DECAY,
    train_by_hand,
)

TARGET_DECODE_SPEEDUP = 2.0  # torchvision's seconds / trainlab's, first decode
TARGET_START_EXTRA = 1.0  # seconds from process start to the first step beyond `import torch`, cached run
TARGET_EPOCH_RATIO = 1.05  # trainlab training seconds per epoch / the hand loop's
CLASSES = 10
SEED = 0
MARKER = "own-files-set.json"  # written last: the set is complete, and made with these parameters
HAND_TENSORS = "hand-loop-tensors.pt"
FIRST_STEP_TIMEOUT = 600.0  # seconds
TORCHVISION_WORKERS = 2
PARTS = ("decode", "start", "epoch")
SETS = ("jpeg", "png")


@dataclass(frozen=True)
class SetSpec:
    """One set's files: format, side, colour, how many training images (and a tenth of that for testing)."""

    name: str
    file_format: str  # jpg or png
    side: int  # pixels
    rgb: bool
    count: int

    @property
    def mode(self) -> str:
        return "RGB" if self.rgb else "L"


# ---------------------------------------------------------------------------------------------------------------
# the sets


def garments(data_dir: str, count: int) -> tuple[np.ndarray, np.ndarray] | None:
    """`count` Fashion-MNIST training garments (28x28 uint8) and labels, chosen by SEED; None without the data."""
    try:
        data = load_fashion_mnist(data_dir)
    except SystemExit:
        return None
    images, labels = data["train_images"][:, 0].numpy(), data["train_labels"].numpy()
    chosen = np.sort(np.random.default_rng(SEED).permutation(len(labels))[:count])
    if count > len(labels):  # more than Fashion-MNIST holds: the garments again, drawn with replacement
        chosen = np.random.default_rng(SEED).integers(0, len(labels), count)
    return images[chosen], labels[chosen]


def grating(label: int, side: int, rgb: bool, rng: np.random.Generator) -> np.ndarray:
    """A generated picture of class `label`: a grating at angle label * 18 degrees, random frequency, phase,
    colours and noise."""
    angle = math.pi * label / CLASSES + rng.normal(0, 0.04)
    y, x = np.mgrid[0:side, 0:side] / side
    wave = np.sin(2 * math.pi * rng.uniform(2, 5) * (x * math.cos(angle) + y * math.sin(angle)) + rng.uniform(0, 6.3))
    low, high = rng.uniform(0, 110, 3 if rgb else 1), rng.uniform(145, 255, 3 if rgb else 1)
    pixels = low + (high - low) * (wave[..., None] + 1) / 2 + rng.normal(0, 12, (side, side, 3 if rgb else 1))
    pixels = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return pixels if rgb else pixels[..., 0]


def pictures(spec: SetSpec, total: int, data_dir: str) -> tuple[list[np.ndarray], np.ndarray, str]:
    """`total` uint8 pictures for the set, their labels, and where they come from."""
    from own_image_sets import product_photo
    from PIL import Image

    rng = np.random.default_rng(SEED)
    found = garments(data_dir, total)
    if found is None:
        labels = np.arange(total) % CLASSES
        source = "generated gratings (no Fashion-MNIST in --data-dir): class = angle, random frequency/colours/noise"
        return [grating(int(label), spec.side, spec.rgb, rng) for label in labels], labels, source
    images, labels = found
    if spec.rgb:
        made = [product_photo(garment, rng) for garment in images]  # 96x96 RGB
        if spec.side != made[0].shape[0]:
            made = [np.asarray(Image.fromarray(p).resize((spec.side, spec.side), Image.Resampling.BOX)) for p in made]
        source = f"Fashion-MNIST garments from {data_dir}, tinted and enlarged on a gradient backdrop"
    else:
        made = list(images)
        if spec.side != 28:
            made = [np.asarray(Image.fromarray(g).resize((spec.side, spec.side), Image.Resampling.BOX)) for g in made]
        source = f"Fashion-MNIST garments from {data_dir}, as they are"
    return made, labels, source


def ensure_set(spec: SetSpec, sets_dir: Path, data_dir: str) -> tuple[Path, str]:
    """The set's folder (written now unless a complete one with the same parameters is there) and its source."""
    has_data = garments(data_dir, 1) is not None
    root = sets_dir / f"{spec.name}-{spec.count}-{spec.side}-{'fashion' if has_data else 'generated'}"
    marker = root / MARKER
    wanted = {**asdict(spec), "seed": SEED, "fashion_mnist": has_data}
    if marker.is_file():
        written = json.loads(marker.read_text())
        if written.get("parameters") == wanted:
            return root, written["source"]
    if root.exists():
        shutil.rmtree(root)
    print(f"writing the {spec.name} set into {root} ...", file=sys.stderr, flush=True)
    test_count = max(CLASSES, spec.count // 10)
    images, labels, source = pictures(spec, spec.count + test_count, data_dir)
    split_files: dict[str, list[tuple[Path, int]]] = {"train": [], "test": []}
    for number, (image, label) in enumerate(zip(images, labels, strict=True)):
        split = "train" if number < spec.count else "test"
        folder = root / split / f"class_{int(label)}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{number:06d}.{spec.file_format}"
        write_picture(image, path, spec.file_format)
        split_files[split].append((path, int(label)))
    write_hand_tensors(root, spec, split_files)
    marker.write_text(json.dumps({"parameters": wanted, "source": source}, indent=2) + "\n")
    return root, source


def write_picture(image: np.ndarray, path: Path, file_format: str) -> None:
    from PIL import Image

    if file_format == "jpg":
        Image.fromarray(image).save(path, format="JPEG", quality=90)
    else:
        Image.fromarray(image).save(path, format="PNG")


def write_hand_tensors(root: Path, spec: SetSpec, split_files: dict[str, list[tuple[Path, int]]]) -> None:
    """The files decoded once by PIL (the pixels trainlab's raw decode gives at their own size) for the hand loop."""
    import torch
    from PIL import Image

    tensors = {}
    for split, files in split_files.items():
        arrays = []
        for path, _ in files:
            with Image.open(path) as picture:
                pixels = np.asarray(picture.convert(spec.mode))
            arrays.append(pixels.transpose(2, 0, 1) if spec.rgb else pixels[None])
        tensors[f"{split}_images"] = torch.from_numpy(np.stack(arrays))
        tensors[f"{split}_labels"] = torch.tensor([label for _, label in files], dtype=torch.long)
    torch.save(tensors, root / HAND_TENSORS)


# ---------------------------------------------------------------------------------------------------------------
# the child processes (--child)


def decode_with_trainlab(root: Path) -> dict[str, Any]:
    """ROOT/train decoded and cached as `trainlab train` does it; seconds from after `import torch`."""
    import torch  # noqa: F401 - not timed: both sides have it

    started = time.perf_counter()
    from trainlab.config import TrainConfig
    from trainlab.data import load_splits

    loaded, notes = load_splits(TrainConfig(dataset="folder", image_dir=str(root)), ("train",))
    seconds = time.perf_counter() - started
    images = loaded["train"].images
    return {"seconds": seconds, "images": len(images), "shape": list(images.shape[1:]), "notes": notes}


def open_picture(path: str, mode: str) -> Any:
    """torchvision ImageFolder's loader, in the set's mode."""
    from PIL import Image

    with open(path, "rb") as handle:
        return Image.open(handle).convert(mode)


def decode_with_torchvision(root: Path, mode: str) -> dict[str, Any]:
    """ROOT/train read once by ImageFolder + DataLoader(num_workers=2) into uint8 tensors."""
    import torch

    started = time.perf_counter()
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import PILToTensor

    dataset = ImageFolder(
        str(root / "train"), transform=PILToTensor(), loader=functools.partial(open_picture, mode=mode)
    )
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH_SIZE, num_workers=TORCHVISION_WORKERS)
    batches = list(loader)
    images = torch.cat([images for images, _ in batches])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": len(images), "shape": list(images.shape[1:])}


def hand_loop(root: Path, args: argparse.Namespace) -> None:
    """conv_loop.py's hand loop over the set's uint8 tensors: one JSON line per epoch."""
    import torch

    train_by_hand(torch.load(root / HAND_TENSORS, weights_only=True), "cnn", CLASSES, args)


# ---------------------------------------------------------------------------------------------------------------
# the driver


def own_command(args: argparse.Namespace, child: str, root: Path, mode: str = "RGB") -> list[str]:
    """This script as one of its child processes."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", child, "--child-root", str(root)]
    command += ["--child-mode", mode, "--epochs", str(args.epochs), "--seed", str(args.seed)]
    command += ["--precision", args.precision]
    if args.limit_train_batches:
        command += ["--limit-train-batches", str(args.limit_train_batches)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    return command


def train_command(args: argparse.Namespace, root: Path) -> list[str]:
    """`trainlab train` on the set with conv_loop.py's recipe pinned by flags (no --run-dir: the caller adds it)."""
    command = [sys.executable, "-m", "trainlab", "train", "--dataset", "folder", "--image-dir", str(root)]
    command += ["--model", "cnn", "--optimizer", "sgd", "--lr", str(MAX_LR), "--momentum", str(MOMENTUM)]
    command += ["--nesterov", "--weight-decay", str(WEIGHT_DECAY), "--schedule", "onecycle", "--warmup-epochs", "0"]
    command += ["--batch-size", str(BATCH_SIZE), "--eval-batch-size", str(EVAL_BATCH_SIZE), "--shuffle"]
    command += ["--augment", "--augment-flip", "--augment-padding", str(PADDING), "--augment-erasing", str(ERASING)]
    command += ["--label-smoothing", str(LABEL_SMOOTHING), "--tta", "none", "--no-normalize", "--channels-last"]
    command += ["--precision", resolve_precision(args.precision), "--epochs", str(args.epochs)]
    command += ["--seed", str(args.seed), "--overwrite"]
    if args.limit_train_batches:
        command += ["--limit-train-batches", str(args.limit_train_batches)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    return command


def remove_cache(root: Path) -> None:
    """trainlab's decoded-image caches of the set (in ROOT/train and ROOT/test), so that the next run decodes."""
    for split in ("train", "test"):
        shutil.rmtree(root / split / ".trainlab-cache", ignore_errors=True)


def warm_file_cache(root: Path) -> None:
    """Every file read once, so that both sides of the decode read from the page cache."""
    for path in root.rglob("*"):
        if path.is_file():
            path.read_bytes()


def measure_decode(args: argparse.Namespace, sets: dict[str, tuple[SetSpec, Path]]) -> dict[str, Any]:
    """Rounds of trainlab's first decode and torchvision's read, in turn, per set."""
    env = child_environment(args.threads)
    results = {}
    for name, (spec, root) in sets.items():
        warm_file_cache(root)
        sides: dict[str, dict[str, list[float]]] = {
            side: {"in_process": [], "wall": []} for side in ("trainlab", "torchvision")
        }
        for round_number in range(args.rounds):
            for side in ("trainlab", "torchvision"):
                remove_cache(root)
                wall, stdout = run_timed(own_command(args, f"decode-{side}", root, spec.mode), env)
                row = json.loads(stdout.strip().splitlines()[-1])
                if row["images"] != spec.count:
                    sys.exit(f"{side} decoded {row['images']} images of {spec.count} in {root}")
                sides[side]["in_process"].append(row["seconds"])
                sides[side]["wall"].append(wall)
                print(
                    f"  decode {name} round {round_number + 1}/{args.rounds} {side:<11} {row['seconds']:6.2f} s "
                    f"in process, {wall:6.2f} s wall",
                    file=sys.stderr,
                    flush=True,
                )
        trainlab = statistics.median(sides["trainlab"]["in_process"])
        torchvision = statistics.median(sides["torchvision"]["in_process"])
        results[name] = {
            "trainlab": {key: summarize(values) for key, values in sides["trainlab"].items()},
            "torchvision": {key: summarize(values) for key, values in sides["torchvision"].items()},
            "speedup": torchvision / trainlab,  # torchvision's in-process seconds / trainlab's
            "speedup_wall": statistics.median(sides["torchvision"]["wall"])
            / statistics.median(sides["trainlab"]["wall"]),
        }
    return results


def to_first_step(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from starting `trainlab train` to its `Epoch 1` line (printed as step 1 begins) and to its first
    `loss:` line (printed and flushed right after step 1, whose arithmetic it includes); then it is killed."""
    started = time.perf_counter()
    epoch_line = None
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        for line in process.stdout:  # type: ignore[union-attr]
            if line.startswith("Epoch 1") and epoch_line is None:
                epoch_line = time.perf_counter() - started
            if line.startswith("loss:"):
                return epoch_line or math.nan, time.perf_counter() - started
            if time.perf_counter() - started > FIRST_STEP_TIMEOUT:
                break
    finally:
        process.kill()
        process.wait()
    sys.exit(f"no loss line from: {' '.join(command)} (exit status {process.returncode})")


def measure_start(
    args: argparse.Namespace, sets: dict[str, tuple[SetSpec, Path]], work: Path, warm_up: bool = True
) -> dict[str, Any]:
    """Rounds of `import torch` and each set's cached `trainlab train` to its first step, in turn; one warm-up
    round first (it also writes the test split's cache), unless the epoch part has just done that."""
    env = child_environment(args.threads)
    seconds: dict[str, list[float]] = {"import torch": [], **{name: [] for name in sets}}
    extras: dict[str, list[float]] = {name: [] for name in sets}
    before_step: dict[str, list[float]] = {name: [] for name in sets}  # to step 1's start, beyond import torch
    for round_number in range(0 if warm_up else 1, args.rounds + 1):
        torch_seconds = run_timed([sys.executable, "-c", "import torch"], env)[0]
        row, starts = {"import torch": torch_seconds}, {}
        for name, (_, root) in sets.items():
            command = [*train_command(args, root), "--run-dir", str(work / f"start-{name}-{round_number}")]
            starts[name], row[name] = to_first_step(command, env)
        if round_number == 0:  # warm-up: file cache, bytecode, the test split's cache
            continue
        for key, value in row.items():
            seconds[key].append(value)
        for name in sets:
            extras[name].append(row[name] - torch_seconds)
            before_step[name].append(starts[name] - torch_seconds)
        line = ", ".join(f"{key} {value:.2f} s" for key, value in row.items())
        print(f"  start round {round_number}/{args.rounds}: {line}", file=sys.stderr, flush=True)
    return {
        "seconds": {key: summarize(values) for key, values in seconds.items()},
        "beyond_import_torch": {name: summarize(values) for name, values in extras.items()},
        "step_one_starts_beyond_import_torch": {name: summarize(values) for name, values in before_step.items()},
    }


def epoch_rows(side: str, stdout: str, run_dir: Path) -> list[dict[str, Any]]:
    if side == "trainlab":
        return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def measure_epoch(args: argparse.Namespace, sets: dict[str, tuple[SetSpec, Path]], work: Path) -> dict[str, Any]:
    """Rounds of the hand loop and `trainlab train`, in turn, per set: training seconds per epoch of each."""
    env = child_environment(args.threads)
    hand_env = child_environment(args.threads, keep_freed_memory=True)  # what trainlab asks glibc for itself
    results = {}
    for name, (spec, root) in sets.items():
        speeds: dict[str, list[float]] = {"hand loop": [], "trainlab": []}
        accuracy: dict[str, float] = {}
        for round_number in range(args.rounds):
            run_dir = work / f"epoch-{name}-{round_number}"
            for side, command in (
                ("hand loop", own_command(args, "hand-loop", root, spec.mode)),
                ("trainlab", [*train_command(args, root), "--run-dir", str(run_dir), "--quiet", "--json"]),
            ):
                wall, stdout = run_timed(command, hand_env if side == "hand loop" else env)
                rows = epoch_rows(side, stdout, run_dir)
                speeds[side] += [row["machine_samples_per_second"] for row in rows]
                accuracy[side] = rows[-1]["test_accuracy"]
                shown = ", ".join(f"{row['machine_samples_per_second']:.0f}" for row in rows)
                print(
                    f"  epoch {name} round {round_number + 1}/{args.rounds} {side:<9} {wall:6.1f} s wall, training "
                    f"images/s {shown}",
                    file=sys.stderr,
                    flush=True,
                )
        images = min(spec.count, args.limit_train_batches * BATCH_SIZE) if args.limit_train_batches else spec.count
        per_epoch = {side: images / statistics.median(values) for side, values in speeds.items()}
        results[name] = {
            "train_images_per_epoch": images,
            "train_seconds_per_epoch": per_epoch,
            "train_images_per_second": {side: summarize(values) for side, values in speeds.items()},
            "final_test_accuracy": accuracy,
            "ratio": per_epoch["trainlab"] / per_epoch["hand loop"],
        }
    return results


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The sets (written once), then the parts asked for: decode, epoch (it also caches the test splits), start."""
    specs = set_specs(args)
    sets, sources = {}, {}
    for spec in specs:
        root, source = ensure_set(spec, args.sets_dir, args.data_dir)
        sets[spec.name] = (spec, root)
        sources[spec.name] = {"root": str(root), "source": source, **asdict(spec)}
    measured: dict[str, Any] = {"sets": sources}
    with tempfile.TemporaryDirectory(prefix="trainlab-own-files-") as temporary:
        work = Path(temporary)
        if "decode" in args.parts:
            measured["decode"] = measure_decode(args, sets)
        if "epoch" in args.parts:
            measured["epoch"] = measure_epoch(args, sets, work)
        if "start" in args.parts:
            measured["start"] = measure_start(args, sets, work, warm_up="epoch" not in args.parts)
    return measured


def set_specs(args: argparse.Namespace) -> list[SetSpec]:
    jpeg_side, png_side = (32, 14) if args.smoke else (96, 28)
    specs = [SetSpec("jpeg", "jpg", jpeg_side, True, args.count), SetSpec("png", "png", png_side, False, args.count)]
    return [spec for spec in specs if spec.name in args.sets]


def met(ok: bool) -> str:
    return "**yes**" if ok else "**no**"


def markdown_report(results: dict[str, Any]) -> str:
    measured, settings = results["measured"], results["settings"]
    lines = [machine_line(results["machine"]), ""]
    for name, described in measured["sets"].items():
        lines.append(
            f"- `{name}`: {described['count']:,} training images {described['side']}x{described['side']} "
            f"{'RGB' if described['rgb'] else 'gray'} {described['file_format'].upper()} in {described['root']}: "
            f"{described['source']}."
        )
    lines += [
        "",
        f"{settings['rounds']} round(s) of whole processes in turn; medians. precision "
        f"{resolve_precision(settings['precision'])}, {settings['epochs']} epoch(s)"
        + (f", first {settings['limit_train_batches']} batches" if settings["limit_train_batches"] else "")
        + ".",
        "",
        "| set | measure | trainlab | against | figure | target | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for name, row in measured.get("decode", {}).items():
        trainlab, torchvision = row["trainlab"]["in_process"]["median"], row["torchvision"]["in_process"]["median"]
        lines.append(
            f"| {name} | first decode, s after `import torch` (torchvision ImageFolder + DataLoader, 2 workers) | "
            f"{trainlab:.2f} | {torchvision:.2f} | {row['speedup']:.2f}x faster | ≥ {TARGET_DECODE_SPEEDUP:.0f}x | "
            f"{met(row['speedup'] >= TARGET_DECODE_SPEEDUP)} |"
        )
        lines.append(
            f"| {name} | the same, whole processes, s | {row['trainlab']['wall']['median']:.2f} | "
            f"{row['torchvision']['wall']['median']:.2f} | {row['speedup_wall']:.2f}x faster |  |  |"
        )
    start = measured.get("start")
    if start:
        torch_seconds = start["seconds"]["import torch"]["median"]
        for name, extra in start["beyond_import_torch"].items():
            lines.append(
                f"| {name} | cached run: start to the first step, s (against `import torch`) | "
                f"{start['seconds'][name]['median']:.2f} | {torch_seconds:.2f} | {extra['median']:+.2f} s | "
                f"< {TARGET_START_EXTRA:.0f} s | {met(extra['median'] < TARGET_START_EXTRA)} |"
            )
            begins = start["step_one_starts_beyond_import_torch"][name]["median"]
            lines.append(f"| {name} | the same, to step 1's start (its `Epoch 1` line) |  |  | {begins:+.2f} s |  |  |")
    for name, row in measured.get("epoch", {}).items():
        seconds = row["train_seconds_per_epoch"]
        lines.append(
            f"| {name} | cnn training s/epoch (against the hand loop) | {seconds['trainlab']:.2f} | "
            f"{seconds['hand loop']:.2f} | {row['ratio']:.3f}x | ≤ {TARGET_EPOCH_RATIO:.2f}x | "
            f"{met(row['ratio'] <= TARGET_EPOCH_RATIO)} |"
        )
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    parser = script_parser(__doc__)
    parser.add_argument("--count", type=int, help="training images per set (default: 10000; 40 with --smoke)")
    parser.add_argument("--rounds", type=int, help="rounds of the processes, in turn (default: 3; 1 with --smoke)")
    parser.add_argument("--only", choices=PARTS, action="append", help="measure only this part (repeatable)")
    parser.add_argument("--set", dest="sets", choices=SETS, action="append", help="only this set (repeatable)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs of each training process (default: 1)")
    parser.add_argument("--threads", type=int, help="torch threads of every process (sets OMP_NUM_THREADS)")
    parser.add_argument("--seed", type=int, default=0, help="the training processes' seed (default: 0)")
    parser.add_argument(
        "--precision", choices=("auto", "bf16", "fp32"), default="auto", help="auto: bf16 where the CPU computes it"
    )
    parser.add_argument("--limit-train-batches", type=int, help="train on the first N batches of every epoch only")
    parser.add_argument(
        "--sets-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "trainlab-own-files",
        help="where the sets are written once and reused (default: <temp>/trainlab-own-files)",
    )
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where the JSON goes")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sets (32x32 JPEG, 14x14 PNG), 40 images, 1 round, 2 batches: checks that it runs",
    )
    parser.add_argument(
        "--child", choices=("decode-trainlab", "decode-torchvision", "hand-loop"), help=argparse.SUPPRESS
    )
    parser.add_argument("--child-root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-mode", default="RGB", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.count = args.count or (40 if args.smoke else 10_000)
    args.rounds = args.rounds or (1 if args.smoke else 3)
    if args.smoke and not args.limit_train_batches:
        args.limit_train_batches = 2
    for name in ("count", "rounds", "epochs", "threads", "limit_train_batches"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    args.parts = tuple(args.only or PARTS)
    args.sets = tuple(args.sets or SETS)
    args.sets_dir = args.sets_dir.resolve()
    return args


def main() -> int:
    args = parse_arguments()
    if args.child == "decode-trainlab":
        print(json.dumps(decode_with_trainlab(args.child_root)))
        return 0
    if args.child == "decode-torchvision":
        print(json.dumps(decode_with_torchvision(args.child_root, args.child_mode)))
        return 0
    if args.child == "hand-loop":
        hand_loop(args.child_root, args)
        return 0
    settings = ("count", "rounds", "parts", "sets", "epochs", "threads", "seed", "precision", "limit_train_batches")
    results = {
        "machine": machine_info(args.threads),
        "settings": {key: getattr(args, key) for key in (*settings, "smoke")},
        "measured": measure(args),
    }
    path = write_results("own-files", results, args.results_dir)
    print(markdown_report(results))
    print(f"\nResults written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
