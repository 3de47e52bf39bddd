"""The loop, losses, optimizers, checkpointing of progress, and resume."""

from trainlab.training.fit import fit, load_run_config
from trainlab.training.loop import EpochProgress, evaluate, train_one_epoch
from trainlab.training.reporting import Reporter
from trainlab.training.runtime import resolve_device
from trainlab.training.trainer import Trainer

__all__ = [
    "EpochProgress",
    "Reporter",
    "Trainer",
    "evaluate",
    "fit",
    "load_run_config",
    "resolve_device",
    "train_one_epoch",
]
