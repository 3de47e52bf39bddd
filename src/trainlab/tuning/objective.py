"""One trial of a study: the base config with the trial's values, trained by fit() into its own run directory,
its epochs reported to Optuna's pruner and to the console, and scored by its best epoch."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

from trainlab.engine.reporting import Reporter, Reporters
from trainlab.errors import RunEndedEarly, TrainlabError
from trainlab.layout import CONFIG_FILE
from trainlab.reports.runs import read_metrics
from trainlab.tuning.spec import StudySpec, direction_of
from trainlab.tuning.summary import shown_score, shown_value


class TrialPruned(RunEndedEarly):
    """Raised from a trial's epoch end when Optuna's pruner stops it (its files are complete to that epoch)."""

    status = "pruned"
    tracking_status = "pruned"


class PruningReporter(Reporter):
    """Reports each epoch's metric to the Optuna trial and stops the run when the pruner says so."""

    def __init__(self, trial: Any, metric: str, run_dir: Path):
        self.trial, self.metric, self.run_dir = trial, metric, run_dir
        self.epoch = 0

    def start(self, info: dict[str, Any]) -> None:
        for row in read_metrics(self.run_dir):  # a resumed trial: its earlier epochs count too
            self.report(row)

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.report(row)
        if self.trial.should_prune():
            raise TrialPruned(f"trial {self.trial.number} pruned after epoch {row['epoch']}")

    def report(self, row: dict[str, Any]) -> None:
        if row.get(self.metric) is not None:
            self.trial.report(float(row[self.metric]), int(row["epoch"]))
            self.epoch = int(row["epoch"])


class TrialConsole(Reporter):
    """One line per epoch of a trial on the human stream."""

    def __init__(self, say: Any, number: int, metric: str):
        self.say, self.number, self.metric = say, number, metric

    def epoch_end(self, row: dict[str, Any]) -> None:
        shown = shown_score(row.get(self.metric), self.metric)
        self.say(f"  trial {self.number} epoch {row['epoch']}: {self.metric} {shown}")

    def message(self, text: str) -> None:
        if text.startswith(("Resuming", "precision auto")):
            self.say(f"  trial {self.number}: {text}")


class Objective:
    """One trial: the base config with the trial's values, trained by fit() into its own run directory."""

    def __init__(self, spec: StudySpec, study_dir: Path, data: Any, say: Any):
        self.spec, self.study_dir, self.data, self.say = spec, study_dir, data, say

    def __call__(self, trial: Any) -> float:
        from trainlab.tuning.tracked import fit

        params = {dimension.key: dimension.suggest(trial) for dimension in self.spec.search}
        resumes = trial.user_attrs.get("resumes")
        run_dir = Path(resumes) if resumes else self.study_dir / f"trial-{trial.number:04d}"
        resume = bool(resumes) and (run_dir / CONFIG_FILE).is_file()
        trial.set_user_attr("run_dir", str(run_dir.resolve()))  # found again from any folder
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        shown = ", ".join(f"{key}={shown_value(value)}" for key, value in params.items())
        self.say(f"Trial {trial.number}: {shown}" + (f" (resuming {run_dir})" if resume else ""))
        try:
            config = self.spec.base.replace(**params)
        except TrainlabError as exc:
            trial.set_user_attr("error", str(exc))
            self.say(f"  trial {trial.number} failed: {exc}")
            raise
        pruning = PruningReporter(trial, self.spec.metric, run_dir)
        reporter = Reporters(TrialConsole(self.say, trial.number, self.spec.metric), pruning)
        started = time.perf_counter()
        try:
            summary = fit(
                config,
                data=self.data,
                run_dir=run_dir,
                resume=resume,
                reporter=reporter,
                reports=True,
                on_interrupt="raise",  # the study stops too
            )
        except TrialPruned:
            trial.set_user_attr("seconds", time.perf_counter() - started)
            trial.set_user_attr("epochs", pruning.epoch)
            self.say(f"  trial {trial.number} pruned after epoch {pruning.epoch}")
            import optuna

            raise optuna.TrialPruned() from None
        except TrainlabError as exc:
            trial.set_user_attr("error", str(exc))
            self.say(f"  trial {trial.number} failed: {exc}")
            raise
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("epochs", summary["epochs"])
        trial.set_user_attr("test_accuracy", summary["test_accuracy"])  # recorded, never used to choose
        return best_value(run_dir, self.spec.metric)


def best_value(run_dir: Path, metric: str) -> float:
    """The trial's value: its best epoch's metric (what its best.pt holds)."""
    values = [row[metric] for row in read_metrics(run_dir) if row.get(metric) is not None]
    if not values:
        raise TrainlabError(f"{run_dir}: no {metric} in its metrics; the trial cannot be scored")
    return min(values) if direction_of(metric) == "minimize" else max(values)
