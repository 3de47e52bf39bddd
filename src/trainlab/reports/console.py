"""The console reporter: the tutorial's log lines, on stdout or (with --json) stderr."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from trainlab.engine.reporting import Reporter

RULE = "-------------------------------"


def format_test_block(accuracy: float, loss: float, title: str = "Test Error") -> str:
    """The tutorial's test-loop lines, e.g. ' Accuracy: 71.0%, Avg loss: 0.787269'."""
    return f"{title}: \n Accuracy: {100 * accuracy:>0.1f}%, Avg loss: {loss:>8f} \n"


class ConsoleReporter(Reporter):
    """Prints what the tutorial prints, plus where the run lives."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, progress_bar: bool | None = None):
        self.stream = stream or sys.stdout
        self.quiet = quiet
        # A bar on terminals, the tutorial's plain lines in logs and CI: never both.
        interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.progress_bar = (interactive if progress_bar is None else progress_bar) and not quiet
        self._bar = None

    def _print(self, text: str = "") -> None:
        try:
            print(text, file=self.stream, flush=True)
        except BrokenPipeError:  # `trainlab train | head`: the reader left; SIGPIPE asks the run to stop
            self.stream = open(os.devnull, "w")  # noqa: SIM115 - replaces the closed stream for good

    def start(self, info: dict[str, Any]) -> None:
        self._print(f"Using {info['device']} device")
        if not self.quiet:
            self._print(
                f"{info['threads']} CPU threads; {info['train_samples']} training and "
                f"{info['test_samples']} test images in memory; run directory {info['run_dir']}"
            )

    def epoch_start(self, epoch: int, batches: int, start_batch: int) -> None:
        if self.quiet:
            return
        self._print(f"Epoch {epoch}\n{RULE}")
        if self.progress_bar:
            from tqdm import tqdm

            self._bar = tqdm(
                total=batches, initial=start_batch, file=self.stream, unit="batch", leave=False, dynamic_ncols=True
            )

    def step(self, loss: float, batch_size: int) -> None:
        if self._bar is not None:
            self._bar.update(1)
            rate = self._bar.format_dict.get("rate")  # batches/s, smoothed by tqdm
            images = f"{rate * batch_size:,.0f}" if rate else "-"
            self._bar.set_postfix_str(f"loss={loss:.4f}, images/s={images}", refresh=False)

    def batch_log(self, loss: float, current: int, size: int) -> None:
        if not self.quiet and self._bar is None:
            self._print(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._print(f"train loss: {row['train_loss']:>8f}, {row['machine_samples_per_second']:,.0f} images/s")
        if self.quiet:
            self._print(f"epoch {row['epoch']}: test accuracy {100 * row['test_accuracy']:.1f}%")
        else:
            self._print(format_test_block(row["test_accuracy"], row["test_loss"]))

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        self._print("Done!")
        self._print(f"Saved checkpoint to {summary['checkpoint']}")
        if summary.get("best_epoch"):
            self._print(
                f"Best epoch by validation accuracy: {summary['best_epoch']} "
                f"({100 * summary['best_val_accuracy']:.1f}%), saved to {summary['best_checkpoint']}"
            )

    def message(self, text: str) -> None:
        self._print(text)
