"""Training: setup, the epoch driver (Trainer), fit (start or resume), the run directory, time budgets, recipes.

The loop itself lives in trainlab.engine.loop; `evaluate` and `train_one_epoch` stay importable from here,
where the README names them.
"""

from trainlab.engine.loop import evaluate, train_one_epoch
from trainlab.training.fit import fit, load_run_config
from trainlab.training.trainer import Trainer

__all__ = ["Trainer", "evaluate", "fit", "load_run_config", "train_one_epoch"]
