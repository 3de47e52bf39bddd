"""Learning-rate schedules, stepped once per optimizer step: none, step, cosine, onecycle; optional warmup."""

from __future__ import annotations

import math

import torch

SCHEDULES = ("none", "step", "cosine", "onecycle")


def lr_factor(
    kind: str, step: int, total_steps: int, warmup_steps: int = 0, step_every: int = 1, gamma: float = 0.1
) -> float:
    """The multiplier of the base lr at `step` (0-based) for the 'none', 'step' and 'cosine' schedules."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "none":
        return 1.0
    if kind == "step":
        return gamma ** ((step - warmup_steps) // max(step_every, 1))
    if kind == "cosine":
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"unknown schedule {kind!r}")


def make_scheduler(
    kind: str,
    optimizer: torch.optim.Optimizer,
    lr: float,
    total_steps: int,
    warmup_steps: int,
    step_every: int,
    gamma: float = 0.1,
) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler to step after every optimizer step."""
    if kind == "onecycle":
        warmup_fraction = warmup_steps / total_steps if warmup_steps else 0.25
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=lr,
            total_steps=total_steps,
            pct_start=min(max(warmup_fraction, 1e-3), 0.99),
            anneal_strategy="cos",
            cycle_momentum=False,
        )
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(kind, step, total_steps, warmup_steps, step_every, gamma)
    )
