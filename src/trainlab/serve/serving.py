"""What every route of the app shares: the served model, its batcher, the pool that decodes pictures, and
whether the model is taking requests; one object per app, found by the routes on `request.app.state`."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.responses import Response

from trainlab.inference.predictor import ModelOutput
from trainlab.serve.batching import Batcher, QueueFull
from trainlab.serve.errors import JSON, ApiError
from trainlab.serve.metrics import ServerMetrics
from trainlab.serve.model import ServedModel
from trainlab.serve.uploads import PictureReader

INLINE_FORWARD_SECONDS = 0.002  # forward passes faster than this run on the event loop (see batching.py)
DECODE_THREADS = 2  # PIL releases the GIL while it decodes: large pictures decode beside the event loop


class Serving:
    """The served model behind its batcher and picture reader, and its readiness; started by the app's lifespan."""

    def __init__(self, served: ServedModel, metrics: ServerMetrics):
        self.served, self.metrics = served, metrics
        self.settings = settings = served.settings
        batch_seconds = served.forward_seconds(min(16, settings.max_batch))
        self.batcher = Batcher(
            served.forward,
            settings.max_batch,
            settings.max_wait_ms,
            settings.max_queue,
            metrics.batch,
            served.setup_thread,
            inline=batch_seconds < INLINE_FORWARD_SECONDS,
        )
        self.decoders = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="trainlab-decode")
        self.read_pictures = PictureReader(served.read, self.decoders, settings.max_request_pixels)
        self.ready = False

    @asynccontextmanager
    async def lifespan(self, app: FastAPI):
        """The app's lifespan: the batcher and the model card start; on the way out the batcher drains."""
        self.batcher.start()
        self.served.start_card()
        self.ready = True
        yield
        self.ready = False
        await self.batcher.stop()  # uvicorn has let the requests in flight finish; their jobs are done
        self.decoders.shutdown(wait=True)

    async def classify(self, batch: torch.Tensor) -> ModelOutput:
        """Probabilities and unlike scores for a uint8 batch, through the batcher's queue and forward passes."""
        try:
            return await self.batcher.submit(batch, len(batch))
        except QueueFull:
            raise ApiError(
                503,
                f"the model's queue is full ({self.settings.max_queue} waiting); retry shortly",
                {"retry-after": "1"},
            ) from None

    def check_ready(self) -> None:
        if not self.ready:
            raise ApiError(503, "the model is not ready (starting or stopping)")


def serving(request: Request) -> Serving:
    """The Serving of the app that received `request`."""
    return request.app.state.serving


def json_response(values: Any) -> Response:
    return Response(json.dumps(values).encode(), media_type=JSON)
