"""The training and evaluation loops: short functions that return their figures as dicts."""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from trainlab.data import make_loader
from trainlab.data.memory import ImageData, eval_range
from trainlab.data.transforms import Preprocessing
from trainlab.engine.distributed import Distributed
from trainlab.engine.losses import LossFn
from trainlab.errors import TrainingDiverged

PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    """A context factory for the chosen precision (fp32: no autocast)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = PRECISION_DTYPES[precision]
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


@dataclass
class EpochProgress:
    """Running totals of one training epoch; saved in mid-epoch checkpoints for exact resume."""

    batch: int = 0  # batches done in this epoch
    loss_sum: float = 0.0  # sum of per-sample losses
    correct: int = 0
    samples: int = 0
    lr: float | None = None  # learning rate of the epoch's first step, reported even when resumed mid-epoch

    def summary(self) -> dict[str, float]:
        seen = max(self.samples, 1)
        return {"loss": self.loss_sum / seen, "accuracy": self.correct / seen, "samples": self.samples}


StepHook = Callable[[EpochProgress, float, int], None]  # (progress, batch loss, batch size)
# (batch loss, batch size, correct) of this process -> the same over every process, and this process's loss weight
CombineHook = Callable[[float, int, int], tuple[float, int, int, float]]


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    preprocess: Preprocessing,
    progress: EpochProgress | None = None,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    scaler: torch.amp.GradScaler | None = None,
    grad_clip: float = 0.0,
    after_step: StepHook | None = None,
    step_offset: int = 0,
    combine: CombineHook | None = None,
) -> dict[str, float]:
    """One pass over `batches`: forward, loss, backward, step; returns mean loss and accuracy per sample.

    With several processes, `combine` turns this process's batch figures into the global batch's (so every
    process takes the same decisions) and says how much this process's loss weighs in the gradient.
    """
    progress = progress or EpochProgress()
    model.train()
    for images, labels in batches:
        with autocast():
            logits = model(preprocess(images))
            loss = loss_fn(logits, labels)
        loss_value = loss.item()
        size = int(labels.shape[0])
        correct = int((logits.argmax(1) == labels).sum())
        weight = 1.0
        if combine is not None:
            loss_value, size, correct, weight = combine(loss_value, size, correct)
        if not math.isfinite(loss_value):
            raise TrainingDiverged(
                f"loss became {loss_value} at step {step_offset + progress.batch + 1} "
                f"(epoch batch {progress.batch + 1}); lower the learning rate or set --grad-clip 1.0"
            )
        optimizer.zero_grad(set_to_none=True)
        if weight != 1.0:
            loss = loss * weight
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        progress.batch += 1
        progress.samples += size
        progress.loss_sum += loss_value * size
        progress.correct += correct
        if after_step is not None:
            after_step(progress, loss_value, size)
    return progress.summary()


def evaluate(
    model: nn.Module,
    data: ImageData,
    loss_fn: LossFn,
    preprocess: Preprocessing,
    batch_size: int = 1000,
    *,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    return_predictions: bool = False,
    max_batches: int | None = None,
    dist: Distributed | None = None,
) -> dict:
    """Accuracy and mean per-sample loss over `data` (or its first max_batches batches), in large batches
    under inference_mode.

    With several processes (dist), each evaluates its own contiguous part, every sample in exactly one part,
    and the sums are added up over all of them: the figures equal one process's evaluation of the whole set.
    """
    dist = dist or Distributed()
    if dist.active:
        data = data.select(torch.arange(*eval_range(len(data), dist.rank, dist.world)))
    was_training = model.training
    model.eval()
    loss_sum, correct, samples, predictions, confidences = 0.0, 0, 0, [], []
    batches = make_loader(data, batch_size).batches()  # in order; file-backed data: workers decode
    with torch.inference_mode():
        for images, labels in itertools.islice(batches, max_batches):
            with autocast():
                logits = model(preprocess(images))
                loss_sum += float(loss_fn(logits, labels)) * int(labels.shape[0])
            predicted = logits.argmax(1)
            correct += int((predicted == labels).sum())
            samples += int(labels.shape[0])
            if return_predictions:  # softmax only when a report asks how confident each prediction was
                confidence = torch.softmax(logits.float(), dim=1).gather(1, predicted.view(-1, 1)).view(-1)
                predictions.append(predicted.cpu())
                confidences.append(confidence.cpu())
    model.train(was_training)
    if dist.active:
        loss_sum, correct, samples = dist.sum([loss_sum, correct, samples])
        correct, samples = int(correct), int(samples)
        if return_predictions:
            parts = dist.gather(
                (torch.cat(predictions) if predictions else None, torch.cat(confidences) if confidences else None)
            )
            predictions = [p for p, _ in parts if p is not None]
            confidences = [c for _, c in parts if c is not None]
    result = {
        "loss": loss_sum / max(samples, 1),
        "accuracy": correct / max(samples, 1),
        "samples": samples,
        "correct": correct,
    }
    if return_predictions:
        result["predictions"] = torch.cat(predictions) if predictions else torch.empty(0, dtype=torch.long)
        result["confidences"] = torch.cat(confidences) if confidences else torch.empty(0)
    return result
