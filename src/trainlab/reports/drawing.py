"""A helper process that draws the confusion matrix, so that importing matplotlib overlaps importing torch.

`trainlab evaluate` spends about 2-3 s importing torch on one core; importing matplotlib and loading its fonts
costs about 0.6 s more. A DrawingProcess started before torch is imported does that work on another core
meanwhile, then draws the PNG when the figures are ready. A helper that cannot start, or fails for any reason
but a refused or unwritable output file, leaves the drawing to this process: the PNG is the same either way.

The protocol is one JSON line each way: {"matrix": [[...]], "classes": [...], "path": "..."} in, and
{"path": "..."} or {"error": ..., ...} out. The helper ends when its input is closed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from trainlab.errors import TrainlabError

# Run as `python -c`: the current folder is taken off sys.path first, so that a file there named like a module
# (numpy.py, matplotlib/) is never imported in its place. Once its input ends, its replies are flushed and its
# files written and fsynced: it leaves without tearing matplotlib down (about 0.1 s the command would wait for).
HELPER_CODE = "import os, sys; del sys.path[0]; from trainlab.reports.drawing import serve; serve(); os._exit(0)"
STOP_SECONDS = 10.0  # how long a helper may take to end after its input is closed


class DrawingProcess:
    """The helper process; use it as a context manager so that it never outlives the command."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.asked = False
        if usable_cpus() < 2:  # nothing to overlap with: the helper would only take turns with this process
            return
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", HELPER_CODE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # a failing helper is replaced by drawing here, which reports the error
                text=True,
            )
        except OSError:
            self.process = None

    def __enter__(self) -> DrawingProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def confusion_matrix_plot(self, matrix: Any, classes: tuple[str, ...], path: str | os.PathLike) -> Path:
        """plots.confusion_matrix_plot, drawn by the helper when it is there and works."""
        reply = self.ask({"matrix": matrix.tolist(), "classes": list(classes), "path": str(path)})
        if reply is None:
            from trainlab.reports.plots import confusion_matrix_plot

            return confusion_matrix_plot(matrix, classes, path)
        if "error" in reply:
            raise reply_error(reply)
        return Path(reply["path"])

    def ask(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The helper's reply to one request; None when it is not there or did not answer."""
        if self.process is None or self.asked:
            return None
        self.asked = True
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.close()  # one request a helper: it ends once it has answered
            line = self.process.stdout.readline()
            reply = json.loads(line)
        except (OSError, ValueError):
            return None
        return reply if isinstance(reply, dict) and ("path" in reply or "error" in reply) else None

    def close(self) -> None:
        """End the helper: at once if it was never asked to draw, else once it has finished."""
        process, self.process = self.process, None
        if process is None:
            return
        if not self.asked:
            process.kill()
        for stream in (process.stdin, process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def reply_error(reply: dict[str, Any]) -> Exception:
    """The exception drawing here would have raised: an OSError as it was, else the project's error."""
    if reply.get("errno") is not None:
        return OSError(reply["errno"], reply["error"], reply.get("filename"))
    return TrainlabError(reply["error"])


def serve(stdin: IO[str] | None = None, stdout: IO[str] | None = None) -> None:
    """The helper's side: import matplotlib, then draw each requested confusion matrix and say where it went."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    try:
        from trainlab.reports.plots import confusion_matrix_plot, new_figure

        new_figure()  # matplotlib's import and font list: the work this process is here to do early
        for line in stdin:
            request = json.loads(line)
            try:
                path = confusion_matrix_plot(request["matrix"], tuple(request["classes"]), request["path"])
                reply: dict[str, Any] = {"path": str(path)}
            except TrainlabError as exc:  # a refused or unwritable file: the same one-line error here as there
                reply = {"error": str(exc)}
            except OSError as exc:
                reply = {"error": exc.strerror or str(exc), "errno": exc.errno, "filename": exc.filename}
            stdout.write(json.dumps(reply) + "\n")
            stdout.flush()
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C reaches the whole process group; the parent reports it
        pass
