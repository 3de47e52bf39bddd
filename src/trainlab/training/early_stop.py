"""Early stopping on the linear schedule: anneal, then stop.

A run whose validation accuracy stopped improving while its linear schedule still has a high learning rate has
not yet had its best epochs: they come as the lr falls to zero. So instead of stopping there, the schedule's end
moves to a few epochs ahead (a quarter of the patience, at least two), the lr decays linearly to zero over them,
and the run ends. Any other schedule stops at once, as before.
"""

from __future__ import annotations

import math
from typing import Any

ANNEAL_SHARE = 0.25  # of the patience: the epochs the lr takes to reach zero once validation stalls
MIN_ANNEAL_EPOCHS = 2


def anneal_before_stopping(trainer: Any) -> bool:
    """Move a stalled linear run's end a few epochs ahead (said); False where the run should stop now."""
    config = trainer.config
    if config.schedule != "linear" or trainer.scheduler is None or trainer.annealing:
        return False
    epochs = max(MIN_ANNEAL_EPOCHS, math.ceil(config.early_stop * ANNEAL_SHARE))
    total = trainer.step + epochs * trainer.setup.steps_per_epoch
    if total >= trainer.setup.total_steps:
        return False  # the schedule ends about as soon anyway
    trainer.annealing = True
    end = trainer.epoch + epochs
    trainer.move_schedule_end(
        config.replace(epochs=end, max_steps=total, warmup_epochs=min(config.warmup_epochs, end / 2))
    )
    trainer.files.write_config(trainer.config)
    trainer.reporter.message(
        f"Validation accuracy has not improved for {config.early_stop} epochs (best: epoch {trainer.best['epoch']}): "
        f"the lr now decays to zero over {epochs} more epochs, then the run ends"
    )
    return True
