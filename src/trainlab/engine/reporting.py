"""What a run tells its user: the Reporter protocol and a fan-out to several reporters."""

from __future__ import annotations

from typing import Any

EPOCH_SCALARS = (  # the figures of a metrics row that trackers plot per epoch
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "test_loss",
    "test_accuracy",
    "lr",
    "machine_samples_per_second",
)


class Reporter:
    """What the run tells its user; the base class says nothing. See trainlab.reports.console."""

    def start(self, info: dict[str, Any]) -> None: ...
    def epoch_start(self, epoch: int, batches: int, start_batch: int) -> None: ...
    def step(self, loss: float, batch_size: int) -> None: ...
    def batch_log(self, loss: float, current: int, size: int) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...
    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        """The run finished; `analysis` holds the metrics, classes and the last test predictions."""

    def message(self, text: str) -> None: ...
    def abort(self, error: BaseException) -> None:
        """The run ended on `error` (a failure, a signal, a pruning decision) instead of reaching end()."""


class Reporters(Reporter):
    """Several reporters as one: every call goes to each of them, in order."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def start(self, info: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.start(info)

    def epoch_start(self, epoch: int, batches: int, start_batch: int) -> None:
        for reporter in self.reporters:
            reporter.epoch_start(epoch, batches, start_batch)

    def step(self, loss: float, batch_size: int) -> None:
        for reporter in self.reporters:
            reporter.step(loss, batch_size)

    def batch_log(self, loss: float, current: int, size: int) -> None:
        for reporter in self.reporters:
            reporter.batch_log(loss, current, size)

    def epoch_end(self, row: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.epoch_end(row)

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.end(summary, analysis)

    def message(self, text: str) -> None:
        for reporter in self.reporters:
            reporter.message(text)

    def abort(self, error: BaseException) -> None:
        for reporter in self.reporters:
            reporter.abort(error)
