"""trainlab's batch augmentation against conv_loop.py's hand-written one, in process (issue 15, item 4's gap).

    python benchmarks/augment_cost.py [--batch 256] [--threads 2] [--repeats 200]

Both take a uint8 (N, 1, 28, 28) batch: random crop with 2 pixels of zero padding, horizontal flip, random
erasing with probability 0.25. Prints the mean milliseconds per batch of each after 20 untimed calls.
"""

from __future__ import annotations

import argparse
import time

import torch
from conv_loop import augment as hand_augment

from trainlab.data.augment import Augmentation


def per_call_ms(function, images: torch.Tensor, repeats: int) -> float:
    for _ in range(20):
        function(images)
    started = time.perf_counter()
    for _ in range(repeats):
        function(images)
    return (time.perf_counter() - started) / repeats * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 1, 28, 28), dtype=torch.uint8)
    for name, function in (
        ("trainlab Augmentation", Augmentation(padding=2, flip=True, erasing=0.25)),
        ("hand loop augment", hand_augment),
    ):
        print(f"{name}: {per_call_ms(function, images, args.repeats):.2f} ms per batch of {args.batch}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
