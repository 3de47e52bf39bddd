"""Shared fixtures: small generated IDX data sets, the real Fashion-MNIST when present, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainlab.reports.runs import read_metrics  # noqa: F401 - for the tests
from trainlab.testing.synthetic import make_images, write_fashion_layout, write_idx  # noqa: F401 - for the tests

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FASHION_CLASSES = (  # the names the data set's own documentation gives, in label order
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A generated Fashion-MNIST-layout data directory (640 train / 160 test images)."""
    return write_fashion_layout(tmp_path / "data")


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real Fashion-MNIST (TRAINLAB_DATA_DIR or ../shared/data); skipped with the reason when absent."""
    candidates = [Path(os.environ["TRAINLAB_DATA_DIR"])] if os.environ.get("TRAINLAB_DATA_DIR") else []
    candidates.append(SHARED_DATA)
    for candidate in candidates:
        if (candidate / "FashionMNIST" / "raw").is_dir():
            return candidate
    pytest.skip(f"real Fashion-MNIST not found (set TRAINLAB_DATA_DIR or provide {SHARED_DATA})")


@pytest.fixture(autouse=True, scope="session")
def _one_cpu_thread() -> None:
    """Tiny models on a shared machine: one intra-op thread, or busy cores make every step 10x slower."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never download: an unset data dir must fail fast rather than reach the network."""
    monkeypatch.delenv("TRAINLAB_DATA_DIR", raising=False)


def run_cli(
    *args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run `python -m trainlab ARGS` in a subprocess; returns the completed process (text output)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "trainlab", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class CliResult:
    """What `trainlab ARGS` did when run in this process: exit status and captured output."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def run_main(capsys: pytest.CaptureFixture):
    """Run `trainlab ARGS` in-process through cli.main (fast: no interpreter start, torch stays imported)."""
    from trainlab.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exc:  # argparse usage errors, --help, --version
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit status 2 and a single stderr line holding every fragment; returns the line."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("trainlab "), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file's bytes but the lock file's (it holds the pid of whoever locked last)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def no_run_reports(monkeypatch: pytest.MonkeyPatch) -> None:
    """No end-of-run PNGs: tests that do not check them save seconds per run."""
    import trainlab.reports.run_reports as run_reports

    monkeypatch.setattr(run_reports, "write_run_reports", lambda analysis: [])


def train_tiny_run(root: Path) -> tuple[Path, Path]:
    """(data dir, run dir) of a finished one-epoch MLP run on generated data under root, without PNG reports."""
    import trainlab.reports.run_reports as run_reports
    from trainlab import TrainConfig, fit

    data_dir = write_fashion_layout(root / "data")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_reports, "write_run_reports", lambda analysis: [])
        fit(
            TrainConfig(epochs=1, device="cpu", data_dir=str(data_dir), threads=1), run_dir=root / "run", download=False
        )
    return data_dir, root / "run"


def train_ok(run_main, data_dir: Path, run_dir: Path, *flags: str) -> CliResult:
    """`trainlab train` on a generated data dir, on the CPU, never downloading; asserts that it succeeded."""
    result = run_main("train", "--data-dir", data_dir, "--run-dir", run_dir, "--device", "cpu", "--no-download", *flags)
    assert result.returncode == 0, result.stderr
    return result


def small_mlp():
    """A seeded 784-32-10 MLP: small enough that 200 steps take a moment."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))


def train_args(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    """`trainlab train` arguments on a generated data dir: the CPU, no download, quiet; then `extra`."""
    return [
        "train",
        "--data-dir",
        str(data_dir),
        "--run-dir",
        str(run_dir),
        "--no-download",
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]
