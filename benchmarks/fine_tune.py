"""Fine-tuning a network trainlab pre-trained itself, against the same network trained from scratch (issue 30).

    python benchmarks/fine_tune.py [--data-dir DIR] [--pretrain-epochs 2] [--epochs 10] [--seeds 0,1,2] [--threads N]

1. Pre-trains the `cnn` on the full Fashion-MNIST training set (60,000 images; --data-dir or $TRAINLAB_DATA_DIR)
   for a few epochs (not a time budget: on a shared machine its timing pass misjudges the steps).
2. On 500 images of another real set, scikit-learn's handwritten digits (8x8 upscaled to 28x28, a seeded split;
   the other 1,297 are the test set), trains the same network, same epochs and recipe, four ways:
     scratch         from its random initialisation (--no-fine-tune)
     fine-tune       --init-from the pre-trained run, its head replaced by a new one (fastai's fine_tune: one
                     epoch of the head alone on the frozen body's cached features, then every layer, earlier
                     layers at smaller learning rates)
     all layers      --init-from the same weights (new head), --no-fine-tune: every layer at one learning rate
     linear probe    --init-from, --freeze features: the frozen body's features computed once, the head trained
Prints a markdown table: mean test accuracy over the seeds and mean seconds per run (fit() wall time in this
process, data already in memory). Times taken on a shared machine are approximate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from trainlab import ImageData, TrainConfig, load_dataset
from trainlab.data import DatasetSplits
from trainlab.engine.reporting import Reporter
from trainlab.training.fit import fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_image_sets import make_digits  # noqa: E402

TRAIN_IMAGES = 500
RECIPE = {"model": "cnn", "optimizer": "adamw", "lr": 2e-3, "weight_decay": 0.05, "shuffle": True}
WAYS = {  # row name -> (config changes, starts from the pre-trained weights)
    "scratch (random init)": ({"fine_tune": False}, False),
    "fine-tune (--init-from, new head; 1 frozen epoch, then discriminative lrs)": ({}, True),
    "all layers (--init-from, new head, --no-fine-tune)": ({"fine_tune": False}, True),
    "linear probe (--init-from, new head, --freeze features; cached features)": (
        {"fine_tune": False, "freeze": ["features"]},
        True,
    ),
}


def digits_splits(seed: int) -> DatasetSplits:
    """500 training images of scikit-learn's digits (the rest for testing), upscaled to 28x28 gray."""
    digits = make_digits(seed)
    images = np.concatenate([digits.train_images, digits.test_images])
    labels = np.concatenate([digits.train_labels, digits.test_labels])
    order = np.random.default_rng(seed).permutation(len(labels))
    pixels = torch.from_numpy(images[order]).float().unsqueeze(1)
    upscaled = F.interpolate(pixels, size=(28, 28), mode="bilinear", align_corners=False).round().clamp(0, 255)
    upscaled = upscaled.to(torch.uint8)
    targets = torch.from_numpy(labels[order]).long()
    part = [
        ImageData(upscaled[s], targets[s], digits.classes) for s in (slice(0, TRAIN_IMAGES), slice(TRAIN_IMAGES, None))
    ]
    return DatasetSplits(*part)


def pretrain(data_dir: str, epochs: int, steps: int | None, out: Path) -> tuple[Path, float, float]:
    """The cnn trained on the full Fashion-MNIST training set for `epochs` (or `steps`): (a checkpoint whose head is
    freshly initialised, its Fashion-MNIST test accuracy, seconds)."""
    config = TrainConfig(data_dir=data_dir, epochs=epochs, max_steps=steps, batch_size=128, **RECIPE)
    started = time.perf_counter()
    summary = fit(config, run_dir=out / "pretrained", reporter=Reporter(), download=False)
    seconds = time.perf_counter() - started
    checkpoint = torch.load(out / "pretrained" / "checkpoints" / "last.pt", weights_only=True)
    torch.manual_seed(12345)
    fresh = torch.nn.Linear(*reversed(checkpoint["model_state"]["classifier.1.weight"].shape))
    checkpoint["model_state"]["classifier.1.weight"] = fresh.weight.detach().clone()
    checkpoint["model_state"]["classifier.1.bias"] = fresh.bias.detach().clone()
    path = out / "pretrained_new_head.pt"
    torch.save(checkpoint, path)
    return path, float(summary["test_accuracy"]), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR", "/work/shared/data"))
    parser.add_argument("--pretrain-epochs", type=int, default=2, help="epochs of the Fashion-MNIST run")
    parser.add_argument("--pretrain-steps", type=int, default=None, help="at most this many steps (a quick check)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--threads", type=int, default=0, help="torch's CPU threads (0: torch's choice)")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    RECIPE["threads"] = args.threads
    load_dataset(TrainConfig(data_dir=args.data_dir), download=False)  # fails early without the data
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        weights, pretrained_accuracy, pretrain_seconds = pretrain(
            args.data_dir, args.pretrain_epochs, args.pretrain_steps, out
        )
        print(
            f"pre-trained cnn: Fashion-MNIST test accuracy {pretrained_accuracy:.2%} in {pretrain_seconds:.0f} s "
            f"({args.pretrain_epochs} epochs)",
            flush=True,
        )
        rows = []
        for name, (changes, from_weights) in WAYS.items():
            accuracies, seconds = [], []
            for seed in seeds:
                config = TrainConfig(epochs=args.epochs, batch_size=32, seed=seed, **{**RECIPE, **changes})
                run_dir = out / f"{len(rows)}-{seed}"
                started = time.perf_counter()
                summary = fit(
                    config,
                    data=digits_splits(seed),
                    run_dir=run_dir,
                    init_from=weights if from_weights else None,
                    reporter=Reporter(),
                )
                seconds.append(time.perf_counter() - started)
                accuracies.append(float(summary["test_accuracy"]))
            rows.append((name, statistics.mean(accuracies), min(accuracies), max(accuracies), statistics.mean(seconds)))
            print(f"{name}: {[f'{a:.2%}' for a in accuracies]}", flush=True)
    print()
    title = f"digits, {TRAIN_IMAGES} training images (28x28), {args.epochs} epochs, seeds {args.seeds}"
    print(f"| {title} | test accuracy (mean) | min - max | seconds per run (approx.) |")
    print("| --- | ---: | ---: | ---: |")
    for name, mean, low, high, secs in rows:
        print(f"| {name} | {mean:.2%} | {low:.2%} - {high:.2%} | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
