"""TensorBoard event files for a run (when the optional `tensorboard` package is installed)."""

from __future__ import annotations

import importlib.util
from typing import Any

from trainlab.training.reporting import EPOCH_SCALARS, Reporter


def tensorboard_available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


class TensorBoardReporter(Reporter):
    """Writes each epoch's metrics as scalars (loss/train, accuracy/test, ...) in the run's tensorboard folder."""

    def __init__(self) -> None:
        self.writer = None

    def start(self, info: dict[str, Any]) -> None:
        if info.get("tensorboard_dir") is None:  # not the process that writes the run directory
            return
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(info["tensorboard_dir"]))

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key in EPOCH_SCALARS:
            if key in row:
                split, _, name = key.partition("_")
                tag = f"{name}/{split}" if split in ("train", "val", "test") else key
                self.writer.add_scalar(tag, row[key], row["epoch"])
        self.writer.flush()

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        if self.writer is not None:
            self.writer.close()
