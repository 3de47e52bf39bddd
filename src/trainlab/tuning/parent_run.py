"""The study's own MLflow run, parent of every trial's run (when the base config tracks to MLflow); its id is
kept in STUDY_DIR/tracking.json, so that a rerun of the study continues it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainlab.fileio import write_bytes_atomically
from trainlab.tuning.spec import StudySpec


class TrackingParent:
    """The study's own MLflow run, parent of every trial's run (when the base config tracks to MLflow)."""

    def __init__(self, run: Any, metric: str):
        self.run, self.metric = run, metric

    def finish(self, study: Any) -> None:
        import mlflow

        try:
            best = study.best_trial
        except ValueError:
            best = None
        if best is not None:
            mlflow.log_params({f"best.{key}": str(value) for key, value in best.params.items()})
            mlflow.log_metric(f"best_{self.metric}", float(best.value))
        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run.info.run_id:
            mlflow.end_run()


def tracking_parent(spec: StudySpec, study_dir: Path, name: str) -> TrackingParent | None:
    """Start (or continue) the study's MLflow run so that trials log as its nested runs."""
    if spec.base.tracking != "mlflow":
        return None
    from trainlab.tuning.tracking import DEFAULT_EXPERIMENT, check_tracking_store

    check_tracking_store(spec.base.tracking_uri)  # MLflow installed, its store answering; every call bounded
    import mlflow

    if spec.base.tracking_uri:
        mlflow.set_tracking_uri(spec.base.tracking_uri)
    mlflow.set_experiment(spec.base.tracking_experiment or DEFAULT_EXPERIMENT)
    record_path = study_dir / "tracking.json"
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError):
        record = {}
    if record.get("run_id") and record.get("tracking_uri") == mlflow.get_tracking_uri():
        run = mlflow.start_run(run_id=record["run_id"])
    else:
        run = mlflow.start_run(run_name=name, tags={"trainlab.study_dir": str(study_dir.resolve())})
        mlflow.log_params({"metric": spec.metric, "pruner": spec.pruner, **{d.key: d.spec() for d in spec.search}})
        record = {"backend": "mlflow", "tracking_uri": mlflow.get_tracking_uri(), "run_id": run.info.run_id}
        write_bytes_atomically(record_path, (json.dumps(record, indent=2) + "\n").encode())
    return TrackingParent(run, spec.metric)
