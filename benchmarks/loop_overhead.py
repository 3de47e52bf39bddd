"""Where trainlab's training epoch spends more than the floor's: one epoch of the tutorial's workload, in process.

    python benchmarks/loop_overhead.py --data-dir ../shared/data [--rounds 3] [--threads 2]

Times, in turn for each round, one epoch (60,000 images, batch 64, SGD lr 1e-3) of: the floor's own loop
(benchmarks/floor_program.py: float data made once, the update by hand); trainlab's engine loop
(`trainlab.engine.loop.train_one_epoch` with `torch.optim.SGD`, the per-step loss and accuracy it records); and
trainlab's batches and uint8-to-float preprocessing with the floor's hand-written update; then trainlab's loop with
`torch.optim.SGD(foreach=True)` and `fused=True`, saying whether their weights equal the default's. Prints seconds
per epoch; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time

import floor_program
import torch
from torch.nn import functional as F

from trainlab.data import load_dataset, make_loader
from trainlab.data.transforms import Preprocessing
from trainlab.engine.loop import train_one_epoch

LR = 1e-3


def floor_epoch(data) -> float:
    model = floor_program.tutorial_model()
    images, labels = data.train.images.float().div(255), data.train.labels
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        floor_program.train_one_epoch(model, images, labels)
    return time.perf_counter() - start


def trainlab_epoch(data, **optimizer_options) -> tuple[float, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = floor_program.tutorial_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, **optimizer_options)
    start = time.perf_counter()
    batches = make_loader(data.train, 64).batches()
    train_one_epoch(model, batches, torch.nn.CrossEntropyLoss(), optimizer, Preprocessing())
    return time.perf_counter() - start, [p.detach().clone() for p in model.parameters()]


def batches_with_floor_update(data) -> float:
    model, preprocess = floor_program.tutorial_model(), Preprocessing()
    parameters = list(model.parameters())
    start = time.perf_counter()
    for images, labels in make_loader(data.train, 64).batches():
        F.cross_entropy(model(preprocess(images)), labels).backward()
        with torch.no_grad():
            for p in parameters:
                p.add_(p.grad, alpha=-LR)
                p.grad = None
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    figures: dict[str, list[float]] = {"floor": [], "trainlab loop": [], "trainlab batches, floor update": []}
    for _ in range(args.rounds):
        figures["floor"].append(floor_epoch(data))
        figures["trainlab loop"].append(trainlab_epoch(data)[0])
        figures["trainlab batches, floor update"].append(batches_with_floor_update(data))
    _, default_weights = trainlab_epoch(data)
    for options in ({"foreach": True}, {"fused": True}):
        runs = [trainlab_epoch(data, **options) for _ in range(args.rounds)]
        equal = all(torch.equal(a, b) for a, b in zip(runs[0][1], default_weights, strict=True))
        figures[f"trainlab loop, SGD {options} (weights equal: {equal})"] = [seconds for seconds, _ in runs]
    for name, values in figures.items():
        print(f"{name}: {', '.join(f'{v:.3f}' for v in values)} s an epoch")


if __name__ == "__main__":
    main()
