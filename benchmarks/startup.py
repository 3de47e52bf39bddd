"""Start-up costs, whole processes: what trainlab's commands take beyond `python -c "import torch"`.

    python benchmarks/startup.py --data-dir ../shared/data               # trains a 1-epoch RUN first (~30 s)
    python benchmarks/startup.py --data-dir ../shared/data --run RUN --rounds 7

Each round runs, in turn: `python -c "import torch"`, `trainlab predict RUN --test-index 0`,
`trainlab evaluate RUN` (whose confusion matrix PNG, drawn by the training, shows what evaluate finds, so it is
kept), `trainlab evaluate RUN --confusion-matrix NEW.png` (removed before each run, so drawn every time), and
`trainlab train` with the tutorial's settings until its first training step (the
time from starting the process to reading the tutorial's first `loss:` line, which the console prints and
flushes right after step 1; the process is then killed). One untimed round warms the file cache first; medians
of the rounds, and of each round's ratio to that round's `import torch` (the machine's speed drifts). Then
each command once more under `python -X importtime`: the imports each one makes beyond
`import torch`, largest first, and the time left for everything else (reading the checkpoint and the data,
computing, drawing).

Prints a Markdown report for BENCHMARKS.md, writes every figure to benchmarks/results/startup-<time>.json, and
asserts nothing: the targets (issue 15) are printed beside the figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench_common import script_parser
from run import load_average, machine_info, trainlab_command  # benchmarks/run.py: the suite's own helpers

BENCHMARKS = Path(__file__).resolve().parent
TARGET_RATIO = 1.3  # predict and evaluate wall / `import torch` wall
DRAWN_PNG = "drawn-confusion-matrix.png"  # removed before each run, so that evaluate draws it every time
TARGET_FIRST_STEP_EXTRA = 0.5  # seconds to the first training step beyond `import torch`
FIRST_STEP_TIMEOUT = 300.0  # seconds
IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)")
TOP_IMPORTS = 8  # rows of the import breakdown per command


@dataclasses.dataclass
class Module:
    """One line of `python -X importtime`: a module, its own and its cumulative import time (microseconds)."""

    name: str
    self_us: int
    cumulative_us: int
    children: list[Module] = dataclasses.field(default_factory=list)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def import_tree(stderr: str) -> list[Module]:
    """The modules a process imported, as trees of who imported whom (importtime prints children first)."""
    pending: list[tuple[int, Module]] = []
    for line in stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match is None:
            continue
        depth = (len(match.group(3)) - 1) // 2
        node = Module(match.group(4), int(match.group(1)), int(match.group(2)))
        while pending and pending[-1][0] > depth:
            node.children.insert(0, pending.pop()[1])
        pending.append((depth, node))
    return [node for _, node in pending]


def imports_beyond(roots: list[Module], baseline: set[str]) -> list[dict[str, Any]]:
    """The first modules on each import path that `import torch` alone does not import, each with the seconds
    and module count of everything it imported that torch does not; largest first."""
    found: list[dict[str, Any]] = []

    def visit(node: Module) -> None:
        if node.name in baseline:
            for child in node.children:
                visit(child)
            return
        extra = [module for module in node.walk() if module.name not in baseline]
        found.append({"module": node.name, "seconds": sum(m.self_us for m in extra) / 1e6, "modules": len(extra)})

    for root in roots:
        visit(root)
    return sorted(found, key=lambda row: -row["seconds"])


# ---------------------------------------------------------------------------------------------------------------
# the commands


def commands(run_dir: Path, data_dir: str, work: Path) -> dict[str, list[str]]:
    trainlab = trainlab_command()
    return {
        "import torch": [sys.executable, "-c", "import torch"],
        "predict": [*trainlab, "predict", str(run_dir), "--test-index", "0", "--data-dir", data_dir],
        # the run's own confusion_matrix.png shows what evaluating its checkpoint finds: evaluate keeps it
        "evaluate": [*trainlab, "evaluate", str(run_dir), "--data-dir", data_dir],
        "evaluate, drawing": [
            *trainlab,
            "evaluate",
            str(run_dir),
            "--data-dir",
            data_dir,
            "--confusion-matrix",
            str(work / DRAWN_PNG),
        ],
        "first step": [*trainlab, "train", "--epochs", "1", "--data-dir", data_dir, "--overwrite"],
    }


def with_importtime(command: list[str]) -> list[str]:
    """The same command as `python -X importtime ...` (the trainlab script becomes `-m trainlab`)."""
    if command[0] != sys.executable:
        command = [sys.executable, "-m", "trainlab", *command[1:]]
    return [sys.executable, "-X", "importtime", *command[1:]]


def remove_drawn_png(command: list[str]) -> None:
    """The PNG a drawing evaluate writes, removed before it runs: evaluate would keep it and not draw."""
    if command[-1].endswith(DRAWN_PNG):
        Path(command[-1]).unlink(missing_ok=True)


def run_whole(command: list[str]) -> float:
    """Wall seconds of one whole process; fails loudly on a non-zero exit. A PNG it would keep is removed first."""
    remove_drawn_png(command)
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if completed.returncode != 0:
        tail = "\n".join((completed.stdout + completed.stderr).splitlines()[-10:])
        raise SystemExit(f"failed with exit status {completed.returncode}: {' '.join(command)}\n{tail}")
    return seconds


def run_to_first_step(command: list[str], run_dir: Path, stderr_path: Path | None = None) -> float:
    """Seconds from starting `trainlab train` to its first `loss:` line (printed after step 1); then it is killed."""
    with open(stderr_path or os.devnull, "w") as stderr:  # a file: importtime's lines would fill a pipe
        started = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
        try:
            for line in process.stdout:
                if line.startswith("loss:"):
                    return time.perf_counter() - started
                if time.perf_counter() - started > FIRST_STEP_TIMEOUT:
                    break
        finally:
            process.kill()
            process.wait()
    raise SystemExit(f"no loss line from: {' '.join(command)} (exit status {process.returncode})")


def train_quick_run(data_dir: str, run_dir: Path) -> None:
    """The RUN predict and evaluate read: one epoch of the tutorial's settings."""
    command = [*trainlab_command(), "train", "--epochs", "1", "--data-dir", data_dir, "--run-dir", str(run_dir)]
    print(f"training {run_dir} (one epoch) ...", file=sys.stderr, flush=True)
    run_whole([*command, "--quiet"])


def summarize(values: Sequence[float]) -> dict[str, Any]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": list(values)}


def measure(commands_: dict[str, list[str]], rounds: int, work: Path) -> dict[str, dict[str, Any]]:
    """Every command once untimed, then `rounds` rounds of all of them in turn; wall seconds of each."""
    seconds: dict[str, list[float]] = {name: [] for name in commands_}
    for round_number in range(rounds + 1):
        for name, command in commands_.items():
            if name == "first step":
                value = run_to_first_step(command, work / f"first-step-{round_number}")
            else:
                value = run_whole(command)
            if round_number:  # round 0 warms the file cache
                seconds[name].append(value)
        if round_number:
            line = ", ".join(f"{name} {values[-1]:.2f} s" for name, values in seconds.items())
            print(f"round {round_number}/{rounds}: {line}", file=sys.stderr, flush=True)
    return {name: summarize(values) for name, values in seconds.items()}


def breakdown(commands_: dict[str, list[str]], work: Path) -> dict[str, dict[str, Any]]:
    """Each command once under -X importtime: its imports beyond `import torch`, and its importtime wall time."""
    results: dict[str, dict[str, Any]] = {}
    baseline_roots: list[Module] = []
    for name, command in commands_.items():
        importtime = with_importtime(command)
        stderr_path = work / f"importtime-{name.replace(' ', '-')}.txt"
        started = time.perf_counter()
        if name == "first step":
            run_to_first_step(importtime, work / "first-step-importtime", stderr_path)
        else:
            remove_drawn_png(command)
            with open(stderr_path, "w") as stderr:
                subprocess.run(importtime, stdout=subprocess.DEVNULL, stderr=stderr, check=True)
        wall = time.perf_counter() - started
        roots = import_tree(stderr_path.read_text())
        if name == "import torch":
            baseline_roots = roots
        baseline = {module.name for root in baseline_roots for module in root.walk()}
        torch_seconds = sum(m.cumulative_us for m in roots if m.name == "torch") / 1e6
        for root in roots:  # torch imported from inside trainlab's modules
            for module in root.walk():
                if module.name == "torch" and root.name != "torch":
                    torch_seconds += module.cumulative_us / 1e6
        beyond = imports_beyond(roots, baseline)
        results[name] = {
            "wall_seconds": wall,
            "import_torch_seconds": torch_seconds,
            "imports_beyond_torch_seconds": sum(row["seconds"] for row in beyond),
            "imports_beyond_torch": beyond,
        }
    return results


# ---------------------------------------------------------------------------------------------------------------
# the report

LABELS = {
    "import torch": '`python -c "import torch"`',
    "predict": "`trainlab predict RUN --test-index 0`",
    "evaluate": "`trainlab evaluate RUN` (the run's confusion matrix PNG up to date, kept)",
    "evaluate, drawing": "`trainlab evaluate RUN --confusion-matrix NEW.png` (drawn)",
    "first step": "`trainlab train` (tutorial settings): process start to the first training step",
}


def markdown_report(results: dict[str, Any]) -> str:
    machine, timings = results["machine"], results["timings"]
    lines = [
        f"Measured {machine['date']} on {machine['cpu_model']}, {machine['cpu_cores']} cores "
        f"({', '.join(machine['cpu_bf16_flags']) or 'no avx512_bf16/amx'}); Python {machine['python']}, "
        f"torch {machine['torch']}, trainlab {machine['trainlab']} ({machine['git_commit']}). Load average at start "
        f"{machine['load_average_at_start']}, at end {results['load_average_at_end']}.",
        "",
        f"**Whole processes, in turn, {results['rounds']} rounds**: medians of the wall times, and of each "
        "round's ratio to (and difference from) that round's `import torch`",
        "",
        "| command | median s | min–max s | × `import torch` | beyond `import torch` | target | met |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    torch_runs = timings["import torch"]["runs"]
    for name, label in LABELS.items():
        t = timings[name]
        # against the same round's `import torch`: the machine's speed drifts from round to round
        ratio = statistics.median(run / base for run, base in zip(t["runs"], torch_runs, strict=True))
        extra = statistics.median(run - base for run, base in zip(t["runs"], torch_runs, strict=True))
        if name == "import torch":
            target, met = "", ""
        elif name == "first step":
            target = f"≤ `import torch` + {TARGET_FIRST_STEP_EXTRA:g} s"
            met = "yes" if extra <= TARGET_FIRST_STEP_EXTRA else "no"
        else:
            target = f"≤ {TARGET_RATIO:g}×"
            met = "yes" if ratio <= TARGET_RATIO else "no"
        lines.append(
            f"| {label} | {t['median']:.2f} | {t['min']:.2f}–{t['max']:.2f} | {ratio:.2f} | {extra:+.2f} s "
            f"| {target} | {met} |"
        )
    lines += [
        "",
        "**Where the time goes**: each command once more under `python -X importtime` (which slows imports): "
        "the time in `import torch`, in the imports `import torch` alone does not make (by the first such module "
        "on each path, with everything it pulled in, and how many modules), and the rest (the interpreter's start "
        "and exit, and the command's own work)",
        "",
        "| command | wall s | import torch s | other imports s | the rest s | largest imports beyond torch |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, b in results["breakdown"].items():  # the rest of `import torch`: the interpreter's start and exit
        rest = b["wall_seconds"] - b["import_torch_seconds"] - b["imports_beyond_torch_seconds"]
        top = ", ".join(
            f"{row['module']} {row['seconds']:.2f} s ({row['modules']})"
            for row in b["imports_beyond_torch"][:TOP_IMPORTS]
            if row["seconds"] >= 0.005
        )
        lines.append(
            f"| {name} | {b['wall_seconds']:.2f} | {b['import_torch_seconds']:.2f} | "
            f"{b['imports_beyond_torch_seconds']:.2f} | {rest:.2f} | {top} |"
        )
    return "\n".join(lines)


def cpu_bf16_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(set(line.split(":", 1)[1].split()) & {"avx512_bf16", "amx_bf16", "amx_tile"})
    except OSError:
        pass
    return []


def main(argv: Sequence[str] | None = None) -> int:
    parser = script_parser(__doc__)
    parser.add_argument("--run", type=Path, help="the run directory predict and evaluate read (default: train one)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of every command (default: 5)")
    parser.add_argument("--results-dir", type=Path, default=BENCHMARKS / "results", help="where the JSON results go")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be >= 1, got {args.rounds}")
    raw = Path(args.data_dir) / "FashionMNIST" / "raw"
    if not (raw / "train-images-idx3-ubyte").exists() and not (raw / "train-images-idx3-ubyte.gz").exists():
        parser.error(f"no Fashion-MNIST under {raw}; pass --data-dir (the benchmark never downloads)")
    data_dir = str(Path(args.data_dir).resolve())
    results: dict[str, Any] = {"rounds": args.rounds, "machine": machine_info(None)}
    results["machine"]["cpu_bf16_flags"] = cpu_bf16_flags()
    load = results["machine"]["load_average_at_start"]
    if load and load[0] > 0.5:
        print(
            f"warning: load average {load[0]:.2f}: other work shares the machine; timings will be noisy",
            file=sys.stderr,
        )
    with tempfile.TemporaryDirectory(prefix="trainlab-startup-") as tmp:
        work = Path(tmp)
        run_dir = args.run or work / "run"
        if args.run is None:
            train_quick_run(data_dir, run_dir)
        commands_ = commands(run_dir.resolve(), data_dir, work)
        results["commands"] = {name: " ".join(command) for name, command in commands_.items()}
        results["timings"] = measure(commands_, args.rounds, work)
        results["breakdown"] = breakdown(commands_, work)
    results["load_average_at_end"] = load_average()
    report = markdown_report(results)
    print(report)
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (args.results_dir / f"startup-{stamp}.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
