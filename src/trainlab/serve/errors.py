"""The server's answers with an error status: one JSON shape, {"error": "..."}, shared by the routes, the
modules that read requests (uploads, oip) and the run's files (reports), and the app's exception handlers."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainlab.data.decoding import ImageTooLarge, NotAnImage
from trainlab.errors import DataError

JSON = "application/json"


class ApiError(Exception):
    """An answer with an error status and a one-line message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_body(message: str) -> bytes:
    """The JSON body of every error answer."""
    return json.dumps({"error": message}).encode()


async def send_error(send, status: int, message: str, headers: dict[str, str] | None = None) -> None:
    """An error answer sent over plain ASGI (the guard's refusals, the hot path's errors), as api_error sends it."""
    body = error_body(message)
    raw_headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    raw_headers += [(key.encode(), value.encode()) for key, value in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def image_error(exc: DataError) -> ApiError:
    """A picture that cannot be used: 415 not an image, 413 too many pixels, 422 damaged."""
    if isinstance(exc, NotAnImage):
        return ApiError(415, f"{exc}; send a PNG, JPEG, BMP, GIF, WebP or TIFF file")
    return ApiError(413 if isinstance(exc, ImageTooLarge) else 422, str(exc))


def add_error_handlers(app: FastAPI) -> None:
    """Every error the app raises answered as {"error": "..."} with its status (a 500 names the exception)."""
    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)


async def api_error(request: Request, exc: ApiError) -> Response:
    return Response(error_body(exc.message), exc.status, headers=exc.headers, media_type=JSON)


async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
    message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
    if exc.status_code == 404 and message == "Not Found":
        message = f"no such path: {request.url.path} (the API is described at /docs)"
    return Response(error_body(message), exc.status_code, headers=exc.headers, media_type=JSON)


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    problems = []
    for item in exc.errors():
        where = ".".join(str(part) for part in item.get("loc", ()) if part not in ("query", "body"))
        problems.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
    return Response(error_body("; ".join(problems) or "malformed request"), 422, media_type=JSON)


async def unexpected_error(request: Request, exc: Exception) -> Response:
    return Response(error_body(internal_error(exc)), 500, media_type=JSON)


def internal_error(exc: Exception) -> str:
    """A 500's message: the exception, named."""
    return f"internal error: {type(exc).__name__}: {exc}"
