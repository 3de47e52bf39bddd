"""Learning-rate schedules, stepped once per optimizer step: none, step, cosine, onecycle, linear; optional warmup.

Their names are listed once, in config.SCHEDULES (torch-free, for --help); this module holds their code."""

from __future__ import annotations

import math

import torch


def lr_factor(
    kind: str, step: int, total_steps: int, warmup_steps: int = 0, step_every: int = 1, gamma: float = 0.1
) -> float:
    """The multiplier of the base lr at `step` (0-based) for the 'none', 'step', 'cosine' and 'linear' schedules."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "none":
        return 1.0
    if kind == "step":
        return gamma ** ((step - warmup_steps) // max(step_every, 1))
    if kind == "cosine":
        progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    if kind == "linear":
        return LinearDecay(total_steps, warmup_steps)(step)
    raise ValueError(f"unknown schedule {kind!r}")


class LinearDecay:
    """Linear decay to zero at `total_steps` (after a linear warmup): the schedule of a fixed time budget.

    A callable object, so that LambdaLR saves and restores its fields with the checkpoint. `replan` moves the
    end while keeping the lr continuous: from the current step the lr falls linearly to zero at the new end.
    """

    def __init__(self, total_steps: int, warmup_steps: int = 0):
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.anchor_step = warmup_steps  # the lr falls from anchor_factor here to 0 at total_steps
        self.anchor_factor = 1.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        left = self.total_steps - step
        return self.anchor_factor * max(left, 0) / max(self.total_steps - self.anchor_step, 1)

    def replan(self, step: int, total_steps: int) -> None:
        """End at `total_steps` instead, falling linearly from the lr of `step` (after the warmup only)."""
        if step < self.warmup_steps:
            self.total_steps = total_steps
            return
        self.anchor_factor, self.anchor_step, self.total_steps = self(step), step, total_steps


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
    if kind == "linear":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, LinearDecay(total_steps, warmup_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(kind, step, total_steps, warmup_steps, step_every, gamma)
    )
