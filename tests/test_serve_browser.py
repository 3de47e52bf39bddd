"""The page at / in a real browser (headless Chromium): upload, drawing, samples, the model card, errors, the token.

One `trainlab serve` subprocess on a tiny run trained here and one browser for the module; each test gets a
fresh browser context (its own sessionStorage) and fails on any console error or uncaught page error.
"""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from trainlab.testing.serving import (
    ServerNotReady,
    free_port,
    get_json,
    start_server,
    stop_server,
    wait_until_ready,
)

from conftest import make_images, train_tiny_run

CHROMIUM = Path("/usr/bin/chromium")
STARTUP_SECONDS = 60  # the server imports torch and loads the model before /v1/ready answers
PERCENT_LINE = re.compile(r"^(?P<label>.+?) (?P<percent>\d{1,3}\.\d)%$")
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}


def predicted_label(base: str, png: bytes) -> str:
    """What the API itself answers for these bytes: the label the page must show."""
    request = urllib.request.Request(
        f"{base}/v1/predict", data=png, headers={"Content-Type": "image/png"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["predictions"][0]["label"]


@pytest.fixture(scope="module")
def sync_playwright():
    """Playwright's sync API, or a skip that says what is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright); the browser test needs it")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}; the browser test drives that browser")
    return sync_playwright


@pytest.fixture(scope="module")
def server_process(sync_playwright, tmp_path_factory):
    """(process, base URL, log file) of `trainlab serve` on a one-epoch MLP trained on generated bands, starting."""
    root = tmp_path_factory.mktemp("serve-browser")
    _, run_dir = train_tiny_run(root)
    port = free_port()
    log = root / "serve.log"  # a file, not a pipe: a pipe nobody reads can fill and stall the server
    with open(log, "w") as output:
        process = start_server(run_dir, port, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process, f"http://127.0.0.1:{port}", log
    finally:
        stop_server(process, 10)


@pytest.fixture(scope="module")
def browser(sync_playwright, server_process):
    """Headless Chromium, launched while the server loads its model."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(server_process, browser) -> str:
    """The base URL of the server once it is ready."""
    process, base, log = server_process
    try:
        wait_until_ready(process, base, STARTUP_SECONDS, card=True)
    except ServerNotReady as exc:
        pytest.fail(f"trainlab serve: {exc}:\n{log.read_text()}")
    return base


@pytest.fixture
def open_page(browser, server):
    """open_page(viewport=..., fragment=..., answers=...): the page loaded in a fresh context; any console error
    fails the test but Chromium's own network line for an error status listed in `answers` (a test that
    provokes one: that line is the browser's log of the response, not the page's)."""
    base = server
    contexts, problems = [], []

    def open_(viewport: dict = LAPTOP, fragment: str = "", before=None, answers: tuple[int, ...] = ()):
        expected = {f"Failed to load resource: the server responded with a status of {status}" for status in answers}

        def note(message) -> None:
            if message.type == "error" and not any(message.text.startswith(line) for line in expected):
                problems.append(message.text)

        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)  # milliseconds
        page.on("console", note)
        page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
        if before is not None:
            before(page)
        page.goto(f"{base}/{fragment}")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert problems == [], "the page logged errors"


def wait_for_prediction(page) -> str:
    """The label in #prediction-label once the answer is on show (the page waits for no other request)."""
    page.wait_for_function(
        "() => !document.getElementById('result').hidden"
        " && !document.getElementById('result-card').hasAttribute('aria-busy')"
    )
    return page.text_content("#prediction-label")


def shown_top_k(page) -> list[tuple[str, float]]:
    """The bars' (label, percent) as the page writes them."""
    rows = []
    for text in page.locator("#top-k li .bar-text").all_inner_texts():
        match = PERCENT_LINE.match(" ".join(text.split()))
        assert match, text
        rows.append((match["label"], float(match["percent"])))
    return rows


def band_png(index: int) -> bytes:
    """Test image `index` of the generated data set (the run's own test split) as PNG bytes."""
    from PIL import Image

    images, _ = make_images(160, seed=1)
    buffer = io.BytesIO()
    Image.fromarray(images[index], mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_uploaded_file_shows_the_apis_label_top_3_and_the_models_input_beside_it(open_page, server, tmp_path):
    base = server
    png = band_png(7)
    path = tmp_path / "garment.png"
    path.write_bytes(png)
    page = open_page()
    page.set_input_files("#file-input", str(path))
    assert wait_for_prediction(page) == predicted_label(base, png)
    top = shown_top_k(page)
    assert len(top) == 3
    assert top[0][0] == page.text_content("#prediction-label")
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert page.get_attribute("#model-input", "src").startswith("data:image/png;base64,")
    assert page.evaluate("getComputedStyle(document.getElementById('model-input')).imageRendering") == "pixelated"
    assert page.text_content("#input-style").startswith("Input style raw")
    assert page.is_hidden("#error")
    # a laptop: the input on the left, the results on the right, nothing wider than the window
    inputs, results = page.locator(".inputs").bounding_box(), page.locator(".results").bounding_box()
    assert results["x"] >= inputs["x"] + inputs["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= LAPTOP["width"]


DELIVER_IMAGE = """([how, data]) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], "garment.png", { type: "image/png" }));
    const target = document.getElementById("drop-zone");
    if (how === "drop") target.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
    else document.body.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true }));
}"""


def test_a_dropped_or_pasted_image_is_predicted_like_an_uploaded_one(open_page, server):
    base = server
    page = open_page()
    for how, index in (("drop", 3), ("paste", 12)):
        png = band_png(index)
        with page.expect_response(lambda response: "/v1/predict" in response.url):
            page.evaluate(DELIVER_IMAGE, [how, base64.b64encode(png).decode()])
        assert wait_for_prediction(page) == predicted_label(base, png), how


def test_a_mouse_stroke_on_the_canvas_is_sent_as_a_png_and_predicted(open_page, server):
    page = open_page()
    box = page.locator("#draw-canvas").bounding_box()
    with page.expect_request(lambda request: "/v1/predict" in request.url) as sent:
        page.mouse.move(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.5)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] * (0.2 + 0.06 * step), box["y"] + box["height"] * 0.5)
        page.mouse.up()
    assert sent.value.headers["content-type"] == "image/png"
    label = wait_for_prediction(page)
    # what was sent is the whole canvas, decoded back as an image (Playwright does not show a Blob body)
    given = page.locator("#given-input")
    assert given.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [280, 280]
    assert label in page.locator("#classes li").all_inner_texts()
    assert page.text_content("#input-style").startswith("Input style photo")  # black on white is not the data's look


def test_clicking_a_sample_on_a_phone_predicts_it_in_one_column_without_sideways_scroll(open_page, server):
    base = server
    samples = get_json(f"{base}/v1/samples")["samples"]
    page = open_page(viewport=PHONE)
    first = page.locator(".sample").first
    assert first.get_attribute("title") == samples[0]["label"]
    assert page.evaluate("getComputedStyle(document.querySelector('.sample img')).imageRendering") == "pixelated"
    first.click()
    with urllib.request.urlopen(base + samples[0]["url"], timeout=5) as response:
        expected = predicted_label(base, response.read())
    assert wait_for_prediction(page) == expected
    verdict = "Right" if expected == samples[0]["label"] else "Wrong"
    assert page.text_content("#prediction-truth") == f"{verdict}: this test image is a {samples[0]['label']}."
    assert page.locator(".sample").count() == len(samples)
    inputs, results = page.locator(".inputs").bounding_box(), page.locator(".results").bounding_box()
    assert results["y"] >= inputs["y"] + inputs["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_the_model_card_shows_what_the_api_says_and_leaves_out_what_is_absent(open_page, server):
    base = server
    info = get_json(f"{base}/v1/model")
    page = open_page()
    page.wait_for_selector("#per-class tbody tr")
    terms, values = page.locator("#model-facts dt").all_inner_texts(), page.locator("#model-facts dd").all_inner_texts()
    facts = dict(zip(terms, values, strict=True))
    assert facts["Name"] == info["name"] == "run"
    assert facts["Model"] == "mlp"
    assert facts["Data set"] == "fashion-mnist"
    assert facts["Test accuracy"] == f"{info['test_accuracy'] * 100:.2f}%"
    assert facts["Epochs"] == "1"
    assert facts["Parameters"] == f"{info['parameters']:,}"
    assert page.locator("#classes li").all_inner_texts() == info["classes"]
    rows = page.locator("#per-class tbody tr")
    assert rows.count() == len(info["classes"])
    first = info["per_class"][0]
    assert rows.first.inner_text().split("\t") == [
        first["class"],
        f"{first['recall'] * 100:.1f}%",
        f"{first['precision'] * 100:.1f}%",
        f"{first['support']:,}",
    ]
    assert info["reports"] == {}  # the tiny run writes no PNG reports: no figure, no broken image
    assert page.locator("#reports figure").count() == 0
    body = page.inner_text("body")
    assert "null" not in body and "undefined" not in body and "NaN" not in body


def test_an_api_error_is_shown_on_the_page(open_page, tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    page = open_page(answers=(415,))
    page.set_input_files("#file-input", str(path))
    page.wait_for_selector("#error:not([hidden])")
    assert "cannot be read as an image" in page.text_content("#error")


def test_a_401_asks_for_a_token_that_is_then_sent_as_a_bearer_header(open_page):
    seen = []

    def guard(route):
        # the running server has no token: this stands in for one that wants "s3cret"
        authorization = route.request.headers.get("authorization")
        seen.append(authorization)
        if authorization != "Bearer s3cret":
            route.fulfill(status=401, content_type="application/json", body='{"error": "this server needs a token"}')
        else:
            route.continue_()

    page = open_page(before=lambda page: page.route(re.compile(r".*/v1/model$"), guard), answers=(401,))
    page.wait_for_selector("#token-form:not([hidden])")
    assert page.text_content("#error") == "this server needs a token"
    page.fill("#token-input", "s3cret")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#per-class tbody tr")
    assert seen[-1] == "Bearer s3cret"
    assert page.is_hidden("#token-form") and page.is_hidden("#error")
    assert page.evaluate("sessionStorage.getItem('trainlab-token')") == "s3cret"


def test_a_token_in_the_url_fragment_is_kept_and_sent(open_page):
    headers = []

    def note(request):
        if "/v1/" in request.url:
            headers.append(request.headers.get("authorization"))

    page = open_page(fragment="#token=abc%20123", before=lambda page: page.on("request", note))
    page.wait_for_selector(".sample")
    assert headers and set(headers) == {"Bearer abc 123"}
    assert page.evaluate("sessionStorage.getItem('trainlab-token')") == "abc 123"
    assert "token" not in page.url  # the token leaves the address bar


def test_without_test_data_the_samples_and_per_class_table_are_left_out(open_page):
    def without_test_data(route):
        # what a server answers when no copy of the run's test set is there
        if route.request.url.endswith("/v1/samples"):
            route.fulfill(json={"samples": []})
            return
        info = route.fetch().json()
        route.fulfill(json={**info, "per_class": None, "per_class_pending": False, "test_accuracy": None})

    page = open_page(before=lambda page: page.route(re.compile(r".*/v1/(model|samples)$"), without_test_data))
    page.wait_for_selector("#model-card:not([hidden])")
    page.wait_for_load_state("networkidle")
    assert page.is_hidden("#samples-card")
    assert page.is_hidden("#per-class-block") and page.is_hidden("#per-class-pending")
    assert "Test accuracy" not in page.locator("#model-facts dt").all_inner_texts()
    assert "Test accuracy" not in page.text_content("#subtitle")
    body = page.inner_text("body")
    assert "null" not in body and "undefined" not in body and "NaN" not in body
