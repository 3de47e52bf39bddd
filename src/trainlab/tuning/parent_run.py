"""The study's own MLflow run, parent of every trial's run (when the base config tracks to MLflow); its id is
kept in STUDY_DIR/tracking.json (layout.TRACKING_FILE), so that a rerun of the study continues it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainlab.layout import TRACKING_FILE
from trainlab.training.rundir import read_tracking, write_file
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
    """Start (or continue) the study's MLflow run so that trials log as its nested runs; its store checked, and
    the run recorded in STUDY_DIR/tracking.json continued as a run's is (one line when it cannot be reached)."""
    if spec.base.tracking != "mlflow":
        return None
    from trainlab.tuning import mlflow_store as store
    from trainlab.tuning.tracking import DEFAULT_EXPERIMENT, STUDY_MOVES, checked_store, require_mlflow

    require_mlflow()
    import mlflow

    store.shorten_http_waits()
    calls = store.BoundedCalls()  # every call of the check bounded
    try:
        uri, run_id = checked_store(calls, spec.base.tracking_uri, read_tracking(study_dir), study_dir, STUDY_MOVES)
    finally:
        calls.close()
    if uri != store.absolute_uri(mlflow.get_tracking_uri()):
        mlflow.set_tracking_uri(uri)  # the trials' runs go to the same store, as its children
    mlflow.set_experiment(spec.base.tracking_experiment or DEFAULT_EXPERIMENT)
    if run_id is not None:
        return TrackingParent(mlflow.start_run(run_id=run_id), spec.metric)
    run = mlflow.start_run(run_name=name, tags={"trainlab.study_dir": str(study_dir.resolve())})
    mlflow.log_params({"metric": spec.metric, "pruner": spec.pruner, **{d.key: d.spec() for d in spec.search}})
    record = {"backend": "mlflow", "tracking_uri": uri, "configured_uri": spec.base.tracking_uri}
    write_file(study_dir / TRACKING_FILE, (json.dumps({**record, "run_id": run.info.run_id}, indent=2) + "\n").encode())
    return TrackingParent(run, spec.metric)
