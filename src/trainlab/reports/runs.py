"""Listing and comparing run directories."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.fileio import read_json_object
from trainlab.layout import CONFIG_FILE, METRICS_FILE, RECIPE_FILE, SUMMARY_FILE

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of a run's metrics.jsonl ([] when it has none yet)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainlabError(f"{path}: cannot be read ({exc})") from None


def is_run_dir(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


COLUMNS = ("model", "optimizer", "lr", "epochs", "best_val_accuracy", "test_accuracy", "machine_seconds")


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run's configuration and results as a flat dict; a damaged run's status says why, its figures are None."""
    try:
        return {"run": str(run_dir), **read_run(run_dir)}
    except (TrainlabError, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__  # one line
        return {"run": str(run_dir), **dict.fromkeys(COLUMNS), "recipe": None, "status": f"damaged: {reason}"}


def read_run(run_dir: Path) -> dict[str, Any]:
    """The figures of run_row, read from the run's files; raises on a damaged file."""
    config_path = run_dir / CONFIG_FILE
    try:
        config = tomllib.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrainlabError(f"{config_path.name} cannot be read ({exc})") from None
    try:
        metrics = read_metrics(run_dir)
    except TrainlabError as exc:  # its message starts with the whole path; the row names the run already
        raise TrainlabError(str(exc).replace(str(run_dir / METRICS_FILE), METRICS_FILE)) from None
    if not all(isinstance(row, dict) for row in metrics):
        raise TrainlabError("metrics.jsonl holds a line that is not a JSON object")
    summary_path = run_dir / SUMMARY_FILE
    status = "stopped"
    if summary_path.is_file():
        try:
            summary = json.loads(summary_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise TrainlabError(f"summary.json cannot be read ({exc})") from None
        if not isinstance(summary, dict):
            raise TrainlabError("summary.json is not a JSON object")
        status = str(summary.get("status", "finished"))
    lr = config.get("lr", 1e-3)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)):
        raise TrainlabError(f"config.toml: lr is {lr!r}, not a number")
    best = [row["val_accuracy"] for row in metrics if "val_accuracy" in row]
    test = [row["test_accuracy"] for row in metrics[-1:] if "test_accuracy" in row]
    return {
        "recipe": read_recipe_choices(run_dir),
        "model": str(config.get("model", "mlp")),
        "optimizer": str(config.get("optimizer", "sgd")),
        "lr": lr,
        "epochs": f"{len(metrics)}/{config.get('epochs', 10)}",
        "best_val_accuracy": float(max(best)) if best else None,
        "test_accuracy": float(test[0]) if test else None,
        "machine_seconds": float(sum(row.get("machine_seconds", 0.0) for row in metrics)),
        "status": status,
    }


def read_recipe_choices(run_dir: Path) -> dict[str, Any] | None:
    """What --preset auto chose for the run ({key: value}), None for a run given its recipe or a damaged record."""
    record = read_json_object(run_dir / RECIPE_FILE)
    try:
        return {str(choice["key"]): choice["value"] for choice in record["choices"]}
    except (KeyError, TypeError):  # no record (None), or one without its list of choices
        return None


def describe_recipe(choices: dict[str, Any]) -> str:
    """A run's auto recipe in one line: `cnn adamw lr 0.002 batch 64 flip off ...`."""
    shown = {"model": "{}", "optimizer": "{}", "lr": "lr {:g}", "batch_size": "batch {}", "image_size": "size {}"}
    parts = [form.format(choices[key]) for key, form in shown.items() if key in choices]
    if "augment_flip" in choices:
        parts.append(f"flips {'on' if choices['augment_flip'] else 'off'}")
    return " ".join(parts)


def recipe_cell(row: dict[str, Any]) -> str:
    """The runs table's recipe: 'auto: ...' chosen from the data, 'given' by flags, '-' for a damaged run."""
    if str(row.get("status", "")).startswith("damaged"):
        return "-"
    return "auto: " + describe_recipe(row["recipe"]) if row.get("recipe") else "given"


def list_runs(root: str | os.PathLike = "runs") -> list[dict[str, Any]]:
    """Every run directory directly under root (or root itself if it is one), oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise TrainlabError(f"{root}: no such directory; runs are written to runs/ unless --run-dir says otherwise")
    candidates = [root] if is_run_dir(root) else sorted(p for p in root.iterdir() if is_run_dir(p))
    return [run_row(path) for path in candidates]


def format_runs(rows: list[dict[str, Any]]) -> str:
    """A text table of list_runs rows; '-' where a figure is unknown."""

    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    def text(value: Any, form: str = "") -> str:
        return "-" if value is None else format(value, form)

    header = ("run", "model", "optimizer", "lr", "epochs", "best val", "test", "time", "recipe", "status")
    table = [header] + [
        (
            r["run"],
            text(r["model"]),
            text(r["optimizer"]),
            text(r["lr"], "g"),
            text(r["epochs"]),
            percent(r["best_val_accuracy"]),
            percent(r["test_accuracy"]),
            "-" if r["machine_seconds"] is None else f"{r['machine_seconds']:.0f}s",
            recipe_cell(r),
            r["status"],
        )
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table
    )
