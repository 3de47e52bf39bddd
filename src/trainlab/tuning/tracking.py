"""MLflow tracking: a run's params, per-epoch metrics, artifacts and tags, logged through MLflow's own client.

The tracking server is config.tracking_uri, else $MLFLOW_TRACKING_URI, else MLflow's own default (a database
and an `mlruns` artifact folder in the current folder). A run that is resumed continues the same MLflow run
(its id is kept in the run directory's tracking.json); a run started while another MLflow run is active (a
`trainlab tune` study) is logged as that run's child.
"""

from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.training.reporting import EPOCH_SCALARS, Reporter

DEFAULT_EXPERIMENT = "trainlab"
MLFLOW_INSTALL = "pip install 'trainlab[mlflow]'"
METRIC_KEYS = (*EPOCH_SCALARS, "machine_seconds")


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


class MlflowReporter(Reporter):
    """Logs one trainlab run as one MLflow run (a nested one when a parent run is active)."""

    def __init__(self, config: Any, files: Any):
        require_mlflow()
        self.config = config
        self.files = files  # the run's RunDirectory: tracking.json and the artifacts come from there
        self.run = None

    def start(self, info: dict[str, Any]) -> None:
        import mlflow

        if not self.files.primary:
            return
        if self.config.tracking_uri:
            mlflow.set_tracking_uri(self.config.tracking_uri)
        experiment = self.config.tracking_experiment or DEFAULT_EXPERIMENT
        previous = self.files.read_tracking()
        try:
            mlflow.set_experiment(experiment)
            if previous.get("run_id") and previous.get("tracking_uri") == mlflow.get_tracking_uri():
                self.run = mlflow.start_run(run_id=previous["run_id"], nested=mlflow.active_run() is not None)
            else:
                self.run = mlflow.start_run(
                    run_name=self.files.path.name,
                    nested=mlflow.active_run() is not None,
                    tags={
                        "trainlab.run_dir": str(self.files.path.resolve()),
                        "trainlab.model": self.config.model,
                        "trainlab.dataset": self.config.dataset,
                        "trainlab.device": info["device"],
                    },
                )
                mlflow.log_params(flat_params(self.config.to_dict()))
        except mlflow.exceptions.MlflowException as exc:
            raise TrainlabError(
                f"MLflow at {mlflow.get_tracking_uri()} refused the run: {exc.message.splitlines()[0]}; check "
                "--tracking-uri / $MLFLOW_TRACKING_URI"
            ) from None
        self.files.write_tracking(
            {
                "backend": "mlflow",
                "tracking_uri": mlflow.get_tracking_uri(),
                "experiment": experiment,
                "experiment_id": self.run.info.experiment_id,
                "run_id": self.run.info.run_id,
            }
        )

    def epoch_end(self, row: dict[str, Any]) -> None:
        if self.run is None:
            return
        import mlflow

        values = {key: float(row[key]) for key in METRIC_KEYS if row.get(key) is not None}
        mlflow.log_metrics(values, step=int(row["epoch"]))

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        if self.run is None:
            return
        import mlflow

        for name in ("config.toml", "metrics.jsonl", "summary.json"):
            if (self.files.path / name).is_file():
                mlflow.log_artifact(str(self.files.path / name))
        for path in analysis.get("reports", []):
            mlflow.log_artifact(str(path), artifact_path="reports")
        weights = summary.get("best_checkpoint") or summary.get("checkpoint")
        if weights and Path(weights).is_file():
            self.log_weights(Path(weights))
        mlflow.set_tags({"trainlab.status": summary["status"], "trainlab.epochs": str(summary["epochs"])})
        self.finish("FINISHED")

    def log_weights(self, checkpoint: Path) -> None:
        """The run's weights, exported as a safetensors file (the format `trainlab export` writes)."""
        import mlflow

        from trainlab.inference import Predictor
        from trainlab.inference.export import export_model

        # the run's own model, which the user named or trusted: best.pt may be older than this process (a resume)
        predictor = Predictor.from_checkpoint(checkpoint, model=self.config.model, device="cpu")
        with tempfile.TemporaryDirectory() as scratch:
            out = export_model(predictor, "safetensors", Path(scratch) / "model.safetensors", source=checkpoint)
            mlflow.log_artifact(str(out), artifact_path="model")

    def abort(self, error: BaseException) -> None:
        """The run stopped on an error, a signal or a pruning decision: the MLflow run ends saying which."""
        if self.run is None:
            return
        import mlflow

        from trainlab.errors import TrainingInterrupted

        label = getattr(error, "tracking_status", None)  # "pruned": set by trainlab tune
        if label is None:
            label = "stopped" if isinstance(error, (TrainingInterrupted, KeyboardInterrupt)) else "failed"
        mlflow.set_tag("trainlab.status", label)
        # a pruned trial did what it was asked (its figures are real, it stopped early); a stopped run resumes
        self.finish({"pruned": "FINISHED", "stopped": "KILLED"}.get(label, "FAILED"))

    def finish(self, status: str) -> None:
        """End our MLflow run (the innermost active one: a parent study run stays open)."""
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run.info.run_id:
            mlflow.end_run(status)
        self.run = None
