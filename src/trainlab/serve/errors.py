"""The server's answers with an error status: one JSON shape, {"error": "..."}, shared by the app and the
modules that read requests (uploads, oip) and the run's files (reports)."""

from __future__ import annotations

import json

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


def image_error(exc: DataError) -> ApiError:
    """A picture that cannot be used: 415 not an image, 413 too many pixels, 422 damaged."""
    if isinstance(exc, NotAnImage):
        return ApiError(415, f"{exc}; send a PNG, JPEG, BMP, GIF, WebP or TIFF file")
    return ApiError(413 if isinstance(exc, ImageTooLarge) else 422, str(exc))
