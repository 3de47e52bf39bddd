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
from trainlab.inference.run import RunSummary
from trainlab.reports.tensorboard import TensorBoardReporter, tensorboard_available
from trainlab.training.fit import Tracker
from trainlab.tuning.interactive import check_on_interrupt, progress_reporter, returned_on_interrupt
from trainlab.tuning.tracking import MlflowReporter

TRACKERS: dict[str, Tracker] = {"mlflow": MlflowReporter}  # config.tracking's choices besides "none"


def run_reporters(
    config: TrainConfig | None, console: Reporter | None = None, progress: bool | None = None
) -> tuple[Reporter, Tracker | None]:
    """The reporters of a run (the console's, the notebook's or a console's as `progress` asks, TensorBoard's when
    installed) and the tracker config.tracking names (built by fit once the run directory is open)."""
    shown = progress_reporter(progress, console)
    reporter = Reporters(console, shown) if console and shown else console or shown or Reporter()
    if tensorboard_available():
        reporter = Reporters(reporter, TensorBoardReporter())
    return reporter, TRACKERS.get(config.tracking) if config is not None else None


def fit(
    config: TrainConfig | None = None,
    *,
    reporter: Reporter | None = None,
    progress: bool | None = None,
    on_interrupt: str = "return",
    **options: Any,
) -> RunSummary:
    """Train as trainlab.training.fit does (same arguments), with every reporter chosen by run_reporters.

    Returns the run summary dict (status, epochs, steps, test_accuracy, checkpoint, run_dir, ...) as a
    RunSummary: `.run` is the run directory as a trainlab.Run, which a notebook shows in the dict's place.
    progress: None shows bars, an epoch table and a learning curve in a Jupyter kernel (unless `reporter` is
    given) and nothing in a script; True shows them anywhere (the console's lines outside a kernel); False never.
    An interrupt (the kernel's stop button, Ctrl-C) writes the checkpoint, says how to resume and returns the
    summary with status "interrupted"; on_interrupt="raise" raises TrainingInterrupted instead.
    """
    check_on_interrupt(on_interrupt)
    reporter, tracker = run_reporters(config, reporter, progress)

    def train() -> dict[str, Any]:
        # looked up when called, so that a replaced trainlab.training.fit (a test's) is the one that runs
        return training.fit(config, reporter=reporter, tracker=tracker, **options)

    return RunSummary(train() if on_interrupt == "raise" else returned_on_interrupt(train, options.get("run_dir")))
