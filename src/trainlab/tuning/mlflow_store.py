"""Bounded calls to an MLflow tracking store: a run never waits on an unreachable server for more than seconds.

Every MLflow call of a run is made by one daemon thread of its own, in order; the run waits for each a bounded
time (shorter once a SIGINT/SIGTERM asked it to stop), so a tracking server that refuses, or accepts and never
answers, costs the run at most that wait. MLflow's own HTTP retries and timeout are shortened too (unless the
user set them), so that the thread itself gives up soon after. A store's URI is recorded absolute, so that a
resume from any working folder finds the same store.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from trainlab.training.signals import StopRequest

CHECK_SECONDS = 10.0  # the check before training of a store over the network
LOCAL_CHECK_SECONDS = 120.0  # of a database file: a new one is created, MLflow's migrations run on a busy machine
CALL_SECONDS = 15.0  # one run, metric or tag call
ARTIFACT_SECONDS = 120.0  # one artifact upload
ABORT_SECONDS = 5.0  # the calls that end a stopped or failed run
STOP_GRACE_SECONDS = 2.0  # a call in flight when a stop is asked gets this long
POLL_SECONDS = 0.1
# MLflow's defaults (120 s a request, 7 retries with backoff) wait up to about 16 minutes on a silent server
HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",  # seconds
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
SQLITE_HEADER = b"SQLite format 3\x00"


class TrackingUnavailable(Exception):
    """The tracking store did not answer in time, or answered with an error; the message says which."""


def shorten_http_waits() -> None:
    """MLflow's HTTP timeout and retries, bounded unless the user chose them (MLflow reads them per request)."""
    for name, value in HTTP_DEFAULTS.items():
        os.environ.setdefault(name, value)


def first_line(error: BaseException) -> str:
    """An exception's first line (MLflow's and SQLAlchemy's run to many), its type when it has none."""
    text = str(getattr(error, "message", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def absolute_uri(uri: str) -> str:
    """`uri` naming the same store from any working folder: relative SQLite and file paths made absolute."""
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = uri.removeprefix("sqlite:///")
        return uri if path in ("", ":memory:") else f"sqlite:///{Path(path).resolve()}"
    scheme = urlparse(uri).scheme
    if scheme == "":
        return Path(uri).resolve().as_uri()
    if scheme == "file" and not uri.startswith("file://"):
        return Path(uri.removeprefix("file:")).resolve().as_uri()
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of an SQLite URI, None for another store or an in-memory database."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?")[0]
    return None if path in ("", ":memory:") else Path(path)


def sqlite_problem(path: Path, must_exist: bool) -> str | None:
    """Why an SQLite store at `path` cannot be used (MLflow retries each of these for minutes), else None."""
    if path.is_dir():
        return f"{path} is a folder"
    if path.exists():
        with open(path, "rb") as file:
            header = file.read(len(SQLITE_HEADER))
        if header and header != SQLITE_HEADER:
            return f"{path} is not an SQLite database"
        writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)  # its journal goes beside it
        return None if writable else f"{path} cannot be written (read-only)"
    if must_exist:
        return f"{path} is gone"
    folder = next(parent for parent in path.parents if parent.exists())  # MLflow makes the missing folders
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} cannot be written (read-only), so {path.name} cannot be created there"
    return None


def stop_pending() -> bool:
    """Whether a SIGINT/SIGTERM already asked the run to stop (the trainer's StopRequest holds the signal)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        owner = getattr(signal.getsignal(signum), "__self__", None)
        if isinstance(owner, StopRequest) and owner.requested:
            return True
    return False


class BoundedCalls:
    """One daemon thread that makes a run's MLflow calls in order; each caller waits a bounded time."""

    def __init__(self) -> None:
        self.jobs: queue.Queue = queue.Queue()
        self.stuck: str | None = None  # why the thread is given up on: a call that never returned
        threading.Thread(target=self._work, name="trainlab-mlflow", daemon=True).start()

    def _work(self) -> None:
        while (job := self.jobs.get()) is not None:
            function, done, box = job
            try:
                box["value"] = function()
            except BaseException as exc:  # handed to the waiting caller, whatever it is
                box["error"] = exc
            done.set()

    def call(self, function: Callable[[], Any], seconds: float) -> Any:
        """function() on the thread: its value or its exception; TrackingUnavailable when `seconds` pass, or
        STOP_GRACE_SECONDS after a stop was asked, without an answer."""
        if self.stuck is not None:
            raise TrackingUnavailable(self.stuck)
        done, box = threading.Event(), {}
        self.jobs.put((function, done, box))
        deadline, reason = time.monotonic() + seconds, f"no answer within {seconds:g} s"
        while not done.wait(POLL_SECONDS):
            now = time.monotonic()
            if stop_pending() and deadline - now > STOP_GRACE_SECONDS:
                deadline, reason = now + STOP_GRACE_SECONDS, "no answer, and the run was asked to stop"
            if now >= deadline:
                self.stuck = reason
                raise TrackingUnavailable(reason)
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def close(self) -> None:
        """The thread ends after the calls queued (a stuck one ends with the process: it is a daemon)."""
        self.jobs.put(None)


def check_store(calls: BoundedCalls, uri: str, run_id: str | None = None) -> None:
    """The store at `uri` answers (and holds `run_id`, when given) in a bounded time; else TrackingUnavailable."""
    path = sqlite_path(uri)
    problem = sqlite_problem(path, must_exist=run_id is not None) if path is not None else None
    if problem is not None:
        raise TrackingUnavailable(problem)

    def ask() -> None:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
        if run_id is not None:
            client.get_run(run_id)

    try:
        local = path is not None or urlparse(uri).scheme == "file"
        calls.call(ask, LOCAL_CHECK_SECONDS if local else CHECK_SECONDS)
    except TrackingUnavailable:
        raise
    except Exception as exc:  # MLflow, requests and SQLAlchemy raise many kinds for a store that fails
        raise TrackingUnavailable(first_line(exc)) from None
