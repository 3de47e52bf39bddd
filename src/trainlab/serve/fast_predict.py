"""POST /v1/predict's hot path: a request whose body is one picture and whose query is plain, answered by a plain
ASGI handler that the guard calls instead of FastAPI.

Through FastAPI such a request spends more time in the framework (its middleware stack, routing, the query's
Pydantic validation, the Request object) than in decoding the picture and the model's forward pass together
(BENCHMARKS.md, "Serving"). This handler does only what the answer needs, with the route's own functions
(uploads.body_images, Serving's picture reader and batcher, ServedModel.predictions_body), so the answer is
the same bytes. Any other request for the path (multipart forms, a query with anything it does not read
plainly, such as top_k=0 or a percent-escape) goes on to FastAPI, which validates it and explains.
"""

from __future__ import annotations

from typing import Any

import torch

from trainlab.config import INPUT_STYLES
from trainlab.serve.errors import JSON, ApiError, send_error
from trainlab.serve.serving import Serving
from trainlab.serve.settings import MAX_TOP_K
from trainlab.serve.uploads import body_images

PATH = "/v1/predict"
DEFAULT_QUERY = (3, "auto", False)  # top_k, input_style, include_input: the route's defaults
BOOLEANS = {"true": True, "false": False, "1": True, "0": False}  # the spellings read here; others: FastAPI's
RESPONSE_TYPE = (b"content-type", JSON.encode())


def plain_query(query: bytes) -> tuple[int, str, bool] | None:
    """(top_k, input_style, include_input) from a query of plain, valid values; None for any other query."""
    if not query:
        return DEFAULT_QUERY
    values = dict(zip(("top_k", "input_style", "include_input"), DEFAULT_QUERY, strict=True))
    seen = set()
    for part in query.decode("latin-1").split("&"):
        key, _, value = part.partition("=")
        if key not in values or key in seen:
            return None
        seen.add(key)
        if key == "top_k":
            if not (value.isascii() and value.isdigit() and value[0] != "0" and len(value) <= len(str(MAX_TOP_K))):
                return None
            if int(value) > MAX_TOP_K:
                return None
            values[key] = int(value)
        elif key == "input_style":
            if value not in INPUT_STYLES:
                return None
            values[key] = value
        else:
            if value not in BOOLEANS:
                return None
            values[key] = BOOLEANS[value]
    return values["top_k"], values["input_style"], values["include_input"]


def first_header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
    """The first value of a header (as Starlette's request.headers gives it), b"" when absent."""
    for key, value in headers:
        if key == name:
            return value
    return b""


class FastPredict:
    """The plain handler for POST /v1/predict with one picture as the body (see the module's docstring)."""

    def __init__(self, state: Serving):
        self.state = state

    def takes(self, scope: dict[str, Any]) -> tuple[int, str, bool] | None:
        """The request's query values when this handler answers it, else None (FastAPI does)."""
        if scope["path"] != PATH or scope["method"] != "POST":
            return None
        if first_header(scope["headers"], b"content-type").lower().startswith(b"multipart/"):
            return None
        return plain_query(scope.get("query_string", b""))

    async def __call__(self, scope: dict[str, Any], receive, send, query: tuple[int, str, bool]) -> None:
        """Answer the request: the predictions, or the JSON error FastAPI's handlers would give."""
        top_k, style, include_input = query
        state = self.state
        content_type = first_header(scope["headers"], b"content-type").decode("latin-1").lower()
        try:
            state.batcher.arriving += 1
            try:
                body = await read_body(receive)
                if body is None:  # the client went away: no one to answer
                    return
                files, names = body_images(content_type, body)
                inputs = await state.read_pictures(files, names, style)
            finally:
                state.batcher.arriving -= 1
            output = await state.classify(torch.stack([item.tensor for item in inputs]))
            answer = state.served.predictions_body(output, inputs, names, top_k, include_input)
        except ApiError as exc:
            await send_error(send, exc.status, exc.message, exc.headers)
            return
        headers = [RESPONSE_TYPE, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})


async def read_body(receive) -> bytes | None:
    """The whole request body, or None when the client disconnects first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)
