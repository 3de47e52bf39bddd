"""`trainlab runs`, `plot` and `summary`: looking at runs and models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trainlab.cli.options import (
    EXIT_OK,
    Output,
    add_output_options,
    cannot_write,
    name_argument,
    path_argument,
)
from trainlab.config import MAX_IMAGE_SIZE
from trainlab.errors import TrainlabError

MAX_CLASSES = 10_000  # summary --num-classes; the data readers accept no more either
MAX_INPUT_CHANNELS = 64  # summary --input-size C; trainlab's own data has 1 or 3


def add_commands(commands: argparse._SubParsersAction) -> None:
    runs = commands.add_parser("runs", help="list runs as a table")
    runs.add_argument(
        "directory", nargs="?", default="runs", type=path_argument, help="folder of run directories (default: runs)"
    )
    add_output_options(runs)
    runs.set_defaults(handler=cmd_runs)

    plot = commands.add_parser("plot", help="overlay the learning curves of several runs")
    plot.add_argument("runs", nargs="+", metavar="RUN", type=path_argument, help="run directories")
    plot.add_argument(
        "--out",
        type=path_argument,
        default="runs_compared.png",
        help="PNG file to write (default: runs_compared.png; a name not ending in .png: a warning)",
    )
    add_output_options(plot)
    plot.set_defaults(handler=cmd_plot)

    summary = commands.add_parser("summary", help="print a model and its parameters")
    summary.add_argument("--model", type=name_argument, default="mlp", help="model name (default: mlp)")
    summary.add_argument(
        "--input-size",
        default="1,28,28",
        help=f"C,H,W of one input, H and W at most {MAX_IMAGE_SIZE} (default: 1,28,28)",
    )
    summary.add_argument(
        "--num-classes", type=int, default=10, help=f"number of classes, 1 to {MAX_CLASSES:,} (default: 10)"
    )
    summary.add_argument(
        "--freeze",
        action="append",
        metavar="PREFIX",
        type=name_argument,
        default=[],
        help="show parameters starting with PREFIX as frozen (repeatable)",
    )
    add_output_options(summary)
    summary.set_defaults(handler=cmd_summary)


def cmd_runs(args: argparse.Namespace, out: Output) -> int:
    from trainlab.reports.runs import format_runs, list_runs

    rows = list_runs(args.directory)
    out.say(format_runs(rows) if rows else f"no runs in {args.directory}")
    out.result({"runs": rows})
    return EXIT_OK


def cmd_plot(args: argparse.Namespace, out: Output) -> int:
    from trainlab.layout import CONFIG_FILE
    from trainlab.reports.plots import learning_curves
    from trainlab.reports.runs import is_run_dir, read_metrics

    curves = {}
    for run in args.runs:
        path = Path(run)
        if not is_run_dir(path):
            raise TrainlabError(f"{run}: not a trainlab run directory (no {CONFIG_FILE})")
        metrics = read_metrics(path)
        if not metrics:
            raise TrainlabError(f"{run}: has no finished epoch to plot yet")
        check_metrics_rows(path, metrics)
        curves[str(path)] = metrics
    try:
        written = learning_curves(curves, args.out)
    except OSError as exc:
        raise cannot_write(args.out, exc) from None
    out.say(f"Wrote {written}")
    out.result({"out": str(written), "runs": list(curves)})
    return EXIT_OK


def check_metrics_rows(run_dir: Path, metrics: list) -> None:
    """Each row of metrics.jsonl a JSON object with a whole epoch number and numbers for the figures it holds."""
    from trainlab.layout import METRICS_FILE

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for line, row in enumerate(metrics, start=1):
        damaged = not isinstance(row, dict) or not isinstance(row.get("epoch"), int) or isinstance(row["epoch"], bool)
        if not damaged:
            damaged = any(not is_number(value) for key, value in row.items() if key.endswith(("_loss", "_accuracy")))
        if damaged:
            raise TrainlabError(
                f"{run_dir / METRICS_FILE}: row {line} is not an epoch's figures (expected a JSON "
                "object with a whole epoch number and numeric losses and accuracies); the file is "
                "damaged, so it cannot be plotted"
            )


def cmd_summary(args: argparse.Namespace, out: Output) -> int:
    from trainlab.models import create_model, freeze_parameters
    from trainlab.reports.summary import layer_table, parameter_table

    try:
        input_size = tuple(int(part) for part in args.input_size.split(","))
    except ValueError:
        input_size = ()
    if len(input_size) != 3 or min(input_size) < 1:
        raise TrainlabError(f"--input-size must be C,H,W such as 1,28,28, got {args.input_size!r}")
    if input_size[0] > MAX_INPUT_CHANNELS or max(input_size[1:]) > MAX_IMAGE_SIZE:
        raise TrainlabError(
            f"--input-size must have at most {MAX_INPUT_CHANNELS} channels and {MAX_IMAGE_SIZE} "
            f"pixels a side, got {args.input_size!r}"
        )
    if not 1 <= args.num_classes <= MAX_CLASSES:
        raise TrainlabError(f"--num-classes must be between 1 and {MAX_CLASSES:,}, got {args.num_classes:,}")
    model = create_model(args.model, input_size, args.num_classes)
    freeze_parameters(model, args.freeze)
    out.say(str(model))
    table, totals = parameter_table(model)
    out.say(table)
    layers, flops = layer_table(model, input_size)
    out.say(layers)
    out.result({**totals, **flops})
    return EXIT_OK
