"""The server's one ASGI middleware, in front of FastAPI's: the token, the upload limit and the metrics of every
request, then POST /v1/predict's hot path or FastAPI; and the token's place in the OpenAPI document."""

from __future__ import annotations

import hmac
import time
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainlab.serve.errors import internal_error, send_error
from trainlab.serve.fast_predict import FastPredict
from trainlab.serve.metrics import ServerMetrics
from trainlab.serve.settings import ServeSettings

OPEN_PATHS = ("/", "/favicon.ico", "/v1/health", "/v1/ready", "/v2/health/live", "/v2/health/ready", "/docs")
OPEN_PREFIXES = ("/static/", "/docs/", "/openapi.json")  # the page and the API docs carry no model data


class BodyTooLarge(StarletteHTTPException):
    """A request body grew past the upload limit while it was being received: an HTTP error, so that FastAPI's
    own body parsing (OIP requests) passes it on as the 413 it is rather than as a parse failure."""

    def __init__(self, message: str):
        super().__init__(413, message)


class Guard:
    """Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on every request): the token, the
    upload limit (Content-Length, and bytes counted as they arrive for chunked bodies) and the metrics; then
    POST /v1/predict's hot path (fast_predict) or `app`, FastAPI's own stack (app.GuardedApp)."""

    def __init__(self, app, settings: ServeSettings, metrics: ServerMetrics, fast_predict: FastPredict | None = None):
        self.app = app
        self.fast_predict = fast_predict  # POST /v1/predict's hot path, beside FastAPI (fast_predict.py)
        self.token = settings.token.encode() if settings.token is not None else None
        self.max_mb = settings.max_upload_mb
        self.max_bytes = settings.max_upload_bytes
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_and_note(message):
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
            await send(message)

        received = 0

        async def receive_counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.too_large()[1])
            return message

        path = scope["path"]
        try:
            refusal = self.refusal(scope, path)
            if refusal is not None:
                await send_error(send_and_note, *refusal)
            elif self.fast_predict is not None and (query := self.fast_predict.takes(scope)) is not None:
                try:
                    await self.fast_predict(scope, receive_counted, send_and_note, query)
                except Exception as exc:  # as FastAPI's handlers answer it; raised on for uvicorn to log
                    if not isinstance(exc, BodyTooLarge) and not response_started:
                        await send_error(send_and_note, 500, internal_error(exc))
                    raise
            else:
                await self.app(scope, receive_counted, send_and_note)
        except BodyTooLarge:  # raised past the app (a route that did not catch it)
            if not response_started:
                await send_error(send_and_note, *self.too_large())
        finally:
            self.metrics.observe(scope["method"], path, status, time.perf_counter() - started)

    def too_large(self) -> tuple[int, str]:
        return 413, f"the request body is larger than the upload limit of {self.max_mb:g} MB (--max-upload-mb)"

    def refusal(self, scope, path: str) -> tuple[int, str, dict[str, str]] | None:
        headers = dict(scope["headers"])
        if self.token is not None and not (path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)):
            given = headers.get(b"authorization", b"")
            scheme, _, credentials = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credentials.strip(), self.token):
                reason = "a wrong token" if given else "no token"
                return (
                    401,
                    f"this server needs a token and the request has {reason}: send 'Authorization: Bearer TOKEN'",
                    {"www-authenticate": "Bearer"},
                )
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_large = int(length) > self.max_bytes
            except ValueError:
                return 422, "the Content-Length header is not a number", {}
            if too_large:
                return (*self.too_large(), {})
        return None


def add_bearer_scheme(app: FastAPI, required: bool) -> None:
    """With a token: the OpenAPI document says so, and /docs gets its Authorize button."""
    if not required:
        return
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
