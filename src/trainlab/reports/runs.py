"""Listing and comparing run directories."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.training.rundir import read_metrics

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def is_run_dir(path: Path) -> bool:
    return (path / "config.toml").is_file()


def run_row(run_dir: Path) -> dict[str, Any]:
    """One run's configuration and results as a flat dict."""
    try:
        config = tomllib.loads((run_dir / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise TrainlabError(f"{run_dir / 'config.toml'}: cannot be read ({exc})") from None
    metrics = read_metrics(run_dir)
    summary_path = run_dir / "summary.json"
    status = json.loads(summary_path.read_text()).get("status", "finished") if summary_path.is_file() else "stopped"
    best = [row["val_accuracy"] for row in metrics if "val_accuracy" in row]
    return {
        "run": str(run_dir),
        "model": config.get("model", "mlp"),
        "optimizer": config.get("optimizer", "sgd"),
        "lr": config.get("lr", 1e-3),
        "epochs": f"{len(metrics)}/{config.get('epochs', 10)}",
        "best_val_accuracy": max(best) if best else None,
        "test_accuracy": metrics[-1]["test_accuracy"] if metrics else None,
        "machine_seconds": sum(row.get("machine_seconds", 0.0) for row in metrics),
        "status": status,
    }


def list_runs(root: str | os.PathLike = "runs") -> list[dict[str, Any]]:
    """Every run directory directly under root (or root itself if it is one), oldest first."""
    root = Path(root)
    if not root.is_dir():
        raise TrainlabError(f"{root}: no such directory; runs are written to runs/ unless --run-dir says otherwise")
    candidates = [root] if is_run_dir(root) else sorted(p for p in root.iterdir() if is_run_dir(p))
    return [run_row(path) for path in candidates]


def format_runs(rows: list[dict[str, Any]]) -> str:
    """A text table of list_runs rows."""
    def percent(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    header = ("run", "model", "optimizer", "lr", "epochs", "best val", "test", "time", "status")
    table = [header] + [
        (r["run"], r["model"], r["optimizer"], f"{r['lr']:g}", r["epochs"], percent(r["best_val_accuracy"]),
         percent(r["test_accuracy"]), f"{r['machine_seconds']:.0f}s", r["status"]) for r in rows
    ]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip() for row in table)
