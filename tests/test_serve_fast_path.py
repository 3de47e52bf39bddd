"""The server's hot path: plain PNGs decoded without PIL's per-file work (data/plain_png.py) to exactly PIL's
pixels, and POST /v1/predict answered beside FastAPI (serve/fast_predict.py) with exactly FastAPI's answers,
errors and metrics; anything else for the path still goes to FastAPI."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from trainlab.data.decoding import decode
from trainlab.data.plain_png import PlainPng, plain_png
from trainlab.serve.app import create_app
from trainlab.serve.fast_predict import plain_query
from trainlab.serve.model import ServedModel
from trainlab.serve.settings import TOKEN_VARIABLE, ServeSettings

from conftest import make_images, train_tiny_run


def png(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def noise(height: int, width: int, channels: int, seed: int) -> Image.Image:
    """Noise on a gradient: rows that PIL's encoder filters in several ways (none, sub, up, average, Paeth)."""
    rng = np.random.default_rng(seed)
    gradient = np.add.outer(np.arange(height), np.arange(width)) * 3
    pixels = (gradient[..., None] + rng.integers(0, 40, (height, width, channels))) % 256
    pixels = pixels.astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels)


PLAIN = {  # name: (PNG bytes, mode, width x height)
    "28x28 gray": (png(noise(28, 28, 1, 0)), "L", (28, 28)),
    "1x1 gray": (png(noise(1, 1, 1, 1)), "L", (1, 1)),
    "300x7 gray, not compressed": (png(noise(7, 300, 1, 2), compress_level=0), "L", (300, 7)),
    "100x60 RGB": (png(noise(60, 100, 3, 3)), "RGB", (100, 60)),
    "32x32 RGB with a dpi": (png(noise(32, 32, 3, 4), dpi=(300, 300)), "RGB", (32, 32)),
}


def path_decode(data: bytes, mode: str, tmp_path: Path) -> Image.Image:
    """The same file decoded the way a path is: PIL's whole way (the plain path takes bytes only)."""
    path = tmp_path / "picture.png"
    path.write_bytes(data)
    return decode(path, mode)


@pytest.mark.parametrize("name", PLAIN)
def test_a_plain_png_decodes_from_its_header_to_exactly_the_pixels_of_pils_whole_way(name, tmp_path):
    data, mode, size = PLAIN[name]
    assert plain_png(data) == PlainPng(*size, 1 if mode == "L" else 3)

    fast, whole = decode(data, mode), path_decode(data, mode, tmp_path)

    assert (fast.mode, fast.size) == (whole.mode, whole.size) == (mode, size)
    assert np.array_equal(np.asarray(fast), np.asarray(whole))


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    return png(noise(10, 20, 1, 5), exif=exif.tobytes())


def with_text(key: str, value: str) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(key, value)
    return png(noise(8, 8, 1, 6), pnginfo=info)


def corrupted_crc() -> bytes:
    data = bytearray(png(noise(8, 8, 1, 7)))
    data[-20] ^= 0xFF  # inside the IDAT chunk's CRC or data: the stored CRC no longer matches
    return bytes(data)


def chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


NOT_PLAIN = {  # name: PNG bytes that must go PIL's whole way
    "transparent gray (tRNS)": png(noise(8, 8, 1, 8), transparency=int(np.asarray(noise(8, 8, 1, 8))[0, 0])),
    "an EXIF rotation (eXIf)": exif_rotated(),
    "a text chunk (it may hold XMP rotation)": with_text("XML:com.adobe.xmp", "<x/>"),
    "16-bit gray": png(Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16))),
    "palette": png(noise(8, 8, 3, 9).convert("P")),
    "gray with alpha": png(noise(8, 8, 1, 10).convert("LA")),
    "a wrong CRC": corrupted_crc(),
    "bytes after IEND": png(noise(8, 8, 1, 11)) + b"trailing",
    "truncated": png(noise(8, 8, 1, 12))[:-15],
    "a chunk of unknown kind": png(noise(8, 8, 1, 13))[:33] + chunk(b"zzZz", b"x") + png(noise(8, 8, 1, 13))[33:],
    "not a PNG": b"GIF89a" + bytes(60),
}


@pytest.mark.parametrize("name", NOT_PLAIN)
def test_a_png_that_is_not_plain_goes_pils_whole_way(name):
    assert plain_png(NOT_PLAIN[name]) is None


def test_pils_whole_way_still_turns_a_png_with_an_exif_rotation_upright():
    assert decode(NOT_PLAIN["an EXIF rotation (eXIf)"], "L").size == (10, 20)  # stored 20x10


# --- the query the hot path reads, and what it leaves to FastAPI ----------------------------------------------


@pytest.mark.parametrize(
    ("query", "values"),
    [
        (b"", (3, "auto", False)),
        (b"top_k=5", (5, "auto", False)),
        (b"input_style=photo&include_input=true&top_k=1000", (1000, "photo", True)),
        (b"include_input=0&input_style=raw", (3, "raw", False)),
    ],
)
def test_a_plain_query_is_read_by_the_hot_path(query, values):
    assert plain_query(query) == values


@pytest.mark.parametrize(
    "query",
    [b"top_k=0", b"top_k=1001", b"top_k=05", b"top_k=%35", b"top_k=", b"top_k=1&top_k=2", b"include_input=yes"]
    + [b"input_style=bogus", b"other=1", b"top_k=5&", b"top_k=" + b"9" * 5000],
)
def test_any_other_query_is_left_to_fastapi(query):
    assert plain_query(query) is None


# --- the hot path against FastAPI's route ----------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("fast_path"))[1]


def served(run_dir: Path, **values) -> ServedModel:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(TOKEN_VARIABLE, raising=False)
        return ServedModel(ServeSettings(checkpoint=str(run_dir), **values).checked())


@pytest.fixture(scope="module")
def app(run_dir):
    return create_app(served=served(run_dir))


@pytest.fixture(scope="module")
def client(app) -> Iterator[TestClient]:
    """The app started, its model card computed (the card's thread runs the model beside the requests)."""
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while app.state.served.card_pending and time.monotonic() < deadline:
            time.sleep(0.05)
        yield client


class FastApiCalls:
    """The paths of the requests that reached FastAPI's own stack (behind the guard)."""

    def __init__(self, app):
        self.paths: list[str] = []
        self.inner = app.guard.app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


@pytest.fixture
def fastapi_calls(app, monkeypatch) -> FastApiCalls:
    calls = FastApiCalls(app)
    monkeypatch.setattr(app.guard, "app", calls)
    return calls


def picture() -> bytes:
    images, _ = make_images(1, 3)
    return png(Image.fromarray(images[0]))


QUERIES = [{}, {"top_k": "10"}, {"input_style": "photo"}, {"input_style": "raw", "include_input": "true"}]


@pytest.mark.parametrize("query", QUERIES)
def test_the_hot_path_answers_the_same_bytes_as_fastapis_route(query, app, client, fastapi_calls, monkeypatch):
    data = picture()
    fast = client.post("/v1/predict", params=query, content=data, headers={"content-type": "image/png"})
    assert fastapi_calls.paths == []  # answered beside FastAPI
    monkeypatch.setattr(app.guard, "fast_predict", None)

    route = client.post("/v1/predict", params=query, content=data, headers={"content-type": "image/png"})

    assert fastapi_calls.paths == ["/v1/predict"]
    assert (fast.status_code, fast.content) == (route.status_code, route.content)
    assert fast.status_code == 200
    assert fast.headers["content-type"] == route.headers["content-type"] == "application/json"
    assert fast.headers["content-length"] == route.headers["content-length"] == str(len(fast.content))


ERRORS = {  # what is wrong: (body, Content-Type)
    "a text/plain body": (b"words", "text/plain"),
    "an empty body": (b"", "image/png"),
    "no image": (b"just some words", "image/png"),
    "half a PNG": (png(noise(28, 28, 1, 14))[:200], "image/png"),
}


@pytest.mark.parametrize("name", ERRORS)
def test_the_hot_paths_errors_are_fastapis_errors(name, app, client, fastapi_calls, monkeypatch):
    body, content_type = ERRORS[name]
    fast = client.post("/v1/predict", content=body, headers={"content-type": content_type})
    monkeypatch.setattr(app.guard, "fast_predict", None)

    route = client.post("/v1/predict", content=body, headers={"content-type": content_type})

    assert fastapi_calls.paths == ["/v1/predict"]
    assert fast.status_code in (413, 415, 422)
    assert (fast.status_code, fast.json()) == (route.status_code, route.json())


def test_multipart_forms_and_queries_it_does_not_read_go_to_fastapi(client, fastapi_calls):
    data = picture()
    assert client.post("/v1/predict", files=[("files", ("a.png", data, "image/png"))]).status_code == 200
    response = client.post("/v1/predict", params={"top_k": "0"}, content=data)
    assert response.status_code == 422
    assert response.json() == {"error": "top_k: Input should be greater than or equal to 1"}
    assert client.post("/v1/predict", params={"include_input": "yes"}, content=data).status_code == 200

    assert fastapi_calls.paths == ["/v1/predict"] * 3


def test_a_failure_in_the_hot_path_is_a_json_500_naming_it_and_counted(run_dir):
    model = served(run_dir)

    def failing(batches: list[torch.Tensor]):
        raise RuntimeError("the forward pass failed")

    model.forward = failing
    with TestClient(create_app(served=model), raise_server_exceptions=False) as client:
        response = client.post("/v1/predict", content=picture())
        metrics = client.get("/metrics").text

    assert response.status_code == 500
    assert json.loads(response.content) == {"error": "internal error: RuntimeError: the forward pass failed"}
    assert 'trainlab_requests_total{method="POST",route="/v1/predict",status="500"} 1.0' in metrics
    assert 'trainlab_request_errors_total{status="500"} 1.0' in metrics


# --- auto's look at a picture's corners, with few numpy calls ----------------------------------------------


def test_the_corner_level_auto_reads_is_numpys_median_of_the_four_corner_patches():
    from trainlab.data.input_styles import corner_level, corner_patches

    rng = np.random.default_rng(0)
    for height, width in [(28, 28), (1, 1), (2, 40), (60, 100), (300, 7), (33, 34)]:
        for gray in (
            rng.integers(0, 256, (height, width)).astype(np.float32),  # a gray picture's levels
            rng.integers(0, 256, (height, width)).astype(np.float32) * np.float32(0.587) + np.float32(0.299),
            np.asfortranarray(rng.integers(0, 256, (height, width)).astype(np.float32)),
        ):
            patches = [patch.reshape(-1) for patch in corner_patches(gray)]
            medians = np.array([np.median(patch) for patch in patches], dtype=np.float32)
            level = float(np.median(medians))
            noise = float(np.median(np.array([np.abs(patch - level).mean() for patch in patches], np.float32)))

            assert corner_level(gray) == (level, float(medians.max() - medians.min()), noise)


def test_auto_converts_a_gray_picture_from_pil_once_for_its_levels_and_its_tensor(monkeypatch):
    from types import SimpleNamespace

    from trainlab.data.decoding import read_input
    from trainlab.data.input_styles import DataLook

    shape = SimpleNamespace(channels=1, height=28, width=28, look=DataLook(background=0.0, plain=1.0, fill=1.0))
    data = PLAIN["28x28 gray"][0]
    conversions = []
    tobytes = Image.Image.tobytes
    monkeypatch.setattr(Image.Image, "tobytes", lambda self, *a, **k: conversions.append(1) or tobytes(self, *a, **k))

    item = read_input(data, shape, "auto")

    assert len(conversions) == 1
    assert item.choice.style == "raw"  # the noise's corners are no plain background like the training images'
    assert np.array_equal(item.tensor[0].numpy(), np.asarray(noise(28, 28, 1, 0)))
