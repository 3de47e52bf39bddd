"""Stopping by signal while images stream through DataLoader workers: as graceful as a signal to the main process.

SLURM's scancel, systemd and `kill -TERM -PGID` signal every process of the group, the decoding workers included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from trainlab.checkpoint import load_checkpoint

from conftest import make_images

START_TIMEOUT = 120  # seconds until a run writes a checkpoint
EXIT_TIMEOUT = 60  # seconds from the signal to the exit


def write_class_folders(root: Path, count: int) -> Path:
    """count 28x28 gray PNGs in ROOT/<label>/ folders (10 classes)."""
    from PIL import Image

    images, labels = make_images(count, seed=0)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


class GroupRun:
    """`python -m trainlab ARGS` as the leader of its own process group (its DataLoader workers join it)."""

    def __init__(self, log_dir: Path, *args: str):
        self.stdout_path, self.stderr_path = log_dir / "stdout.txt", log_dir / "stderr.txt"
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "trainlab", *args],
                stdout=stdout,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_for_checkpoint_after(self, checkpoint: Path, before: int | None) -> None:
        """Until checkpoint exists with another mtime (ns) than `before`; fails if the run exits first."""
        deadline = time.monotonic() + START_TIMEOUT
        while not checkpoint.exists() or checkpoint.stat().st_mtime_ns == before:
            assert self.process.poll() is None, f"exited {self.process.returncode}: {self.stderr_path.read_text()}"
            assert time.monotonic() < deadline, f"no new {checkpoint} within {START_TIMEOUT} s"
            time.sleep(0.05)

    def terminate_group_and_wait(self) -> tuple[int, str, str]:
        """SIGTERM to every process of the group, as scancel does: (exit status, stdout, stderr)."""
        os.killpg(self.process.pid, signal.SIGTERM)
        code = self.process.wait(timeout=EXIT_TIMEOUT)
        return code, self.stdout_path.read_text(), self.stderr_path.read_text()

    def stop_once_checkpointed(self, checkpoint: Path, before: int | None) -> tuple[int, str, str]:
        """Wait for a new checkpoint, SIGTERM the group: (exit status, stdout, stderr); nothing is left running."""
        try:
            self.wait_for_checkpoint_after(checkpoint, before)
            return self.terminate_group_and_wait()
        finally:
            self.kill_group()

    def kill_group(self) -> None:
        """SIGKILL whatever is left of the group: the test's own cleanup, never what it checks."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=EXIT_TIMEOUT)


def test_sigterm_to_the_process_group_while_streaming_saves_a_checkpoint_exits_143_and_resumes(tmp_path):
    image_dir = write_class_folders(tmp_path / "images", count=600)
    run_dir, last = tmp_path / "run", tmp_path / "run" / "checkpoints" / "last.pt"
    run = GroupRun(
        tmp_path / "first",
        "train",
        "--dataset",
        "folder",
        "--image-dir",
        str(image_dir),
        "--val-split",
        "0.1",
        "--memory-budget-mb",
        "0",
        "--workers",
        "2",
        "--epochs",
        "50",
        "--batch-size",
        "16",
        "--shuffle",
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        "--threads",
        "1",
        "--checkpoint-every",
        "5",
        "--quiet",
    )
    code, _, stderr = run.stop_once_checkpointed(last, before=None)
    assert code == 128 + signal.SIGTERM, stderr
    assert f"SIGTERM received: checkpoint saved; resume with: trainlab train --resume {run_dir}" in stderr
    assert "killed by signal" not in stderr and "Traceback" not in stderr, stderr
    stopped = load_checkpoint(last).payload
    assert stopped["step"] >= 5

    resumed = GroupRun(tmp_path / "resumed", "train", "--resume", str(run_dir), "--quiet")
    code, stdout, stderr = resumed.stop_once_checkpointed(last, before=last.stat().st_mtime_ns)
    assert code == 128 + signal.SIGTERM, stderr
    assert f"Resuming {run_dir} at epoch {stopped['epoch'] + 1}, batch {stopped['epoch_progress']['batch']}" in stdout
    assert "killed by signal" not in stderr and "Traceback" not in stderr, stderr
    assert load_checkpoint(last).payload["step"] > stopped["step"]
