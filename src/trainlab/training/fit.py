"""fit(): data -> model -> loop -> checkpoints in a run directory, with exact resume and a graceful stop."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.checkpoint import load_checkpoint, load_weights
from trainlab.config import FILE_DATASETS, TrainConfig, read_config_file
from trainlab.data import DatasetSplits, load_dataset
from trainlab.data.builtin import resolve_data_dir
from trainlab.engine import distributed
from trainlab.engine.reporting import Reporter, Reporters
from trainlab.errors import TrainingInterrupted, TrainlabError
from trainlab.models import check_model_from_file
from trainlab.models.pretrained import init_from_state, pretrained_config
from trainlab.training import budget, fine_tune, rundir
from trainlab.training.recipe import resolve_recipe
from trainlab.training.signals import InterruptAsStop, StopRequest
from trainlab.training.trainer import Trainer

# builds the experiment tracker of a run: (config, run directory, resume, say) -> a Reporter
Tracker = Callable[[TrainConfig, rundir.RunDirectory, bool, Callable[[str], None]], Reporter]


def load_run_config(run_dir: str | os.PathLike, trust_model_code: bool = False) -> TrainConfig:
    """The resolved config a run directory was started with; a package.module:Class model needs trust_model_code."""
    path = Path(run_dir) / rundir.CONFIG_FILE
    if not path.is_file():
        raise TrainlabError(
            f"{run_dir}: not a trainlab run directory (no {rundir.CONFIG_FILE}); check the path "
            "(a run killed before it wrote anything starts again with its original command)"
        )
    values = read_config_file(path)
    check_model_from_file(values.get("model", "mlp"), values.get("extra", {}), str(path), trusted=trust_model_code)
    return TrainConfig.from_dict(values, source=str(path))


def model_name_of(model: nn.Module, configured: str) -> str:
    """The --model name that rebuilds `model`: the configured one if it builds this class, else module:Class."""
    from trainlab.models import registered_class

    if registered_class(configured) is type(model):
        return configured
    return f"{type(model).__module__}:{type(model).__qualname__}"


def fit(
    config: TrainConfig | None = None,
    *,
    model: nn.Module | None = None,
    data: DatasetSplits | None = None,
    run_dir: str | os.PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    init_from: str | os.PathLike | None = None,
    download: bool = True,
    reporter: Reporter | None = None,
    allow_other_data: bool = False,
    reports: bool = False,
    clock: budget.Clock | None = None,
    tracker: Tracker | None = None,
) -> dict[str, Any]:
    """Train `model` (or config.model) on `data` (or config.dataset); returns the run summary dict.

    A resumed run checks that its data is what it was trained on (counts, shapes, classes, labels) unless
    allow_other_data is set. reports=True draws the end-of-run PNG reports into the run directory, as the
    command line does. A config.time_budget counts from `clock` (the command line's: since the process
    started), else from this call. `tracker` builds the experiment tracker config.tracking names (trainlab.fit,
    in trainlab.tuning.tracked, passes MLflow's).
    """
    clock = clock or budget.Clock()
    config = run_config(config or TrainConfig(), model, data, resume)
    dist = distributed.join(config.device)  # torchrun: one process of several; else a process of one
    config = fine_tune.resolved(config, init_from, Path(run_dir) if resume and run_dir else None, dist.active)
    # every process writes into the one name rank 0 chose (a time-stamped default differs by the second)
    path = dist.broadcast(str(run_dir if run_dir is not None else rundir.default_run_dir()))
    files = rundir.RunDirectory(path, primary=dist.primary)
    reporter = with_tracking((reporter or Reporter()) if dist.primary else Reporter(), config, files, resume, tracker)
    try:
        return run_in(
            files,
            config,
            model,
            data,
            resume,
            overwrite,
            init_from,
            download,
            reporter,
            allow_other_data,
            reports,
            budget.TimeBudget(clock, reporter),
        )
    except BaseException as exc:
        reporter.abort(exc)
        raise
    finally:
        distributed.leave()


def run_in(
    files: rundir.RunDirectory,
    config: TrainConfig,
    model: nn.Module | None,
    data: DatasetSplits | None,
    resume: bool,
    overwrite: bool,
    init_from: str | os.PathLike | None,
    download: bool,
    reporter: Reporter,
    allow_other_data: bool,
    reports: bool,
    time_budget: budget.TimeBudget,
) -> dict[str, Any]:
    """fit() in its run directory, with its reporters and its time budget."""
    run_dir = files.path
    stop = StopRequest()
    dist = distributed.current()
    with files.opened(resume, overwrite) as start, stop:
        dist.barrier()  # the others go on once rank 0 has made, checked and locked the run directory
        resumes = resume and dist.broadcast(files.last_checkpoint.is_file())
        prepare = partial(prepared_data, download=download, reporter=reporter, dist=dist, time_budget=time_budget)
        if data is None:
            data = prepare(config)
        recipe = None
        if config.recipe == "auto" and not resumes:
            recipe, data = chosen_recipe(config, data, model, prepare, reporter)
            config = recipe.config
        if not resumes:  # a resume trains the steps its first process planned
            config = time_budget.planned(config, data, model, cap=recipe is not None)
        trainer = Trainer(config, files, data, model, reporter, pretrained=not resumes, budget=time_budget)
        trainer.stop = stop  # one stop request from the lock on: a signal during start-up stops the run too
        trainer.recipe = recipe.to_dict() if recipe is not None else files.read_recipe() if resumes else None
        if resumes:
            time_budget.resuming(config)
            finished = resume_from(trainer, allow_other_data)
            if finished is not None:
                return finished
        elif resume:
            reporter.message(f"{run_dir} stopped before its first checkpoint; starting it from the beginning")
        elif init_from is not None:
            reporter.message(initialized(trainer.model, init_from, trainer.setup.classes))
        elif config.fine_tune and not config.weights:
            reporter.message(fine_tune.FROM_SCRATCH_NOTE)
        if overwrite and not resume:  # only now that data, model and weights are known good
            files.clear()
        start.wrote_config = not resume
        files.write_config(config)
        if recipe is not None:
            files.write_recipe(trainer.recipe)
        reporter.start(start_info(trainer, files))
        for note in limit_notes(trainer):
            reporter.message(note)
        summary = trained(trainer)
    analysis = trainer.analysis()
    paths = files.write_reports(analysis) if reports else []
    reporter.end(summary, {**analysis, "reports": paths})
    if paths:
        reporter.message(f"Reports: {', '.join(str(path) for path in paths)}")
    return summary


def trained(trainer: Trainer) -> dict[str, Any]:
    """trainer.run(); a stop by signal (or by a reporter's KeyboardInterrupt) carries the summary so far, status
    "interrupted", for the Python API."""
    trainer.reporter = InterruptAsStop(trainer.reporter, trainer.stop)  # a reporter's KeyboardInterrupt: as Ctrl-C
    try:
        return trainer.run()
    except TrainingInterrupted as stopped:
        stopped.summary = trainer.summary("interrupted")
        raise


def initialized(model: nn.Module, init_from: str | os.PathLike, classes: Sequence[str]) -> str:
    """--init-from: the weights of any trainlab run or checkpoint (tensors only), the head new where its classes
    differ from the data's (in number or in names); returns what was done, for the user."""
    loaded = load_checkpoint(init_from)
    other = loaded.classes is not None and tuple(loaded.classes) != tuple(classes)
    state, note = init_from_state(model, loaded.model_state, str(loaded.path), other_classes=other)
    load_weights(model, state, source=str(loaded.path))
    return note


def chosen_recipe(config: TrainConfig, data: DatasetSplits, model: nn.Module | None, load, reporter: Reporter):
    """--preset auto: the recipe chosen from the data (said in one block), and the data it trains on."""
    if distributed.current().active:
        raise TrainlabError("--preset auto chooses its recipe in one process; leave out --nproc (or torchrun)")
    if model is not None:
        config = config.replace(recipe_keep=sorted({*config.recipe_keep, "model"}))
    chosen, data = resolve_recipe(config, data, load)
    reporter.message(chosen.describe())
    return chosen, data


def prepared_data(
    config: TrainConfig, download: bool, reporter: Reporter, dist, time_budget: budget.TimeBudget
) -> DatasetSplits:
    """The data, loaded once; decoding and caching the user's image files is data preparation, which a time
    budget does not count (said with its seconds)."""
    started = time.perf_counter()
    data = load_data_once(config, download, reporter, dist)
    time_budget.leave_out_preparation(config, time.perf_counter() - started)
    return data


def load_data_once(config: TrainConfig, download: bool, reporter: Reporter, dist) -> DatasetSplits:
    """The data; with several processes rank 0 downloads and builds any cache first, then the others read it."""
    data = load_dataset(config, download=download) if dist.primary else None
    dist.barrier()
    if data is None:
        data = load_dataset(config, download=False)
    for note in data.notes:  # csv/folder data: in memory or streamed, cached or decoded
        reporter.message(note)
    return data


def with_tracking(
    reporter: Reporter, config: TrainConfig, files: rundir.RunDirectory, resume: bool, tracker: Tracker | None
) -> Reporter:
    """The reporters, and the experiment tracker config.tracking names (its store checked before anything runs)."""
    if config.tracking == "none":
        return reporter
    if tracker is None:
        raise TrainlabError(
            f"tracking {config.tracking!r} needs its tracker: call trainlab.fit, which passes it, or pass tracker="
        )
    return Reporters(tracker(config, files, resume, reporter.message), reporter)


def run_config(config: TrainConfig, model: nn.Module | None, data: DatasetSplits | None, resume: bool) -> TrainConfig:
    """The config a run records: the given model's name, and the data copy a later resume must read."""
    if model is not None:
        config = config.replace(model=model_name_of(model, config.model))
    config = pretrained_config(config, fetch=not resume)  # named weights: checked and cached before anything runs
    if not resume and data is None and config.dataset not in FILE_DATASETS and config.data_dir is None:
        # recorded, so that a resume reads the same copy whatever $TRAINLAB_DATA_DIR or the folder is then
        config = config.replace(data_dir=str(resolve_data_dir(None).expanduser().resolve()))
    return config


def start_info(trainer: Trainer, files: rundir.RunDirectory) -> dict[str, Any]:
    """What the reporters are told when training starts."""
    return {
        "device": str(trainer.device),
        "threads": torch.get_num_threads(),
        "run_dir": str(files.path),
        "tensorboard_dir": files.tensorboard_dir,
        "train_samples": len(trainer.train_data),
        "test_samples": len(trainer.test_data),
    }


def limit_notes(trainer: Trainer) -> list[str]:
    """What --limit-train-batches and --limit-eval-batches leave of each epoch, said once at the start."""
    config, notes = trainer.config, []
    if config.limit_train_batches is not None:
        notes.append(
            f"--limit-train-batches {config.limit_train_batches:g}: {trainer.setup.steps_per_epoch} of "
            f"{len(trainer.loader)} batches per epoch"
        )
    if config.limit_eval_batches is not None:
        notes.append(
            f"--limit-eval-batches {config.limit_eval_batches:g}: validation and test figures cover part of "
            "each set, not all of it"
        )
    return notes


def resume_from(trainer: Trainer, allow_other_data: bool) -> dict[str, Any] | None:
    """Restore the run's last checkpoint; a run with nothing left to do returns its summary (else None)."""
    files, config, reporter = trainer.files, trainer.config, trainer.reporter
    trainer.restore(files.last_checkpoint, allow_other_data)
    files.write_metrics(trainer.metrics)  # a kill between checkpoint and metrics left it behind
    if trainer.epoch < trainer.setup.epochs and not trainer.should_stop_early():
        reporter.message(f"Resuming {files} at epoch {trainer.epoch + 1}, batch {trainer.progress.batch}")
        return None
    if not (files / rundir.SUMMARY_FILE).is_file():
        files.write_summary(trainer.summary("finished" if trainer.epoch >= trainer.setup.epochs else "stopped early"))
    if trainer.epoch >= trainer.setup.epochs:
        reporter.message(f"{files} already finished its {trainer.setup.epochs} epochs; nothing to do")
        return trainer.summary("already finished")
    reporter.message(
        f"{files} stopped early after {trainer.epoch} of its {trainer.setup.epochs} epochs "
        f"(--early-stop {config.early_stop}); nothing to do"
    )
    return trainer.summary("already stopped early")
