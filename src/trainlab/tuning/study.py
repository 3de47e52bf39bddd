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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainlab.errors import TrainlabError
from trainlab.tuning.objective import Objective
from trainlab.tuning.parent_run import tracking_parent
from trainlab.tuning.recovery import StopAfter, finished_trials, recover_dead_trials
from trainlab.tuning.sampling import TrialSeededSampler, pruner_for
from trainlab.tuning.search import ModelTrust
from trainlab.tuning.spec import STUDY_FILE, StudySpec, direction_of, open_study_spec
from trainlab.tuning.storage import storage_for
from trainlab.tuning.summary import study_summary

TUNE_INSTALL = "pip install 'trainlab[tune]'"


def require_optuna() -> None:
    import importlib.util

    if importlib.util.find_spec("optuna") is None:
        raise TrainlabError(f"trainlab tune needs Optuna, which is not installed; {TUNE_INSTALL}")


def default_study_dir(root: str | os.PathLike = "runs") -> Path:
    return Path(root) / f"tune-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"


@dataclass
class TuneOptions:
    """How this process runs the study: how many trials in all, for how long, where it is stored."""

    trials: int = 20
    timeout: float | None = None
    storage: str | None = None
    study_name: str | None = None
    download: bool = True
    model_trust: ModelTrust = field(default_factory=ModelTrust)  # the models a study's files may name


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
