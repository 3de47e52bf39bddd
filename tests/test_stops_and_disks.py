"""A run ends in one of three ways: finished, stopped with a resumable checkpoint, or refused before it
wrote anything. Full disks, signals at the edges, closed pipes, changed data and empty splits included."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainlab.checkpoint import load_checkpoint

from conftest import REPO, assert_one_line_error, make_images, snapshot, write_fashion_layout, write_idx
from conftest import train_args as cpu_train_args

pytestmark = pytest.mark.usefixtures("no_run_reports")


def train_args(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    """On one thread: these tests run trainlab processes side by side."""
    return cpu_train_args(data_dir, run_dir, "--threads", "1", *extra)


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A real tmpfs of `size` mounted at folder (root only; skipped elsewhere)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Write zeros into folder until the file system is full."""
    with open(folder / "filler", "wb") as handle:
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 65536)
                handle.flush()


# --- full disks ------------------------------------------------------------------------------------------------


def test_a_real_full_disk_while_checkpointing_is_one_line_and_keeps_the_previous_checkpoint(
    tiny_data, tmp_path, run_main
):
    # the MLP's checkpoint is 2.7 MB: the first fits in 4 MB, the second cannot be written beside it
    with small_disk(tmp_path / "disk", "4m") as disk:
        result = run_main(*train_args(tiny_data, disk / "run", "--epochs", "3"))
        line = assert_one_line_error(
            result,
            f"cannot write checkpoint {disk / 'run' / 'checkpoints' / 'last.pt'}",
            "No space left on device",
            "the previous checkpoint is intact",
        )
        assert "RuntimeError" not in line and "enforce fail" not in line
        assert load_checkpoint(disk / "run").payload["epoch"] == 1
        assert not [p for p in (disk / "run").rglob("*.tmp")]


@pytest.mark.parametrize("export_format", ["state-dict", "safetensors", "torchscript", "onnx"])
def test_a_real_full_disk_while_exporting_is_one_line_and_leaves_no_file(export_format, tiny_data, tmp_path, run_main):
    from trainlab import TrainConfig, fit

    fit(
        TrainConfig(epochs=1, device="cpu", data_dir=str(tiny_data), threads=1),
        run_dir=tmp_path / "run",
        download=False,
    )
    with small_disk(tmp_path / "disk", "1m") as disk:
        out = disk / "model.out"
        assert_one_line_error(
            run_main("export", tmp_path / "run", "--format", export_format, "--out", out),
            f"cannot write {out}",
            "No space left on device",
        )
        assert sorted(p.name for p in disk.iterdir()) == []


def test_a_real_full_disk_while_drawing_a_png_names_the_file(tiny_data, tmp_path, run_main):
    from trainlab import TrainConfig, fit

    fit(
        TrainConfig(epochs=1, device="cpu", data_dir=str(tiny_data), threads=1),
        run_dir=tmp_path / "run",
        download=False,
    )
    with small_disk(tmp_path / "disk", "1m") as disk:
        fill(disk)
        out = disk / "curves.png"
        assert_one_line_error(
            run_main("plot", tmp_path / "run", "--out", out), f"cannot write {out}", "No space left on device"
        )
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_a_full_disk_while_drawing_the_end_of_run_reports_says_the_run_is_saved(
    tiny_data, tmp_path, run_main, monkeypatch
):
    import trainlab.reports.run_reports as run_reports
    from trainlab.reports.plots import learning_curves

    with small_disk(tmp_path / "disk", "1m") as disk:
        fill(disk)
        monkeypatch.setattr(
            run_reports,
            "write_run_reports",
            lambda analysis: [learning_curves({"run": analysis["metrics"]}, disk / "curves.png")],
        )
        result = run_main(*train_args(tiny_data, tmp_path / "run", "--epochs", "1"))
        assert_one_line_error(
            result,
            f"cannot write {disk / 'curves.png'}: No space left on device",
            f"the run itself is complete and saved in {tmp_path / 'run'}",
        )
    assert load_checkpoint(tmp_path / "run").payload["epoch"] == 1


# --- checks before the first step --------------------------------------------------------------------------------


def test_test_images_of_another_size_are_refused_before_the_first_step_and_leave_nothing(tmp_path, run_main):
    data_dir = write_fashion_layout(tmp_path / "data")
    raw = data_dir / "FashionMNIST" / "raw"
    write_idx(raw / "t10k-images-idx3-ubyte", np.zeros((160, 32, 32), dtype=np.uint8))
    result = run_main(*train_args(data_dir, tmp_path / "run", "--epochs", "1"))
    assert_one_line_error(
        result, "the test images of --dataset fashion-mnist", "are 1x32x32", "the training images are 1x28x28"
    )
    assert "Epoch" not in result.stdout and not (tmp_path / "run").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing_behind(tiny_data, tmp_path, run_main, monkeypatch):
    import trainlab.training.setup as setup

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the first step")

    monkeypatch.setattr(setup, "train_one_epoch", broken)
    result = run_main(*train_args(tiny_data, tmp_path / "runs" / "one", "--epochs", "1"))
    assert result.returncode == 1 and "a bug in the first step" in result.stderr
    assert not (tmp_path / "runs").exists()
    again = run_main(*train_args(tiny_data, tmp_path / "runs" / "one", "--epochs", "1"))  # not "already exists"
    assert "already exists" not in again.stderr


@pytest.mark.parametrize("command", ["train", "lr-find"])
def test_a_val_split_that_takes_every_image_is_refused_before_training(command, tiny_data, tmp_path, run_main):
    if command == "lr-find":
        args = [
            "lr-find",
            "--data-dir",
            tiny_data,
            "--no-download",
            "--val-split",
            "0.999",
            "--out",
            tmp_path / "lr.png",
        ]
    else:
        args = train_args(tiny_data, tmp_path / "run", "--val-split", "0.999", "--epochs", "1", "--lr", "auto")
    result = run_main(*args)
    assert_one_line_error(result, "--val-split 0.999 leaves none of the 640 images for training; lower it")
    assert not (tmp_path / "run").exists() and not (tmp_path / "lr.png").exists()


def test_a_val_split_that_holds_out_nothing_is_refused(tmp_path, run_main):
    data_dir = write_fashion_layout(tmp_path / "data", train_count=20, test_count=10)
    result = run_main(*train_args(data_dir, tmp_path / "run", "--val-split", "0.01", "--epochs", "1"))
    assert_one_line_error(result, "--val-split 0.01 holds out none of the 20 training images; raise it")


# --- resume on the data it was trained on -----------------------------------------------------------------------


def test_the_data_directory_from_the_environment_is_recorded_in_the_run(tiny_data, tmp_path, run_main, monkeypatch):
    monkeypatch.setenv("TRAINLAB_DATA_DIR", str(tiny_data))
    result = run_main("train", "--run-dir", tmp_path / "run", "--epochs", "1", "--no-download", "--quiet")
    assert result.returncode == 0, result.stderr
    assert f'data_dir = "{tiny_data.resolve()}"' in (tmp_path / "run" / "config.toml").read_text()


def test_resume_on_changed_data_is_refused_unless_asked_for(tmp_path, run_main):
    data_dir = write_fashion_layout(tmp_path / "data")
    run = tmp_path / "run"
    assert run_main(*train_args(data_dir, run, "--epochs", "1")).returncode == 0
    config = run / "config.toml"
    config.write_text(config.read_text().replace("\nepochs = 1\n", "\nepochs = 2\n"))  # not step_epochs
    images, labels = make_images(640, seed=5)  # same count and shape, other labels
    write_idx(data_dir / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte", labels)
    before = snapshot(run)
    assert_one_line_error(
        run_main("train", "--resume", run, "--quiet"),
        "was trained on other data",
        "different labels_sha256",
        "--allow-other-data",
    )
    assert snapshot(run) == before
    allowed = run_main("train", "--resume", run, "--quiet", "--allow-other-data")
    assert allowed.returncode == 0, allowed.stderr
    assert load_checkpoint(run).payload["epoch"] == 2


# --- signals at the edges, closed pipes ----------------------------------------------------------------------------


def test_a_signal_during_the_last_test_pass_stops_the_run_and_resume_finishes_it(
    tiny_data, tmp_path, run_main, monkeypatch
):
    from trainlab.training.trainer import Trainer

    evaluate = Trainer.evaluate

    def evaluate_then_interrupt(self, data, return_predictions=False):
        result = evaluate(self, data, return_predictions)
        if self.epoch == self.config.epochs - 1 and return_predictions:  # the last epoch's test pass
            os.kill(os.getpid(), signal.SIGINT)
        return result

    monkeypatch.setattr(Trainer, "evaluate", evaluate_then_interrupt)
    result = run_main(*train_args(tiny_data, tmp_path / "run", "--epochs", "2"))
    assert result.returncode == 130, result.stderr
    assert (
        f"SIGINT received: checkpoint saved; resume with: trainlab train --resume {tmp_path / 'run'}" in result.stderr
    )
    assert not (tmp_path / "run" / "summary.json").exists()
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    resumed = run_main("train", "--resume", tmp_path / "run", "--quiet")
    assert resumed.returncode == 0
    assert "already finished its 2 epochs" in resumed.stdout
    assert (tmp_path / "run" / "summary.json").is_file()


def test_a_closed_output_pipe_stops_the_run_quietly_with_a_resumable_checkpoint(tiny_data, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "trainlab", *train_args(tiny_data, run, "--epochs", "20")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        first = process.stdout.readline()  # as `trainlab train | head -1` does
        process.stdout.close()
        _, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert first.startswith(b"Using cpu device")
    assert process.returncode == 128 + signal.SIGPIPE, stderr
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr
    assert b"SIGPIPE received: checkpoint saved" in stderr
    assert 1 <= load_checkpoint(run).payload["epoch"] < 20


def test_json_output_into_a_closed_pipe_ends_quietly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "trainlab", "summary", "--model", "cnn", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    process.stdout.close()  # the reader is gone before the JSON line is written
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGPIPE
    assert b"Traceback" not in stderr and b"BrokenPipeError" not in stderr and b"error" not in stderr
    assert stderr.startswith(b"SmallCNN(")  # the human part went to stderr as always
