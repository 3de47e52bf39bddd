"""The FastAPI app of `trainlab serve`: the /v1 JSON API (api_v1), the Open Inference Protocol (KServe V2)
endpoints (api_v2), /metrics, and the web page at / (page).

Requests pass one ASGI guard (guard: token, upload limit, metrics); predictions go through the Batcher, which
runs batches on the event loop for a fast model and in a model thread for a slow one (serving); every error
is JSON {"error": "..."} with its status (errors).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from trainlab import __version__
from trainlab.serve import api_v1, api_v2
from trainlab.serve.errors import add_error_handlers
from trainlab.serve.fast_predict import FastPredict
from trainlab.serve.guard import Guard, add_bearer_scheme
from trainlab.serve.metrics import ServerMetrics
from trainlab.serve.model import ServedModel
from trainlab.serve.page import add_page
from trainlab.serve.serving import Serving, serving
from trainlab.serve.settings import SETTINGS_VARIABLE, ServeSettings


class GuardedApp(FastAPI):
    """FastAPI with the guard in front of its whole middleware stack: every request meets the guard first (token,
    upload limit, metrics), and the hot path (fast_predict) skips the layers that FastAPI's own stack adds."""

    guard: Guard

    async def __call__(self, scope, receive, send) -> None:
        await self.guard(scope, receive, send)


def create_app(settings: ServeSettings | None = None, served: ServedModel | None = None) -> FastAPI:
    """The app for a checkpoint (settings) or an already loaded model (served); the model loads here, once."""
    if served is None:
        served = ServedModel(settings)
    settings = served.settings
    metrics = ServerMetrics()
    state = Serving(served, metrics)
    app = GuardedApp(
        title=f"trainlab serve: {served.name}",
        version=__version__,
        description=(
            "Predictions from a trainlab model: the /v1 JSON API, the Open Inference Protocol (KServe V2) under "
            "/v2, Prometheus metrics at /metrics and a page to try the model at /. Errors are JSON "
            '{"error": "..."}.' + (" Send the token as 'Authorization: Bearer TOKEN'." if settings.token else "")
        ),
        lifespan=state.lifespan,
    )
    app.state.serving = state
    app.state.served, app.state.batcher, app.state.metrics = served, state.batcher, metrics
    add_error_handlers(app)
    add_page(app)
    app.include_router(api_v1.router)
    app.include_router(api_v2.router)
    app.add_api_route("/metrics", prometheus_metrics, methods=["GET"], tags=["metrics"], response_class=Response)
    add_bearer_scheme(app, settings.token is not None)
    app.guard = Guard(partial(FastAPI.__call__, app), settings, metrics, FastPredict(state))
    return app


async def prometheus_metrics(request: Request) -> Response:
    """Prometheus text format: requests, errors by status, latency, batch sizes, queue."""
    state = serving(request)
    state.metrics.queue.set(state.batcher.waiting)
    return Response(state.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


def app_from_environment() -> Any:
    """uvicorn's factory in each worker process: the settings come from $TRAINLAB_SERVE_SETTINGS."""
    import os

    return create_app(ServeSettings.from_json(os.environ[SETTINGS_VARIABLE]))
