"""Screenshots of the page `trainlab serve` ships at /, at a laptop's and a phone's width, after a sample's prediction.

    python scripts/screenshot_page.py runs/quickstart
    python scripts/screenshot_page.py runs/quickstart --desktop docs/serve-desktop.png --phone docs/serve-phone.png

Starts `trainlab serve RUN` on 127.0.0.1 at a free port, opens the page in headless Chromium (Playwright),
clicks the first sample test image, waits for the prediction and writes one full-page PNG per width.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from trainlab.testing.serving import (
    ServerNotReady,
    free_port,
    get_json,
    start_server,
    stop_server,
    wait_until_ready,
)

VIEWPORTS = {"desktop": (1280, 900), "phone": (390, 844)}  # CSS pixels
STARTUP_SECONDS = 120  # torch import, model load, per-class figures over the test set
PAGE_TIMEOUT_MS = 20_000


def screenshot(browser, base: str, viewport: tuple[int, int], out: Path) -> list[str]:
    """One full-page PNG after the first sample's prediction; returns the page's console errors."""
    width, height = viewport
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(base + "/")
    page.wait_for_selector("#model-card:not([hidden])")
    if get_json(f"{base}/v1/samples")["samples"]:  # the page shows them once it has fetched their pictures
        page.locator(".sample").first.click()
        page.wait_for_function(
            "() => !document.getElementById('result').hidden"
            " && !document.getElementById('result-card').hasAttribute('aria-busy')"
        )
    page.wait_for_load_state("networkidle")  # the report pictures
    page.evaluate("window.scrollTo(0, 0)")
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out), full_page=True)
    context.close()
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the run directory (or checkpoint) to serve")
    parser.add_argument(
        "--desktop", type=Path, default=Path("docs/serve-desktop.png"), help="where to write it (default: %(default)s)"
    )
    parser.add_argument(
        "--phone", type=Path, default=Path("docs/serve-phone.png"), help="where to write it (default: %(default)s)"
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the browser to drive (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.run.exists():
        parser.error(f"{args.run}: no such run directory or checkpoint")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        parser.error("playwright is not installed (pip install playwright)")
    if not Path(args.chromium).is_file():
        parser.error(f"no browser at {args.chromium}; pass --chromium PATH")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile("w+")  # the server's output, shown if it fails (a pipe could fill and stall it)
    process = start_server(args.run, port, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_until_ready(process, base, STARTUP_SECONDS, card=True)
        except ServerNotReady as exc:
            log.seek(0)
            raise SystemExit(f"trainlab serve: {exc}: {log.read().strip()}") from None
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, headless=True)
            problems = []
            for name, out in (("desktop", args.desktop), ("phone", args.phone)):
                problems += screenshot(browser, base, VIEWPORTS[name], out)
                print(f"Wrote {out} ({VIEWPORTS[name][0]}x{VIEWPORTS[name][1]} viewport)")
            browser.close()
    finally:
        stop_server(process, 10)
        log.close()
    for problem in problems:
        print(f"console error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
