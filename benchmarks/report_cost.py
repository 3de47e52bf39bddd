"""The end-of-run PNG reports, each drawn in process: what a run spends on them after its last epoch.

    python benchmarks/report_cost.py [--repeats 5]
    PYTHONPATH=OTHER_CHECKOUT/src python benchmarks/report_cost.py    # the same figures for another commit's code

Prints matplotlib's import time, then the median and range of the seconds each report takes to draw and write
(learning curves of 10 epochs, a 10-class confusion matrix written to a new file each time, the top-losses grid of
16 images), over --repeats draws after one untimed draw of each.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from trainlab.reports import plots


def seconds(function, repeats: int) -> list[float]:
    function(-1)  # untimed: fonts and caches
    taken = []
    for number in range(repeats):
        started = time.perf_counter()
        function(number)
        taken.append(time.perf_counter() - started)
    return taken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    started = time.perf_counter()
    import matplotlib.figure  # noqa: F401 - the import every report pays once

    print(f"import matplotlib.figure: {time.perf_counter() - started:.3f} s")
    generator = torch.Generator().manual_seed(0)
    metrics = [
        {"epoch": e, "train_loss": 1 / e, "train_accuracy": 1 - 1 / (e + 1), "test_loss": 1.1 / e, "test_accuracy": 0.5}
        for e in range(1, 11)
    ]
    matrix = torch.randint(0, 100, (10, 10), generator=generator)
    classes = tuple(f"class {i}" for i in range(10))
    images = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8, generator=generator)
    names = [classes[i % 10] for i in range(16)]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        reports = {
            "learning curves": lambda n: plots.learning_curves({"run": metrics}, out / f"curves{n}.png"),
            "confusion matrix": lambda n: plots.confusion_matrix_plot(matrix, classes, out / f"matrix{n}.png"),
            "top losses (16 images)": lambda n: plots.top_losses_plot(
                images, names, names[::-1], [0.9] * 16, out / f"top{n}.png"
            ),
        }
        for name, draw in reports.items():
            taken = seconds(draw, args.repeats)
            spread = f"{min(taken):.3f}-{max(taken):.3f}"
            print(f"{name}: {statistics.median(taken):.3f} s (median of {args.repeats}; {spread})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
