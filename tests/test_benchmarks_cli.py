"""The benchmark suite's command line starts; its timings are never asserted in tests."""

from __future__ import annotations

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
