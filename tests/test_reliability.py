"""Reliability and security: atomic complete checkpoints, exact resume, graceful stop, divergence, safe loading.

Comparisons between two runs cover every metrics field except `machine_seconds` and
`machine_samples_per_second`: those time the machine and legitimately differ from run to run.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainlab import TrainConfig, load_dataset
from trainlab.checkpoint import load_checkpoint
from trainlab.errors import TrainingDiverged
from trainlab.models.mlp import NeuralNetwork
from trainlab.reports.console import ConsoleReporter
from trainlab.testing import fault_injection
from trainlab.testing.compare import differences, metrics_rows
from trainlab.training.trainer import Trainer

from conftest import REPO, train_args


@pytest.fixture(autouse=True)
def _one_thread_and_no_plots(monkeypatch):
    """One CPU thread: on a shared 2-core machine, two threads per process are many times slower. The end-of-run
    plots are not what these tests check and take seconds to draw."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    import trainlab.reports.run_reports as run_reports

    monkeypatch.setattr(run_reports, "write_run_reports", lambda analysis: [])
    yield
    torch.set_num_threads(threads)


def last_checkpoint(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)


def assert_same_training_state(expected: dict, actual: dict) -> None:
    """Weights, optimizer, RNG and counters equal bit for bit."""
    assert expected["model_state"].keys() == actual["model_state"].keys()
    for key, tensor in expected["model_state"].items():
        assert torch.equal(tensor, actual["model_state"][key]), key
    for key in ("optimizer_state", "scheduler_state", "rng", "epoch", "step", "epoch_progress"):
        assert differences(expected[key], actual[key], key) == []


def no_temporary_files(run_dir: Path) -> bool:
    return not list(run_dir.rglob("*.tmp"))


# --- exact resume after SIGKILL at many moments -------------------------------------------------------------


def test_sigkill_at_many_moments_then_resume_ends_bit_identical_to_an_uninterrupted_run(tmp_path):
    """The CI version of scripts/fault_injection.py (trainlab.testing.fault_injection): 5 real SIGKILLs (before
    the first checkpoint, during a training step, during evaluation, during a checkpoint write, just after an
    epoch-end checkpoint)."""
    report = fault_injection.run_fault_injection(tmp_path, kills=5, seed=7)
    assert report.differences == []
    assert report.moments_hit() == {
        "before first checkpoint",
        "training step",
        "evaluation",
        "checkpoint write",
        "after epoch checkpoint",
    }, report.kills


# --- graceful stop ---------------------------------------------------------------------------------------------


# a run whose resume must restore the shuffle order, the augmentation's random draws and Adam's state exactly
MID_EPOCH_SETTINGS = ("--epochs", "2", "--batch-size", "32", "--shuffle", "--augment", "--optimizer", "adam")
MID_EPOCH_SETTINGS += ("--log-every", "1")  # every batch logged: send_at_batch counts the log lines


def send_at_batch(monkeypatch, batch: int, *signals: signal.Signals) -> None:
    """Deliver real signals to this process from inside the loop, right after training batch `batch`."""
    original = ConsoleReporter.batch_log
    state = {"batches": 0}

    def batch_log(self, loss, current, size):
        state["batches"] += 1
        if state["batches"] == batch:
            for signum in signals:
                os.kill(os.getpid(), signum)
        return original(self, loss, current, size)

    monkeypatch.setattr(ConsoleReporter, "batch_log", batch_log)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_epoch_saves_a_checkpoint_and_the_resumed_run_is_bit_identical(
    signum, tiny_data, tmp_path, run_main, monkeypatch
):
    settings = MID_EPOCH_SETTINGS
    clean = run_main(*train_args(tiny_data, tmp_path / "clean", *settings))
    assert clean.returncode == 0, clean.stderr

    send_at_batch(monkeypatch, 27, signum)  # epoch 2, batch 7 of 20
    stopped = run_main(*train_args(tiny_data, tmp_path / "stopped", *settings))
    assert stopped.returncode == 128 + signum
    assert (
        f"{signum.name} received: checkpoint saved; resume with: trainlab train --resume "
        f"{tmp_path / 'stopped'}" in stopped.stderr
    )
    checkpoint = last_checkpoint(tmp_path / "stopped")
    assert (checkpoint["epoch"], checkpoint["epoch_progress"]["batch"], checkpoint["step"]) == (1, 7, 27)
    assert len(metrics_rows(tmp_path / "stopped")) == 1

    monkeypatch.undo()
    resumed = run_main("train", "--resume", tmp_path / "stopped", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stdout and "epoch 2, batch 7" in resumed.stdout
    assert_same_training_state(last_checkpoint(tmp_path / "clean"), last_checkpoint(tmp_path / "stopped"))
    assert metrics_rows(tmp_path / "stopped") == metrics_rows(tmp_path / "clean")
    assert no_temporary_files(tmp_path / "stopped")


def test_a_second_ctrl_c_stops_at_once_without_writing(tiny_data, tmp_path, run_main, monkeypatch):
    send_at_batch(monkeypatch, 7, signal.SIGINT, signal.SIGINT)
    result = run_main(
        *train_args(tiny_data, tmp_path / "run", "--epochs", "1", "--checkpoint-every", "5", "--log-every", "1")
    )
    assert result.returncode == 128 + signal.SIGINT
    assert result.stderr.strip() == "interrupted"
    assert last_checkpoint(tmp_path / "run")["step"] == 5  # the checkpoint before the Ctrl-Cs, untouched
    assert no_temporary_files(tmp_path / "run")


def wait_until(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_sigterm_to_a_real_process_leaves_a_resumable_checkpoint_and_a_second_trainer_is_locked_out(
    tiny_data, tmp_path, run_main
):
    run_dir = tmp_path / "run"
    settings = ("--epochs", "3", "--batch-size", "4", "--checkpoint-every", "40")
    process = subprocess.Popen(
        [sys.executable, "-m", "trainlab", *train_args(tiny_data, run_dir, *settings)],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # the first checkpoint says training is under way, with the graceful-stop handlers installed
        wait_until(lambda: (run_dir / "checkpoints" / "last.pt").is_file() or process.poll() is not None)
        files_before = sorted(p.name for p in run_dir.iterdir())

        for second in (["train", "--resume", run_dir], train_args(tiny_data, run_dir, "--epochs", "1", "--overwrite")):
            refused = run_main(*second)
            assert refused.returncode == 2
            assert refused.stderr.strip() == (
                f"trainlab train: error: another trainlab process is training into "
                f"{run_dir}; wait for it or choose another --run-dir"
            )
        assert sorted(p.name for p in run_dir.iterdir()) == files_before  # --overwrite cleared nothing

        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"SIGTERM received: checkpoint saved; resume with: trainlab train --resume {run_dir}"
    )
    stopped_at = last_checkpoint(run_dir)["step"]
    assert stopped_at > 0

    resumed = run_main("train", "--resume", run_dir, "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    finished = last_checkpoint(run_dir)
    assert (finished["epoch"], finished["step"]) == (3, 3 * 160)
    assert len(metrics_rows(run_dir)) == 3


# --- resume edge cases --------------------------------------------------------------------------------------------


def test_resuming_a_finished_run_does_nothing_and_says_so(tiny_data, tmp_path, run_main):
    run_dir = tmp_path / "run"
    assert run_main(*train_args(tiny_data, run_dir, "--epochs", "1")).returncode == 0
    checkpoint = run_dir / "checkpoints" / "last.pt"
    before = (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes())

    result = run_main("train", "--resume", run_dir)
    assert result.returncode == 0, result.stderr
    assert f"{run_dir} already finished its 1 epochs; nothing to do" in result.stdout
    assert (checkpoint.stat().st_mtime_ns, checkpoint.read_bytes()) == before


def test_resume_repairs_metrics_and_summary_from_the_checkpoint(tiny_data, tmp_path, run_main):
    """A kill between the epoch-end checkpoint and the metrics write leaves metrics.jsonl one epoch behind."""
    run_dir = tmp_path / "run"
    assert run_main(*train_args(tiny_data, run_dir, "--epochs", "2")).returncode == 0
    complete = (run_dir / "metrics.jsonl").read_text()
    (run_dir / "metrics.jsonl").write_text(complete.splitlines(keepends=True)[0])
    (run_dir / "summary.json").unlink()

    assert run_main("train", "--resume", run_dir).returncode == 0
    assert (run_dir / "metrics.jsonl").read_text() == complete
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"


def test_resuming_a_run_killed_before_its_first_checkpoint_starts_from_the_beginning(tiny_data, tmp_path, run_main):
    assert run_main(*train_args(tiny_data, tmp_path / "clean", "--epochs", "1")).returncode == 0
    killed = tmp_path / "killed"
    killed.mkdir()
    (killed / "config.toml").write_text((tmp_path / "clean" / "config.toml").read_text())
    (killed / ".lock").write_text("12345")
    (killed / ".metrics.jsonl.0123456789ab.tmp").write_text('{"epo')  # a write the kill cut short

    result = run_main("train", "--resume", killed)
    assert result.returncode == 0, result.stderr
    assert "stopped before its first checkpoint; starting it from the beginning" in result.stdout
    assert_same_training_state(last_checkpoint(tmp_path / "clean"), last_checkpoint(killed))
    assert metrics_rows(killed) == metrics_rows(tmp_path / "clean")
    assert no_temporary_files(killed)


def test_a_run_killed_before_writing_its_config_starts_again_with_the_same_command(tiny_data, tmp_path, run_main):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("12345")  # all that a kill right after the lock leaves
    result = run_main(*train_args(tiny_data, run_dir, "--epochs", "1"))
    assert result.returncode == 0, result.stderr


def test_init_from_starts_a_new_run_from_trained_weights_with_a_fresh_optimizer(tiny_data, tmp_path, run_main):
    assert run_main(*train_args(tiny_data, tmp_path / "first", "--epochs", "1", "--optimizer", "adam")).returncode == 0
    trained = last_checkpoint(tmp_path / "first")

    result = run_main(
        *train_args(
            tiny_data,
            tmp_path / "second",
            "--epochs",
            "1",
            "--optimizer",
            "adam",
            "--lr",
            "1e-12",
            "--init-from",
            tmp_path / "first",
        )
    )
    assert result.returncode == 0, result.stderr
    assert "Initialized weights from" in result.stdout
    second = last_checkpoint(tmp_path / "second")
    for key, tensor in trained["model_state"].items():
        torch.testing.assert_close(second["model_state"][key], tensor)  # lr 1e-12: the weights barely move
    assert second["step"] == 10 and second["epoch"] == 1  # a new run: its own steps and epochs
    adam_steps = {float(state["step"]) for state in second["optimizer_state"]["state"].values()}
    assert adam_steps == {10.0}  # a fresh optimizer: Adam counted only this run's steps


# --- atomic, complete checkpoints ------------------------------------------------------------------------------------


PLAIN_TYPES = (str, int, float, bool, type(None), torch.Tensor)


def plain_types_only(value, where="checkpoint") -> list[str]:
    if isinstance(value, dict):
        return [
            p
            for k, v in value.items()
            for p in ([] if isinstance(k, (str, int)) else [f"{where}: key {k!r}"])
            + plain_types_only(v, f"{where}/{k}")
        ]
    if isinstance(value, (list, tuple)):
        return [p for i, v in enumerate(value) for p in plain_types_only(v, f"{where}[{i}]")]
    return [] if isinstance(value, PLAIN_TYPES) else [f"{where}: {type(value).__name__}"]


def test_checkpoint_holds_the_whole_training_state_in_plain_types(tiny_data, tmp_path, run_main):
    run_dir = tmp_path / "run"
    assert (
        run_main(
            *train_args(tiny_data, run_dir, "--epochs", "1", "--schedule", "cosine", "--checkpoint-every", "3")
        ).returncode
        == 0
    )
    payload = last_checkpoint(run_dir)
    assert {
        "model_state",
        "optimizer_state",
        "scheduler_state",
        "scaler_state",
        "epoch",
        "step",
        "rng",
        "epoch_progress",
        "metrics",
        "config",
    } <= set(payload)
    assert {"python", "numpy", "torch"} <= set(payload["rng"])
    assert payload["scheduler_state"] is not None
    assert payload["config"]["checkpoint_every"] == 3
    assert payload["metrics"] == [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert plain_types_only(payload) == []


def test_every_torch_load_in_trainlab_is_weights_only_but_the_trusted_pickle_path():
    loads, unsafe = 0, []
    for path in (REPO / "src" / "trainlab").rglob("*.py"):
        for function in ast.walk(ast.parse(path.read_text())):
            if not isinstance(function, ast.FunctionDef):
                continue
            for call in ast.walk(function):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "load"
                    and isinstance(call.func.value, ast.Name)
                    and call.func.value.id == "torch"
                ):
                    loads += 1
                    weights_only = [k.value for k in call.keywords if k.arg == "weights_only"]
                    if not (weights_only and isinstance(weights_only[0], ast.Constant) and weights_only[0].value):
                        unsafe.append(f"{path.name}:{function.name}")
    assert loads >= 2
    assert unsafe == ["checkpoint.py:_load_pickled_model"]  # reached only with --trust-pickle


def test_weights_that_became_non_finite_are_never_saved(tiny_data, tmp_path):
    trainer = Trainer(
        TrainConfig(device="cpu"), tmp_path, load_dataset(data_dir=tiny_data, download=False), None, ConsoleReporter()
    )
    trainer.save()
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with torch.no_grad():
        next(trainer.model.parameters())[0, 0] = float("inf")
    with pytest.raises(TrainingDiverged, match="NaN or infinite by step 0.*lower the learning rate"):
        trainer.save()
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


# --- divergence ---------------------------------------------------------------------------------------------------


def test_a_loss_that_keeps_exploding_returns_three_times_at_lower_lrs_then_stops_naming_what_to_try(
    tiny_data, tmp_path, run_main
):
    run_dir = tmp_path / "run"
    result = run_main(*train_args(tiny_data, run_dir, "--epochs", "2", "--lr", "1e6", "--checkpoint-every", "2"))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "trainlab train: error: loss became nan at step 3 (epoch batch 3); still diverging after 3 returns to the "
        "last good state at lower learning rates (now 2.7e+04); the last good checkpoint stays; try --lr 8.1e+03, "
        "--grad-clip 1.0, or --preset auto"
    )
    returns = [line for line in result.stdout.splitlines() if "back to the state after" in line]
    assert returns == [
        f"loss became nan at step 3 (epoch batch 3): back to the state after epoch 0, step 2, with lr {new} instead "
        f"of {old} (return {number} of 3)"
        for number, (old, new) in enumerate([("1e+06", "3e+05"), ("3e+05", "9e+04"), ("9e+04", "2.7e+04")], 1)
    ]
    good = load_checkpoint(run_dir).payload
    assert good["step"] == 2
    assert all(tensor.isfinite().all() for tensor in good["model_state"].values())
    assert no_temporary_files(run_dir)


# --- safe loading -----------------------------------------------------------------------------------------------------


class CreatesMarker:
    """Unpickling this calls open(marker, "w"): a stand-in for any code an attacker wants run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def malicious_files(folder: Path, marker: Path) -> list[Path]:
    payload = {"format": "trainlab-checkpoint", "format_version": 1, "model_state": CreatesMarker(marker)}
    torch.save(payload, folder / "zip.pt")
    torch.save(payload, folder / "legacy.pt", _use_new_zipfile_serialization=False)
    with open(folder / "plain.pkl", "wb") as handle:
        pickle.dump(CreatesMarker(marker), handle, protocol=2)
    run_dir = folder / "run" / "checkpoints"
    run_dir.mkdir(parents=True)
    torch.save(payload, run_dir / "last.pt")
    return [folder / "zip.pt", folder / "legacy.pt", folder / "plain.pkl", folder / "run"]


def test_a_checkpoint_whose_unpickling_would_run_code_is_refused_and_the_code_never_runs(tiny_data, tmp_path, run_main):
    marker = tmp_path / "marker"
    for path in malicious_files(tmp_path, marker):
        for command in (
            ["evaluate", path, "--data-dir", tiny_data],
            ["predict", path, "--test-index", "0"],
            ["export", path, "--format", "safetensors", "--out", tmp_path / "out.safetensors"],
            train_args(tiny_data, tmp_path / "new", "--init-from", path),
        ):
            result = run_main(*command)
            assert result.returncode == 2, (command, result.stderr)
            assert len(result.stderr.strip().splitlines()) == 1
            assert (
                "holds pickled Python objects (builtins.open)" in result.stderr
                or "holds pickled Python objects (io.open)" in result.stderr
            ), result.stderr
            assert "refused" in result.stderr and "--trust-pickle" in result.stderr
    assert not marker.exists()
    assert not (tmp_path / "new").exists() and not (tmp_path / "out.safetensors").exists()


def test_a_whole_pickled_model_loads_only_with_trust_pickle_and_a_warning(tiny_data, tmp_path, run_main):
    torch.manual_seed(0)
    torch.save(NeuralNetwork(), tmp_path / "model.pth")  # the tutorial's torch.save(model, "model.pth")
    refused = run_main("evaluate", tmp_path / "model.pth", "--data-dir", tiny_data)
    assert refused.returncode == 2
    assert "holds pickled Python objects (trainlab.models.mlp.NeuralNetwork)" in refused.stderr
    with pytest.warns(UserWarning, match="--trust-pickle runs code from the file"):
        trusted = run_main(
            "evaluate", tmp_path / "model.pth", "--data-dir", tiny_data, "--model", "mlp", "--trust-pickle"
        )
    assert trusted.returncode == 0, trusted.stderr


def test_weights_export_to_safetensors_and_load_back_exactly(tiny_data, tmp_path, run_main):
    run_dir = tmp_path / "run"
    assert run_main(*train_args(tiny_data, run_dir, "--epochs", "1")).returncode == 0
    out = tmp_path / "weights.safetensors"
    assert run_main("export", run_dir, "--format", "safetensors", "--out", out).returncode == 0
    loaded = load_checkpoint(out)
    assert loaded.kind == "safetensors"
    for key, tensor in last_checkpoint(run_dir)["model_state"].items():
        assert torch.equal(loaded.model_state[key], tensor)
    result = run_main("evaluate", out, "--model", "mlp", "--data-dir", tiny_data, "--json")
    assert result.returncode == 0, result.stderr


def test_a_loss_forced_to_explode_once_returns_to_the_last_good_state_and_finishes_at_a_lower_lr(
    tiny_data, tmp_path, monkeypatch
):
    from trainlab.training import divergence

    exploded = []

    def watch(self, loss, step):  # step 7 of the first try reports an exploding loss, as a runaway lr would
        if step == 7 and not exploded:
            exploded.append(step)
            raise TrainingDiverged("the loss exploded by step 7 (smoothed 40, 17x its start, 2.3)")

    monkeypatch.setattr(divergence.DivergenceGuard, "watch", watch)
    data = load_dataset(data_dir=tiny_data, download=False)
    config = TrainConfig(epochs=2, batch_size=64, lr=0.05, device="cpu", checkpoint_every=5)
    messages = []
    reporter = ConsoleReporter()
    reporter.message = messages.append
    trainer = Trainer(config, tmp_path / "run", data, None, reporter)
    summary = trainer.run()
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert [message for message in messages if not message.startswith("Unlike the training data:")] == [
        "the loss exploded by step 7 (smoothed 40, 17x its start, 2.3): back to the state after epoch 0, step 5, "
        "with lr 0.015 instead of 0.05 (return 1 of 3)"
    ]
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.015)
    assert "lr = 0.015" in (tmp_path / "run" / "config.toml").read_text()  # a resume continues at the lower lr
    assert trainer.step == 20  # 2 epochs of 10 steps: the redone steps are not counted twice


def test_the_guard_calls_a_smoothed_loss_four_times_its_start_an_explosion_but_not_a_noisy_batch():
    from trainlab.training.divergence import DivergenceGuard

    guard = DivergenceGuard()
    for step in range(1, 11):
        guard.watch(2.3, step)  # the starting loss
    guard.watch(30.0, 11)  # one batch at 13x the start: smoothed, 0.9 * 2.3 + 0.1 * 30 = 5.07, under 9.2
    guard.reset_watch()
    for step in range(1, 11):
        guard.watch(2.3, step)
    guard.watch(2.3, 11)
    guard.watch(20.0, 12)  # smoothed: 0.9 * 2.3 + 0.1 * 20 = 4.07, under 9.2
    with pytest.raises(TrainingDiverged, match=r"the loss exploded by step 1\d \(smoothed"):
        for step in range(13, 40):
            guard.watch(50.0, step)
