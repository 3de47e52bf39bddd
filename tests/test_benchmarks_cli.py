"""The benchmark suite's command line starts; its timings are never asserted in tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUN_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


def test_benchmark_runner_help_exits_zero():
    completed = subprocess.run(
        [sys.executable, str(RUN_SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "--quick" in completed.stdout


OWN_FILES_SCRIPT = RUN_SCRIPT.parent / "own_files.py"


def test_own_files_benchmark_help_names_its_parts():
    completed = subprocess.run(
        [sys.executable, str(OWN_FILES_SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "--only {decode,start,epoch}" in completed.stdout
    assert "--smoke" in completed.stdout and "--set {jpeg,png}" in completed.stdout


def test_own_files_benchmark_smoke_run_writes_every_part(tmp_path):
    # generated pictures (no Fashion-MNIST: conftest unsets TRAINLAB_DATA_DIR), 40 PNGs, one round, 2 batches
    command = [sys.executable, str(OWN_FILES_SCRIPT), "--smoke", "--count", "40", "--set", "png", "--threads", "1"]
    command += ["--sets-dir", str(tmp_path / "sets"), "--results-dir", str(tmp_path / "results")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr[-3000:]
    (written,) = (tmp_path / "results").glob("own-files-*.json")
    measured = json.loads(written.read_text())["measured"]
    assert sorted(measured) == ["decode", "epoch", "sets", "start"]
    assert list(measured["decode"]) == list(measured["epoch"]) == list(measured["start"]["beyond_import_torch"])
    assert list(measured["decode"]) == ["png"]
    assert measured["sets"]["png"]["source"].startswith("generated gratings")
    assert [path.name for path in (tmp_path / "sets").iterdir()] == ["png-40-14-generated"]
    assert "| png | first decode" in completed.stdout and "| png | cnn training s/epoch" in completed.stdout
