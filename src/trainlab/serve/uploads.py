"""/v1/predict's uploads: the image files of a request, the pixels they declare counted for the whole request
from their headers alone, then decoded: a small request on the event loop, a larger one in a decode thread.

Decoding costs time and memory by the pixels a header declares, not by the file's size: a 4 KB PNG may
declare 8000x4000 pixels. So the bound is on the declared pixels of the whole request, checked before any
picture is decoded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from fastapi import Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from trainlab.data.decoding import InputImage, open_image
from trainlab.data.plain_png import plain_png
from trainlab.errors import DataError
from trainlab.serve.errors import ApiError, image_error

REFUSED_TYPES = ("text/", "application/json", "application/xml")  # bodies that are surely not image files
MAX_FORM_FILES = 1000  # files (and other fields) in one multipart form
INLINE_DECODE_PIXELS = 65_536  # a request declaring up to this many pixels in all (80 pictures of 28x28, one of
# 256x256) decodes on the event loop, where a thread hop costs more than its decode (well under 1 ms)


async def request_images(request: Request) -> tuple[list[bytes], list[str | None]]:
    """The image files of a /v1/predict request: its body, or the files of a multipart form."""
    content_type = request.headers.get("content-type", "").lower()
    body = await request.body()
    if content_type.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FILES)
        except StarletteHTTPException as exc:  # a malformed form
            raise ApiError(422, f"the multipart form cannot be read: {exc.detail}") from None
        files = [value for _, value in form.multi_items() if not isinstance(value, str)]
        if not files:
            raise ApiError(422, "the multipart form holds no files; send each image as a file field")
        contents = [await item.read() for item in files]
        for item, data in zip(files, contents, strict=True):
            if not data:
                raise ApiError(422, f"the form's file {item.filename or item.name!r} is empty (0 bytes); send an image")
        return contents, [item.filename or None for item in files]
    return body_images(content_type, body)


def body_images(content_type: str, body: bytes) -> tuple[list[bytes], list[str | None]]:
    """The one image file of a request whose body is the file (content_type in lower case)."""
    if content_type.startswith(REFUSED_TYPES):
        raise ApiError(
            415,
            f"a {content_type.split(';')[0]} body is not an image; send the image file itself "
            "(Content-Type: image/png, image/jpeg, ...) or multipart files",
        )
    if not body:
        raise ApiError(422, "the request has no body; send an image file as the body or as multipart files")
    return [body], [None]


def picture_name(name: str | None) -> str:
    """What messages call an uploaded picture: its multipart file name, else the body."""
    return name or "the request body"


def declared_pixels(files: list[bytes], names: list[str | None]) -> list[int]:
    """Each picture's width x height as its header declares it, no pixel decoded (PIL reads headers only);
    a picture that is no image or is over the per-picture bound is refused here."""
    counts = []
    for data, name in zip(files, names, strict=True):
        plain = plain_png(data)  # its header read without PIL (a tenth of the time)
        if plain is not None:
            counts.append(plain.width * plain.height)
            continue
        try:
            image = open_image(data, picture_name(name))
        except DataError as exc:
            raise image_error(exc) from None
        with image:
            width, height = image.size
        counts.append(width * height)
    return counts


def check_request_pixels(counts: list[int], limit: int) -> None:
    """413 when the pictures of one request declare more than `limit` pixels in all."""
    total = sum(counts)
    if total > limit:
        pictures = f"{len(counts)} picture{'s' if len(counts) != 1 else ''}"
        raise ApiError(
            413,
            f"the request's {pictures} declare {total:,} pixels in all, over the limit of {limit:,} per request "
            "(--max-request-pixels); send fewer or smaller pictures in each request",
        )


class PictureReader:
    """The pictures of a request as the model receives them, within a bound on the request's declared pixels."""

    def __init__(self, read: Callable[[bytes, str, str], InputImage], decoders: Executor, max_request_pixels: int):
        self.read = read  # one picture through the Predictor's decoding path (ServedModel.read)
        self.decoders = decoders
        self.max_request_pixels = max_request_pixels

    async def __call__(self, files: list[bytes], names: list[str | None], style: str) -> list[InputImage]:
        """Every picture decoded, or an ApiError before any is when the request declares too many pixels."""
        counts = declared_pixels(files, names)
        check_request_pixels(counts, self.max_request_pixels)
        if sum(counts) <= INLINE_DECODE_PIXELS:
            return self.decode(files, names, style)
        return await asyncio.get_running_loop().run_in_executor(self.decoders, self.decode, files, names, style)

    def decode(self, files: list[bytes], names: list[str | None], style: str) -> list[InputImage]:
        """The pictures decoded one after another (on the event loop or in a decode thread)."""
        inputs = []
        for data, name in zip(files, names, strict=True):
            try:
                item = self.read(data, picture_name(name), style)
            except DataError as exc:
                raise image_error(exc) from None
            item.original = None  # the full-size picture is never answered: not held until the request ends
            inputs.append(item)
        return inputs
