"""The divergence guard: a loss that explodes sends the run back to its last good state at a lower learning rate.

A non-finite loss, weights that became non-finite, or a smoothed loss far above the run's starting loss is a
divergence. The run goes back to its last good state (the last checkpoint it wrote, read back from its run
directory, or, before the first one, its start, held in memory), multiplies every learning rate by LR_FACTOR,
says so, and goes on; after MAX_RETRIES such returns it stops with one line naming what to try. The lowered lr
is written to the run's config.toml and lives in the optimizer's and schedule's state, so a resume continues at
it.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from trainlab.checkpoint import load_checkpoint
from trainlab.errors import TrainingDiverged

MAX_RETRIES = 3
LR_FACTOR = 0.3
BLOWUP = 4.0  # a smoothed loss this many times the starting loss is exploding
START_STEPS = 10  # the starting loss: the mean of the first steps' losses
SMOOTHING = 0.1  # weight of each new step in the smoothed loss (about 10 steps)


class DivergenceGuard:
    """Watches each step's loss; on a divergence restores the last good state with a lower lr (see module doc)."""

    def __init__(self) -> None:
        self.retries = 0
        self.start: dict[str, Any] | None = None  # the run's state before its first step (a payload, copied)
        self.reset_watch()

    def reset_watch(self) -> None:
        self.start_losses: list[float] = []
        self.smoothed: float | None = None

    def keep_start(self, payload: dict[str, Any]) -> None:
        """The run's state before its first step: divergence returns here until a checkpoint is written."""
        self.start = copy.deepcopy(payload)

    def last_good(self, trainer: Any) -> dict[str, Any] | None:
        """The last checkpoint the run wrote (every checkpoint is a good state: non-finite weights are never
        saved), or its start before there is one."""
        path = trainer.files.last_checkpoint
        return load_checkpoint(path).payload if path.is_file() else self.start

    def watch(self, loss: float, step: int) -> None:
        """Raise TrainingDiverged when the smoothed loss has exploded far above the starting loss."""
        if len(self.start_losses) < START_STEPS:
            self.start_losses.append(loss)
            return
        start = sum(self.start_losses) / len(self.start_losses)
        before = start if self.smoothed is None else self.smoothed
        self.smoothed = (1 - SMOOTHING) * before + SMOOTHING * loss
        if start > 0 and self.smoothed > BLOWUP * start:
            raise TrainingDiverged(
                f"the loss exploded by step {step} (smoothed {self.smoothed:.3g}, {self.smoothed / start:.0f}x its "
                f"start, {start:.3g})"
            )

    def recover(self, error: TrainingDiverged, trainer: Any) -> None:
        """Back to the last good state with the lr lowered, or, out of tries, one line naming what to try."""
        lr = trainer.config.lr
        good = self.last_good(trainer) if self.retries < MAX_RETRIES else None
        if good is None:
            raise TrainingDiverged(
                f"{first_clause(error)}; still diverging after {self.retries} returns to the last good state at "
                f"lower learning rates (now {lr:.3g}); the last good checkpoint stays; try --lr "
                f"{lr * LR_FACTOR:.2g}, --grad-clip 1.0, or --preset auto"
            ) from None
        self.retries += 1
        trainer.restore_state(good, "the last good state")
        scale_learning_rate(trainer, LR_FACTOR)
        self.reset_watch()
        trainer.reporter.message(
            f"{first_clause(error)}: back to the state after epoch {trainer.epoch}, step {trainer.step}, with lr "
            f"{trainer.config.lr:.3g} instead of {lr:.3g} (return {self.retries} of {MAX_RETRIES})"
        )


def first_clause(error: TrainingDiverged) -> str:
    """What happened, without the advice that follows it ("loss became nan at step 3")."""
    return str(error).split(";")[0]


def scale_learning_rate(trainer: Any, factor: float) -> None:
    """Every learning rate the run holds (config, optimizer groups, schedule) times `factor`."""
    for group in trainer.optimizer.param_groups:
        group["lr"] *= factor
        if "initial_lr" in group:
            group["initial_lr"] *= factor
    if trainer.scheduler is not None and hasattr(trainer.scheduler, "base_lrs"):
        trainer.scheduler.base_lrs = [lr * factor for lr in trainer.scheduler.base_lrs]
    lr = trainer.config.lr * factor
    if not math.isfinite(lr) or lr <= 0:
        raise TrainingDiverged("the learning rate fell to nothing; lower the learning rate or set --grad-clip 1.0")
    trainer.setup.config = trainer.config.replace(lr=lr)  # the config's one home: the setup
    trainer.progress.lr = None  # the epoch's reported lr is its first step's, at the new rate
    trainer.files.write_config(trainer.config)
