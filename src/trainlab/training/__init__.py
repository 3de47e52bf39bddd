"""The loop, losses, optimizers, checkpointing of progress, and resume."""

from trainlab.training.loop import EpochProgress, evaluate, train_one_epoch
from trainlab.training.trainer import Reporter, Trainer, fit, load_run_config, resolve_device

__all__ = ["EpochProgress", "Reporter", "Trainer", "evaluate", "fit", "load_run_config", "resolve_device",
           "train_one_epoch"]
