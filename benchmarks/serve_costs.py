"""What one /v1/predict request costs, part by part, for benchmarks/serve.py.

In this process (one torch thread, no server running): a 28x28 test PNG's header, its decode through the input
style, the forward pass alone and in a batch of 16, the JSON answer, the metrics, and the whole app (guard, hot
path, decode, batcher, forward pass, answer, metrics) driven over plain ASGI 16 requests at a time, in CPU time
per request. Under load (py-spy, --profile): the share of a loaded server's samples in each part.
"""

from __future__ import annotations

import asyncio
import collections
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

CONCURRENT = 16  # requests in flight at once when the whole app is driven in process
PROFILE_PARTS = (  # (part, a function in the stack that marks it): the first that matches a sample wins
    ("decode and input style", "read_input (trainlab/data/decoding.py"),
    ("PNG header (the request's pixel bound)", "declared_pixels (trainlab/serve/uploads.py"),
    ("forward pass", "ServedModel.forward (trainlab/serve/model.py"),
    ("JSON answer", "ServedModel.predictions_body (trainlab/serve/model.py"),
    ("metrics", "ServerMetrics.observe (trainlab/serve/metrics.py"),
    ("socket writes (uvicorn's send)", "RequestResponseCycle.send (uvicorn/"),
    ("HTTP parsing (uvicorn's httptools protocol)", "HttpToolsProtocol.data_received (uvicorn/"),
    ("FastAPI and Starlette", "(fastapi/"),
    ("FastAPI and Starlette", "(starlette/"),
)
LEAF_PARTS = (  # (part, the module of the function running), for samples that none of the above marks
    ("hot path's own lines: guard, body, batcher queue, stacking", "(trainlab/serve/"),
    ("hot path's own lines: guard, body, batcher queue, stacking", "(torch/"),
    ("asyncio: tasks, futures, queue", "(asyncio/"),
    ("uvicorn's request cycle", "(uvicorn/"),
)
OTHER = "the rest (uvloop's C code, the interpreter)"


def cpu_microseconds(work: Callable[[], object], repeats: int) -> float:
    """CPU time of one call of `work`, µs: the best of 5 runs of repeats / 5 calls (after one untimed call)."""
    work()
    best = float("inf")
    for _ in range(5):
        started = time.process_time_ns()
        for _ in range(max(1, repeats // 5)):
            work()
        best = min(best, (time.process_time_ns() - started) / max(1, repeats // 5) / 1000)
    return best


def request_costs(run: Path, png: Path, repeats: int = 2000) -> dict[str, float]:
    """Per-request costs of each part in this process, µs (CPU time, best of 5)."""
    import torch

    from trainlab.data.decoding import read_input
    from trainlab.data.plain_png import plain_png
    from trainlab.serve.app import create_app
    from trainlab.serve.model import ServedModel
    from trainlab.serve.settings import ServeSettings

    torch.set_num_threads(1)
    served = ServedModel(ServeSettings(checkpoint=str(run)))
    prep, data = served.prep, png.read_bytes()
    item = read_input(data, prep, "auto")
    one, sixteen = item.tensor[None], item.tensor[None].repeat(16, 1, 1, 1)
    [output] = served.forward([one])
    app = create_app(served=served)
    metrics = app.state.metrics
    return {
        "png_header": cpu_microseconds(lambda: plain_png(data), repeats),
        "decode_raw": cpu_microseconds(lambda: read_input(data, prep, "raw"), repeats),
        "decode_auto": cpu_microseconds(lambda: read_input(data, prep, "auto"), repeats),
        "forward_1": cpu_microseconds(lambda: served.forward([one]), repeats),
        "forward_16_per_image": cpu_microseconds(lambda: served.forward([sixteen]), repeats // 8) / 16,
        "json_answer": cpu_microseconds(lambda: served.predictions_body(output, [item], [None], 3, False), repeats),
        "metrics": cpu_microseconds(lambda: metrics.observe("POST", "/v1/predict", 200, 0.001), repeats),
        "app_in_process": asyncio.run(app_cost(app, data, repeats)),
    }


async def app_cost(app, data: bytes, requests: int) -> float:
    """The whole app over plain ASGI, CONCURRENT requests at a time (so the batcher gathers them): CPU µs each."""
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"image/png"), (b"content-length", str(len(data)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http"}
    scope.update(path="/v1/predict", raw_path=b"/v1/predict", root_path="", query_string=b"", headers=headers)
    statuses = collections.Counter()

    async def one() -> None:
        messages = [{"type": "http.request", "body": data, "more_body": False}]

        async def receive():
            return messages.pop() if messages else {"type": "http.disconnect"}

        async def send(message):
            if message["type"] == "http.response.start":
                statuses[message["status"]] += 1

        await app(dict(scope), receive, send)

    async with app.router.lifespan_context(app):
        while app.state.served.card_pending:  # the model card's thread: finished before anything is timed
            await asyncio.sleep(0.05)
        await asyncio.gather(*(one() for _ in range(CONCURRENT)))
        started = time.process_time_ns()
        rounds = max(1, requests // CONCURRENT)
        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(CONCURRENT)))
        spent = time.process_time_ns() - started
    if set(statuses) != {200}:
        raise SystemExit(f"the app answered {dict(statuses)} in process")
    return spent / (rounds * CONCURRENT) / 1000


def profile_shares(py_spy: str, pid: int, seconds: int, folder: Path) -> dict[str, float]:
    """py-spy's samples of a loaded server for `seconds`, as the share of its busy samples in each part."""
    out = folder / "profile.txt"
    subprocess.run(
        [py_spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "400", "-f", "raw", "-o", str(out)]
        + ["--nonblocking"],
        check=True,
        capture_output=True,
    )
    shares: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = re.sub(r":\d+\)", ")", stack)
        leaf = frames.rsplit(";", 1)[-1]
        part = next((name for name, marker in PROFILE_PARTS if marker in frames), None)
        part = part or next((name for name, marker in LEAF_PARTS if marker in leaf), OTHER)
        shares[part] += int(count)
    total = sum(shares.values()) or 1
    return {part: count / total for part, count in shares.most_common()}
