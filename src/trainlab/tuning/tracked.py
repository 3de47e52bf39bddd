"""Every reporter of a run, chosen in one place: `trainlab.fit`, and what train, tune and --fast-dev-run call.

The caller's console reporter (if any), TensorBoard's event files in the run directory (whenever tensorboard is
installed), and the experiment tracker config.tracking names. Training stands below tracking (MLflow's reporter
exports the run's weights through inference), so trainlab.training.fit imports no tracker: this layer chooses
it and passes it down. The end-of-run PNG reports are the caller's `reports=` (the command line's: on).
"""

from __future__ import annotations

from typing import Any

from trainlab import training
from trainlab.config import TrainConfig
from trainlab.engine.reporting import Reporter, Reporters
from trainlab.reports.tensorboard import TensorBoardReporter, tensorboard_available
from trainlab.training.fit import Tracker
from trainlab.tuning.tracking import MlflowReporter

TRACKERS: dict[str, Tracker] = {"mlflow": MlflowReporter}  # config.tracking's choices besides "none"


def run_reporters(config: TrainConfig | None, console: Reporter | None = None) -> tuple[Reporter, Tracker | None]:
    """The reporters of a run (the console's, TensorBoard's when installed) and the tracker config.tracking names
    (built by fit once the run directory is open)."""
    reporter = console or Reporter()
    if tensorboard_available():
        reporter = Reporters(reporter, TensorBoardReporter())
    return reporter, TRACKERS.get(config.tracking) if config is not None else None


def fit(config: TrainConfig | None = None, *, reporter: Reporter | None = None, **options: Any) -> dict[str, Any]:
    """trainlab.training.fit (same arguments), with every reporter chosen by run_reporters."""
    reporter, tracker = run_reporters(config, reporter)
    # looked up when called, so that a replaced trainlab.training.fit (a test's) is the one that runs
    return training.fit(config, reporter=reporter, tracker=tracker, **options)
