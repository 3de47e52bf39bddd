"""`trainlab serve` against the FastAPI endpoint people write by hand (benchmarks/plain_fastapi.py), under wrk.

    python benchmarks/serve.py --run runs/quickstart            # a run directory of the tutorial model
    python benchmarks/serve.py --data-dir DIR                   # or train one epoch of it first (about a minute)
    python benchmarks/serve.py --run R --requests 20000 --connections 16 --rounds 3
    python benchmarks/serve.py --run R --sides all              # also unbatched and --workers 2
    python benchmarks/serve.py --run R --profile                # where a loaded server's time goes (py-spy)

The servers take turns, each started afresh on 127.0.0.1 (plain, trainlab, plain, trainlab, ... for --rounds),
are warmed up, then driven by wrk posting one raw Fashion-MNIST test PNG: about REQUESTS requests at
CONNECTIONS connections (wrk runs for REQUESTS / the warm-up's rate, in whole seconds), then 2 s at concurrency
1. Beside requests/s, p50, p99 and errors: the server's CPU time per request (utime + stime of its processes
over the run, from /proc, over the requests answered), which wrk sharing the cores inflates far less than it
depresses requests/s. Medians of the rounds, and trainlab's ratio to the plain endpoint in each round. Then
what one request's parts cost in this process (serve_costs.py), and a soak: SOAK requests against one `trainlab
serve`, its resident memory before and after. Needs `wrk` (Debian: apt-get install wrk). Prints Markdown for
BENCHMARKS.md and writes benchmarks/results/serve-*.json; asserts nothing.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from serve_costs import profile_shares, request_costs

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


def wrk(url: str, png: Path, seconds: float, connections: int, folder: Path, pid: int) -> dict[str, float]:
    """wrk posting `png` for `seconds`: requests, requests/s, p50 and p99 in ms, errors, and the CPU time of the
    server (process `pid` and its children) per request, µs. (wrk runs for a duration: a measurement of about N
    requests runs for N / the warm-up's rate.)"""
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
    cpu_before = tree_cpu_seconds(pid)
    text = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    cpu = tree_cpu_seconds(pid) - cpu_before

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
        "cpu_us_per_request": cpu / max(1, done) * 1e6,
    }


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its descendants (uvicorn's workers), seconds, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / tick)
    family, total = {pid}, 0.0
    for _ in range(4):  # the server, its workers (and what they may start)
        family |= {child for child, (parent, _) in stats.items() if parent in family}
    for member in family:
        total += stats.get(member, (0, 0.0))[1]
    return total


def rss_kib(pid: int) -> int:
    """Resident memory of a process, KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start(side: str, run: Path, weights: Path, tries: int = 3) -> tuple[subprocess.Popen, str]:
    """One server as its own process on a free port: (process, predict URL). A port taken between the choice
    and the bind (other programs on the machine) is another try."""
    for attempt in range(tries):
        port = free_port()
        if side == "plain FastAPI":
            command = [PYTHON, str(BENCHMARKS / "plain_fastapi.py"), str(weights), "--port", str(port)]
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url, ready = f"http://127.0.0.1:{port}/predict", "/docs"
        else:
            extra = {"trainlab serve": [], "trainlab serve, unbatched": ["--max-batch", "1"]}.get(
                side, ["--workers", "2"]
            )
            process = start_server(run, port, *extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            url, ready = f"http://127.0.0.1:{port}/v1/predict", "/v1/ready"
        try:
            wait_until_ready(process, f"http://127.0.0.1:{port}", STARTUP_SECONDS, ready_path=ready, poll=0.2)
            return process, url
        except ServerNotReady as exc:
            stop_server(process)
            if attempt == tries - 1:
                raise SystemExit(f"{side}: {exc}") from None
    raise AssertionError("unreachable")


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
    process, url = start("trainlab serve", run, weights)
    base = url.removesuffix("/v1/predict")
    try:
        png = folder / "test0.png"  # the run's first test image, as the server hands it to its page
        for _ in range(100):
            samples = json.load(urllib.request.urlopen(f"{base}/v1/samples"))["samples"]
            if samples:
                break
            time.sleep(0.1)
        if not samples:
            raise SystemExit("the run's test images are not here (pass --data-dir where its data set is)")
        png.write_bytes(urllib.request.urlopen(f"{base}{samples[0]['url']}").read())
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


SIDES = ("plain FastAPI", "trainlab serve", "trainlab serve, unbatched", "trainlab serve --workers 2")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", help="run directory of the tutorial model (default: train one epoch first)")
    parser.add_argument("--data-dir", default=os.environ.get("TRAINLAB_DATA_DIR"), help="Fashion-MNIST's folder")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each server (default: 3)")
    parser.add_argument("--requests", type=int, default=3000, help="about this many requests a turn (default: 3000)")
    parser.add_argument("--connections", type=int, default=16, help="wrk's connections (default: 16)")
    parser.add_argument("--sides", choices=("two", "all"), default="two", help="all: also unbatched and --workers 2")
    parser.add_argument("--costs-only", action="store_true", help="only the in-process costs of a request's parts")
    parser.add_argument("--profile", action="store_true", help="only py-spy's shares of a loaded trainlab server")
    parser.add_argument("--soak", type=int, default=30000, help="requests of the soak (0: no soak)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if not args.run and not args.data_dir:
        raise SystemExit("give --run RUN_DIR or --data-dir DIR")
    return args


def measure(side: str, run: Path, weights: Path, png: Path, args: argparse.Namespace, folder: Path) -> dict:
    """One turn of one server: (c16-like load, c1) figures."""
    process, url = start(side, run, weights)
    try:
        rate = wrk(url, png, WARM_UP_SECONDS, args.connections, folder, process.pid)["requests_per_second"]
        loaded = wrk(url, png, max(2.0, args.requests / rate), args.connections, folder, process.pid)
        alone = wrk(url, png, C1_SECONDS, 1, folder, process.pid)
    finally:
        stop_server(process)
    return {"loaded": loaded, "c1": alone}


def profile(run: Path, weights: Path, png: Path, args: argparse.Namespace, folder: Path) -> None:
    """py-spy on a trainlab server under wrk: the share of its samples in each part, and µs at its CPU per request."""
    py_spy = shutil.which("py-spy") or str(Path(PYTHON).with_name("py-spy"))
    if not Path(py_spy).exists():
        raise SystemExit("py-spy is not installed (pip install py-spy)")
    process, url = start("trainlab serve", run, weights)
    seconds = max(3, round(args.requests / 2000))
    try:
        wrk(url, png, WARM_UP_SECONDS, args.connections, folder, process.pid)
        with ThreadPoolExecutor(1) as pool:
            shares = pool.submit(profile_shares, py_spy, process.pid, seconds + 1, folder)
            loaded = wrk(url, png, seconds, args.connections, folder, process.pid)
            shares = shares.result()
    finally:
        stop_server(process)
    cpu = loaded["cpu_us_per_request"]
    print(
        f"\n{loaded['requests_per_second']:,.0f} requests/s at {args.connections} connections under py-spy, server "
        f"CPU {cpu:.0f} µs a request; the share of its busy samples in each part, and that share of the CPU:\n"
    )
    print("| part | share of samples | µs a request |")
    print("|---|---|---|")
    for part, share in shares.items():
        print(f"| {part} | {100 * share:.1f}% | {share * cpu:.0f} |")


def print_costs(costs: dict[str, float], loaded_cpu: float | None) -> None:
    rows = [
        ("PNG header read for the request's pixel bound", costs["png_header"]),
        ("decode, input style auto (raw alone)", f"{costs['decode_auto']:.0f} ({costs['decode_raw']:.0f})"),
        (
            "forward pass, per image in a batch of 16 (one image alone)",
            f"{costs['forward_16_per_image']:.0f} ({costs['forward_1']:.0f})",
        ),
        ("JSON answer", costs["json_answer"]),
        ("metrics", costs["metrics"]),
        (f"the whole app over plain ASGI, {16} requests at a time", costs["app_in_process"]),
    ]
    if loaded_cpu is not None:
        rows.append(
            (
                "HTTP server (uvicorn, httptools, uvloop, sockets): the loaded server's CPU less the app's",
                loaded_cpu - costs["app_in_process"],
            )
        )
    print("\nWhat one request's parts cost in this process, one torch thread, CPU µs (best of 5):\n")
    print("| part | µs |")
    print("|---|---|")
    for part, value in rows:
        print(f"| {part} | {value if isinstance(value, str) else f'{value:.0f}'} |")


def print_table(results: dict[str, list[dict]], sides: list[str], args: argparse.Namespace) -> None:
    def median(side: str, level: str, key: str) -> float:
        return statistics.median(turn[level][key] for turn in results[side])

    print(f"\nMachine: {machine()}; wrk posting a raw 28x28 test PNG; medians of {args.rounds} rounds\n")
    c = args.connections
    print(f"| server | req/s at c{c} | p50 ms | p99 ms | errors | server CPU µs/request | p50 ms at c1 | req/s at c1 |")
    print("|---|---|---|---|---|---|---|---|")
    for side in sides:
        errors = sum(turn[level]["errors"] for turn in results[side] for level in ("loaded", "c1"))
        print(
            f"| {side} | {median(side, 'loaded', 'requests_per_second'):,.0f} | "
            f"{median(side, 'loaded', 'p50_ms'):.1f} | {median(side, 'loaded', 'p99_ms'):.1f} | {errors} | "
            f"{median(side, 'loaded', 'cpu_us_per_request'):.0f} | {median(side, 'c1', 'p50_ms'):.2f} | "
            f"{median(side, 'c1', 'requests_per_second'):,.0f} |"
        )
    plain, ours = results["plain FastAPI"], results["trainlab serve"]
    ratios = [
        b["loaded"]["requests_per_second"] / a["loaded"]["requests_per_second"]
        for a, b in zip(plain, ours, strict=True)
    ]
    cpu = [
        a["loaded"]["cpu_us_per_request"] / b["loaded"]["cpu_us_per_request"] for a, b in zip(plain, ours, strict=True)
    ]
    print(
        f"\ntrainlab serve / plain FastAPI, round by round: requests/s {', '.join(f'{r:.2f}x' for r in ratios)}; "
        f"CPU per request {', '.join(f'{r:.2f}x' for r in cpu)} less"
    )


def main() -> None:
    args = arguments()
    sides = list(SIDES if args.sides == "all" else SIDES[:2])
    results: dict[str, list[dict]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="trainlab-serve-bench-") as name:
        folder = Path(name)
        run, weights, png = prepare(args, folder)
        if args.profile:
            return profile(run, weights, png, args, folder)
        for round_number in range(1, 0 if args.costs_only else args.rounds + 1):
            for side in sides:
                results[side].append(measure(side, run, weights, png, args, folder))
                turn = results[side][-1]["loaded"]
                print(
                    f"round {round_number} {side}: {turn['requests_per_second']:.0f}/s p99 {turn['p99_ms']:.1f} ms "
                    f"errors {turn['errors']} CPU {turn['cpu_us_per_request']:.0f} µs/request",
                    file=sys.stderr,
                )
        soak = None
        if args.soak and not args.costs_only:
            process, url = start("trainlab serve", run, weights)
            try:
                rate = wrk(url, png, WARM_UP_SECONDS, args.connections, folder, process.pid)["requests_per_second"]
                before = rss_kib(process.pid)
                measured = wrk(url, png, args.soak / rate, args.connections, folder, process.pid)
                soak = {"rss_start_mib": before / 1024, "rss_end_mib": rss_kib(process.pid) / 1024, **measured}
            finally:
                stop_server(process)
        costs = request_costs(run, png)  # after the servers: alone on the machine
    if not args.costs_only:
        print_table(results, sides, args)
    loaded = (
        statistics.median(t["loaded"]["cpu_us_per_request"] for t in results["trainlab serve"])
        if results["trainlab serve"]
        else None
    )
    print_costs(costs, loaded)
    if soak is not None:
        print(
            f"\nSoak: {soak['requests']:,} requests at c{args.connections} against `trainlab serve`: "
            f"{soak['requests_per_second']:,.0f} req/s, p99 {soak['p99_ms']:.1f} ms, {soak['errors']} errors; "
            f"resident memory {soak['rss_start_mib']:.1f} MiB after the warm-up, "
            f"{soak['rss_end_mib']:.1f} MiB at the end"
        )
    out = BENCHMARKS / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (out / f"serve-{stamp}.json").write_text(
        json.dumps(
            {"machine": machine(), "args": vars(args), "rounds": results, "soak": soak, "costs": costs}, indent=2
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
