"""Models the distributed tests train as package.module:Class models (tests/ is put on PYTHONPATH)."""

from __future__ import annotations

import os
import time

from trainlab.models.mlp import NeuralNetwork


class FailsOnRankOne(NeuralNetwork):
    """The tutorial's MLP, except that process 1 of a torchrun launch raises at its third training step."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10):
        super().__init__(input_shape, num_classes, hidden=32)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if os.environ.get("RANK") == "1" and self.calls == 3:
                raise RuntimeError("rank one broke on purpose")
        return super().forward(x)


class SlowMLP(NeuralNetwork):
    """A small MLP that sleeps 20 ms per training step, so that a test can kill a run in the middle of it."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10):
        super().__init__(input_shape, num_classes, hidden=32)

    def forward(self, x):
        if self.training:
            time.sleep(0.02)
        return super().forward(x)


class NanOnRankOne(NeuralNetwork):
    """A small MLP whose output becomes NaN on process 1 only, at its third training step."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10):
        super().__init__(input_shape, num_classes, hidden=32)
        self.calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if os.environ.get("RANK") == "1" and self.calls == 3:
                return out * float("nan")
        return out
