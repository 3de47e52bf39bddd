"""Graceful stop: the first SIGINT/SIGTERM asks the loop to checkpoint and stop; a second SIGINT stops at once.

SIGPIPE (the reader of our output went away, as in `trainlab train | head -1`) stops the same way: Python
ignores it by default, so without a handler a run would go on writing into a closed pipe.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from trainlab.engine.reporting import Reporter


class StopRequest:
    """Installed around a training run; `requested` names the signal once one arrived."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM, *((signal.SIGPIPE,) if hasattr(signal, "SIGPIPE") else ()))

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, object] = {}
        self._depth = 0  # nested `with` blocks install the handlers once

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # second Ctrl-C: stop at once
        self.requested = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        self._depth += 1
        if self._depth == 1 and threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


class InterruptAsStop(Reporter):
    """A KeyboardInterrupt raised inside a reporter (a notebook's own reporter, a test's) asks the run to stop as a
    first SIGINT does: every reporter call comes at a point the checkpoint can be written exactly. A second one,
    once a stop is asked, goes on up: it stops at once, as a second Ctrl-C does."""

    def __init__(self, reporter: Reporter, stop: StopRequest):
        self.reporter, self.stop = reporter, stop

    def _call(self, name: str, *args: Any) -> None:
        try:
            getattr(self.reporter, name)(*args)
        except KeyboardInterrupt:
            if self.stop.requested is not None:
                raise
            self.stop.requested = signal.SIGINT.name

    def start(self, info: dict[str, Any]) -> None:
        self._call("start", info)

    def epoch_start(self, epoch: int, batches: int, start_batch: int) -> None:
        self._call("epoch_start", epoch, batches, start_batch)

    def step(self, loss: float, batch_size: int) -> None:
        self._call("step", loss, batch_size)

    def batch_log(self, loss: float, current: int, size: int) -> None:
        self._call("batch_log", loss, current, size)

    def epoch_end(self, row: dict[str, Any]) -> None:
        self._call("epoch_end", row)

    def message(self, text: str) -> None:
        self._call("message", text)

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        self.reporter.end(summary, analysis)

    def abort(self, error: BaseException) -> None:
        self.reporter.abort(error)
