"""Training on a CUDA GPU: it finishes and learns, bf16 and fp16 autocast train (fp16 with a grad scaler), and a
run stopped mid-epoch resumes bit-identical to an uninterrupted one, CUDA generator included.

The GPU tests are marked `cuda` (`pytest -m cuda`, as benchmarks/gpu.sh runs them) and skip, with the reason
shown (`pytest -rs`), where torch.cuda.is_available() is false. The CPU-side tests at the end check that
checkpoints carry and restore the CUDA generators without needing a GPU.
"""

from __future__ import annotations

import json
import signal

import pytest
import torch
from test_reliability import (
    MID_EPOCH_SETTINGS,
    assert_same_training_state,
    last_checkpoint,
    no_temporary_files,
    send_at_batch,
)

from trainlab import TrainConfig, fit, load_dataset
from trainlab.checkpoint import load_checkpoint
from trainlab.engine import runtime
from trainlab.testing.compare import metrics_rows

from conftest import train_args

NO_GPU = "no CUDA GPU here: torch.cuda.is_available() is false"


def on_cuda(test):
    """Mark a test `cuda` and skip it, saying why, where there is no GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)(test))


def cuda_args(data_dir, run_dir, *extra: str) -> list[str]:
    """train_args on the GPU (the later --device wins)."""
    return train_args(data_dir, run_dir, "--device", "cuda", *extra)


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


LEARNS = ("--optimizer", "adam", "--lr", "3e-3", "--epochs", "4", "--batch-size", "32")  # >= 95% on tiny_data


# --- on a GPU --------------------------------------------------------------------------------------------------


@on_cuda
@pytest.mark.usefixtures("no_run_reports")
def test_training_on_cuda_learns_and_its_checkpoint_evaluates_on_the_cpu(tiny_data, tmp_path, run_main):
    result = run_main(*cuda_args(tiny_data, tmp_path / "run", *LEARNS, "--json"))
    assert result.returncode == 0, result.stderr
    assert "Using cuda device" in result.stderr
    assert last_json(result)["test_accuracy"] >= 0.95
    payload = load_checkpoint(tmp_path / "run").payload
    assert all(tensor.device.type == "cpu" for tensor in payload["model_state"].values())  # loads on any machine
    evaluated = run_main("evaluate", tmp_path / "run", "--device", "cpu", "--no-download", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert last_json(evaluated)["accuracy"] >= 0.95


@on_cuda
@pytest.mark.slow
@pytest.mark.usefixtures("no_run_reports")
def test_one_tutorial_epoch_on_cuda_lands_where_the_cpu_lands(real_data, tmp_path, run_main):
    """The tutorial's settings for one epoch on the real data: about 50% (the CPU's figure is 49.5%); a GPU's
    float sums differ from a CPU's in the last bits, not in what the model learns."""
    result = run_main(
        "train",
        "--data-dir",
        real_data,
        "--run-dir",
        tmp_path / "run",
        "--no-download",
        "--device",
        "cuda",
        "--epochs",
        "1",
        "--quiet",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert 0.40 <= last_json(result)["test_accuracy"] <= 0.60


@on_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.usefixtures("no_run_reports")
def test_autocast_trains_on_cuda_and_fp16_uses_a_grad_scaler(precision, tiny_data, tmp_path):
    config = TrainConfig(
        model="cnn",
        extra={"width": 8},
        precision=precision,
        channels_last=True,
        optimizer="adam",
        lr=3e-3,
        epochs=4,
        batch_size=32,
        device="cuda",
    )
    summary = fit(config, data=load_dataset(data_dir=tiny_data, download=False), run_dir=tmp_path / "run")
    assert summary["test_accuracy"] >= 0.95
    payload = load_checkpoint(tmp_path / "run").payload
    if precision == "fp16":
        assert payload["scaler_state"] is not None and payload["scaler_state"]["scale"] > 1.0  # losses were scaled
    else:
        assert payload["scaler_state"] is None  # bf16 has fp32's range: nothing to scale
    assert all(  # autocast computes in 16 bits; the weights stay float32
        value.dtype == torch.float32 for value in payload["model_state"].values() if value.is_floating_point()
    )


@on_cuda
@pytest.mark.usefixtures("no_run_reports")
def test_a_sigterm_mid_epoch_on_cuda_then_resume_is_bit_identical_cuda_generator_included(
    tiny_data, tmp_path, run_main, monkeypatch
):
    """Augmentation draws from the GPU's generator (the images live on the GPU): a resume that did not restore
    it would crop and flip differently from batch 8 of epoch 2 on, and the weights would differ."""
    settings = MID_EPOCH_SETTINGS
    clean = run_main(*cuda_args(tiny_data, tmp_path / "clean", *settings))
    assert clean.returncode == 0, clean.stderr

    send_at_batch(monkeypatch, 27, signal.SIGTERM)  # epoch 2, batch 7 of 20
    stopped = run_main(*cuda_args(tiny_data, tmp_path / "stopped", *settings))
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    checkpoint = last_checkpoint(tmp_path / "stopped")
    assert (checkpoint["epoch"], checkpoint["epoch_progress"]["batch"], checkpoint["step"]) == (1, 7, 27)
    assert len(checkpoint["rng"]["cuda"]) == torch.cuda.device_count()

    monkeypatch.undo()
    resumed = run_main("train", "--resume", tmp_path / "stopped", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "epoch 2, batch 7" in resumed.stdout
    assert_same_training_state(last_checkpoint(tmp_path / "clean"), last_checkpoint(tmp_path / "stopped"))
    assert metrics_rows(tmp_path / "stopped") == metrics_rows(tmp_path / "clean")
    assert no_temporary_files(tmp_path / "stopped")


# --- the CUDA generators in checkpoints, checked on any machine ------------------------------------------------


class FakeGpus:
    """torch.cuda as a machine with `count` GPUs shows it: one generator state per device."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int):
        self.states = [torch.tensor([device, 7], dtype=torch.uint8) for device in range(count)]
        self.restored: list[list[torch.Tensor]] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [state.clone() for state in self.states])
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: self.restored.append(list(states)))


def test_a_checkpoint_holds_every_gpus_generator_and_a_resume_restores_them(monkeypatch, tmp_path):
    gpus = FakeGpus(monkeypatch, 2)
    state = runtime.rng_state()
    torch.save({"rng": state}, tmp_path / "state.pt")
    loaded = torch.load(tmp_path / "state.pt", weights_only=True)["rng"]  # as a resume reads it
    assert [t.tolist() for t in loaded["cuda"]] == [[0, 7], [1, 7]]
    runtime.restore_rng_state(loaded)
    assert [[t.tolist() for t in states] for states in gpus.restored] == [[[0, 7], [1, 7]]]


def test_a_run_saved_with_two_gpus_resumes_the_generator_of_the_one_gpu_here(monkeypatch):
    saved = {**runtime.rng_state(), "cuda": [torch.tensor([0, 7], dtype=torch.uint8), torch.tensor([1, 7])]}
    gpus = FakeGpus(monkeypatch, 1)
    runtime.restore_rng_state(saved)
    assert [[t.tolist() for t in states] for states in gpus.restored] == [[[0, 7]]]


def test_a_cpu_machine_saves_no_gpu_generators_and_resumes_a_gpu_run_without_them(monkeypatch):
    gpus = FakeGpus(monkeypatch, 0)
    assert "cuda" not in runtime.rng_state()
    before = torch.get_rng_state()
    runtime.restore_rng_state({**runtime.rng_state(), "cuda": [torch.tensor([0, 7], dtype=torch.uint8)]})
    assert gpus.restored == [] and torch.equal(torch.get_rng_state(), before)
