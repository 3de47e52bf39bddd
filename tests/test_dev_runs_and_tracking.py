"""--limit-train-batches / --limit-eval-batches, --fast-dev-run, and MLflow tracking read back with MLflow's client."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, read_metrics

TINY = ("--device", "cpu", "--threads", "1", "--no-download")


def tiny_config(data_dir: Path, **changes):
    from trainlab import TrainConfig

    return TrainConfig(device="cpu", threads=1, data_dir=str(data_dir), **changes)


# batch limits -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "steps"), [(3, 3), (0.25, 5), (1.0, 20), (500, 20)])
def test_limit_train_batches_takes_a_count_or_a_fraction_of_each_epoch(
    tiny_data, tmp_path, no_run_reports, limit, steps
):
    from trainlab import fit

    # 640 training images in batches of 32: 20 batches per epoch
    summary = fit(tiny_config(tiny_data, epochs=2, batch_size=32, limit_train_batches=limit), run_dir=tmp_path / "r")
    assert summary["steps"] == 2 * steps
    assert summary["epochs"] == 2


def test_limit_eval_batches_scores_exactly_the_first_batches_of_the_test_set(tiny_data, tmp_path, no_run_reports):
    from trainlab import Predictor, fit, load_dataset

    config = tiny_config(tiny_data, epochs=1, eval_batch_size=50, limit_eval_batches=1, limit_train_batches=2)
    summary = fit(config, run_dir=tmp_path / "r")
    test = load_dataset(data_dir=tiny_data, download=False).test
    predictions = Predictor.from_checkpoint(tmp_path / "r").predict(test.images[:50])
    correct = sum(p.index == int(label) for p, label in zip(predictions, test.labels[:50], strict=True))
    assert summary["test_accuracy"] == correct / 50  # 50 images scored, not the 160 of the whole set


def test_a_limited_run_says_what_it_leaves_out_and_logs_against_the_limited_epoch(tiny_data, tmp_path, run_main):
    result = run_main(
        "train", "--data-dir", tiny_data, *TINY, "--epochs", "1", "--batch-size", "32", "--log-every", "1",
        "--limit-train-batches", "2", "--limit-eval-batches", "0.5", "--run-dir", tmp_path / "r",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--limit-train-batches 2: 2 of 20 batches per epoch" in result.stdout
    assert "--limit-eval-batches 0.5: validation and test figures cover part of each set" in result.stdout
    assert "[   64/   64]" in result.stdout  # the tutorial's line, against the 64 images the epoch trains on
    recorded = (tmp_path / "r" / "config.toml").read_text()
    assert "limit_train_batches = 2\n" in recorded  # a count stays a whole number
    assert "limit_eval_batches = 0.5\n" in recorded


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "limit_train_batches must be >= 1"),
        (1.5, "a fraction in (0, 1]"),
        (0.0, "a fraction in (0, 1]"),
        (True, "a number of batches"),
        ("5", "a number of batches"),
    ],
)
def test_bad_batch_limits_are_refused_by_name(value, fragment):
    from trainlab import TrainConfig
    from trainlab.errors import ConfigError

    with pytest.raises(ConfigError, match="limit_train_batches") as caught:
        TrainConfig(limit_train_batches=value)
    assert fragment in str(caught.value)


def test_a_limit_that_is_not_a_number_is_a_usage_error(run_main, tmp_path):
    result = run_main("train", "--limit-eval-batches", "some", "--run-dir", tmp_path / "r")
    assert_one_line_error(result, "--limit-eval-batches", "expected a number of batches (e.g. 5) or a fraction")
    assert not (tmp_path / "r").exists()


# --fast-dev-run -----------------------------------------------------------------------------------------------


def test_fast_dev_run_runs_every_stage_once_and_keeps_nothing(tiny_data, tmp_path, run_main, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = run_main("train", "--fast-dev-run", "--data-dir", tiny_data, *TINY, "--val-split", "0.2", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "fast dev run passed"
    assert summary["steps"] == 2 and summary["epochs"] == 1
    assert summary["run_dir"] is None and summary["checkpoint"] is None
    assert summary["prediction"]["label"] in ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                              "Shirt", "Sneaker", "Bag", "Ankle boot")  # fmt: skip
    assert "Predicted: " in result.stderr and "(test image 0, from the checkpoint)" in result.stderr
    assert "Reports: " in result.stderr  # the report pass ran
    assert "Fast dev run passed: 2 batch(es) of train, validation, test, checkpoint, predict and reports" in (
        result.stderr
    )
    assert list(work.iterdir()) == []  # no runs/, nothing else


def test_fast_dev_run_with_a_run_dir_keeps_a_complete_run(tiny_data, tmp_path, run_main):
    result = run_main("train", "--fast-dev-run", "3", "--data-dir", tiny_data, *TINY, "--run-dir", tmp_path / "dev")
    assert result.returncode == 0, result.stderr
    run = tmp_path / "dev"
    assert (run / "checkpoints" / "last.pt").is_file()
    assert (run / "learning_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [row["epoch"] for row in read_metrics(run)] == [1]
    assert json.loads((run / "summary.json").read_text())["steps"] == 3


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (("--fast-dev-run", "0"), "--fast-dev-run: expected a whole number of batches >= 1"),
        (("--fast-dev-run", "--lr", "auto"), "--fast-dev-run runs a fresh short run; drop --resume/--init-from"),
    ],
)
def test_fast_dev_run_refuses_what_it_cannot_do(tiny_data, tmp_path, run_main, flags, fragment):
    result = run_main("train", *flags, "--data-dir", tiny_data, *TINY)
    assert_one_line_error(result, fragment)


# MLflow -------------------------------------------------------------------------------------------------------

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed (pip install 'trainlab[mlflow]')")


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """A local MLflow store of our own (a SQLite database, artifacts beside it), never the user's."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()


def client_for(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def artifact_paths(client, run_id: str, folder: str | None = None) -> list[str]:
    paths = []
    for item in client.list_artifacts(run_id, folder):
        paths.extend(artifact_paths(client, run_id, item.path) if item.is_dir else [item.path])
    return sorted(paths)


def test_a_tracked_run_logs_params_metrics_artifacts_and_weights(tiny_data, tmp_path, tracking):
    from trainlab import fit

    config = tiny_config(
        tiny_data, epochs=2, lr=0.05, limit_train_batches=4, tracking="mlflow", tracking_uri=tracking,
        tracking_experiment="fashion",
    )  # fmt: skip
    summary = fit(config, run_dir=tmp_path / "run", reports=True)
    record = json.loads((tmp_path / "run" / "tracking.json").read_text())
    client = client_for(tracking)
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "fashion"
    assert run.info.run_name == "run"
    assert run.data.params["lr"] == "0.05" and run.data.params["model"] == "mlp"
    assert run.data.tags["trainlab.status"] == "finished"
    assert run.data.tags["trainlab.run_dir"] == str((tmp_path / "run").resolve())
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    rows = read_metrics(tmp_path / "run")
    assert [(m.step, m.value) for m in history] == [(row["epoch"], row["test_accuracy"]) for row in rows]
    assert summary["test_accuracy"] == rows[-1]["test_accuracy"]
    assert artifact_paths(client, run.info.run_id) == [
        "config.toml",
        "metrics.jsonl",
        "model/model.safetensors",
        "reports/confusion_matrix.png",
        "reports/learning_curves.png",
        "reports/top_losses.png",
        "summary.json",
    ]
    from safetensors.torch import load_file

    local = client.download_artifacts(run.info.run_id, "model/model.safetensors", str(tmp_path))
    weights = load_file(local)
    from trainlab.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt").model_state
    assert set(weights) == set(saved)
    assert all(torch.equal(weights[key], saved[key]) for key in saved)


class StopAfterFirstEpoch:
    """A reporter that sends this process SIGINT at the end of epoch 1, as Ctrl-C would."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def epoch_end(self, row):
        if row["epoch"] == 1:
            os.kill(os.getpid(), signal.SIGINT)


def test_a_stopped_run_is_killed_in_mlflow_and_its_resume_continues_the_same_mlflow_run(tiny_data, tmp_path, tracking):
    from trainlab import fit
    from trainlab.errors import TrainingInterrupted

    config = tiny_config(tiny_data, epochs=2, limit_train_batches=3, tracking="mlflow", tracking_uri=tracking)
    with pytest.raises(TrainingInterrupted):
        fit(config, run_dir=tmp_path / "run", reporter=StopAfterFirstEpoch(), on_interrupt="raise")
    run_id = json.loads((tmp_path / "run" / "tracking.json").read_text())["run_id"]
    client = client_for(tracking)
    assert client.get_run(run_id).info.status == "KILLED"
    assert client.get_run(run_id).data.tags["trainlab.status"] == "stopped"
    fit(config, run_dir=tmp_path / "run", resume=True)
    assert json.loads((tmp_path / "run" / "tracking.json").read_text())["run_id"] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "test_accuracy")] == [1, 2]
    assert len(client.search_runs([run.info.experiment_id])) == 1  # one MLflow run for the one trainlab run


class FailAtEpochEnd:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None

    def epoch_end(self, row):
        raise RuntimeError("a reporter broke")


def test_a_run_that_fails_ends_its_mlflow_run_failed(tiny_data, tmp_path, tracking):
    from trainlab import fit

    config = tiny_config(tiny_data, epochs=1, limit_train_batches=2, tracking="mlflow", tracking_uri=tracking)
    with pytest.raises(RuntimeError, match="a reporter broke"):
        fit(config, run_dir=tmp_path / "run", reporter=FailAtEpochEnd())
    run = client_for(tracking).get_run(json.loads((tmp_path / "run" / "tracking.json").read_text())["run_id"])
    assert run.info.status == "FAILED"
    assert mlflow.active_run() is None


def test_the_tracking_table_of_a_config_file_turns_mlflow_on(tiny_data, tmp_path, tracking, run_main):
    config = tmp_path / "tracked.toml"
    config.write_text(
        f'epochs = 1\nlimit_train_batches = 2\n[tracking]\nuri = "{tracking}"\nexperiment = "from-file"\n'
    )
    result = run_main("train", "--config", config, "--data-dir", tiny_data, *TINY, "--run-dir", tmp_path / "r")
    assert result.returncode == 0, result.stderr
    recorded = (tmp_path / "r" / "config.toml").read_text()
    assert 'tracking = "mlflow"\n' in recorded and 'tracking_experiment = "from-file"\n' in recorded
    client = client_for(tracking)
    experiment = client.get_experiment_by_name("from-file")
    assert [run.info.status for run in client.search_runs([experiment.experiment_id])] == ["FINISHED"]


def test_an_unknown_key_in_the_tracking_table_is_one_line(tmp_path, run_main):
    config = tmp_path / "bad.toml"
    config.write_text('[tracking]\nbackend = "mlflow"\nserver = "x"\n')
    result = run_main("train", "--config", config, "--run-dir", tmp_path / "r")
    assert_one_line_error(result, "unknown key(s) server in [tracking]; valid keys: backend, uri, experiment")
    assert not (tmp_path / "r").exists()


def test_tracking_without_mlflow_installed_says_what_to_install(tiny_data, tmp_path, run_main, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real_find_spec(name, *a)
    )
    result = run_main("train", "--tracking", "mlflow", "--data-dir", tiny_data, *TINY, "--run-dir", tmp_path / "r")
    assert_one_line_error(
        result, "--tracking mlflow needs MLflow, which is not installed; pip install 'trainlab[mlflow]'"
    )
    assert not (tmp_path / "r").exists()


def test_tune_trials_log_as_nested_runs_of_the_study(tiny_data, tmp_path, tracking, run_main):
    study = tmp_path / "study"
    result = run_main(
        "tune", "--data-dir", tiny_data, *TINY, "--val-split", "0.2", "--epochs", "1", "--limit-train-batches", "2",
        "--search", "lr=1e-3:1e-1:log", "--trials", "2", "--run-dir", study, "--tracking", "mlflow",
        "--tracking-uri", tracking,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    client = client_for(tracking)
    experiment = client.get_experiment_by_name("trainlab")
    runs = client.search_runs([experiment.experiment_id])
    parent = [run for run in runs if run.info.run_name == "study"]
    assert len(parent) == 1
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent[0].info.run_id]
    assert sorted(run.info.run_name for run in children) == ["trial-0000", "trial-0001"]
    assert all(run.info.status == "FINISHED" for run in runs)
    assert "best_val_accuracy" in parent[0].data.metrics


# an unreachable or silent tracking store ------------------------------------------------------------------------


@pytest.fixture
def silent_port():
    """A port on this machine that accepts connections and never answers."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


def refused_port() -> int:
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    return port


@pytest.fixture
def short_waits(monkeypatch):
    """MLflow's HTTP waits and trainlab's bounds, shortened so that the tests take seconds."""
    from trainlab.tuning import mlflow_store

    for name, value in {**mlflow_store.HTTP_DEFAULTS, "MLFLOW_HTTP_REQUEST_TIMEOUT": "1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(mlflow_store, "CHECK_SECONDS", 3.0)
    monkeypatch.setattr(mlflow_store, "CALL_SECONDS", 2.0)


@pytest.mark.parametrize("server", ["refused", "silent"])
def test_an_unreachable_tracking_server_is_one_line_before_anything_is_written(
    tiny_data, tmp_path, run_main, silent_port, short_waits, server
):
    port = refused_port() if server == "refused" else silent_port
    uri = f"http://127.0.0.1:{port}"
    result = run_main(
        "train", "--tracking", "mlflow", "--tracking-uri", uri, "--data-dir", tiny_data, *TINY, "--run-dir",
        tmp_path / "r",
    )  # fmt: skip
    line = assert_one_line_error(result, f"MLflow tracking store {uri} cannot be reached (", "check --tracking-uri")
    said = ("Read timed out", "no answer within 3 s") if server == "silent" else ("Connection refused",)
    assert any(reason in line for reason in said), line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("store", ["not a database", "read-only folder"])
def test_an_sqlite_tracking_store_that_cannot_be_used_is_one_line(tiny_data, tmp_path, run_main, monkeypatch, store):
    if store == "not a database":
        path = tmp_path / "notes.db"
        path.write_text("my notes\n")
        problem = f"{path} is not an SQLite database"
    else:  # read-only as the file system says it (root writes through chmod)
        folder = tmp_path / "locked"
        folder.mkdir()
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != folder and real_access(p, mode))
        path = folder / "mlflow.db"
        problem = f"{folder} cannot be written (read-only), so mlflow.db cannot be created there"
    result = run_main(
        "train", "--tracking", "mlflow", "--tracking-uri", f"sqlite:///{path}", "--data-dir", tiny_data, *TINY,
        "--run-dir", tmp_path / "r",
    )  # fmt: skip
    assert_one_line_error(result, f"MLflow tracking store sqlite:///{path} cannot be reached ({problem})")
    assert not (tmp_path / "r").exists() and not (tmp_path / "locked" / "mlflow.db").exists()


class HangingMetrics:
    """MlflowClient.log_batch that never returns for metrics (a server gone silent mid-run), until released."""

    def __init__(self, monkeypatch, marker: Path | None = None):
        import threading

        from mlflow.tracking import MlflowClient

        self.release, self.marker, real = threading.Event(), marker, MlflowClient.log_batch

        def log_batch(client, run_id, metrics=(), params=(), tags=(), **kwargs):
            if metrics:
                self.release.wait()
            return real(client, run_id, metrics=metrics, params=params, tags=tags, **kwargs)

        monkeypatch.setattr(MlflowClient, "log_batch", log_batch)


def test_a_tracking_server_gone_silent_mid_run_never_costs_the_run(
    tiny_data, tmp_path, tracking, run_main, short_waits, monkeypatch
):
    hang = HangingMetrics(monkeypatch)
    try:
        result = run_main(
            "train", "--tracking", "mlflow", "--tracking-uri", tracking, "--data-dir", tiny_data, *TINY, "--epochs",
            "2", "--limit-train-batches", "2", "--run-dir", tmp_path / "r", "--json",
        )  # fmt: skip
    finally:
        hang.release.set()
    assert result.returncode == 0, result.stderr
    said = [line for line in result.stderr.splitlines() if "MLflow tracking stopped" in line]
    assert said == [
        "MLflow tracking stopped (epoch 1: no answer within 2 s); the run's own files in "
        f"{tmp_path / 'r'} hold everything"
    ]
    assert json.loads(result.stdout.splitlines()[-1])["status"] == "finished"
    assert [row["epoch"] for row in read_metrics(tmp_path / "r")] == [1, 2]
    assert (tmp_path / "r" / "summary.json").is_file() and (tmp_path / "r" / "checkpoints" / "last.pt").is_file()


TRAIN_WITH_A_SILENT_SERVER = """
import pathlib
import sys
import threading

from mlflow.tracking import MlflowClient

real, marker = MlflowClient.log_batch, pathlib.Path(sys.argv[1])


def log_batch(client, run_id, metrics=(), params=(), tags=(), **kwargs):
    if metrics:  # the server goes silent once training has begun
        marker.touch()
        threading.Event().wait()
    return real(client, run_id, metrics=metrics, params=params, tags=tags, **kwargs)


MlflowClient.log_batch = log_batch
from trainlab.cli import main

sys.exit(main(sys.argv[2:]))
"""


def test_sigterm_while_the_tracking_server_is_silent_stops_the_run_with_its_checkpoint(tiny_data, tmp_path, tracking):
    import subprocess
    import sys
    import time

    marker, run_dir = tmp_path / "silent", tmp_path / "r"
    process = subprocess.Popen(
        [
            sys.executable, "-c", TRAIN_WITH_A_SILENT_SERVER, str(marker), "train", "--tracking", "mlflow",
            "--tracking-uri", tracking, "--data-dir", str(tiny_data), *TINY, "--epochs", "3", "--run-dir",
            str(run_dir),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), process.communicate(timeout=5)
        process.terminate()  # SIGTERM, as `timeout` and schedulers send it
        out, err = process.communicate(timeout=30)  # the calls give up 2 s after the stop is asked
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "MLflow tracking stopped (epoch 1: no answer, and the run was asked to stop)" in out
    assert f"trainlab train --resume {run_dir}" in err and "Traceback" not in err
    from trainlab.checkpoint import load_checkpoint

    assert load_checkpoint(run_dir / "checkpoints" / "last.pt").payload["epoch"] == 1


# resuming a tracked run ----------------------------------------------------------------------------------------


def test_a_resume_from_another_folder_continues_the_same_mlflow_run_in_the_default_store(
    tiny_data, tmp_path, monkeypatch
):
    from trainlab import fit
    from trainlab.errors import TrainingInterrupted

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(mlflow.tracking._tracking_service.utils, "_tracking_uri", None)  # an earlier test's
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    monkeypatch.chdir(first)  # MLflow's default store: mlflow.db in the working folder
    config = tiny_config(tiny_data, epochs=2, limit_train_batches=3, tracking="mlflow")
    with pytest.raises(TrainingInterrupted):
        fit(config, run_dir=tmp_path / "run", reporter=StopAfterFirstEpoch(), on_interrupt="raise")
    record = json.loads((tmp_path / "run" / "tracking.json").read_text())
    assert record["tracking_uri"] == f"sqlite:///{first / 'mlflow.db'}"
    monkeypatch.chdir(other)
    fit(config, run_dir=tmp_path / "run", resume=True)
    assert json.loads((tmp_path / "run" / "tracking.json").read_text()) == record
    assert not (other / "mlflow.db").exists()
    client = client_for(record["tracking_uri"])
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_accuracy")] == [1, 2]
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_run_whose_tracking_store_is_gone_resumes_with_another_tracking_uri_into_a_new_mlflow_run(
    tiny_data, tmp_path, tracking, run_main
):
    from trainlab import fit
    from trainlab.errors import TrainingInterrupted

    config = tiny_config(tiny_data, epochs=2, limit_train_batches=3, tracking="mlflow", tracking_uri=tracking)
    with pytest.raises(TrainingInterrupted):
        fit(config, run_dir=tmp_path / "run", reporter=StopAfterFirstEpoch(), on_interrupt="raise")
    old = json.loads((tmp_path / "run" / "tracking.json").read_text())
    (tmp_path / "mlflow.db").unlink()  # the store is lost
    result = run_main("train", "--resume", tmp_path / "run")
    assert_one_line_error(
        result,
        f"{tmp_path / 'run'} logs to MLflow run {old['run_id']} in {tracking}, which cannot be reached "
        f"({tmp_path / 'mlflow.db'} is gone); bring that store back, or resume with --tracking-uri URI",
    )
    assert not (tmp_path / "mlflow.db").exists()  # no empty store made in its place
    moved = f"sqlite:///{tmp_path / 'moved.db'}"
    result = run_main("train", "--resume", tmp_path / "run", "--tracking-uri", moved)
    assert result.returncode == 0, result.stderr
    record = json.loads((tmp_path / "run" / "tracking.json").read_text())
    assert record["tracking_uri"] == moved and record["run_id"] != old["run_id"]
    client = client_for(moved)
    run = client.get_run(record["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["tracking_uri"] == moved
    rows = read_metrics(tmp_path / "run")
    history = client.get_metric_history(run.info.run_id, "test_accuracy")
    assert [(m.step, m.value) for m in history] == [(row["epoch"], row["test_accuracy"]) for row in rows]
    assert f'tracking_uri = "{moved}"' in (tmp_path / "run" / "config.toml").read_text()


def test_tune_with_a_silent_tracking_server_ends_in_one_line_before_any_trial(
    tiny_data, tmp_path, run_main, silent_port, short_waits
):
    uri = f"http://127.0.0.1:{silent_port}"
    result = run_main(
        "tune", "--data-dir", tiny_data, *TINY, "--val-split", "0.2", "--epochs", "1", "--limit-train-batches", "2",
        "--search", "lr=1e-3:1e-1:log", "--trials", "1", "--run-dir", tmp_path / "study", "--tracking", "mlflow",
        "--tracking-uri", uri,
    )  # fmt: skip
    assert_one_line_error(result, f"MLflow tracking store {uri} cannot be reached (")
    assert not (tmp_path / "study" / "trial-0000").exists()


def test_python_fit_and_tune_trials_write_the_tensorboard_events_train_writes(
    tiny_data, tmp_path, run_main, no_run_reports
):
    import trainlab
    from trainlab.config import TrainConfig

    config = TrainConfig(data_dir=str(tiny_data), epochs=1, device="cpu", limit_train_batches=2)
    trainlab.fit(config, run_dir=tmp_path / "python", download=False)
    result = run_main(
        "tune", "--data-dir", tiny_data, "--device", "cpu", "--no-download", "--val-split", "0.2", "--epochs", "1",
        "--limit-train-batches", "2", "--run-dir", tmp_path / "study", "--search", "lr=0.01,0.1", "--trials", "1",
        "--pruner", "none",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for run_dir in (tmp_path / "python", tmp_path / "study" / "trial-0000"):
        assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 1, run_dir


def test_a_study_whose_recorded_mlflow_run_cannot_be_reached_is_one_line_before_any_trial(
    tiny_data, tmp_path, tracking, run_main
):
    study, run_id = tmp_path / "study", "0" * 32
    study.mkdir()
    record = {"backend": "mlflow", "tracking_uri": tracking, "configured_uri": tracking, "run_id": run_id}
    (study / "tracking.json").write_text(json.dumps(record))
    result = run_main(
        "tune", "--data-dir", tiny_data, *TINY, "--val-split", "0.2", "--epochs", "1", "--limit-train-batches", "2",
        "--search", "lr=0.01,0.1", "--trials", "1", "--run-dir", study, "--tracking", "mlflow",
        "--tracking-uri", tracking,
    )  # fmt: skip
    assert_one_line_error(
        result,
        f"{study} logs to MLflow run {run_id} in {tracking}, which cannot be reached ({tmp_path / 'mlflow.db'} is "
        "gone); bring that store back, or run the study with --tracking-uri URI to log it to a new MLflow run there",
    )
    assert not list(study.glob("trial-*"))
