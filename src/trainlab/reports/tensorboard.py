"""TensorBoard event files for a run (when the optional `tensorboard` package is installed)."""

from __future__ import annotations

import importlib.util
from typing import Any

from trainlab.engine.reporting import EPOCH_SCALARS, Reporter


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardReporter(Reporter):
    """Writes each epoch's metrics as scalars (loss/train, accuracy/test, ...) in the run's tensorboard folder.

    The writer is made at the first epoch's end, not at the start: importing tensorboard (about 0.15 s) is then
    not paid before the first training step, and a run stopped before its first epoch leaves no empty event file.
    """

    def __init__(self) -> None:
        self.log_dir: str | None = None
        self.writer = None

    def start(self, info: dict[str, Any]) -> None:
        if info.get("tensorboard_dir") is not None:  # None: not the process that writes the run directory
            self.log_dir = str(info["tensorboard_dir"])

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.log_dir is None:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=self.log_dir)
        for key in EPOCH_SCALARS:
            if key in row:
                split, _, name = key.partition("_")
                tag = f"{name}/{split}" if split in ("train", "val", "test") else key
                self.writer.add_scalar(tag, row[key], row["epoch"])
        self.writer.flush()

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        self.close()

    def abort(self, error: BaseException) -> None:
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
