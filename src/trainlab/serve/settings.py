"""What `trainlab serve` was asked for: one frozen object, checked once, passed to every worker as JSON."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
from dataclasses import dataclass

from trainlab.config import MAX_IMAGE_PIXELS
from trainlab.errors import TrainlabError

TOKEN_VARIABLE = "TRAINLAB_TOKEN"  # the token, when --token is not given
SETTINGS_VARIABLE = "TRAINLAB_SERVE_SETTINGS"  # how the settings reach uvicorn's worker processes
MAX_PORT = 65535
MAX_WORKERS = 64
MAX_BATCH = 4096  # images in one forward pass
MAX_WAIT_MS = 1000.0
MAX_QUEUE = 100_000
MAX_TOP_K = 1000
MAX_REQUEST_PIXELS = 10_000_000_000  # the most --max-request-pixels may allow: 30 GB of RGB pixels a request


@dataclass(frozen=True)
class ServeSettings:
    """A served checkpoint and how it is served."""

    checkpoint: str
    model: str | None = None  # the model of a plain state_dict file (e.g. mlp)
    name: str | None = None  # the model's name in /v2/models/{name}; None: the run directory's (or file's) name
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1  # server processes, each with its own copy of the model
    token: str | None = None  # required as `Authorization: Bearer TOKEN` on the API when set
    max_upload_mb: float = 10.0  # request bodies larger than this: 413
    max_request_pixels: int = MAX_IMAGE_PIXELS  # pixels the pictures of one request may declare in all; more: 413
    max_batch: int = 64  # images gathered into one forward pass; 1: no batching
    max_wait_ms: float = 2.0  # how long a batch waits for requests still being received (never when none are)
    max_queue: int = 256  # requests waiting for the model; more: 503 with Retry-After
    threads: int = 1  # torch threads per worker: the event loop and the model thread share the cores
    device: str = "cpu"
    trust_pickle: bool = False
    trust_model_code: bool = False
    dataset: str = "fashion-mnist"  # a plain state_dict's data set (class names, sample images)
    data_dir: str | None = None  # where the run's test images are read from (samples, per-class figures)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        return cls(**json.loads(text))

    def checked(self) -> ServeSettings:
        """These settings with the token from $TRAINLAB_TOKEN when not given; raises TrainlabError on bad values."""
        token = self.token if self.token is not None else os.environ.get(TOKEN_VARIABLE) or None
        if token is not None and not token.strip():
            raise TrainlabError("--token is empty; give a token of a few random characters or leave it out")
        for flag, value, low, high in (
            ("--port", self.port, 0, MAX_PORT),
            ("--workers", self.workers, 1, MAX_WORKERS),
            ("--max-batch", self.max_batch, 1, MAX_BATCH),
            ("--max-queue", self.max_queue, 1, MAX_QUEUE),
            ("--threads", self.threads, 1, 256),
            ("--max-request-pixels", self.max_request_pixels, 1, MAX_REQUEST_PIXELS),
        ):
            if not low <= value <= high:
                raise TrainlabError(f"{flag} must be between {low} and {high:,}, got {value}")
        if not 0 < self.max_upload_mb <= 1024:
            raise TrainlabError(f"--max-upload-mb must be above 0 and at most 1024, got {self.max_upload_mb:g}")
        if not 0 <= self.max_wait_ms <= MAX_WAIT_MS:
            raise TrainlabError(f"--max-wait-ms must be between 0 and {MAX_WAIT_MS:g}, got {self.max_wait_ms:g}")
        if not is_loopback(self.host) and token is None:
            raise TrainlabError(
                f"--host {self.host} lets other machines reach the model; give --token T (or set "
                f"{TOKEN_VARIABLE}) so that only callers with it can use the API, or serve on 127.0.0.1"
            )
        return dataclasses.replace(self, token=token)


def is_loopback(host: str) -> bool:
    """127.0.0.1, ::1 and localhost reach this machine only; anything else (0.0.0.0 included) may not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
