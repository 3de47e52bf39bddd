"""Graceful stop: the first SIGINT/SIGTERM asks the loop to checkpoint and stop; a second SIGINT stops at once.

SIGPIPE (the reader of our output went away, as in `trainlab train | head -1`) stops the same way: Python
ignores it by default, so without a handler a run would go on writing into a closed pipe.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType


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
