"""The HTTP API of `trainlab serve` (FastAPI's TestClient, in this process): /v1 predictions that match the
Predictor and `trainlab predict` exactly, JSON errors with their statuses, the token, the Open Inference
Protocol under /v2, the model card, /metrics, the bounded queue and the batching of concurrent requests.

One tiny run is trained per module and one app serves most tests; tests that need other settings (a token,
a small upload limit, a queue of one, a model whose forward pass is watched) build their own app, which
takes a fraction of a second once torch and torchvision are imported.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import re
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from trainlab.checkpoint import resolve_checkpoint_path
from trainlab.data import decoding, load_split
from trainlab.data.decoding import MAX_IMAGE_PIXELS
from trainlab.errors import TrainlabError
from trainlab.inference.predictor import Prediction, Predictor
from trainlab.layout import CONFUSION_FILE, CURVES_FILE
from trainlab.serve.app import create_app
from trainlab.serve.model import SAMPLE_COUNT, ServedModel
from trainlab.serve.settings import TOKEN_VARIABLE, ServeSettings

from conftest import FASHION_CLASSES, make_images, read_metrics, train_tiny_run

TOLERANCE = 1e-6  # probabilities: one forward pass of a batch against another
TEST_IMAGES = 160  # the generated test set of write_fashion_layout
CARD_SECONDS = 20  # the model card's thread evaluates the test set beside the tests
TOKEN = "s3cret"
BEARER = {"authorization": f"Bearer {TOKEN}"}


@dataclass
class TrainedRun:
    data_dir: Path
    run_dir: Path
    predictor: Predictor


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> TrainedRun:
    """A one-epoch MLP run on generated data, and the Predictor that the answers are compared with."""
    data_dir, run_dir = train_tiny_run(tmp_path_factory.mktemp("serve_api"))
    return TrainedRun(data_dir, run_dir, Predictor.from_checkpoint(run_dir))


def settings(checkpoint: Path, **values) -> ServeSettings:
    """Checked serve settings for a checkpoint, whatever $TRAINLAB_TOKEN holds where the tests run."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(TOKEN_VARIABLE, raising=False)
        return ServeSettings(checkpoint=str(checkpoint), **values).checked()


@pytest.fixture(scope="module")
def client(run) -> Iterator[TestClient]:
    """The run served with the default settings (lifespan started: the batcher runs, the card is computed)."""
    with TestClient(create_app(settings(run.run_dir))) as client:
        yield client


# --- pictures -------------------------------------------------------------------------------------------


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def band(seed: int) -> np.ndarray:
    """A generated 28x28 training-like picture (a bright band on a dark noisy background)."""
    images, _ = make_images(1, seed)
    return images[0]


def rgba_picture() -> Image.Image:
    """100x60 RGBA: a light shape, half of it see-through, on a transparent background."""
    pixels = np.zeros((60, 100, 4), dtype=np.uint8)
    pixels[10:50, 30:70] = (220, 200, 180, 255)
    pixels[10:50, 50:70, 3] = 128
    return Image.fromarray(pixels)


def photo_picture() -> Image.Image:
    """300x300 RGB like a photo: a dark garment on a light, slightly noisy background."""
    rng = np.random.default_rng(4)
    pixels = 235 + rng.integers(0, 15, size=(300, 300, 3))
    pixels[40:260, 90:210] = (40, 50, 90) + rng.integers(0, 20, size=(220, 120, 3))
    return Image.fromarray(pixels.astype(np.uint8))


PICTURES: dict[str, tuple[str, str, Callable[[], bytes]]] = {  # kind: (file name, Content-Type, bytes)
    "28x28 L PNG": ("gray.png", "image/png", lambda: encoded(Image.fromarray(band(11)))),
    "28x28 RGB PNG": (
        "colour.png",
        "image/png",
        lambda: encoded(Image.fromarray(np.stack([band(12), band(12) // 2, 255 - band(12)], axis=2))),
    ),
    "100x60 RGBA PNG": ("transparent.png", "image/png", lambda: encoded(rgba_picture())),
    "300x300 JPEG": ("photo.jpg", "image/jpeg", lambda: encoded(photo_picture(), "JPEG", quality=90)),
    "16-bit PNG": ("deep.png", "image/png", lambda: encoded(Image.fromarray(band(13).astype(np.uint16) * 257))),
    "palette PNG": (
        "palette.png",
        "image/png",
        lambda: encoded(photo_picture().resize((64, 64)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)),
    ),
}


def picture_file(kind: str, folder: Path) -> tuple[Path, str, bytes]:
    """The picture of `kind` written to folder: (path, Content-Type, bytes)."""
    name, content_type, make = PICTURES[kind]
    data = make()
    path = folder / name
    path.write_bytes(data)
    return path, content_type, data


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def gray_png(width: int, height: int, pixel_data: bytes = b"") -> bytes:
    """An 8-bit gray PNG of the given size holding pixel_data (zlib stream) as its one IDAT chunk."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", pixel_data) + png_chunk(b"IEND", b"")


@cache
def decompression_bomb() -> bytes:
    """A valid 7100x7100 black PNG (50.4 million pixels, 220 KB): just over MAX_IMAGE_PIXELS."""
    side = 7100
    compressor = zlib.compressobj(1)
    rows = b"\0" * (side + 1) * 100  # each row: filter byte 0, then its pixels
    stream = b"".join(compressor.compress(rows) for _ in range(side // 100)) + compressor.flush()
    return gray_png(side, side, stream)


def noisy_png() -> bytes:
    """A 28x28 PNG of noise (880 bytes): its first half holds the whole header but not all pixels."""
    return encoded(Image.fromarray(np.random.default_rng(0).integers(0, 256, (28, 28)).astype(np.uint8)))


def multipart(*parts: tuple[str, str | None, bytes]) -> dict:
    """A request's content and headers for a hand-made multipart form of (field, file name or None, bytes)."""
    boundary = "trainlab-test-boundary"
    body = b""
    for field, filename, data in parts:
        disposition = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return {"content": body, "headers": {"content-type": f"multipart/form-data; boundary={boundary}"}}


def assert_same_prediction(served: dict, expected: Prediction) -> None:
    """A /v1/predict prediction equals the Predictor's: label, index, every top-k probability, input style."""
    assert (served["label"], served["index"]) == (expected.label, expected.index)
    assert served["probability"] == pytest.approx(expected.probability, abs=TOLERANCE)
    assert [entry["label"] for entry in served["top_k"]] == [name for name, _ in expected.top]
    assert [entry["probability"] for entry in served["top_k"]] == pytest.approx(
        [probability for _, probability in expected.top], abs=TOLERANCE
    )
    assert (served["input_style"], served["input_style_reason"]) == (expected.input_style, expected.input_reason)


def only_prediction(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    [prediction] = response.json()["predictions"]
    return prediction


# --- /v1/predict: the same answers as the Predictor and the CLI -------------------------------------------


@pytest.mark.parametrize("kind", PICTURES)
def test_a_picture_posted_as_the_body_gets_exactly_the_predictors_probabilities(kind, client, run, tmp_path):
    path, content_type, data = picture_file(kind, tmp_path)
    [expected] = run.predictor.predict_files([path], top_k=3)

    response = client.post("/v1/predict", content=data, headers={"content-type": content_type})

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json()["model"] == run.run_dir.name
    prediction = only_prediction(response)
    assert prediction["image"] is None  # a raw body has no file name
    assert "model_input" not in prediction
    assert_same_prediction(prediction, expected)


def test_the_pictures_cover_both_input_styles(run, tmp_path):
    """The pictures above go through both of auto's choices, so the server's photo path is compared too."""
    styles = {kind: run.predictor.predict_files([picture_file(kind, tmp_path)[0]])[0].input_style for kind in PICTURES}
    assert styles["28x28 L PNG"] == "raw"
    assert styles["300x300 JPEG"] == "photo"


def test_multipart_files_are_predicted_in_order_with_their_names_echoed(client, run, tmp_path):
    gray, _, gray_bytes = picture_file("28x28 L PNG", tmp_path)
    photo, _, photo_bytes = picture_file("300x300 JPEG", tmp_path)
    expected = run.predictor.predict_files([gray, photo], top_k=3)

    response = client.post(
        "/v1/predict",
        files=[("files", ("gray.png", gray_bytes, "image/png")), ("files", ("photo.jpg", photo_bytes, "image/jpeg"))],
    )

    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [prediction["image"] for prediction in predictions] == ["gray.png", "photo.jpg"]
    for prediction, wanted in zip(predictions, expected, strict=True):
        assert_same_prediction(prediction, wanted)


@pytest.mark.parametrize(("top_k", "listed"), [(1, 1), (5, 5), (10, 10), (1000, 10)])
def test_top_k_lists_that_many_classes_and_at_most_all_of_them(top_k, listed, client, run, tmp_path):
    path, _, data = picture_file("28x28 L PNG", tmp_path)
    [expected] = run.predictor.predict_files([path], top_k=top_k)

    prediction = only_prediction(client.post("/v1/predict", params={"top_k": top_k}, content=data))

    assert len(prediction["top_k"]) == listed
    assert_same_prediction(prediction, expected)


@pytest.mark.parametrize("kind", ["300x300 JPEG", "100x60 RGBA PNG", "28x28 L PNG"])
def test_include_input_returns_the_models_input_as_a_png_data_url(kind, client, run, tmp_path):
    path, content_type, data = picture_file(kind, tmp_path)
    [model_input] = run.predictor.read_files([path])

    prediction = only_prediction(
        client.post(
            "/v1/predict", params={"include_input": "true"}, content=data, headers={"content-type": content_type}
        )
    )

    prefix = "data:image/png;base64,"
    assert prediction["model_input"].startswith(prefix)
    decoded = Image.open(io.BytesIO(base64.b64decode(prediction["model_input"][len(prefix) :])))
    assert (decoded.format, decoded.mode, decoded.size) == ("PNG", "L", (28, 28))
    assert np.array_equal(np.asarray(decoded), model_input.tensor[0].numpy())


def test_the_input_styles_the_api_offers_are_configs_input_styles(client):
    from trainlab.config import INPUT_STYLES

    parameters = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]["parameters"]
    [style] = [parameter for parameter in parameters if parameter["name"] == "input_style"]
    assert style["schema"]["enum"] == list(INPUT_STYLES) == ["auto", "photo", "raw"]


@pytest.mark.parametrize("style", ["raw", "photo"])
def test_input_style_is_passed_to_the_decoding(style, client, run, tmp_path):
    path, content_type, data = picture_file("100x60 RGBA PNG", tmp_path)
    [expected] = run.predictor.predict_files([path], top_k=3, input_style=style)

    prediction = only_prediction(
        client.post("/v1/predict", params={"input_style": style}, content=data, headers={"content-type": content_type})
    )

    assert (prediction["input_style"], prediction["input_style_reason"]) == (style, "asked for")
    assert_same_prediction(prediction, expected)


@pytest.mark.parametrize("kind", ["28x28 L PNG", "300x300 JPEG", "16-bit PNG"])
def test_the_server_answers_what_trainlab_predict_json_prints(kind, client, run, run_main, tmp_path):
    path, content_type, data = picture_file(kind, tmp_path)
    result = run_main("predict", run.run_dir, path, "--json")
    assert result.returncode == 0, result.stderr
    [printed] = json.loads(result.stdout.strip().splitlines()[-1])["predictions"]

    served = only_prediction(client.post("/v1/predict", content=data, headers={"content-type": content_type}))

    assert (served["label"], served["index"]) == (printed["label"], printed["index"])
    assert served["probability"] == pytest.approx(printed["probability"], abs=TOLERANCE)
    assert [entry["label"] for entry in served["top_k"]] == [entry["label"] for entry in printed["top_k"]]
    assert [entry["probability"] for entry in served["top_k"]] == pytest.approx(
        [entry["probability"] for entry in printed["top_k"]], abs=TOLERANCE
    )
    assert (served["input_style"], served["input_style_reason"]) == (
        printed["input_style"],
        printed["input_style_reason"],
    )


# --- errors: JSON {"error": ...} with the status ------------------------------------------------------------


def bad_requests() -> dict[str, tuple[dict, int, str]]:
    """What is wrong: (the /v1/predict request, status, a regular expression for the whole error message)."""
    good = encoded(Image.fromarray(band(11)))
    half = noisy_png()[: len(noisy_png()) // 2]
    return {
        "a text file posted as image/png": (
            {"content": b"just some words\n", "headers": {"content-type": "image/png"}},
            415,
            r"the request body: cannot be read as an image \(.+\); send a PNG, JPEG, BMP, GIF, WebP or TIFF file",
        ),
        "a text/plain body": (
            {"content": b"just some words\n", "headers": {"content-type": "text/plain"}},
            415,
            re.escape(
                "a text/plain body is not an image; send the image file itself "
                "(Content-Type: image/png, image/jpeg, ...) or multipart files"
            ),
        ),
        "a 0-byte body": (
            {"content": b"", "headers": {"content-type": "image/png"}},
            422,
            re.escape("the request has no body; send an image file as the body or as multipart files"),
        ),
        "the first half of a PNG": (
            {"content": half, "headers": {"content-type": "image/png"}},
            422,
            re.escape("the request body: cannot be read as an image (image file is truncated)"),
        ),
        "top_k=0": (
            {"content": good, "params": {"top_k": 0}},
            422,
            re.escape("top_k: Input should be greater than or equal to 1"),
        ),
        "input_style=bogus": (
            {"content": good, "params": {"input_style": "bogus"}},
            422,
            re.escape("input_style: Input should be 'auto', 'photo' or 'raw'"),
        ),
        "a multipart form with no file fields": (
            multipart(("note", None, b"no file here")),
            422,
            re.escape("the multipart form holds no files; send each image as a file field"),
        ),
        "a malformed multipart form": (
            {"content": b"not a form", "headers": {"content-type": "multipart/form-data; boundary=xyz"}},
            422,
            r"the multipart form cannot be read: .+",
        ),
        "a 20000x20000 PNG": (
            {"content": gray_png(20000, 20000), "headers": {"content-type": "image/png"}},
            413,
            re.escape(f"the request body: image is larger than {MAX_IMAGE_PIXELS} pixels; refused"),
        ),
        "a decompression bomb": (
            {"content": decompression_bomb(), "headers": {"content-type": "image/png"}},
            413,
            re.escape(f"the request body: image is larger than {MAX_IMAGE_PIXELS} pixels (7100x7100); refused"),
        ),
    }


def assert_error(response: httpx.Response, status: int, pattern: str) -> str:
    """The response is JSON {"error": message} with the status and a message matching pattern; returns it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["error"], body
    assert re.fullmatch(pattern, body["error"]), body["error"]
    return body["error"]


@pytest.mark.parametrize("case", list(bad_requests()))
def test_a_bad_predict_request_is_a_json_error_with_its_status(case, client):
    request, status, pattern = bad_requests()[case]
    assert_error(client.post("/v1/predict", **request), status, pattern)


def test_after_every_bad_request_the_server_still_answers(client, run, tmp_path):
    for request, status, pattern in bad_requests().values():
        assert_error(client.post("/v1/predict", **request), status, pattern)

    assert client.get("/v1/health").json() == {"status": "ok"}
    assert client.get("/v1/ready").json() == {"ready": True, "model": run.run_dir.name}
    path, _, data = picture_file("28x28 L PNG", tmp_path)
    assert_same_prediction(
        only_prediction(client.post("/v1/predict", content=data)), *run.predictor.predict_files([path], 3)
    )


def test_the_not_an_image_message_shows_no_python_object(client):
    error = client.post("/v1/predict", content=b"just some words\n", headers={"content-type": "image/png"}).json()
    assert "object at 0x" not in error["error"], error["error"]


def test_an_unknown_path_is_a_json_404_that_points_to_the_docs(client):
    assert_error(client.get("/v1/nope"), 404, re.escape("no such path: /v1/nope (the API is described at /docs)"))


def test_get_on_the_predict_path_is_a_json_405_that_allows_post(client):
    response = client.get("/v1/predict")
    assert_error(response, 405, "Method Not Allowed")
    assert response.headers["allow"] == "POST"


def test_unknown_sample_and_report_are_json_404s(client):
    assert_error(client.get("/v1/samples/999.png"), 404, re.escape("no sample image 999; GET /v1/samples lists them"))
    assert_error(client.get("/v1/model/reports/nope.png"), 404, re.escape("no report 'nope'; this model has: none"))


# --- the upload limit -----------------------------------------------------------------------------------

UPLOAD_LIMIT = r"the request body is larger than the upload limit of 0\.01 MB \(--max-upload-mb\)"


@pytest.fixture(scope="module")
def small_upload_client(run) -> Iterator[TestClient]:
    """The run served with an upload limit of 0.01 MB (10,485 bytes)."""
    with TestClient(create_app(settings(run.run_dir, max_upload_mb=0.01))) as client:
        yield client


def chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    """A body sent chunked (no Content-Length): the limit has to be counted as it arrives."""
    for _ in range(total // size):
        yield b"x" * size


def test_a_body_over_the_upload_limit_is_413_by_its_content_length(small_upload_client):
    response = small_upload_client.post("/v1/predict", content=b"x" * 20_000, headers={"content-type": "image/png"})
    assert_error(response, 413, UPLOAD_LIMIT)


def test_a_chunked_body_over_the_upload_limit_is_413_as_it_arrives(small_upload_client):
    request = small_upload_client.build_request("POST", "/v1/predict", content=chunks(20_000))
    assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
    assert_error(small_upload_client.send(request), 413, UPLOAD_LIMIT)


def test_multipart_files_over_the_upload_limit_are_413(small_upload_client):
    response = small_upload_client.post("/v1/predict", files=[("files", ("big.png", b"x" * 20_000, "image/png"))])
    assert_error(response, 413, UPLOAD_LIMIT)


def test_an_inference_request_over_the_upload_limit_is_413_by_its_content_length(small_upload_client, run):
    response = small_upload_client.post(
        f"/v2/models/{run.run_dir.name}/infer", json={"inputs": [], "pad": "x" * 20_000}
    )
    assert_error(response, 413, UPLOAD_LIMIT)


def test_a_chunked_inference_request_over_the_upload_limit_is_413(small_upload_client, run):
    response = small_upload_client.post(
        f"/v2/models/{run.run_dir.name}/infer", content=chunks(20_000), headers={"content-type": "application/json"}
    )
    assert_error(response, 413, UPLOAD_LIMIT)


def test_after_refused_uploads_the_server_still_predicts(small_upload_client, run, tmp_path):
    for _ in range(2):
        assert_error(small_upload_client.post("/v1/predict", content=chunks(20_000)), 413, UPLOAD_LIMIT)
    path, _, data = picture_file("28x28 L PNG", tmp_path)
    assert len(data) < 10_000
    assert small_upload_client.get("/v1/health").status_code == 200
    prediction = only_prediction(small_upload_client.post("/v1/predict", content=data))
    assert_same_prediction(prediction, *run.predictor.predict_files([path], 3))


# --- the pixels of a whole request ------------------------------------------------------------------------


@pytest.fixture
def decoded_in(monkeypatch) -> list[str]:
    """The threads that decode pictures, in order (the one decoding function, watched)."""
    threads: list[str] = []
    decode = decoding.decode

    def watched(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return decode(*args, **kwargs)

    monkeypatch.setattr(decoding, "decode", watched)
    return threads


def test_small_files_declaring_more_pixels_in_all_than_the_request_bound_are_413_and_never_decoded(client, decoded_in):
    wide = gray_png(8000, 4000, zlib.compress(b"\0" * 4000))  # 84 bytes that declare 32 million pixels
    files = [("files", (f"wide{number}.png", wide, "image/png")) for number in range(40)]

    response = client.post("/v1/predict", files=files)

    assert_error(
        response,
        413,
        re.escape(
            "the request's 40 pictures declare 1,280,000,000 pixels in all, over the limit of 50,000,000 per "
            "request (--max-request-pixels); send fewer or smaller pictures in each request"
        ),
    )
    assert decoded_in == []  # refused from the headers: no picture was decoded, no memory taken
    assert client.get("/v1/health").json() == {"status": "ok"}


def test_the_request_pixel_bound_counts_every_picture_of_the_request(run, tmp_path, decoded_in):
    path, _, data = picture_file("28x28 L PNG", tmp_path)
    [expected] = run.predictor.predict_files([path], 3)
    decoded_in.clear()
    with TestClient(create_app(settings(run.run_dir, max_request_pixels=2 * 28 * 28))) as client:
        two = client.post("/v1/predict", files=[("files", ("a.png", data, "image/png"))] * 2)
        three = client.post("/v1/predict", files=[("files", ("a.png", data, "image/png"))] * 3)

    assert two.status_code == 200, two.text
    for prediction in two.json()["predictions"]:
        assert_same_prediction(prediction, expected)
    assert_error(
        three,
        413,
        re.escape(
            "the request's 3 pictures declare 2,352 pixels in all, over the limit of 1,568 per request "
            "(--max-request-pixels); send fewer or smaller pictures in each request"
        ),
    )
    assert len(decoded_in) == 2  # the two pictures of the first request; the second request decoded none


def test_a_small_file_declaring_many_pixels_is_decoded_off_the_event_loop(client, decoded_in):
    small = encoded(Image.fromarray(band(11)))
    wide = encoded(Image.new("L", (2000, 1000)))  # 2 million pixels in about 2 KB: a file size says nothing
    assert len(wide) < 4096  # as small as files that were decoded on the event loop by their size

    for data in (small, wide):
        only_prediction(client.post("/v1/predict", content=data))

    assert [thread.startswith("trainlab-decode") for thread in decoded_in] == [False, True]


# --- the token -------------------------------------------------------------------------------------------

NO_TOKEN = "this server needs a token and the request has no token: send 'Authorization: Bearer TOKEN'"
WRONG_TOKEN = "this server needs a token and the request has a wrong token: send 'Authorization: Bearer TOKEN'"


@pytest.fixture(scope="module")
def token_client(run) -> Iterator[TestClient]:
    with TestClient(create_app(settings(run.run_dir, token=TOKEN))) as client:
        yield client


def test_predict_without_a_token_is_401_naming_the_authorization_header(token_client):
    response = token_client.post("/v1/predict", content=encoded(Image.fromarray(band(11))))
    assert_error(response, 401, re.escape(NO_TOKEN))
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}x", "Bearer ", TOKEN, f"Basic {TOKEN}"])
def test_predict_with_a_wrong_token_is_401(authorization, token_client):
    response = token_client.post(
        "/v1/predict", content=encoded(Image.fromarray(band(11))), headers={"authorization": authorization}
    )
    assert_error(response, 401, re.escape(WRONG_TOKEN))
    assert response.headers["www-authenticate"] == "Bearer"


def test_predict_with_the_token_answers(token_client, run, tmp_path):
    path, _, data = picture_file("28x28 L PNG", tmp_path)
    prediction = only_prediction(token_client.post("/v1/predict", content=data, headers=BEARER))
    assert_same_prediction(prediction, *run.predictor.predict_files([path], 3))


@pytest.mark.parametrize("scheme", ["bearer", "BEARER"])
def test_the_bearer_scheme_is_case_insensitive(scheme, token_client):
    response = token_client.get("/v1/model", headers={"authorization": f"{scheme} {TOKEN}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/v1/health", "/v1/ready", "/v2/health/live", "/v2/health/ready"])
def test_load_balancers_may_probe_health_with_head(path, client):
    response = client.head(path)
    assert response.status_code == 200 and response.content == b""


@pytest.mark.parametrize("path", ["/v1/model", "/v1/samples", "/metrics", "/v2", "/v2/models/{name}"])
def test_the_model_and_its_figures_need_the_token(path, token_client, run):
    path = path.format(name=run.run_dir.name)
    assert_error(token_client.get(path), 401, re.escape(NO_TOKEN))
    assert token_client.get(path, headers=BEARER).status_code == 200


@pytest.mark.parametrize("path", ["/v1/health", "/v1/ready", "/", "/v2/health/live", "/v2/health/ready", "/docs"])
def test_health_the_page_and_the_docs_answer_without_the_token(path, token_client):
    assert token_client.get(path).status_code == 200


def test_the_openapi_document_lists_a_bearer_scheme_when_a_token_is_required(token_client, client):
    document = token_client.get("/openapi.json").json()
    assert document["components"]["securitySchemes"] == {"bearer": {"type": "http", "scheme": "bearer"}}
    assert document["security"] == [{"bearer": []}]
    assert token_client.get("/v1/model", headers=BEARER).json()["token_required"] is True

    open_document = client.get("/openapi.json").json()
    assert "securitySchemes" not in open_document.get("components", {})
    assert "security" not in open_document
    assert client.get("/v1/model").json()["token_required"] is False


def test_serving_beyond_this_machine_without_a_token_is_refused(monkeypatch):
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    with pytest.raises(TrainlabError, match=r"--host 0\.0\.0\.0 lets other machines reach the model; give --token T"):
        ServeSettings(checkpoint="run", host="0.0.0.0").checked()


def test_the_token_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(TOKEN_VARIABLE, "from-the-environment")
    assert ServeSettings(checkpoint="run", host="0.0.0.0").checked().token == "from-the-environment"
    assert ServeSettings(checkpoint="run", token="given").checked().token == "given"  # --token wins


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_loopback_hosts_need_no_token(host, monkeypatch):
    monkeypatch.delenv(TOKEN_VARIABLE, raising=False)
    assert ServeSettings(checkpoint="run", host=host).checked().token is None


# --- the Open Inference Protocol ------------------------------------------------------------------------


def test_oip_health_and_model_metadata(client, run):
    name = run.run_dir.name
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get(f"/v2/models/{name}/ready").json() == {"name": name, "ready": True}
    assert client.get(f"/v2/models/{name}").json() == {
        "name": name,
        "versions": ["1"],
        "platform": "pytorch_trainlab",
        "inputs": [{"name": "images", "datatype": "UINT8", "shape": [-1, 1, 28, 28]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "unlike_score", "datatype": "FP32", "shape": [-1]},  # asked for by name (tests/test_unlike.py)
            {"name": "unlike_training", "datatype": "BOOL", "shape": [-1]},
        ],
    }


def two_images() -> torch.Tensor:
    images, _ = make_images(2, seed=7)
    return torch.from_numpy(images).reshape(2, 1, 28, 28)


def infer_request(data: list | None = None, **changes) -> dict:
    """An OIP request for two_images() (flat data unless given), with the input tensor's fields changed."""
    tensor = {
        "name": "anything",
        "shape": [2, 1, 28, 28],
        "datatype": "UINT8",
        "data": two_images().flatten().tolist() if data is None else data,
    }
    return {"id": "request-42", "inputs": [{**tensor, **changes}]}


@pytest.mark.parametrize("layout", ["flat", "nested"])
def test_oip_infer_gives_the_predictors_probabilities(layout, client, run):
    images = two_images()
    request = infer_request(images.tolist() if layout == "nested" else None)

    response = client.post(f"/v2/models/{run.run_dir.name}/infer", json=request)

    assert response.status_code == 200, response.text
    body = response.json()
    [output] = body.pop("outputs")
    assert body == {"model_name": run.run_dir.name, "model_version": "1", "id": "request-42"}
    assert {key: output[key] for key in ("name", "datatype", "shape")} == {
        "name": "probabilities",
        "datatype": "FP32",
        "shape": [2, 10],
    }
    assert output["data"] == pytest.approx(run.predictor.probabilities(images).flatten().tolist(), abs=TOLERANCE)


def test_oip_infer_without_an_id_answers_without_one_and_takes_the_asked_output(client, run):
    request = {**infer_request(), "outputs": [{"name": "probabilities"}]}
    del request["id"]
    body = client.post(f"/v2/models/{run.run_dir.name}/infer", json=request).json()
    assert "id" not in body and [output["name"] for output in body["outputs"]] == ["probabilities"]


def oip_bad_requests() -> dict[str, tuple[dict, str]]:
    """What is wrong: (the request, the whole 422 message)."""
    flat = two_images().flatten().tolist()
    return {
        "FP32 data": (
            infer_request(datatype="FP32"),
            "input 'anything' is FP32; send UINT8 pixels 0-255, shape [N, 1, 28, 28]",
        ),
        "the wrong shape": (
            infer_request(shape=[2, 1, 28, 27]),
            "input 'anything' has shape [2, 1, 28, 27]; this model takes [N, 1, 28, 28]",
        ),
        "no images": (
            infer_request(shape=[0, 1, 28, 28], data=[]),
            "input 'anything' has shape [0, 1, 28, 28]; this model takes [N, 1, 28, 28]",
        ),
        "a value of 256": (
            infer_request([256, *flat[1:]]),
            "input 'anything': UINT8 values are whole numbers from 0 to 255",
        ),
        "a value of 1.5": (
            infer_request([1.5, *flat[1:]]),
            "input 'anything': UINT8 values are whole numbers from 0 to 255",
        ),
        "a value of -1": (
            infer_request([-1, *flat[1:]]),
            "input 'anything': UINT8 values are whole numbers from 0 to 255",
        ),
        "one value too few": (
            infer_request(flat[1:]),
            "input 'anything': shape [2, 1, 28, 28] needs 1568 values, got 1567",
        ),
        "ragged nested data": (
            infer_request([[1, 2], [3]]),
            "input 'anything': data must be numbers (flat or nested lists)",
        ),
        "two inputs": (
            {"inputs": infer_request()["inputs"] * 2},
            "send exactly one input tensor (UINT8 [N, 1, 28, 28]), got 2",
        ),
        "an unknown output": (
            {**infer_request(), "outputs": [{"name": "logits"}]},
            "no output named 'logits'; this model has 'probabilities', 'unlike_score', 'unlike_training'",
        ),
        "no inputs field": ({"id": "1"}, "inputs: Field required"),
    }


@pytest.mark.parametrize("case", list(oip_bad_requests()))
def test_a_bad_inference_request_is_a_json_422(case, client, run):
    request, message = oip_bad_requests()[case]
    response = client.post(f"/v2/models/{run.run_dir.name}/infer", json=request)
    assert_error(response, 422, re.escape(message))


def test_oip_data_given_as_strings_is_refused(client, run):
    request = infer_request([str(value) for value in two_images().flatten().tolist()])
    response = client.post(f"/v2/models/{run.run_dir.name}/infer", json=request)
    assert_error(response, 422, re.escape("input 'anything': data must be numbers (flat or nested lists)"))


def oip_malformed_tensors() -> dict[str, tuple[dict, str]]:
    """Tensors that once passed the checks and failed later (a 500) or were taken as another tensor."""
    flat = two_images().flatten().tolist()
    huge = 2**60 + 1
    return {
        "a shape whose element count overflows 64 bits": (
            infer_request(flat[:784], shape=[huge, 1, 28, 28]),
            f"input 'anything': shape [{huge}, 1, 28, 28] needs {huge * 784} values, got 784",
        ),
        "nested data of another shape than its shape field": (
            infer_request(two_images().reshape(1, 2, 28, 28).tolist()),
            "input 'anything': the nested data has shape [1, 2, 28, 28], not its shape [2, 1, 28, 28]",
        ),
        "nested rows beside numbers": (
            infer_request([flat[:784], *flat[784:]]),
            "input 'anything': data must be numbers (flat or nested lists)",
        ),
        "a boolean among the numbers": (
            infer_request([True, *flat[1:]]),
            "input 'anything': data holds true or false; UINT8 pixels are numbers 0-255",
        ),
        "a boolean as a dimension": (
            infer_request(flat[:784], shape=[True, 1, 28, 28]),
            "inputs.0.shape.0: Input should be a valid integer",
        ),
        "a 400-digit value": (
            infer_request([10**400, *flat[1:]]),
            "input 'anything': UINT8 values are whole numbers from 0 to 255",
        ),
        "a null value": (
            infer_request([None, *flat[1:]]),
            "input 'anything': data must be numbers (flat or nested lists)",
        ),
    }


@pytest.mark.parametrize("case", list(oip_malformed_tensors()))
def test_a_malformed_tensor_is_a_json_422_never_a_500(case, client, run):
    request, message = oip_malformed_tensors()[case]
    response = client.post(f"/v2/models/{run.run_dir.name}/infer", json=request)
    assert_error(response, 422, re.escape(message))


def test_an_unknown_model_name_is_a_json_404(client, run):
    message = re.escape(f"no model named 'nope'; this server serves '{run.run_dir.name}'")
    assert_error(client.get("/v2/models/nope"), 404, message)
    assert_error(client.get("/v2/models/nope/ready"), 404, message)
    assert_error(client.post("/v2/models/nope/infer", json=infer_request()), 404, message)


# --- the model card ---------------------------------------------------------------------------------------


def finished_card(client: TestClient, headers: dict | None = None) -> dict:
    """GET /v1/model once its thread has computed the per-class figures and samples (polled)."""
    deadline = time.monotonic() + CARD_SECONDS
    while True:
        card = client.get("/v1/model", headers=headers).json()
        if not card["per_class_pending"]:
            return card
        assert time.monotonic() < deadline, f"the model card was still pending after {CARD_SECONDS} s"
        time.sleep(0.05)


def test_the_model_card_describes_the_served_checkpoint(client, run):
    checkpoint = resolve_checkpoint_path(run.run_dir)
    card = client.get("/v1/model").json()
    assert {key: card[key] for key in ("name", "model", "dataset", "classes", "input", "epochs", "checkpoint")} == {
        "name": run.run_dir.name,
        "model": "mlp",
        "dataset": "fashion-mnist",
        "classes": list(FASHION_CLASSES),
        "input": {"channels": 1, "height": 28, "width": 28, "datatype": "UINT8"},
        "epochs": 1,
        "checkpoint": checkpoint.name,
    }
    assert card["parameters"] == sum(p.numel() for p in run.predictor.model.parameters())
    assert card["test_accuracy"] == read_metrics(run.run_dir)[-1]["test_accuracy"]
    assert card["sha256"] == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert card["preprocessing"] == run.predictor.preprocessing.to_dict()
    assert (card["checkpoint_kind"], card["reports"], card["token_required"]) == ("trainlab", {}, False)


def test_the_finished_card_has_per_class_figures_of_the_whole_test_set(client, run):
    card = finished_card(client)
    rows = card["per_class"]
    assert [row["class"] for row in rows] == list(FASHION_CLASSES)
    assert sum(row["support"] for row in rows) == TEST_IMAGES
    correct = sum(round(row["recall"] * row["support"]) for row in rows)
    assert correct / TEST_IMAGES == pytest.approx(card["test_accuracy"], abs=1e-12)


def test_the_samples_are_the_data_sets_own_test_images(client, run):
    finished_card(client)
    test = load_split("fashion-mnist", "test", run.data_dir, download=False)
    samples = client.get("/v1/samples").json()["samples"]
    step = TEST_IMAGES // SAMPLE_COUNT
    assert [sample["index"] for sample in samples] == list(range(0, step * SAMPLE_COUNT, step))
    for sample in samples:
        index = sample["index"]
        assert sample == {
            "index": index,
            "label": test.classes[int(test.labels[index])],
            "url": f"/v1/samples/{index}.png",
        }
        response = client.get(sample["url"])
        assert response.headers["content-type"] == "image/png"
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(response.content))), test.images[index, 0].numpy())


def test_the_runs_report_pictures_are_listed_and_served(run, tmp_path):
    copy = shutil.copytree(run.run_dir, tmp_path / "reported")
    pictures = {"learning_curves": CURVES_FILE, "confusion_matrix": CONFUSION_FILE}
    for seed, name in enumerate(pictures.values()):
        (copy / name).write_bytes(encoded(Image.fromarray(band(seed))))

    with TestClient(create_app(settings(copy))) as client:
        card = client.get("/v1/model").json()
        assert card["reports"] == {key: f"/v1/model/reports/{key}.png" for key in pictures}
        for key, name in pictures.items():
            response = client.get(f"/v1/model/reports/{key}.png")
            assert (response.status_code, response.content) == (200, (copy / name).read_bytes())


def linked_out(copy: Path, name: str) -> str:
    secret = copy.parent / "secret.txt"
    secret.write_text("a password\n")
    (copy / name).symlink_to(secret)
    return f"it is a link to {secret.resolve()}, outside the run directory"


def a_fifo(copy: Path, name: str) -> str:
    os.mkfifo(copy / name)
    return "it is not a regular file"


def a_folder(copy: Path, name: str) -> str:
    (copy / name).mkdir()
    return "it is not a regular file"


def a_broken_link(copy: Path, name: str) -> str:
    (copy / name).symlink_to(copy / "gone.png")
    return "cannot be read (No such file or directory)"


@pytest.mark.parametrize("make", [linked_out, a_fifo, a_folder, a_broken_link])
def test_a_report_that_is_no_regular_file_inside_the_run_directory_is_skipped_and_404(make, run, tmp_path):
    copy = shutil.copytree(run.run_dir, tmp_path / "reported")
    (copy / CONFUSION_FILE).write_bytes(encoded(Image.fromarray(band(3))))
    why = make(copy, CURVES_FILE)

    with TestClient(create_app(settings(copy))) as client:
        listed = client.get("/v1/model").json()["reports"]
        assert listed == {"confusion_matrix": "/v1/model/reports/confusion_matrix.png"}
        assert_error(
            client.get("/v1/model/reports/learning_curves.png"),
            404,
            re.escape("no report 'learning_curves'; this model has: confusion_matrix"),
        )
        assert client.app.state.served.skipped_reports == {CURVES_FILE: why}  # said at start-up
        served = client.get("/v1/model/reports/confusion_matrix.png")
        assert (served.status_code, served.content) == (200, (copy / CONFUSION_FILE).read_bytes())


def test_a_report_linked_to_a_file_inside_the_run_directory_is_served(run, tmp_path):
    copy = shutil.copytree(run.run_dir, tmp_path / "reported")
    (copy / "drawn.png").write_bytes(encoded(Image.fromarray(band(4))))
    (copy / CURVES_FILE).symlink_to("drawn.png")

    with TestClient(create_app(settings(copy))) as client:
        response = client.get("/v1/model/reports/learning_curves.png")
        assert (response.status_code, response.content) == (200, (copy / "drawn.png").read_bytes())
        assert client.app.state.served.skipped_reports == {}


def test_a_plain_state_dict_is_served_without_reports(run, run_main, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./data here: no look to measure, no test set for the card
    exported = tmp_path / "tutorial_model.pth"
    result = run_main("export", run.run_dir, "--format", "state-dict", "--out", exported)
    assert result.returncode == 0, result.stderr
    path, _, data = picture_file("100x60 RGBA PNG", tmp_path)

    with TestClient(create_app(settings(exported, model="mlp"))) as client:
        card = finished_card(client)
        assert (card["name"], card["model"], card["checkpoint"]) == ("tutorial_model", "mlp", "tutorial_model.pth")
        assert (card["reports"], card["per_class"], card["classes"]) == ({}, None, list(FASHION_CLASSES))
        assert card["sha256"] == hashlib.sha256(exported.read_bytes()).hexdigest()
        assert client.get("/v1/samples").json() == {"pending": False, "samples": []}
        prediction = only_prediction(client.post("/v1/predict", params={"input_style": "raw"}, content=data))

    # the same weights as the run's checkpoint: the same probabilities
    assert_same_prediction(prediction, *run.predictor.predict_files([path], 3, input_style="raw"))


def test_a_plain_cifar10_state_dict_is_served_with_cifar10_classes_and_input(tmp_path, monkeypatch):
    from trainlab.models import create_model

    monkeypatch.chdir(tmp_path)  # no ./data here: no look to measure, no test set for the card
    exported = tmp_path / "cifar_model.pth"
    torch.manual_seed(0)
    torch.save(create_model("mlp", (3, 32, 32), 10).state_dict(), exported)
    _, _, data = picture_file("100x60 RGBA PNG", tmp_path)

    with TestClient(create_app(settings(exported, model="mlp", dataset="cifar10"))) as client:
        card = finished_card(client)
        prediction = only_prediction(client.post("/v1/predict", params={"input_style": "raw"}, content=data))

    cifar_classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    assert (card["dataset"], card["classes"]) == ("cifar10", cifar_classes)
    assert card["input"] == {"channels": 3, "height": 32, "width": 32, "datatype": "UINT8"}
    assert prediction["label"] in cifar_classes


# --- /metrics ---------------------------------------------------------------------------------------------


def metric_samples(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    """(labels, value) of every sample called `name` in the Prometheus text."""
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the one sample called `name` with these labels (and any others); fails when there is none."""
    values = [value for found, value in metric_samples(text, name) if labels.items() <= found.items()]
    assert len(values) == 1, f"{len(values)} samples {name}{labels} in /metrics"
    return values[0]


def test_metrics_count_requests_errors_latency_and_batches_exactly(run, tmp_path):
    path, _, data = picture_file("28x28 L PNG", tmp_path)
    with TestClient(create_app(settings(run.run_dir))) as client:
        for _ in range(3):
            assert client.post("/v1/predict", content=data).status_code == 200
        assert client.post("/v1/predict", content=b"words", headers={"content-type": "text/plain"}).status_code == 415
        assert client.get("/v1/health").status_code == 200
        response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    assert metric(text, "trainlab_requests_total", method="POST", route="/v1/predict", status="200") == 3
    assert metric(text, "trainlab_requests_total", method="POST", route="/v1/predict", status="415") == 1
    assert metric(text, "trainlab_requests_total", method="GET", route="/v1/health", status="200") == 1
    assert metric(text, "trainlab_request_errors_total", status="415") == 1
    assert metric(text, "trainlab_request_duration_seconds_bucket", route="/v1/predict", le="+Inf") == 4
    assert metric(text, "trainlab_request_duration_seconds_count", route="/v1/predict") == 4
    assert metric(text, "trainlab_batch_size_bucket", le="1.0") == 3  # one lone image per forward pass
    assert metric(text, "trainlab_batch_size_count") == 3
    assert metric(text, "trainlab_batch_size_sum") == 3
    assert metric(text, "trainlab_images_total") == 3
    assert metric(text, "trainlab_queue_jobs") == 0
    assert [labels for labels, _ in metric_samples(text, "trainlab_request_errors_total")] == [{"status": "415"}]


def test_unknown_paths_share_one_metrics_label(run):
    with TestClient(create_app(settings(run.run_dir))) as client:
        for path in ("/a", "/b/c", "/wp-login.php"):
            assert client.get(path).status_code == 404
        text = client.get("/metrics").text
    assert metric(text, "trainlab_requests_total", method="GET", route="other", status="404") == 3
    assert metric(text, "trainlab_request_errors_total", status="404") == 3


# --- the queue and batching (requests sent concurrently on the app's own event loop) ----------------------


async def until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Yield to the event loop until condition() holds; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        await asyncio.sleep(0.005)


def async_client(app) -> httpx.AsyncClient:
    """Requests to the app on the event loop that the TestClient started its lifespan (and batcher) on."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def test_a_full_queue_answers_503_with_retry_after_and_the_queued_requests_then_succeed(run, tmp_path):
    path, _, data = picture_file("28x28 L PNG", tmp_path)
    [expected] = run.predictor.predict_files([path], top_k=3)
    served = ServedModel(settings(run.run_dir, max_queue=1))
    entered, release = threading.Event(), threading.Event()
    forward = served.forward

    def blocking_forward(batches: list[torch.Tensor]) -> list[torch.Tensor]:
        entered.set()
        release.wait(30)
        return forward(batches)

    served.forward = blocking_forward
    app = create_app(served=served)
    app.state.batcher.inline = False  # batches in the model thread: a held pass there leaves the event loop free

    async def three_requests() -> list[httpx.Response]:
        async with async_client(app) as http:
            first = asyncio.ensure_future(http.post("/v1/predict", content=data))
            await until(entered.is_set, "the first request reaching the model")
            second = asyncio.ensure_future(http.post("/v1/predict", content=data))
            await until(lambda: app.state.batcher.waiting == 1, "the second request waiting in the queue")
            refused = await http.post("/v1/predict", content=data)  # the model is busy and the queue is full
            assert not first.done() and not second.done()
            release.set()
            return [refused, await first, await second]

    with TestClient(app) as client:
        try:
            refused, first, second = client.portal.call(three_requests)
        finally:
            release.set()
        text = client.get("/metrics").text

    assert_error(refused, 503, r"the model's queue is full \(1 waiting\); retry shortly")
    assert refused.headers["retry-after"] == "1"
    for response in (first, second):
        assert_same_prediction(only_prediction(response), expected)
    assert metric(text, "trainlab_request_errors_total", status="503") == 1
    assert metric(text, "trainlab_requests_total", method="POST", route="/v1/predict", status="200") == 2


def test_a_fast_model_runs_its_batches_on_the_event_loop_and_a_slow_one_in_the_model_thread(run, monkeypatch):
    assert create_app(settings(run.run_dir)).state.batcher.inline  # the tiny MLP: well under 2 ms a batch
    monkeypatch.setattr(ServedModel, "forward_seconds", lambda self, images: 0.05)
    assert not create_app(settings(run.run_dir)).state.batcher.inline


def test_concurrent_requests_share_forward_passes_and_each_gets_its_own_answer(run, tmp_path):
    images, _ = make_images(16, seed=21)
    paths = []
    for number, image in enumerate(images):
        paths.append(tmp_path / f"{number}.png")
        Image.fromarray(image).save(paths[-1])
    expected = run.predictor.predict_files(paths, top_k=3)
    served = ServedModel(settings(run.run_dir))
    batch_sizes: list[list[int]] = []  # per forward pass: the images of each request in it
    first_pass_may_run = threading.Event()
    forward = served.forward

    def recording_forward(batches: list[torch.Tensor]) -> list[torch.Tensor]:
        batch_sizes.append([len(batch) for batch in batches])
        if len(batch_sizes) == 1:  # hold the first pass until every request has been queued behind it
            first_pass_may_run.wait(30)
        return forward(batches)

    served.forward = recording_forward
    app = create_app(served=served)
    app.state.batcher.inline = False  # batches in the model thread: a held pass there leaves the event loop free

    async def sixteen_requests() -> list[httpx.Response]:
        async with async_client(app) as http:
            requests = [asyncio.ensure_future(http.post("/v1/predict", content=path.read_bytes())) for path in paths]
            await until(
                lambda: batch_sizes and sum(batch_sizes[0]) + app.state.batcher.waiting == len(paths),
                "every request in the first forward pass or queued",
            )
            first_pass_may_run.set()
            return list(await asyncio.gather(*requests))

    with TestClient(app) as client:
        try:
            responses = client.portal.call(sixteen_requests)
        finally:
            first_pass_may_run.set()
        text = client.get("/metrics").text

    for response, wanted in zip(responses, expected, strict=True):
        assert_same_prediction(only_prediction(response), wanted)
    assert sum(map(sum, batch_sizes)) == 16
    assert len(batch_sizes) == (1 if sum(batch_sizes[0]) == 16 else 2)  # the rest waited and went in one pass
    assert metric(text, "trainlab_batch_size_count") == len(batch_sizes)
    assert metric(text, "trainlab_batch_size_sum") == 16
