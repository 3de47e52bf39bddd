"""fit() with the experiment tracker that config.tracking names: `trainlab.fit`, and what train, tune and
--fast-dev-run call.

Training stands below tracking (MLflow's reporter exports the run's weights through inference), so
trainlab.training.fit imports no tracker: this layer chooses it and passes it down.
"""

from __future__ import annotations

from typing import Any

from trainlab import training
from trainlab.config import TrainConfig
from trainlab.training.fit import Tracker
from trainlab.tuning.tracking import MlflowReporter

TRACKERS: dict[str, Tracker] = {"mlflow": MlflowReporter}  # config.tracking's choices besides "none"


def fit(config: TrainConfig | None = None, **options: Any) -> dict[str, Any]:
    """trainlab.training.fit (same arguments), logging to the tracker config.tracking names."""
    tracker = TRACKERS.get(config.tracking) if config is not None else None
    # looked up when called, so that a replaced trainlab.training.fit (a test's) is the one that runs
    return training.fit(config, tracker=tracker, **options)
