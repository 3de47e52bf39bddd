"""How well a Fashion-MNIST model says a picture is unlike its training images: the table in BENCHMARKS.md.

    python benchmarks/unlike.py --data-dir ../shared/data [--work /tmp/trainlab-unlike] [--rate 0.03]

Trains the tutorial MLP (Adam, lr 1e-3, 3 epochs) and the cnn (Adam, lr 1e-3, 1 epoch) with --val-split 0.1
into --work (kept: a second run reuses them), then for each score kind sets the threshold that flags --rate of
the validation images and counts what it flags among
- the first 2,000 test images (28x28 PNG files),
- natural photos: 300 random crops (48 to 320 pixels, RGB JPEG) of scikit-learn's and scikit-image's bundled
  photos,
- digits: scikit-learn's 8x8 digits upscaled to 28x28 (300 PNG files) and 200 MNIST-like digits drawn with PIL
  (a font's digit, thick white strokes on black, rotated and shifted).
Every picture is a file read through `Predictor.read_files` with input style auto, as `trainlab predict` reads it.
Candidates, each with its threshold at --rate of the validation images: softmax (1 - the top probability), energy
(-logsumexp of the logits), the penultimate features' Mahalanobis distance with class means and one shared
covariance, kNN (the 10th nearest of 10,000 training images' normalised features); then trainlab's checks
(trainlab.engine.unlike: features per class on 64 principal components, 7x7 pixels, levels, neighbours among
3,000 training images) alone and together, as `trainlab calibrate` records them and the Predictor applies them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from trainlab import Predictor, TrainConfig, load_dataset
from trainlab.data.memory import stratified_split
from trainlab.engine import unlike

RUNS = {
    "mlp": ["--model", "mlp", "--epochs", "3"],
    "cnn": ["--model", "cnn", "--epochs", "1"],
}
CANDIDATES = ("softmax", "energy", "features, shared covariance", "kNN")
NEIGHBOUR = 10  # the k of the kNN score


def train(work: Path, name: str, data_dir: str) -> Path:
    """The run directory of `name`, trained once."""
    run = work / name
    if not (run / "checkpoints" / "last.pt").is_file():
        command = [sys.executable, "-m", "trainlab", "train", *RUNS[name], "--optimizer", "adam", "--lr", "0.001"]
        command += ["--val-split", "0.1", "--data-dir", data_dir, "--run-dir", str(run), "--overwrite", "--quiet"]
        subprocess.run(command, check=True)
    return run


def photo_crops(count: int, seed: int) -> list[Image.Image]:
    """Random square crops, 48 to 320 pixels, of the bundled natural photos."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "moon", "immunohistochemistry"):
        photos.append(np.asarray(getattr(skimage.data, name)()))
    rng = np.random.default_rng(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        side = int(rng.integers(48, min(320, *photo.shape[:2]) + 1))
        y, x = (int(rng.integers(0, limit - side + 1)) for limit in photo.shape[:2])
        crops.append(Image.fromarray(photo[y : y + side, x : x + side]).convert("RGB"))
    return crops


def digit_pictures(count_drawn: int, count_sklearn: int, seed: int) -> list[Image.Image]:
    """scikit-learn's digits upscaled to 28x28, then digits drawn with PIL, white on black like MNIST."""
    from sklearn.datasets import load_digits

    rng = np.random.default_rng(seed)
    pictures = [
        Image.fromarray(np.rint(image * (255 / 16)).astype(np.uint8)).resize((28, 28), Image.Resampling.BILINEAR)
        for image in load_digits().images[:count_sklearn]
    ]
    for index in range(count_drawn):
        canvas = Image.new("L", (56, 56), 0)
        draw = ImageDraw.Draw(canvas)
        font = ImageFont.load_default(size=int(rng.integers(30, 42)))
        offset = (int(rng.integers(12, 22)), int(rng.integers(2, 10)))
        draw.text(offset, str(index % 10), fill=255, font=font, stroke_width=int(rng.integers(1, 4)), stroke_fill=255)
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
        pictures.append(canvas.resize((28, 28), Image.Resampling.BILINEAR))
    return pictures


def write(pictures: list[Image.Image], folder: Path, suffix: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{index}.{suffix}" for index in range(len(pictures))]
    for picture, path in zip(pictures, paths, strict=True):
        picture.save(path)
    return paths


def outputs(predictor: Predictor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, features) of uint8 images, in batches of 500."""
    parts = []
    with torch.inference_mode():
        for start in range(0, len(images), 500):
            parts.append(unlike.forward_features(predictor.model, predictor.preprocessing(images[start : start + 500])))
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def candidate_scores(kind: str, logits: torch.Tensor, features: torch.Tensor, fitted: dict) -> torch.Tensor:
    """Each image's score of a candidate `kind` (higher: more unlike the training images)."""
    if kind == "softmax":
        return 1 - torch.softmax(logits, 1).max(1).values
    if kind == "energy":
        return -torch.logsumexp(logits, 1)
    if kind == "features, shared covariance":
        return unlike.gaussian_distance(fitted["shared"], features)
    distances = torch.cdist(torch.nn.functional.normalize(features, dim=1), fitted["bank"])
    return distances.topk(NEIGHBOUR, dim=1, largest=False).values[:, -1]


def shared_gaussians(features: torch.Tensor, labels: torch.Tensor) -> dict:
    """Class means and one shared covariance's whitening (Lee et al., 2018), in fit_gaussians' form."""
    present = labels.unique()
    means = torch.stack([features[labels == c].mean(0) for c in present]).double()
    centred = features.double() - means[torch.searchsorted(present, labels)]
    covariance = centred.T @ centred / (len(features) - 1)
    covariance += unlike.RIDGE * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=torch.float64)
    whitening = torch.linalg.cholesky(torch.linalg.inv(covariance))
    return {"means": means.float(), "whitening": whitening.expand(len(present), -1, -1).float()}


def measure(run: Path, data_dir: str, rate: float, folders: dict[str, list[Path]]) -> dict[str, dict[str, float]]:
    """{kind: {set: share flagged}} for the model of `run`."""
    predictor = Predictor.from_checkpoint(run)
    config = TrainConfig(dataset="fashion-mnist", data_dir=data_dir, val_split=0.1)
    train, val = stratified_split(load_dataset(config, download=False).train, 0.1, config.seed)
    record = unlike.calibrate(predictor.model, predictor.preprocessing, train, val, "validation", rate)
    scorer = unlike.Scorer(record)
    train = unlike.sample(train, unlike.FIT_IMAGES, 0)
    train_features = outputs(predictor, train.images)[1]
    fitted = {
        "shared": shared_gaussians(train_features, train.labels),
        "bank": torch.nn.functional.normalize(train_features, dim=1),
    }
    images = {"validation": val.images}
    images.update(
        {name: torch.stack([x.tensor for x in predictor.read_files(paths)]) for name, paths in folders.items()}
    )
    seen = {name: (batch, *outputs(predictor, batch)) for name, batch in images.items()}
    table = {}
    for kind in CANDIDATES:
        scores = {
            name: candidate_scores(kind, logits, features, fitted) for name, (_, logits, features) in seen.items()
        }
        threshold = torch.quantile(scores["validation"].double(), 1 - rate)
        table[kind] = {name: float((values.double() > threshold).float().mean()) for name, values in scores.items()}
    distances = {name: scorer.distances(batch, features) for name, (batch, _, features) in seen.items()}
    for check in unlike.CHECKS:  # alone: its own threshold at --rate of the validation images
        threshold = torch.quantile(distances["validation"][check].double(), 1 - rate)
        table[f"{check} check alone"] = {
            name: float((values[check].double() > threshold).float().mean()) for name, values in distances.items()
        }
    table["trainlab: the four checks together"] = {
        name: float((scorer(batch, features) > 1).float().mean()) for name, (batch, _, features) in seen.items()
    }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "trainlab-unlike"))
    parser.add_argument("--rate", type=float, default=unlike.DEFAULT_RATE)
    parser.add_argument("--models", nargs="+", choices=tuple(RUNS), default=list(RUNS))
    args = parser.parse_args()
    work = Path(args.work)
    test = load_dataset("fashion-mnist", args.data_dir, download=False).test.images[:2000]
    folders = {
        "test": write([Image.fromarray(image[0].numpy()) for image in test], work / "pictures" / "test", "png"),
        "photos": write(photo_crops(300, seed=1), work / "pictures" / "photos", "jpg"),
        "digits": write(digit_pictures(200, 300, seed=2), work / "pictures" / "digits", "png"),
    }
    print(f"threshold: {args.rate:.0%} of the validation images flagged; input style auto (file inputs)")
    print("| score | model | validation flagged | test images flagged | photos flagged | digits flagged |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in args.models:
        table = measure(train(work, name, args.data_dir), args.data_dir, args.rate, folders)
        for kind, row in table.items():
            shares = " | ".join(f"{row[column]:.1%}" for column in ("validation", "test", "photos", "digits"))
            print(f"| {kind} | {name} | {shares} |")


if __name__ == "__main__":
    main()
