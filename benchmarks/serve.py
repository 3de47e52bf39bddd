"""`trainlab serve` against the FastAPI endpoint people write by hand (benchmarks/plain_fastapi.py), under wrk.

    python benchmarks/serve.py --run runs/quickstart            # a run directory of the tutorial model
    python benchmarks/serve.py --data-dir DIR                   # or train one epoch of it first (about a minute)

Each round starts every server afresh on 127.0.0.1, in turn (plain, trainlab, trainlab unbatched, trainlab with
two workers, then the next round), warms it up, then drives it with wrk posting one raw Fashion-MNIST test PNG:
about REQUESTS requests at concurrency 16 (wrk runs for REQUESTS / the warm-up's rate, in whole seconds), then
2 s at concurrency 1. Medians of the rounds. Then a soak: 30,000 requests
at concurrency 16 against one `trainlab serve`, its resident memory before and after. Needs `wrk` (Debian:
apt-get install wrk). Prints a Markdown table for BENCHMARKS.md; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from trainlab.testing.serving import ServerNotReady, free_port, start_server, stop_server, wait_until_ready

PYTHON = sys.executable
STARTUP_SECONDS = 120
WARM_UP_SECONDS = 2.0
C1_SECONDS = 2.0  # concurrency 1: latency, a few hundred requests
BENCHMARKS = Path(__file__).resolve().parent
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/png"
local f = io.open("{png}", "rb"); wrk.body = f:read("*all"); f:close()
"""


def wrk(url: str, png: Path, seconds: float, connections: int, folder: Path) -> dict[str, float]:
    """wrk posting `png` for `seconds`: requests, requests/s, p50 and p99 in ms, errors. (wrk runs for a
    duration: a measurement of about N requests runs for N / the warm-up's rate.)"""
    threads = min(2, connections)
    script = folder / "post.lua"
    script.write_text(WRK_SCRIPT.format(png=png))
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
    ]
    text = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout

    def milliseconds(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", text).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    done = int(re.search(r"(\d+) requests in", text).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)
    return {
        "requests": done,
        "requests_per_second": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),
        "p50_ms": milliseconds("50%"),
        "p99_ms": milliseconds("99%"),
        "errors": errors,
    }


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(side: str, run: Path, weights: Path, port: int) -> tuple[subprocess.Popen, str]:
    """One server as its own process: (process, predict URL)."""
    if side == "plain FastAPI":
        command = [PYTHON, str(BENCHMARKS / "plain_fastapi.py"), str(weights), "--port", str(port)]
        url = f"http://127.0.0.1:{port}/predict"
        ready = "/docs"
    else:
        extra = {"trainlab serve": [], "trainlab serve, unbatched": ["--max-batch", "1"]}.get(side, ["--workers", "2"])
        url = f"http://127.0.0.1:{port}/v1/predict"
        ready = "/v1/ready"
    if side == "plain FastAPI":
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        process = start_server(run, port, *extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(process, f"http://127.0.0.1:{port}", STARTUP_SECONDS, ready_path=ready, poll=0.2)
    except ServerNotReady as exc:
        raise SystemExit(f"{side}: {exc}") from None
    return process, url


def prepare(args: argparse.Namespace, folder: Path) -> tuple[Path, Path, Path]:
    """(run directory, the tutorial model's state_dict for the peer, a raw test PNG)."""
    run = Path(args.run) if args.run else folder / "run"
    if not args.run:
        subprocess.run(
            [PYTHON, "-m", "trainlab", "train", "--epochs", "1", "--run-dir", str(run), "--data-dir", args.data_dir],
            check=True,
            capture_output=True,
        )
    weights = folder / "model.pth"
    subprocess.run(
        [PYTHON, "-m", "trainlab", "export", str(run), "--format", "state-dict", "--out", str(weights)],
        check=True,
        capture_output=True,
    )
    port = free_port()
    process, _ = start("trainlab serve", run, weights, port)
    try:
        png = folder / "test0.png"  # the run's first test image, as the server hands it to its page
        for _ in range(100):
            samples = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/samples"))["samples"]
            if samples:
                break
            time.sleep(0.1)
        if not samples:
            raise SystemExit("the run's test images are not here (pass --data-dir where its data set is)")
        png.write_bytes(urllib.request.urlopen(f"http://127.0.0.1:{port}{samples[0]['url']}").read())
    finally:
        stop_server(process)
    return run, weights, png


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    flags = Path("/proc/cpuinfo").read_text()
    kind = "AVX-512 BF16" if "avx512_bf16" in flags else "AVX2 only" if "avx2" in flags else "no AVX2"
    return f"{cpu}, {os.cpu_count()} cores, {kind}"


def request_costs(run: Path, png: Path, repeats: int = 2000) -> dict[str, float]:
    """In this process, one torch thread, no server running: what one request's picture costs, in ms."""
    import torch

    from trainlab.data.decoding import read_input
    from trainlab.inference import Predictor

    torch.set_num_threads(1)
    predictor = Predictor.from_checkpoint(run)
    predictor.input_style("auto")  # an old checkpoint's look, measured before the timing
    prep, data = predictor.preprocessing, png.read_bytes()
    one = read_input(data, prep, "raw").tensor[None]
    sixteen = one.repeat(16, 1, 1, 1)

    def milliseconds(work, times: int) -> float:
        work()
        started = time.perf_counter()
        for _ in range(times):
            work()
        return (time.perf_counter() - started) / times * 1000

    return {
        "decode_raw_ms": milliseconds(lambda: read_input(data, prep, "raw"), repeats),
        "decode_auto_ms": milliseconds(lambda: read_input(data, prep, "auto"), repeats),
        "forward_1_ms": milliseconds(lambda: predictor.probabilities(one), repeats),
        "forward_16_ms": milliseconds(lambda: predictor.probabilities(sixteen), repeats // 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run directory of the tutorial model (default: train one epoch first)")
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR"), help="Fashion-MNIST's folder")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--costs-only", action="store_true", help="only the in-process per-picture costs")
    parser.add_argument("--requests", type=int, default=3000, help="about this many requests at concurrency 16")
    parser.add_argument("--soak", type=int, default=30000, help="requests of the soak (0: no soak)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if not args.run and not args.data_dir:
        raise SystemExit("give --run RUN_DIR or --data-dir DIR")
    sides = ["plain FastAPI", "trainlab serve", "trainlab serve, unbatched", "trainlab serve --workers 2"]
    results: dict[str, dict[str, list[dict]]] = {side: {"c16": [], "c1": []} for side in sides}
    if args.costs_only:
        args.rounds, args.soak, sides = 0, 0, []
    with tempfile.TemporaryDirectory(prefix="trainlab-serve-bench-") as name:
        folder = Path(name)
        run, weights, png = prepare(args, folder)
        for round_number in range(1, args.rounds + 1):
            for side in sides:
                process, url = start(side, run, weights, free_port())
                try:
                    rate = wrk(url, png, WARM_UP_SECONDS, 16, folder)["requests_per_second"]
                    results[side]["c16"].append(wrk(url, png, max(2.0, args.requests / rate), 16, folder))
                    results[side]["c1"].append(wrk(url, png, C1_SECONDS, 1, folder))
                finally:
                    stop_server(process)
                c16, c1 = results[side]["c16"][-1], results[side]["c1"][-1]
                print(
                    f"round {round_number} {side}: c16 {c16['requests_per_second']:.0f}/s p99 {c16['p99_ms']:.1f} ms "
                    f"errors {c16['errors']}; c1 p50 {c1['p50_ms']:.2f} ms",
                    file=sys.stderr,
                )
        soak = None
        if args.soak:
            process, url = start("trainlab serve", run, weights, free_port())
            try:
                rate = wrk(url, png, WARM_UP_SECONDS, 16, folder)["requests_per_second"]
                before = rss_kib(process.pid)
                measured = wrk(url, png, args.soak / rate, 16, folder)
                soak = {"rss_start_mib": before / 1024, "rss_end_mib": rss_kib(process.pid) / 1024, **measured}
            finally:
                stop_server(process)
        costs = request_costs(run, png)  # after the servers: alone on the machine

    def median(side: str, level: str, key: str) -> float:
        return statistics.median(row[key] for row in results[side][level])

    print(
        f"\nIn process, one thread: a 28x28 test PNG decoded as raw {costs['decode_raw_ms']:.3f} ms, through auto "
        f"{costs['decode_auto_ms']:.3f} ms; a forward pass of 1 image {costs['forward_1_ms']:.3f} ms, of 16 "
        f"{costs['forward_16_ms']:.3f} ms"
    )
    if not sides:
        return
    print(f"\nMachine: {machine()}; wrk posting a raw 28x28 test PNG; medians of {args.rounds} rounds\n")
    print("| server | req/s at c16 | p50 ms c16 | p99 ms c16 | errors | p50 ms at c1 | req/s at c1 |")
    print("|---|---|---|---|---|---|---|")
    for side in sides:
        errors = sum(row["errors"] for level in ("c16", "c1") for row in results[side][level])
        print(
            f"| {side} | {median(side, 'c16', 'requests_per_second'):,.0f} | {median(side, 'c16', 'p50_ms'):.1f} | "
            f"{median(side, 'c16', 'p99_ms'):.1f} | {errors} | {median(side, 'c1', 'p50_ms'):.2f} | "
            f"{median(side, 'c1', 'requests_per_second'):,.0f} |"
        )
    if soak is not None:
        print(
            f"\nSoak: {soak['requests']:,} requests at c16 against `trainlab serve`: "
            f"{soak['requests_per_second']:,.0f} "
            f"req/s, p99 {soak['p99_ms']:.1f} ms, {soak['errors']} errors; resident memory {soak['rss_start_mib']:.1f} "
            f"MiB after the warm-up, {soak['rss_end_mib']:.1f} MiB at the end"
        )
    out = BENCHMARKS / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"serve-{stamp}.json").write_text(
        json.dumps({"machine": machine(), "rounds": results, "soak": soak, "costs": costs}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
