"""The console reporter: the tutorial's log lines, on stdout or (with --json) stderr."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from trainlab.training.trainer import Reporter

RULE = "-------------------------------"


def format_test_block(accuracy: float, loss: float, title: str = "Test Error") -> str:
    """The tutorial's test-loop lines, e.g. ' Accuracy: 71.0%, Avg loss: 0.787269'."""
    return f"{title}: \n Accuracy: {100 * accuracy:>0.1f}%, Avg loss: {loss:>8f} \n"


class ConsoleReporter(Reporter):
    """Prints what the tutorial prints, plus where the run lives."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, plots: bool = True):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        self.plots = plots

    def _print(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def start(self, info: dict[str, Any]) -> None:
        self._print(f"Using {info['device']} device")
        if not self.quiet:
            self._print(f"{info['threads']} CPU threads; {info['train_samples']} training and "
                        f"{info['test_samples']} test images in memory; run directory {info['run_dir']}")

    def epoch_start(self, epoch: int) -> None:
        if not self.quiet:
            self._print(f"Epoch {epoch}\n{RULE}")

    def batch_log(self, loss: float, current: int, size: int) -> None:
        if not self.quiet:
            self._print(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.quiet:
            self._print(f"epoch {row['epoch']}: test accuracy {100 * row['test_accuracy']:.1f}%")
        else:
            self._print(format_test_block(row["test_accuracy"], row["test_loss"]))

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        self._print("Done!")
        self._print(f"Saved checkpoint to {summary['checkpoint']}")
        if summary.get("best_epoch"):
            self._print(f"Best epoch by validation accuracy: {summary['best_epoch']} "
                        f"({100 * summary['best_val_accuracy']:.1f}%), saved to {summary['best_checkpoint']}")
        if self.plots:
            from trainlab.reports.run_reports import write_run_reports

            paths = write_run_reports(analysis)
            self._print(f"Reports: {', '.join(str(path) for path in paths)}")

    def message(self, text: str) -> None:
        self._print(text)
