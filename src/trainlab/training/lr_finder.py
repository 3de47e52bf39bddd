"""The learning-rate range test: train a copy of the model while the lr rises exponentially, read the loss curve."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from torch import nn

from trainlab.config import MAX_EPOCHS, TrainConfig
from trainlab.data import DatasetSplits
from trainlab.engine.loop import EpochProgress
from trainlab.errors import TrainingDiverged, TrainlabError
from trainlab.resolution import check_lr_range
from trainlab.training.setup import TrainingSetup, build_training

SMOOTHING = 0.9  # EMA factor used only to detect divergence while the test runs
DIVERGED = 4.0  # stop once the running loss exceeds this multiple of its minimum
WINDOW_FRACTION = 0.05  # centered smoothing window, as a fraction of the recorded steps


@dataclass
class LrFinderResult:
    """The recorded curve, the suggested lr, the rule that chose it, and how much to trust it."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestion: float
    steepest: float
    confidence: str
    rule: str = (
        "lr at the minimum of the smoothed loss divided by 10, cross-checked against the lr of "
        "steepest descent before that minimum"
    )
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "suggested_lr": self.suggestion,
            "steepest_lr": self.steepest,
            "confidence": self.confidence,
            "rule": self.rule,
            "notes": self.notes,
            "steps": len(self.lrs),
        }


def smooth(values: list[float], window: int | None = None) -> list[float]:
    """Centered moving average (the window shrinks at the ends).

    Unlike the exponential average most finders use, a centered window does not lag: an EMA with
    beta 0.98 shifts the curve by about 50 steps, a quarter of a 200-step test, which is what makes
    their suggestions drift towards too-high learning rates.
    """
    if window is None:
        window = max(5, int(len(values) * WINDOW_FRACTION) | 1)
    half = window // 2
    out = []
    for i in range(len(values)):
        span = min(half, i, len(values) - 1 - i)  # the window stays symmetric, shrinking near the ends
        chunk = values[i - span : i + span + 1]
        out.append(sum(chunk) / len(chunk))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float, float, str, list[str]]:
    """(suggestion, steepest-descent lr, confidence, notes) from a smoothed loss curve."""
    notes = []
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    suggestion = lrs[lowest] / 10
    log_lrs = [math.log10(lr) for lr in lrs]
    window = max(lowest, 2)
    slopes = [
        (smoothed[i + 1] - smoothed[i - 1]) / (log_lrs[i + 1] - log_lrs[i - 1])
        for i in range(1, window - 1)
        if i + 1 < len(smoothed)
    ]
    steepest = lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)] if slopes else suggestion
    ratio = max(suggestion, steepest) / min(suggestion, steepest)
    confidence = "high" if ratio <= 3 else "medium" if ratio <= 10 else "low"
    drop = (smoothed[0] - smoothed[lowest]) / max(abs(smoothed[0]), 1e-12)
    if drop < 0.1:
        confidence = "low"
        notes.append(f"the loss fell only {100 * drop:.0f}% over the range; try more steps or another optimizer")
    if lowest >= len(smoothed) - 2:
        confidence = "low"
        notes.append("the loss was still falling at the end of the range; raise --end-lr")
    return suggestion, steepest, confidence, notes


class _RangeDone(Exception):
    """Raised from the step hook when the range test has its steps or the loss diverged."""


def run_range(setup: TrainingSetup, start_lr: float, end_lr: float, steps: int) -> tuple[list[float], list[float]]:
    """Train with the lr rising from start_lr to end_lr until `steps` steps or divergence: (lrs, losses)."""
    growth = (end_lr / start_lr) ** (1 / max(steps - 1, 1))
    lrs: list[float] = []
    losses: list[float] = []
    running = {"average": 0.0, "lowest": math.inf}  # bias-corrected EMA of the loss and its minimum

    def set_lr(lr: float) -> None:
        for group in setup.optimizer.param_groups:
            group["lr"] = lr

    def record(progress: EpochProgress, loss: float, batch_size: int) -> None:
        lrs.append(setup.optimizer.param_groups[0]["lr"])
        losses.append(loss)
        running["average"] = SMOOTHING * running["average"] + (1 - SMOOTHING) * loss
        current = running["average"] / (1 - SMOOTHING ** len(losses))
        running["lowest"] = min(running["lowest"], current)
        if len(lrs) >= steps or current > DIVERGED * running["lowest"]:
            raise _RangeDone
        set_lr(start_lr * growth ** len(lrs))

    set_lr(start_lr)
    epoch = 0
    try:
        while setup.steps_in_epoch(epoch):  # epoch after epoch until the range is done
            setup.train_steps(setup.batches(epoch), after_step=record)
            epoch += 1
    except (_RangeDone, TrainingDiverged):  # a non-finite loss ends the range like a diverging one
        pass
    return lrs, losses


def find_lr(
    config: TrainConfig,
    data: DatasetSplits,
    model: nn.Module | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    steps: int = 200,
) -> LrFinderResult:
    """Run the range test on a copy of `model` (or a fresh config.model); the original is left untouched.

    The steps are the training loop's own (autocast, grad scaler and clipping as configured); only the lr
    changes, rising exponentially from start_lr to end_lr.
    """
    check_lr_range(start_lr, end_lr, steps)  # one line for a bad range, from Python as from `trainlab lr-find`
    # the range test's own length: as many epochs as its steps need, whatever the run's --epochs or --max-steps
    finder_config = config.replace(
        schedule="none",
        warmup_epochs=0.0,
        lr=start_lr,
        epochs=MAX_EPOCHS,
        max_steps=steps,
        time_budget=None,
        auto_width=False,
    )
    setup = build_training(finder_config, data, copy.deepcopy(model) if model is not None else None)
    lrs, losses = run_range(setup, start_lr, end_lr, steps)
    if len(lrs) < 5:
        raise TrainlabError("the lr range test diverged within 5 steps; lower --start-lr")
    smoothed = smooth(losses)
    suggestion, steepest, confidence, notes = suggest(lrs, smoothed)
    return LrFinderResult(lrs, losses, smoothed, suggestion, steepest, confidence, notes=notes)


__all__ = ["LrFinderResult", "find_lr", "smooth", "suggest"]
