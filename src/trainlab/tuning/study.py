"""`trainlab tune`: an Optuna study over `train`, kept in a real database, each trial a normal run directory.

STUDY_DIR/study.toml       what the study searches (base config, search space, metric): a rerun must match it
STUDY_DIR/study.db         the SQLite study (default storage; any SQLAlchemy URL with --storage)
STUDY_DIR/trial-NNNN/      one trainlab run directory per trial (runs, plot, evaluate and serve work on it)
STUDY_DIR/best.toml        the best trial's config: `trainlab train --config best.toml` trains it again
STUDY_DIR/optimization_history.png, param_importances.png

A study killed mid-trial is continued by the same command: the trials its dead process left running are
marked failed and run again, each resuming its own run directory exactly where it stopped. Several processes
(or machines sharing one database URL) can run trials of one study at once.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.config import TrainConfig, read_config_file
from trainlab.engine.reporting import Reporter, Reporters
from trainlab.errors import ConfigError, RunEndedEarly, TrainlabError
from trainlab.fileio import write_bytes_atomically
from trainlab.reports.runs import read_metrics
from trainlab.tuning.search import Dimension, ModelTrust, check_named_models, parse_search
from trainlab.tuning.storage import connect_args_for, open_bounded, shown

STUDY_FILE = "study.toml"
DATABASE_FILE = "study.db"
BEST_CONFIG_FILE = "best.toml"
HISTORY_PLOT = "optimization_history.png"
IMPORTANCE_PLOT = "param_importances.png"
METRICS = ("val_accuracy", "val_loss")
PRUNERS = ("median", "hyperband", "none")
TUNE_INSTALL = "pip install 'trainlab[tune]'"
STORAGE_ATTEMPTS = 10  # opening a new study database while another process creates its tables


def require_optuna() -> None:
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise TrainlabError(f"trainlab tune needs Optuna, which is not installed; {TUNE_INSTALL}")


def default_study_dir(root: str | os.PathLike = "runs") -> Path:
    return Path(root) / f"tune-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


def direction_of(metric: str) -> str:
    return "minimize" if metric.endswith("_loss") else "maximize"


@dataclass
class StudySpec:
    """What a study searches: fixed at its first start and recorded in study.toml."""

    base: TrainConfig
    search: list[Dimension]
    metric: str = "val_accuracy"
    pruner: str = "median"

    def check(self) -> None:
        if self.metric not in METRICS:
            raise ConfigError(f"unknown --metric {self.metric!r}; choose one of: {', '.join(METRICS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"unknown --pruner {self.pruner!r}; choose one of: {', '.join(PRUNERS)}")
        if not self.base.val_split:
            raise ConfigError(
                f"trainlab tune chooses by {self.metric} on a validation split, never the test set; "
                "add --val-split 0.1 (or val_split in the config)"
            )

    def to_dict(self) -> dict[str, Any]:
        config = {key: value for key, value in self.base.to_dict().items() if value is not None and value != {}}
        return {
            "metric": self.metric,
            "pruner": self.pruner,
            "search": [dimension.spec() for dimension in self.search],
            "config": config,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str) -> StudySpec:
        try:
            base = TrainConfig.from_dict(values["config"], source=source)
            return cls(base, parse_search(values["search"], base, source), values["metric"], values["pruner"])
        except (KeyError, TypeError) as exc:
            raise TrainlabError(f"{source}: not a trainlab study file ({exc}); choose another --run-dir") from None


@dataclass
class TuneOptions:
    """How this process runs the study: how many trials in all, for how long, where it is stored."""

    trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    study_name: str | None = None
    download: bool = True
    model_trust: ModelTrust = field(default_factory=ModelTrust)  # the models a study's files may name


class TrialPruned(RunEndedEarly):
    """Raised from a trial's epoch end when Optuna's pruner stops it (its files are complete to that epoch)."""

    status = "pruned"
    tracking_status = "pruned"


class PruningReporter(Reporter):
    """Reports each epoch's metric to the Optuna trial and stops the run when the pruner says so."""

    def __init__(self, trial: Any, metric: str, run_dir: Path):
        self.trial, self.metric, self.run_dir = trial, metric, run_dir
        self.epoch = 0

    def start(self, info: dict[str, Any]) -> None:
        for row in read_metrics(self.run_dir):  # a resumed trial: its earlier epochs count too
            self.report(row)

    def epoch_end(self, row: dict[str, Any]) -> None:
        self.report(row)
        if self.trial.should_prune():
            raise TrialPruned(f"trial {self.trial.number} pruned after epoch {row['epoch']}")

    def report(self, row: dict[str, Any]) -> None:
        if row.get(self.metric) is not None:
            self.trial.report(float(row[self.metric]), int(row["epoch"]))
            self.epoch = int(row["epoch"])


class TrialConsole(Reporter):
    """One line per epoch of a trial on the human stream."""

    def __init__(self, say: Any, number: int, metric: str):
        self.say, self.number, self.metric = say, number, metric

    def epoch_end(self, row: dict[str, Any]) -> None:
        value = row.get(self.metric)
        shown = f"{100 * value:.2f}%" if value is not None and self.metric.endswith("accuracy") else f"{value:.4f}"
        self.say(f"  trial {self.number} epoch {row['epoch']}: {self.metric} {shown}")

    def message(self, text: str) -> None:
        if text.startswith(("Resuming", "precision auto")):
            self.say(f"  trial {self.number}: {text}")


def open_study_spec(study_dir: Path, spec: StudySpec | None, trust: ModelTrust) -> StudySpec:
    """The study's spec: recorded in study.toml at its first start; a rerun with other settings is refused."""
    path = study_dir / STUDY_FILE
    if path.is_file():
        recorded = StudySpec.from_dict(read_config_file(path), str(path))
        check_named_models(recorded.base, recorded.search, str(path), trust)  # an edited file runs no code
        if spec is not None and spec.to_dict() != recorded.to_dict():
            changed = [key for key, value in spec.to_dict().items() if recorded.to_dict()[key] != value]
            raise ConfigError(
                f"{study_dir} holds a study with other settings ({', '.join(changed)} differ from {path}); "
                "rerun it with its own flags (or just --run-dir), or choose another --run-dir"
            )
        return recorded
    if spec is None:
        raise ConfigError(f"{study_dir} holds no study ({STUDY_FILE} missing); give --search to start one there")
    import tomli_w

    study_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, tomli_w.dumps(spec.to_dict()).encode())
    return spec


def storage_for(url: str | None, study_dir: Path) -> Any:
    """Optuna's RDBStorage for `url` (default: SQLite in the study folder), waiting for other writers."""
    import optuna

    url = url or f"sqlite:///{(study_dir / DATABASE_FILE).resolve()}"
    engine = {"connect_args": connect_args_for(url)}  # bounded: a server that never answers is one line
    attempts = 0
    while True:
        try:
            return open_bounded(lambda: optuna.storages.RDBStorage(url, engine_kwargs=engine))
        except Exception as exc:  # SQLAlchemy raises many kinds for an unusable URL
            first_line, attempts = str(exc).splitlines()[0], attempts + 1
            if attempts == STORAGE_ATTEMPTS or not creating_elsewhere(first_line):
                raise TrainlabError(f"--storage {shown(url)}: cannot open the study database ({first_line})") from None
            time.sleep(0.5)  # seconds


def creating_elsewhere(error: str) -> bool:
    """An error of two processes creating one study database's tables at once (the later one then finds them)."""
    return any(part in error for part in ("UNIQUE constraint failed", "already exists", "database is locked"))


def pruner_for(name: str, spec: StudySpec) -> Any:
    import optuna

    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "hyperband":
        epochs = [spec.base.epochs] + [d.high for d in spec.search if d.key == "epochs" and d.high is not None]
        epochs += [max(d.choices) for d in spec.search if d.key == "epochs" and d.choices]
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=int(max(epochs)))
    return optuna.pruners.MedianPruner()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_dead_trials(study: Any) -> list[str]:
    """Trials left running by a process of this machine that is gone: failed, and queued to run again
    (each resuming its run directory). Trials of live processes and other machines are left alone."""
    import optuna

    notes = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        attrs = trial.user_attrs
        if attrs.get("host") != host or "pid" not in attrs or process_alive(int(attrs["pid"])):
            continue
        try:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:  # another process starting now recovered it first
            continue
        study.enqueue_trial(trial.params, user_attrs={"resumes": attrs.get("run_dir", "")})
        notes.append(f"trial {trial.number} was left running by a process that is gone; it runs again, resumed")
    return notes


class TrialSeededSampler:
    """Optuna's TPE sampler, seeded afresh for each trial from the seed and the trial's number: a study run by
    one process draws the same points every time, a rerun draws new ones, and processes sharing a study never
    draw the same point for their trials (one seed per process would give each process the same points)."""

    def __init__(self, seed: int):
        import optuna

        self.seed = seed
        self.sampler = optuna.samplers.TPESampler(seed=seed)

    def before_trial(self, study: Any, trial: Any) -> None:
        import optuna

        self.sampler = optuna.samplers.TPESampler(seed=self.seed + trial.number)
        self.sampler.before_trial(study, trial)

    def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
        return self.sampler.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
        return self.sampler.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Any, trial: Any, name: str, distribution: Any) -> Any:
        return self.sampler.sample_independent(study, trial, name, distribution)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        self.sampler.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.sampler.reseed_rng()


def run_study(
    spec: StudySpec | None,
    study_dir: str | os.PathLike | None,
    options: TuneOptions,
    say: Any = print,
) -> dict[str, Any]:
    """Create or continue the study in study_dir and run trials until it has options.trials finished ones
    (or options.timeout passes); returns the summary (trials, best, files)."""
    require_optuna()
    import optuna

    from trainlab.data import load_dataset
    from trainlab.training.fit import run_config

    study_dir = Path(study_dir) if study_dir is not None else default_study_dir()
    data = None
    if spec is not None:
        spec.check()
        spec.base = run_config(spec.base, None, None, resume=False)  # the data copy every trial reads
        if not (study_dir / STUDY_FILE).is_file():  # a new study: bad data fails before its folder exists
            data = load_dataset(spec.base, download=options.download)
    # trainlab says each failed trial in one line; Optuna's own warning repeats it with a traceback
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = storage_for(options.storage, study_dir) if options.storage else None  # a bad URL: nothing written
    spec = open_study_spec(study_dir, spec, options.model_trust)
    storage = storage or storage_for(None, study_dir)  # SQLite in the study folder, now that it exists
    name = options.study_name or study_dir.name
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=direction_of(spec.metric),
        load_if_exists=True,
        pruner=pruner_for(spec.pruner, spec),
    )
    study.sampler = TrialSeededSampler(spec.base.seed)
    for note in recover_dead_trials(study):
        say(note)
    done = finished_trials(study)
    say(f"Study {name} in {study_dir}: {done} of {options.trials} trials finished")
    if done < options.trials:
        if data is None:
            data = load_dataset(spec.base, download=options.download)
        for note in data.notes:
            say(note)
        objective = Objective(spec, study_dir, data, say)
        parent = tracking_parent(spec, study_dir, name)
        try:
            study.optimize(
                objective,
                timeout=options.timeout,
                callbacks=[StopAfter(options.trials)],
                catch=(TrainlabError,),
                gc_after_trial=False,
            )
        finally:
            if parent is not None:
                parent.finish(study)
    return study_summary(study, spec, study_dir, say)


def finished_trials(study: Any) -> int:
    """Trials that count toward --trials: complete, pruned, and failed on their own error (a trial that a dead
    process left running is failed too, but runs again and counts then)."""
    from optuna.trial import TrialState

    return sum(
        trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (trial.state == TrialState.FAIL and "error" in trial.user_attrs)
        for trial in study.get_trials(deepcopy=False)
    )


class StopAfter:
    """Stops the study once it has `trials` finished trials in all, whichever processes ran them."""

    def __init__(self, trials: int):
        self.trials = trials

    def __call__(self, study: Any, trial: Any) -> None:
        if finished_trials(study) >= self.trials:
            study.stop()


class Objective:
    """One trial: the base config with the trial's values, trained by fit() into its own run directory."""

    def __init__(self, spec: StudySpec, study_dir: Path, data: Any, say: Any):
        self.spec, self.study_dir, self.data, self.say = spec, study_dir, data, say

    def __call__(self, trial: Any) -> float:
        from trainlab.tuning.tracked import fit

        params = {dimension.key: dimension.suggest(trial) for dimension in self.spec.search}
        resumes = trial.user_attrs.get("resumes")
        run_dir = Path(resumes) if resumes else self.study_dir / f"trial-{trial.number:04d}"
        resume = bool(resumes) and (run_dir / "config.toml").is_file()
        trial.set_user_attr("run_dir", str(run_dir.resolve()))  # found again from any folder
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        shown = ", ".join(f"{key}={_shown(value)}" for key, value in params.items())
        self.say(f"Trial {trial.number}: {shown}" + (f" (resuming {run_dir})" if resume else ""))
        try:
            config = self.spec.base.replace(**params)
        except TrainlabError as exc:
            trial.set_user_attr("error", str(exc))
            self.say(f"  trial {trial.number} failed: {exc}")
            raise
        pruning = PruningReporter(trial, self.spec.metric, run_dir)
        reporter = Reporters(TrialConsole(self.say, trial.number, self.spec.metric), pruning)
        started = time.perf_counter()
        try:
            summary = fit(config, data=self.data, run_dir=run_dir, resume=resume, reporter=reporter, reports=True)
        except TrialPruned:
            trial.set_user_attr("seconds", time.perf_counter() - started)
            trial.set_user_attr("epochs", pruning.epoch)
            self.say(f"  trial {trial.number} pruned after epoch {pruning.epoch}")
            import optuna

            raise optuna.TrialPruned() from None
        except TrainlabError as exc:
            trial.set_user_attr("error", str(exc))
            self.say(f"  trial {trial.number} failed: {exc}")
            raise
        trial.set_user_attr("seconds", time.perf_counter() - started)
        trial.set_user_attr("epochs", summary["epochs"])
        trial.set_user_attr("test_accuracy", summary["test_accuracy"])  # recorded, never used to choose
        return best_value(run_dir, self.spec.metric)


def _shown(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def best_value(run_dir: Path, metric: str) -> float:
    """The trial's value: its best epoch's metric (what its best.pt holds)."""
    values = [row[metric] for row in read_metrics(run_dir) if row.get(metric) is not None]
    if not values:
        raise TrainlabError(f"{run_dir}: no {metric} in its metrics; the trial cannot be scored")
    return min(values) if metric.endswith("_loss") else max(values)


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


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, params, value, epochs, seconds, run directory."""
    return [
        {
            "number": trial.number,
            "state": trial.state.name.lower(),
            "params": dict(trial.params),
            "value": trial.value,
            "epochs": trial.user_attrs.get("epochs"),
            "seconds": trial.user_attrs.get("seconds"),
            "run_dir": trial.user_attrs.get("run_dir"),
            "error": trial.user_attrs.get("error"),
        }
        for trial in study.get_trials(deepcopy=False)
    ]


def format_table(rows: list[dict[str, Any]], metric: str, best: int | None) -> str:
    """The trials as an aligned text table, the best one marked."""
    keys = sorted({key for row in rows for key in row["params"]})
    header = ["#", "state", *keys, metric, "epochs", "seconds"]
    lines = [header]
    for row in rows:
        value = row["value"]
        shown = "-" if value is None else (f"{100 * value:.2f}%" if metric.endswith("accuracy") else f"{value:.4f}")
        lines.append(
            [
                f"{row['number']}{'*' if row['number'] == best else ''}",
                row["state"],
                *(_shown(row["params"][key]) if key in row["params"] else "-" for key in keys),
                shown,
                "-" if row["epochs"] is None else str(row["epochs"]),
                "-" if row["seconds"] is None else f"{row['seconds']:.1f}",
            ]
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


def study_summary(study: Any, spec: StudySpec, study_dir: Path, say: Any) -> dict[str, Any]:
    """The table, best.toml and the plots; returns what --json prints."""
    rows = trial_rows(study)
    try:
        best = study.best_trial
    except ValueError:  # no trial completed
        best = None
    say(format_table(rows, spec.metric, best.number if best else None))
    result: dict[str, Any] = {
        "study": study.study_name,
        "study_dir": str(study_dir),
        "metric": spec.metric,
        "trials": rows,
        "pruned": sum(row["state"] == "pruned" for row in rows),
        "best": None,
        "best_config": None,
        "plots": [],
    }
    if best is None:
        say("No trial has finished yet; nothing is best")
        return result
    best_config = study_dir / BEST_CONFIG_FILE
    source = Path(best.user_attrs["run_dir"]) / "config.toml"
    write_bytes_atomically(best_config, source.read_bytes())
    result["best"] = {
        "number": best.number,
        "value": best.value,
        "params": best.params,
        "run_dir": best.user_attrs.get("run_dir"),
        "test_accuracy": best.user_attrs.get("test_accuracy"),
    }
    result["best_config"] = str(best_config)
    result["plots"] = [str(path) for path in study_plots(study, study_dir, say)]
    say(f"Best: trial {best.number}, {spec.metric} {best.value:.4f} ({best.user_attrs.get('run_dir')})")
    say(f"Train it again with: trainlab train --config {best_config}")
    return result


def study_plots(study: Any, study_dir: Path, say: Any) -> list[Path]:
    """Optuna's own optimization-history and parameter-importance plots, as PNGs (matplotlib backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    paths = []
    completed = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    plots = [(HISTORY_PLOT, optuna_plots.plot_optimization_history)]
    if len(completed) >= 2 and study.trials[0].params:
        plots.append((IMPORTANCE_PLOT, optuna_plots.plot_param_importances))
    for name, draw in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                axes = draw(study)
            except (ValueError, RuntimeError) as exc:  # e.g. importances of a space with one value tried
                say(f"{name} not drawn: {exc}")
                continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        path = study_dir / name
        content = io.BytesIO()
        figure.savefig(content, format="png", dpi=100)
        plt.close(figure)
        write_bytes_atomically(path, content.getvalue())
        paths.append(path)
    return paths
