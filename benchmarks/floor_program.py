"""The floor: the leanest PyTorch program that computes exactly what the tutorial computes (issue 15, item 1).

    python benchmarks/floor_program.py --data-dir DIR [--epochs 10] [--seed 0] [--save floor.pt]

The tutorial's NeuralNetwork built right after torch.manual_seed(seed) (as `trainlab train --seed N` builds it),
cross-entropy, batches of 64 in file order, plain SGD at lr 1e-3 applied by hand, the whole data set as float
tensors in [0, 1] made once from the IDX files, and a test pass after every epoch in batches of 1000 under
inference_mode, printing the tutorial's lines. No torch.optim (its import pulls in torch._dynamo), no DataLoader,
no torchvision. The last stdout line is a JSON object with the final test figures. benchmarks/floor.py runs it
against `trainlab train` and the tutorial's own loop.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import OrderedDict

import torch
from bench_common import load_fashion_mnist
from torch import nn
from torch.nn import functional as F

BATCH_SIZE = 64
TEST_BATCH_SIZE = 1000
LR = 1e-3
LOG_EVERY = 100  # batches between the tutorial's loss lines


def tutorial_model() -> nn.Module:
    """The tutorial's NeuralNetwork as a Sequential with its names (flatten, linear_relu_stack.N): the same layers
    built in the same order, so the same initial weights after the same seed, and the same state_dict keys."""
    stack = nn.Sequential(nn.Linear(28 * 28, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    return nn.Sequential(OrderedDict(flatten=nn.Flatten(), linear_relu_stack=stack))


def train_one_epoch(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One pass in file order; the SGD step is torch.optim.SGD's own update (p += -lr * grad), so bit for bit."""
    parameters = list(model.parameters())
    size = len(labels)
    model.train()
    for batch, start in enumerate(range(0, size, BATCH_SIZE)):
        x, y = images[start : start + BATCH_SIZE], labels[start : start + BATCH_SIZE]
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with torch.no_grad():
            for p in parameters:
                p.add_(p.grad, alpha=-LR)  # p -= lr * grad, rounded as torch.optim.SGD rounds it
                p.grad = None
        if batch % LOG_EVERY == 0:
            print(f"loss: {loss.item():>7f}  [{start + len(y):>5d}/{size:>5d}]")


def test(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy and mean loss per test image, in batches of 1000 under inference_mode."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(labels), TEST_BATCH_SIZE):
            x, y = images[start : start + TEST_BATCH_SIZE], labels[start : start + TEST_BATCH_SIZE]
            logits = model(x)
            loss_sum += float(F.cross_entropy(logits, y)) * len(y)
            correct += int((logits.argmax(1) == y).sum())
    return {"accuracy": correct / len(labels), "loss": loss_sum / len(labels)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data", help="torchvision-layout data root holding FashionMNIST/raw")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="torch.manual_seed right before building the model")
    parser.add_argument("--save", help="write the final state_dict here (torch.save)")
    parser.add_argument("--limit-train-batches", type=int, help="train on the first N batches only (smoke runs)")
    args = parser.parse_args()

    data = load_fashion_mnist(args.data_dir)
    train_images, train_labels = data["train_images"], data["train_labels"]
    if args.limit_train_batches:
        train_images = train_images[: args.limit_train_batches * BATCH_SIZE]
        train_labels = train_labels[: args.limit_train_batches * BATCH_SIZE]
    # ToTensor's scaling, once for the whole set: the same float32 values trainlab computes batch by batch
    train_images = train_images.to(torch.float32).div_(255)
    test_images = data["test_images"].to(torch.float32).div_(255)
    torch.manual_seed(args.seed)
    model = tutorial_model()

    started = time.perf_counter()
    for epoch in range(args.epochs):
        print(f"Epoch {epoch + 1}\n-------------------------------")
        train_one_epoch(model, train_images, train_labels)
        figures = test(model, test_images, data["test_labels"])
        print(f"Test Error: \n Accuracy: {100 * figures['accuracy']:>0.1f}%, Avg loss: {figures['loss']:>8f} \n")
    seconds = time.perf_counter() - started  # in the epochs: training and testing, start-up excluded
    if args.save:
        torch.save(model.state_dict(), args.save)
    print(
        json.dumps(
            {"test_accuracy": figures["accuracy"], "test_loss": figures["loss"], "machine_seconds": seconds},
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
