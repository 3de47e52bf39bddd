"""Two runs compared bit for bit: checkpoint payloads, metrics.jsonl and summary.json, machine timings aside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from trainlab.layout import BEST_CHECKPOINT, LAST_CHECKPOINT, METRICS_FILE, SUMMARY_FILE
from trainlab.reports.runs import read_metrics

MACHINE_FIELDS = ("machine_seconds", "machine_samples_per_second")  # they time the machine; they differ per run


def without_machine_fields(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in row.items() if key not in MACHINE_FIELDS} for row in rows]


def metrics_rows(run_dir: Path) -> list[dict[str, Any]]:
    """A run's metrics.jsonl rows without the fields that time the machine."""
    return without_machine_fields(read_metrics(run_dir))


def differences(expected: Any, actual: Any, where: str = "") -> list[str]:
    """Every place where two checkpoint payloads differ, tensors compared bit for bit."""
    if isinstance(expected, torch.Tensor) or isinstance(actual, torch.Tensor):
        same = (
            isinstance(expected, torch.Tensor)
            and isinstance(actual, torch.Tensor)
            and expected.dtype == actual.dtype
            and expected.shape == actual.shape
            and torch.equal(expected, actual)
        )
        return [] if same else [f"{where}: tensors differ"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return [f"{where}: keys {sorted(map(str, set(expected) ^ set(actual)))} differ"]
        return [d for key in expected for d in differences(expected[key], actual[key], f"{where}/{key}")]
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        if len(expected) != len(actual):
            return [f"{where}: lengths {len(expected)} and {len(actual)}"]
        return [
            d for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for d in differences(e, a, f"{where}[{i}]")
        ]
    return [] if expected == actual and type(expected) is type(actual) else [f"{where}: {expected!r} != {actual!r}"]


def compare_runs(reference: Path, survivor: Path) -> list[str]:
    """Differences between two finished run directories, machine timings aside."""
    found = []
    for checkpoint in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        name = checkpoint.name
        expected_path, actual_path = reference / checkpoint, survivor / checkpoint
        if not expected_path.is_file():
            if actual_path.is_file():
                found.append(f"{name} exists only in the interrupted run")
            continue
        expected = torch.load(expected_path, map_location="cpu", weights_only=True)
        actual = torch.load(actual_path, map_location="cpu", weights_only=True)
        for payload in (expected, actual):
            payload["metrics"] = without_machine_fields(payload["metrics"])
        found += differences(expected, actual, name)
    for run in (reference, survivor):
        if not (run / METRICS_FILE).is_file():
            return found + [f"{run} has no {METRICS_FILE}"]
    rows = [metrics_rows(run) for run in (reference, survivor)]
    if rows[0] != rows[1]:
        found.append(f"{METRICS_FILE} differs: {rows[0]} != {rows[1]}")
    leftovers = [str(p) for p in survivor.rglob("*.tmp")]
    if leftovers:
        found.append(f"temporary files left behind: {leftovers}")
    summary_path = survivor / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    if summary.get("status") != "finished":
        found.append(f"{SUMMARY_FILE} status is {summary.get('status')!r}")
    return found
