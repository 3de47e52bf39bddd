"""A server process for tests, scripts and benchmarks: a free port, and waiting until it answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any


class ServerNotReady(Exception):
    """The server exited, or did not answer within the time given."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def wait_until_ready(
    process: subprocess.Popen,
    base: str,
    seconds: float = 120,
    ready_path: str = "/v1/ready",
    card: bool = False,
    poll: float = 0.1,
) -> None:
    """Until GET base + ready_path answers 200 (and, with `card`, a trainlab server's model card is computed);
    ServerNotReady if the process exits first or the time runs out."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerNotReady(f"the server exited with status {process.returncode}")
        try:
            urllib.request.urlopen(base + ready_path, timeout=1).close()  # a 503 while starting raises
            if not card or not get_json(f"{base}/v1/model")["per_class_pending"]:
                return
        except (OSError, ValueError):
            pass
        time.sleep(poll)
    raise ServerNotReady(f"the server at {base} did not answer within {seconds:g} s")


def start_server(run: str | os.PathLike, port: int, *flags: str, **popen: Any) -> subprocess.Popen:
    """`python -m trainlab serve RUN --host 127.0.0.1 --port PORT FLAGS` as a subprocess (popen: Popen's
    arguments, such as stdout), never with a token taken from the caller's $TRAINLAB_TOKEN."""
    env = {key: value for key, value in popen.pop("env", os.environ).items() if key != "TRAINLAB_TOKEN"}
    command = [sys.executable, "-m", "trainlab", "serve", str(Path(run)), "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen([*command, *flags], env=env, **popen)


def stop_server(process: subprocess.Popen, seconds: float = 30) -> int:
    """SIGTERM (requests in flight finish), SIGKILL after `seconds`; the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
