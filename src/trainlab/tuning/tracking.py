"""MLflow tracking: a run's params, per-epoch metrics, artifacts and tags, logged through MLflow's own client.

The tracking store is config.tracking_uri, else $MLFLOW_TRACKING_URI, else MLflow's own default (a database
and an `mlruns` artifact folder in the current folder); it is checked before anything trains, and every call to
it is bounded (mlflow_store). A resumed run continues the same MLflow run in the same store, wherever it is
started from: the store's absolute URI and the run's id are kept in the run directory's tracking.json. A store
that is gone is left behind by resuming with another --tracking-uri: a new MLflow run there gets the earlier
epochs from metrics.jsonl. A run started while another MLflow run is active (a `trainlab tune` study) is logged
as that run's child. A tracking failure mid-run never costs the run: it goes on untracked and says so once.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainlab.engine.reporting import EPOCH_SCALARS, Reporter
from trainlab.errors import TrainlabError
from trainlab.layout import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE
from trainlab.tuning import mlflow_store as store
from trainlab.tuning.mlflow_store import first_line

DEFAULT_EXPERIMENT = "trainlab"
MLFLOW_INSTALL = "pip install 'trainlab[mlflow]'"
METRIC_KEYS = (*EPOCH_SCALARS, "machine_seconds")
PARAMS_PER_CALL = 100  # MLflow's most params in one log_batch
METRICS_PER_CALL = 1000


def require_mlflow() -> None:
    """--tracking mlflow without the package: one line saying what to install, before anything trains."""
    if importlib.util.find_spec("mlflow") is None:
        raise TrainlabError(f"--tracking mlflow needs MLflow, which is not installed; {MLFLOW_INSTALL}")


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """A config as MLflow params: every key that has a value, lists joined, model arguments as extra.NAME."""
    params: dict[str, str] = {}
    for key, value in config.items():
        if key == "extra":
            params.update({f"extra.{name}": str(item) for name, item in value.items()})
        elif isinstance(value, (list, tuple)):
            if value:
                params[key] = ",".join(map(str, value))
        elif value is not None:
            params[key] = str(value)
    return params


def where_to_log(configured: str | None, record: dict[str, Any]) -> tuple[str, str | None]:
    """The store (absolute URI) and the MLflow run a start logs to: a resumed run's own, unless the user moved it
    with another --tracking-uri; else a new run in config.tracking_uri, $MLFLOW_TRACKING_URI or the default."""
    if record.get("run_id") and record.get("tracking_uri"):
        # a record from before configured_uri was kept: moved when the absolute URIs differ
        unchanged = (
            configured == record["configured_uri"]
            if "configured_uri" in record
            else configured is None or store.absolute_uri(configured) == record["tracking_uri"]
        )
        if unchanged:
            return record["tracking_uri"], record["run_id"]
    import mlflow

    return store.absolute_uri(configured or mlflow.get_tracking_uri()), None


RUN_MOVES = (  # how a run whose store is gone logs the rest of itself elsewhere
    "resume with --tracking-uri URI to log the rest of the run to a new MLflow run there (its earlier epochs are "
    "copied from metrics.jsonl)"
)
STUDY_MOVES = "run the study with --tracking-uri URI to log it to a new MLflow run there"


def checked_store(
    calls: store.BoundedCalls, configured: str | None, record: dict[str, Any], folder: Path, moves: str
) -> tuple[str, str | None]:
    """Where a start logs to, once its store answered: the MLflow run `folder`'s tracking.json records (`record`),
    continued in its own store, or a new run; one line when the store or the recorded run cannot be reached
    (`moves`: how to log to a new MLflow run instead)."""
    uri, run_id = where_to_log(configured, record)
    try:
        store.check_store(calls, uri, run_id)
    except store.TrackingUnavailable as exc:
        if run_id is not None:
            raise TrainlabError(
                f"{folder} logs to MLflow run {run_id} in {uri}, which cannot be reached ({exc}); bring that store "
                f"back, or {moves}"
            ) from None
        raise TrainlabError(
            f"MLflow tracking store {uri} cannot be reached ({exc}); check --tracking-uri / "
            "$MLFLOW_TRACKING_URI, or train without --tracking mlflow"
        ) from None
    return uri, run_id


def metric_rows(path: Path) -> list[dict[str, Any]]:
    """The epochs a run has finished, from its metrics.jsonl (none when it has none)."""
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return []


class MlflowReporter(Reporter):
    """Logs one trainlab run as one MLflow run (a nested one when a parent run is active)."""

    def __init__(self, config: Any, files: Any, resume: bool = False, say: Callable[[str], None] | None = None):
        require_mlflow()
        self.config, self.files, self.resume = config, files, resume  # files: the run's RunDirectory
        self.say = say or (lambda text: print(text, file=sys.stderr))
        self.run_id: str | None = None
        self.calls: store.BoundedCalls | None = None
        if files is not None and files.primary:  # before anything is written: an unreachable store is one line
            self.calls = store.BoundedCalls()
            store.shorten_http_waits()
            self.uri, self.continued = self.checked_store()

    def checked_store(self) -> tuple[str, str | None]:
        """Where this start logs to, once its store answered (and holds the run a resume continues)."""
        record = self.files.read_tracking() if self.resume else {}
        return checked_store(self.calls, self.config.tracking_uri, record, self.files.path, RUN_MOVES)

    def start(self, info: dict[str, Any]) -> None:
        if not self.files.primary:
            return
        import mlflow
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        parent = mlflow.active_run()  # a tune study's run, in this thread's MLflow state
        experiment = self.config.tracking_experiment or DEFAULT_EXPERIMENT
        try:
            if self.continued is not None:
                self.calls.call(lambda: client.update_run(self.continued, status="RUNNING"), store.CALL_SECONDS)
                run_id, experiment_id = self.continued, self.files.read_tracking().get("experiment_id")
            else:
                new_run = lambda: self.new_run(client, experiment, info, parent and parent.info.run_id)  # noqa: E731
                run_id, experiment_id = self.calls.call(new_run, store.CALL_SECONDS)
        except Exception as exc:  # MLflow, requests, SQLAlchemy, or no answer in time
            raise TrainlabError(
                f"MLflow at {self.uri} refused the run: {first_line(exc)}; check --tracking-uri / $MLFLOW_TRACKING_URI"
            ) from None
        self.client, self.run_id = client, run_id
        self.files.write_tracking(
            {
                "backend": "mlflow",
                "tracking_uri": self.uri,
                "configured_uri": self.config.tracking_uri,
                "experiment": experiment,
                "experiment_id": experiment_id,
                "run_id": run_id,
            }
        )

    def new_run(self, client: Any, experiment: str, info: dict[str, Any], parent: str | None) -> tuple[str, str]:
        """A new MLflow run with the config as params (and the epochs already trained, for a moved store)."""
        from mlflow.entities import Metric, Param

        found = client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(experiment)
        tags = {
            "trainlab.run_dir": str(self.files.path.resolve()),
            "trainlab.model": self.config.model,
            "trainlab.dataset": self.config.dataset,
            "trainlab.device": info["device"],
            **({"mlflow.parentRunId": parent} if parent else {}),
        }
        run_id = client.create_run(experiment_id, run_name=self.files.path.name, tags=tags).info.run_id
        params = [Param(key, value) for key, value in flat_params(self.config.to_dict()).items()]
        for first in range(0, len(params), PARAMS_PER_CALL):
            client.log_batch(run_id, params=params[first : first + PARAMS_PER_CALL])
        earlier = [m for row in metric_rows(self.files.path / METRICS_FILE) for m in epoch_metrics(row, Metric)]
        for first in range(0, len(earlier), METRICS_PER_CALL):  # a resume into another store: the epochs so far
            client.log_batch(run_id, metrics=earlier[first : first + METRICS_PER_CALL])
        return run_id, experiment_id

    def guarded(self, what: str, call: Callable[[], Any], seconds: float | None = None) -> None:
        """One call to the store; a failure turns tracking off for the rest of the run, said once."""
        if self.run_id is None:
            return
        try:
            self.calls.call(call, store.CALL_SECONDS if seconds is None else seconds)
        except Exception as exc:  # the run goes on whatever the tracking store does
            self.say(
                f"MLflow tracking stopped ({what}: {first_line(exc)}); the run's own files in {self.files.path} "
                "hold everything"
            )
            self.close()

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        metrics, run_id = epoch_metrics(row, Metric), self.run_id
        self.guarded(f"epoch {row['epoch']}", lambda: self.client.log_batch(run_id, metrics=metrics))

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        if self.run_id is None:
            return
        for name in (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE):
            if (self.files.path / name).is_file():
                self.upload(self.files.path / name)
        for path in analysis.get("reports", []):
            self.upload(Path(path), "reports")
        weights = summary.get("best_checkpoint") or summary.get("checkpoint")
        if weights and Path(weights).is_file() and self.run_id is not None:
            self.log_weights(Path(weights))
        tags = {"trainlab.status": summary["status"], "trainlab.epochs": str(summary["epochs"])}
        self.finish(tags, "FINISHED", store.CALL_SECONDS)

    def log_weights(self, checkpoint: Path) -> None:
        """The run's weights, exported as a safetensors file (the format `trainlab export` writes)."""
        from trainlab.inference import Predictor
        from trainlab.inference.export import export_model

        # the run's own model, which the user named or trusted: best.pt may be older than this process (a resume)
        predictor = Predictor.from_checkpoint(checkpoint, model=self.config.model, device="cpu")
        with tempfile.TemporaryDirectory() as scratch:
            out = export_model(predictor, "safetensors", Path(scratch) / "model.safetensors", source=checkpoint)
            self.upload(out, "model")

    def upload(self, path: Path, folder: str | None = None) -> None:
        """One artifact, into `folder` of the run's artifacts."""
        run_id = self.run_id
        self.guarded(path.name, lambda: self.client.log_artifact(run_id, str(path), folder), store.ARTIFACT_SECONDS)

    def abort(self, error: BaseException) -> None:
        """The run stopped on an error, a signal or a pruning decision: the MLflow run ends saying which."""
        if self.run_id is None:
            self.close()
            return
        from trainlab.errors import TrainingInterrupted

        label = getattr(error, "tracking_status", None)  # "pruned": set by trainlab tune
        if label is None:
            label = "stopped" if isinstance(error, (TrainingInterrupted, KeyboardInterrupt)) else "failed"
        # a pruned trial did what it was asked (its figures are real, it stopped early); a stopped run resumes
        self.finish(
            {"trainlab.status": label},
            {"pruned": "FINISHED", "stopped": "KILLED"}.get(label, "FAILED"),
            store.ABORT_SECONDS,
        )

    def finish(self, tags: dict[str, str], status: str, seconds: float) -> None:
        """Tag and end our MLflow run (a parent study run stays open), then let the calling thread go."""
        run_id = self.run_id
        for key, value in tags.items():
            self.guarded("its tags", lambda key=key, value=value: self.client.set_tag(run_id, key, value), seconds)
        self.guarded("its end", lambda: self.client.set_terminated(run_id, status), seconds)
        self.close()

    def close(self) -> None:
        self.run_id = None
        if self.calls is not None:
            self.calls.close()


def epoch_metrics(row: dict[str, Any], metric: Any) -> list[Any]:
    """One metrics.jsonl row as MLflow metrics (step = epoch)."""
    stamp = int(time.time() * 1000)  # milliseconds
    return [metric(key, float(row[key]), stamp, int(row["epoch"])) for key in METRIC_KEYS if row.get(key) is not None]
