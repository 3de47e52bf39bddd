"""Accuracy on realistic pictures of the test images, per input style: the table in the README.

    python benchmarks/input_styles.py --data-dir ../shared/data [--checkpoint RUN] [--count 500] [--epochs 3]

Without --checkpoint it first trains the tutorial MLP with Adam (lr 1e-3, batch 64, --epochs epochs, seed 0).
Each variant (trainlab.testing.photos) renders the first --count test images as picture files, which go
through `Predictor.predict_files` like `trainlab predict` pictures; the table gives the accuracy per variant
and input style, and how often auto chose photo.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from trainlab import Predictor, TrainConfig, fit, load_dataset
from trainlab.testing.photos import VARIANTS

STYLES = ("raw", "auto", "photo")


def style_accuracies(predictor: Predictor, images: torch.Tensor, labels: torch.Tensor, folder: Path) -> dict:
    """{variant: {style: accuracy, "auto chose photo": share}} over the given uint8 (N, 1, 28, 28) images."""
    results = {}
    for number, (name, make) in enumerate(VARIANTS.items()):
        paths = []
        for index, image in enumerate(images):
            path = folder / f"v{number}-{index}.png"
            make(image[0].numpy(), index).save(path)
            paths.append(path)
        row = {}
        for style in STYLES:
            predictions = predictor.predict_files(paths, input_style=style)
            row[style] = sum(p.index == int(y) for p, y in zip(predictions, labels, strict=True)) / len(paths)
            if style == "auto":
                row["auto chose photo"] = sum(p.input_style == "photo" for p in predictions) / len(paths)
        results[name] = row
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="Fashion-MNIST copy (torchvision layout)")
    parser.add_argument("--checkpoint", help="a trained Fashion-MNIST run or checkpoint (default: train one)")
    parser.add_argument("--count", type=int, default=500, help="test images per variant (default: 500)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the model trained first (default: 3)")
    args = parser.parse_args()
    data = load_dataset("fashion-mnist", data_dir=args.data_dir, download=args.data_dir is None)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = Path(tmp) / "run"
            config = TrainConfig(optimizer="adam", epochs=args.epochs, data_dir=args.data_dir)
            summary = fit(config, data=data, run_dir=checkpoint)
            print(f"trained the tutorial MLP with Adam for {args.epochs} epochs: {100 * summary['test_accuracy']:.1f}%")
        predictor = Predictor.from_checkpoint(checkpoint)
        results = style_accuracies(predictor, data.test.images[: args.count], data.test.labels[: args.count], Path(tmp))
    print(f"\n| variant ({args.count} test images each) | raw | auto | photo | auto chose photo |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, row in results.items():
        cells = " | ".join(f"{100 * row[key]:.1f}%" for key in (*STYLES, "auto chose photo"))
        print(f"| {name} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
