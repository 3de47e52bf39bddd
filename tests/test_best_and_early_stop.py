"""best.pt follows the validation accuracy; early stopping stops, and resume after it does nothing."""

from __future__ import annotations

import json

import pytest
import torch

from trainlab import TrainConfig, fit, load_dataset
from trainlab.checkpoint import load_checkpoint
from trainlab.training import Trainer

from conftest import (
    read_metrics,
    train_ok,
)

pytestmark = pytest.mark.usefixtures("no_run_reports")  # end-of-run PNGs are tested in test_reports


def scripted_validation(monkeypatch, accuracies):
    """Make epoch N's validation accuracy accuracies[N - 1] (the test figures stay real)."""
    real_evaluate = Trainer.evaluate

    def evaluate(self, data, return_predictions=False):
        result = real_evaluate(self, data, return_predictions)
        if data is self.val_data:
            result["accuracy"] = accuracies[self.epoch]
        return result

    monkeypatch.setattr(Trainer, "evaluate", evaluate)


def test_best_pt_holds_the_epoch_with_the_best_validation_accuracy(tiny_data, tmp_path, monkeypatch):
    scripted_validation(monkeypatch, [0.5, 0.9, 0.7, 0.8])
    data = load_dataset(data_dir=tiny_data, download=False)
    config = TrainConfig(epochs=4, val_split=0.25, optimizer="adam", device="cpu")
    summary = fit(config, data=data, run_dir=tmp_path / "run")
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt").payload
    last = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt").payload
    assert (summary["best_epoch"], summary["best_val_accuracy"]) == (2, 0.9)
    assert summary["best_checkpoint"] == str(tmp_path / "run" / "checkpoints" / "best.pt")
    assert (best["epoch"], last["epoch"]) == (2, 4)
    assert best["metrics"][-1]["val_accuracy"] == max(row["val_accuracy"] for row in read_metrics(tmp_path / "run"))
    # its weights are those after epoch 2: the same as the end of a 2-epoch run
    two_epochs = fit(config.replace(epochs=2), data=data, run_dir=tmp_path / "two")
    after_two = load_checkpoint(two_epochs["checkpoint"]).model_state
    assert all(torch.equal(best["model_state"][key], after_two[key]) for key in after_two)
    assert not all(torch.equal(last["model_state"][key], after_two[key]) for key in after_two)


def test_best_pt_follows_the_real_validation_accuracy(tiny_data, tmp_path):
    data = load_dataset(data_dir=tiny_data, download=False)
    summary = fit(TrainConfig(epochs=3, val_split=0.25, lr=0.05, device="cpu"), data=data, run_dir=tmp_path / "run")
    rows = read_metrics(tmp_path / "run")
    accuracies = [row["val_accuracy"] for row in rows]
    assert all(accuracy * 160 == pytest.approx(round(accuracy * 160)) for accuracy in accuracies)  # 160 val images
    assert summary["best_epoch"] == 1 + accuracies.index(max(accuracies))
    best = load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt").payload
    assert best["epoch"] == summary["best_epoch"]
    assert best["metrics"][-1]["val_accuracy"] == max(accuracies)


def test_early_stop_stops_when_validation_accuracy_cannot_improve_and_resume_does_nothing(
    run_main, tiny_data, tmp_path
):
    run_dir = tmp_path / "run"
    # an lr of 1e-9 cannot change a prediction: every epoch ties epoch 1, the best
    result = train_ok(
        run_main,
        tiny_data,
        run_dir,
        "--epochs",
        "10",
        "--lr",
        "1e-9",
        "--val-split",
        "0.2",
        "--early-stop",
        "2",
        "--quiet",
    )
    assert "Early stop: validation accuracy has not improved for 2 epochs (best: epoch 1)" in result.stdout
    rows = read_metrics(run_dir)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    assert len({row["val_accuracy"] for row in rows}) == 1
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["epochs"], summary["best_epoch"]) == ("stopped early", 3, 1)
    before = {path.name: path.read_bytes() for path in (run_dir / "checkpoints").iterdir()}
    before_metrics = (run_dir / "metrics.jsonl").read_bytes()

    resumed = run_main("train", "--resume", run_dir, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert "stopped early" in resumed.stderr
    assert "nothing to do" in resumed.stderr
    assert json.loads(resumed.stdout.splitlines()[-1])["epochs"] == 3
    assert (run_dir / "metrics.jsonl").read_bytes() == before_metrics
    assert {path.name: path.read_bytes() for path in (run_dir / "checkpoints").iterdir()} == before
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "stopped early"


def test_resuming_a_stopped_early_run_without_its_summary_writes_stopped_early(run_main, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    train_ok(
        run_main,
        tiny_data,
        run_dir,
        "--epochs",
        "6",
        "--lr",
        "1e-9",
        "--val-split",
        "0.2",
        "--early-stop",
        "1",
        "--quiet",
    )
    (run_dir / "summary.json").unlink()  # killed between the last checkpoint and the summary
    assert run_main("train", "--resume", run_dir).returncode == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["epochs"]) == ("stopped early", 2)


def test_early_stop_on_the_linear_schedule_first_anneals_the_lr_to_zero_over_a_few_epochs(
    run_main, tiny_data, tmp_path
):
    run_dir = tmp_path / "run"
    # an lr of 1e-9 cannot change a prediction: epoch 1 stays the best, and epoch 3 has waited the patience of 2
    result = train_ok(
        run_main, tiny_data, run_dir, "--epochs", "20", "--lr", "1e-9", "--schedule", "linear", "--val-split", "0.2",
        "--early-stop", "2", "--quiet",
    )  # fmt: skip
    assert (
        "Validation accuracy has not improved for 2 epochs (best: epoch 1): the lr now decays to zero over 2 more "
        "epochs, then the run ends" in result.stdout
    )
    assert [row["epoch"] for row in read_metrics(run_dir)] == [1, 2, 3, 4, 5]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["epochs"], summary["best_epoch"]) == ("stopped early", 5, 1)
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    assert state["optimizer_state"]["param_groups"][0]["lr"] == 0.0  # annealed to zero at the moved end
    assert "epochs = 5\n" in (run_dir / "config.toml").read_text()  # a resume ends where the run ended
