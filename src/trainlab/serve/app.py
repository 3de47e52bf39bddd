"""The FastAPI app of `trainlab serve`: the /v1 JSON API, the Open Inference Protocol (KServe V2) endpoints,
/metrics, and the web page at /.

Requests pass one ASGI guard (token, upload limit, metrics); predictions go through the Batcher, which runs
batches on the event loop for a fast model and in a model thread for a slow one; every error is JSON
{"error": "..."} with its status.
"""

from __future__ import annotations

import hmac
import json
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any, Literal

import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainlab import __version__
from trainlab.config import INPUT_STYLES
from trainlab.serve import schemas
from trainlab.serve.batching import Batcher, QueueFull
from trainlab.serve.errors import JSON, ApiError, error_body
from trainlab.serve.metrics import ServerMetrics
from trainlab.serve.model import ServedModel
from trainlab.serve.oip import oip_tensor
from trainlab.serve.reports import report_png
from trainlab.serve.settings import MAX_TOP_K, SETTINGS_VARIABLE, ServeSettings
from trainlab.serve.uploads import PictureReader, request_images

OPEN_PATHS = ("/", "/favicon.ico", "/v1/health", "/v1/ready", "/v2/health/live", "/v2/health/ready", "/docs")
OPEN_PREFIXES = ("/static/", "/docs/", "/openapi.json")  # the page and the API docs carry no model data
INLINE_FORWARD_SECONDS = 0.002  # forward passes faster than this run on the event loop (see batching.py)
DECODE_THREADS = 2  # PIL releases the GIL while it decodes: large pictures decode beside the event loop


class BodyTooLarge(StarletteHTTPException):
    """A request body grew past the upload limit while it was being received: an HTTP error, so that FastAPI's
    own body parsing (OIP requests) passes it on as the 413 it is rather than as a parse failure."""

    def __init__(self, message: str):
        super().__init__(413, message)


def json_response(values: Any) -> Response:
    return Response(json.dumps(values).encode(), media_type=JSON)


class Guard:
    """Pure ASGI middleware (cheaper than Starlette's BaseHTTPMiddleware on every request): the token, the
    upload limit (Content-Length, and bytes counted as they arrive for chunked bodies) and the metrics."""

    def __init__(self, app, settings: ServeSettings, metrics: ServerMetrics):
        self.app = app
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


async def send_error(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    body = error_body(message)
    raw_headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(key.encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def create_app(settings: ServeSettings | None = None, served: ServedModel | None = None) -> FastAPI:
    """The app for a checkpoint (settings) or an already loaded model (served); the model loads here, once."""
    if served is None:
        served = ServedModel(settings)
    settings = served.settings
    metrics = ServerMetrics()
    batch_seconds = served.forward_seconds(min(16, settings.max_batch))
    batcher = Batcher(
        served.forward,
        settings.max_batch,
        settings.max_wait_ms,
        settings.max_queue,
        metrics.batch,
        served.setup_thread,
        inline=batch_seconds < INLINE_FORWARD_SECONDS,
    )
    state = {"ready": False}
    decoders = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="trainlab-decode")
    read_pictures = PictureReader(served.read, decoders, settings.max_request_pixels)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        served.start_card()
        state["ready"] = True
        yield
        state["ready"] = False
        await batcher.stop()  # uvicorn has let the requests in flight finish; their jobs are done
        decoders.shutdown(wait=True)

    app = FastAPI(
        title=f"trainlab serve: {served.name}",
        version=__version__,
        description=(
            "Predictions from a trainlab model: the /v1 JSON API, the Open Inference Protocol (KServe V2) under "
            "/v2, Prometheus metrics at /metrics and a page to try the model at /. Errors are JSON "
            '{"error": "..."}.' + (" Send the token as 'Authorization: Bearer TOKEN'." if settings.token else "")
        ),
        lifespan=lifespan,
    )
    app.state.served, app.state.batcher, app.state.metrics = served, batcher, metrics
    static = resources.files("trainlab.serve") / "static"
    page = (static / "index.html").read_bytes()

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return Response(error_body(exc.message), exc.status, headers=exc.headers, media_type=JSON)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such path: {request.url.path} (the API is described at /docs)"
        return Response(error_body(message), exc.status_code, headers=exc.headers, media_type=JSON)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        problems = []
        for item in exc.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part not in ("query", "body"))
            problems.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
        return Response(error_body("; ".join(problems) or "malformed request"), 422, media_type=JSON)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> Response:
        return Response(error_body(f"internal error: {type(exc).__name__}: {exc}"), 500, media_type=JSON)

    async def classify(batch: torch.Tensor) -> torch.Tensor:
        """Probabilities for a uint8 batch, through the batcher's queue and forward passes."""
        try:
            return await batcher.submit(batch, len(batch))
        except QueueFull:
            raise ApiError(
                503,
                f"the model's queue is full ({settings.max_queue} waiting); retry shortly",
                {"retry-after": "1"},
            ) from None

    def check_ready() -> None:
        if not state["ready"]:
            raise ApiError(503, "the model is not ready (starting or stopping)")

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    @app.get("/v1/health", tags=["health"], response_model=schemas.Health)
    @app.head("/v1/health", include_in_schema=False)
    async def health() -> Response:
        """Liveness: the process answers."""
        return json_response({"status": "ok"})

    @app.head("/v1/ready", include_in_schema=False)
    @app.get(
        "/v1/ready",
        tags=["health"],
        response_model=schemas.Ready,
        responses={503: {"model": schemas.Error}},
    )
    async def ready() -> Response:
        """Readiness: the model is loaded and taking requests."""
        check_ready()
        return json_response({"ready": True, "model": served.name})

    @app.get("/v1/model", tags=["model"], response_model=schemas.ModelInfo)
    async def model_info() -> Response:
        """The model: name, classes, input, preprocessing, parameters, test figures, checkpoint sha256."""
        return json_response(served.describe())

    @app.get("/v1/model/reports/{key}.png", tags=["model"], response_class=Response)
    async def model_report(key: str) -> Response:
        """The run's learning curves or confusion matrix (PNG)."""
        return Response(report_png(served.run_dir, key), media_type="image/png")

    @app.get("/v1/samples", tags=["model"], response_model=schemas.Samples)
    async def samples() -> Response:
        """Test images from the run's data set (none when no copy of it is here)."""
        return json_response(
            {
                "pending": served.card_pending,  # still being read at start-up: ask again shortly
                "samples": [
                    {"index": index, "label": label, "url": f"/v1/samples/{index}.png"}
                    for index, label, _ in served.samples
                ],
            }
        )

    @app.get("/v1/samples/{index}.png", tags=["model"], response_class=Response)
    async def sample_image(index: int) -> Response:
        """One sample test image as PNG."""
        for number, _, png in served.samples:
            if number == index:
                return Response(png, media_type="image/png")
        raise ApiError(404, f"no sample image {index}; GET /v1/samples lists them")

    @app.post(
        "/v1/predict",
        tags=["predict"],
        response_model=schemas.PredictResponse,
        responses={code: {"model": schemas.Error} for code in (401, 413, 415, 422, 503)},
        openapi_extra={"requestBody": schemas.PREDICT_BODY},
    )
    async def predict(
        request: Request,
        top_k: int = Query(3, ge=1, le=MAX_TOP_K, description="classes listed per image"),
        input_style: Literal[INPUT_STYLES] = Query("auto", description="as in `trainlab predict`"),  # config's list
        include_input: bool = Query(False, description="add the picture the model received, as a PNG data URL"),
    ) -> Response:
        """Classify one image sent as the body (Content-Type image/png, image/jpeg, ...) or several sent as
        multipart files: per image the label, class index, probability and top-k, as `trainlab predict --json`."""
        batcher.arriving += 1
        try:
            files, names = await request_images(request)
            inputs = await read_pictures(files, names, input_style)
        finally:
            batcher.arriving -= 1
        probabilities = await classify(torch.stack([item.tensor for item in inputs]))
        return Response(served.predictions_body(probabilities, inputs, names, top_k, include_input), media_type=JSON)

    @app.get("/v2", tags=["open inference protocol"])
    async def oip_server() -> Response:
        """Server metadata."""
        return json_response({"name": "trainlab", "version": __version__, "extensions": []})

    @app.get("/v2/health/live", tags=["open inference protocol"])
    @app.head("/v2/health/live", include_in_schema=False)
    async def oip_live() -> Response:
        return json_response({"live": True})

    @app.get("/v2/health/ready", tags=["open inference protocol"])
    @app.head("/v2/health/ready", include_in_schema=False)
    async def oip_ready() -> Response:
        check_ready()
        return json_response({"ready": True})

    def check_name(name: str) -> None:
        if name != served.name:
            raise ApiError(404, f"no model named {name!r}; this server serves {served.name!r}")

    @app.get("/v2/models/{name}", tags=["open inference protocol"])
    async def oip_model(name: str) -> Response:
        """Model metadata: its input (UINT8 [N, C, H, W]) and output (FP32 probabilities [N, classes])."""
        check_name(name)
        return json_response(served.oip_metadata())

    @app.get("/v2/models/{name}/ready", tags=["open inference protocol"])
    async def oip_model_ready(name: str) -> Response:
        check_name(name)
        return json_response({"name": name, "ready": state["ready"]})

    @app.post(
        "/v2/models/{name}/infer",
        tags=["open inference protocol"],
        responses={code: {"model": schemas.Error} for code in (401, 404, 413, 422, 503)},
    )
    async def oip_infer(name: str, request: schemas.InferenceRequest) -> Response:
        """Inference on one UINT8 input tensor [N, C, H, W] (any name); the output is FP32 probabilities."""
        check_name(name)
        tensor = oip_tensor(request, served.input_shape())
        for output in request.outputs or []:
            if output.name != "probabilities":
                raise ApiError(422, f"no output named {output.name!r}; this model has one: 'probabilities'")
        return Response(served.inference_body(await classify(tensor), request.id), media_type=JSON)

    @app.get("/metrics", tags=["metrics"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus text format: requests, errors by status, latency, batch sizes, queue."""
        metrics.queue.set(batcher.waiting)
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    add_bearer_scheme(app, settings.token is not None)
    app.add_middleware(Guard, settings=settings, metrics=metrics)
    return app


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


def app_from_environment() -> Any:
    """uvicorn's factory in each worker process: the settings come from $TRAINLAB_SERVE_SETTINGS."""
    import os

    return create_app(ServeSettings.from_json(os.environ[SETTINGS_VARIABLE]))
