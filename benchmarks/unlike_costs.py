"""What the unlike-the-training-data record costs: at the end of training, and for each picture predicted.

    python benchmarks/unlike_costs.py --run RUN --data-dir ../shared/data [--threads 2] [--rounds 3]

RUN is a trainlab run on Fashion-MNIST (e.g. `trainlab train --epochs 1 --run-dir RUN`). Prints, in process:
the seconds of `engine.unlike.calibrate` on the run's model (10,000 training and 10,000 test images, as the end of
a run computes it; each round), then on one torch thread the microseconds (best of the rounds, 300 calls each) of
the model's forward pass alone and of the record's Scorer for 1 and 16 pictures, and of its neighbours check
(the similarity to the stored feature bank and its top-k). Asserts nothing.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from trainlab.data import load_dataset
from trainlab.engine import unlike
from trainlab.inference import Predictor


def micro(call, count: int = 300) -> float:
    """Microseconds a call, after 20 warm-up calls."""
    for _ in range(20):
        call()
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("fashion-mnist", data_dir=args.data_dir)
    predictor = Predictor.from_checkpoint(args.run)
    model = predictor.model.eval()
    seconds = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        unlike.calibrate(model, predictor.preprocessing, data.train, data.test, "test")
        seconds.append(time.perf_counter() - started)
    print(f"calibrate at the end of a run ({args.threads} threads): {', '.join(f'{s:.2f}' for s in seconds)} s")
    torch.set_num_threads(1)
    scorer = unlike.Scorer(predictor.unlike) if predictor.unlike is not None else None
    for count in (1, 16):
        print(picture_costs(model, predictor, scorer, data.test.images[:count], args.rounds))


def picture_costs(model: nn.Module, predictor: Predictor, scorer, images: torch.Tensor, rounds: int) -> str:
    """One line: the forward pass and the unlike checks of these pictures, µs, best of `rounds`."""
    inputs = predictor.preprocessing(images)
    with torch.inference_mode():
        forward = min(micro(lambda: model(inputs)) for _ in range(rounds))
        features = unlike.forward_features(model, inputs)[1]
    line = f"{len(images)} picture(s), 1 thread: forward pass {forward:.0f} µs"
    if scorer is not None:
        score = min(micro(lambda: scorer(images, features)) for _ in range(rounds))
        normalized = nn.functional.normalize(features.float(), dim=1)
        neighbours = min(
            micro(lambda: (normalized @ scorer.bank).topk(unlike.NEIGHBOURS, dim=1)) for _ in range(rounds)
        )
        line += f", the unlike checks {score:.0f} µs (of which the neighbours check {neighbours:.0f} µs)"
    return line


if __name__ == "__main__":
    main()
