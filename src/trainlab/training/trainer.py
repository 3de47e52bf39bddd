"""fit(): data -> model -> loop -> checkpoints, with exact resume and a graceful stop."""

from __future__ import annotations

import hashlib
import os
import random
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from trainlab.checkpoint import TrainingState, load_checkpoint, load_weights, model_state, save_checkpoint
from trainlab.config import FILE_DATASETS, TrainConfig, read_config_file
from trainlab.data import DatasetSplits, load_dataset, make_loader
from trainlab.data.augment import Augmentation
from trainlab.data.memory import channel_stats, stratified_split
from trainlab.data.transforms import Preprocessing
from trainlab.data.builtin import resolve_data_dir
from trainlab.errors import (
    CheckpointError, ConfigError, DataError, TrainingDiverged, TrainingInterrupted, TrainlabError,
)
from trainlab.models import check_model_from_file, create_model, freeze_parameters
from trainlab.training import rundir
from trainlab.training.loop import EpochProgress, autocast_for, evaluate, train_one_epoch
from trainlab.training.losses import make_loss
from trainlab.training.optimizers import make_optimizer
from trainlab.training.schedules import make_scheduler
from trainlab.training.runtime import keep_freed_memory
from trainlab.training.signals import StopRequest


class Reporter:
    """What the run tells its user; the base class says nothing. See trainlab.reports.console."""

    def start(self, info: dict[str, Any]) -> None: ...
    def epoch_start(self, epoch: int, batches: int, start_batch: int) -> None: ...
    def step(self, loss: float, batch_size: int) -> None: ...
    def batch_log(self, loss: float, current: int, size: int) -> None: ...
    def epoch_end(self, row: dict[str, Any]) -> None: ...
    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        """The run finished; `analysis` holds the metrics, classes and the last test predictions."""
    def message(self, text: str) -> None: ...


class Reporters(Reporter):
    """Several reporters as one: every call goes to each of them, in order."""

    def __init__(self, *reporters: Reporter):
        self.reporters = reporters

    def start(self, info: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.start(info)

    def epoch_start(self, epoch: int, batches: int, start_batch: int) -> None:
        for reporter in self.reporters:
            reporter.epoch_start(epoch, batches, start_batch)

    def step(self, loss: float, batch_size: int) -> None:
        for reporter in self.reporters:
            reporter.step(loss, batch_size)

    def batch_log(self, loss: float, current: int, size: int) -> None:
        for reporter in self.reporters:
            reporter.batch_log(loss, current, size)

    def epoch_end(self, row: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.epoch_end(row)

    def end(self, summary: dict[str, Any], analysis: dict[str, Any]) -> None:
        for reporter in self.reporters:
            reporter.end(summary, analysis)

    def message(self, text: str) -> None:
        for reporter in self.reporters:
            reporter.message(text)


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit choice must be available."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA GPU is available; use --device auto or cpu")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("--device mps was asked for but MPS is not available; use --device auto or cpu")
    return torch.device(name)


def rng_state() -> dict[str, Any]:
    """Every random generator's state, as plain types and tensors."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def load_run_config(run_dir: str | os.PathLike, trust_model_code: bool = False) -> TrainConfig:
    """The resolved config a run directory was started with; a package.module:Class model needs trust_model_code."""
    path = Path(run_dir) / rundir.CONFIG_FILE
    if not path.is_file():
        raise TrainlabError(f"{run_dir}: not a trainlab run directory (no {rundir.CONFIG_FILE}); check the path "
                            "(a run killed before it wrote anything starts again with its original command)")
    values = read_config_file(path)
    check_model_from_file(values.get("model", "mlp"), values.get("extra", {}), str(path), trusted=trust_model_code)
    return TrainConfig.from_dict(values, source=str(path))


class Trainer:
    """One training run: holds the model, optimizer, data and progress, and writes the run directory."""

    def __init__(self, config: TrainConfig, run_dir: Path, data: DatasetSplits, model: nn.Module | None,
                 reporter: Reporter, pretrained: bool = True):
        self.config = config
        self.run_dir = run_dir
        self.reporter = reporter
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        if self.device.type == "cpu":
            keep_freed_memory()
        self.classes = data.classes
        self.data_fingerprint = data_fingerprint(config, data)
        train, self.val_data = data.train, None
        if config.val_split:
            train, self.val_data = stratified_split(train, config.val_split, config.seed)
        check_splits(config, data, train, self.val_data)
        if self.val_data is not None:
            self.val_data = self.val_data.to(self.device)
        self.train_data = train.to(self.device)
        self.test_data = data.test.to(self.device)
        channels, height, width = train.image_shape
        mean, std = channel_stats(train) if config.normalize else (None, None)
        self.preprocess = Preprocessing(channels, height, width, mean, std)
        self.augment = (Augmentation(config.augment_padding, True, config.augment_erasing)
                        if config.augment else None)
        torch.manual_seed(config.seed)  # model init matches `torch.manual_seed(seed); NeuralNetwork()`
        random.seed(config.seed)
        np.random.seed(config.seed)
        if model is None:
            model = create_model(config.model, train.image_shape, len(self.classes), **self.model_arguments(pretrained))
            if getattr(model, "pretrained_note", None):  # --weights: which layers came from the file, which did not
                reporter.message(model.pretrained_note)
        if config.freeze:
            freeze_parameters(model, config.freeze)
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = make_loss(config.loss, len(self.classes), config.label_smoothing)
        self.optimizer = make_optimizer(config, self.model.parameters())
        self.loader = make_loader(self.train_data, config.batch_size, config.shuffle, config.seed)  # memory or stream
        steps_per_epoch = len(self.loader)
        self.scheduler = None
        if config.schedule != "none" or config.warmup_epochs:
            self.scheduler = make_scheduler(
                config.schedule, self.optimizer, config.lr, config.epochs * steps_per_epoch,
                int(round(config.warmup_epochs * steps_per_epoch)), config.step_epochs * steps_per_epoch,
                config.step_gamma)
        self.forward_model = torch.compile(self.model) if config.compile else self.model
        self.scaler = torch.amp.GradScaler(self.device.type) if config.precision == "fp16" else None
        self.autocast = autocast_for(self.device, config.precision)
        self.epoch = 0  # epochs finished
        self.step = 0  # optimizer steps taken
        self.progress = EpochProgress()
        self.metrics: list[dict[str, Any]] = []
        self.stop = StopRequest()
        self.last_test: dict[str, Any] = {}

    def model_arguments(self, pretrained: bool = True) -> dict[str, Any]:
        """Keyword arguments for create_model; `pretrained=False` skips --weights (a resume restores all weights)."""
        arguments = dict(self.config.extra)
        if self.config.dropout:
            arguments["dropout"] = self.config.dropout
        if self.config.weights and pretrained:
            arguments["weights"] = self.config.weights
        return arguments

    def batches(self):
        """This epoch's remaining batches, augmented on the device when asked."""
        for images, labels in self.loader.batches(self.epoch, self.progress.batch):
            if self.augment is not None:
                images = self.augment(images)
            if self.config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, labels

    @property
    def best(self) -> dict[str, Any] | None:
        """The epoch with the best validation accuracy (None without a validation split)."""
        rows = [row for row in self.metrics if "val_accuracy" in row]
        return max(rows, key=lambda row: row["val_accuracy"]) if rows else None

    # checkpoints -------------------------------------------------------------------------------------------
    def training_state(self) -> TrainingState:
        return TrainingState(
            config=self.config.to_dict(),
            classes=list(self.classes),
            preprocessing=self.preprocess.to_dict(),
            model_state=model_state(self.model),
            optimizer_state=self.optimizer.state_dict(),
            scaler_state=self.scaler.state_dict() if self.scaler is not None else None,
            scheduler_state=self.scheduler.state_dict() if self.scheduler is not None else None,
            epoch=self.epoch,
            step=self.step,
            epoch_progress=asdict(self.progress),
            rng=rng_state(),
            metrics=self.metrics,
            data=self.data_fingerprint,
        )

    def save(self, *names: Path) -> None:
        """Write checkpoints/last.pt (or each of `names`, in order) atomically from one payload.

        Weights that are no longer finite are never saved.
        """
        if not torch.stack([p.isfinite().all() for p in self.model.parameters()]).all():
            raise TrainingDiverged(
                f"the weights became NaN or infinite by step {self.step}; checkpoints/last.pt keeps the last good "
                "state; lower the learning rate or set --grad-clip 1.0"
            )
        payload = self.training_state().to_payload()
        for name in names or (rundir.LAST_CHECKPOINT,):
            save_checkpoint(self.run_dir / name, payload)

    def restore(self, path: Path, allow_other_data: bool = False) -> None:
        state = TrainingState.from_payload(load_checkpoint(path).payload, path)
        recorded = state.data
        if recorded and recorded != self.data_fingerprint and not allow_other_data:
            changed = [key for key in self.data_fingerprint if recorded.get(key) != self.data_fingerprint[key]]
            raise CheckpointError(
                f"{path} was trained on other data than {describe_data(self.config)} holds now (different "
                f"{', '.join(changed)}); point the run at its data again, or pass --allow-other-data to resume on "
                "this data anyway")
        load_weights(self.model, state.model_state, source=str(path))
        try:
            self.optimizer.load_state_dict(state.optimizer_state)
            if self.scaler is not None and state.scaler_state:
                self.scaler.load_state_dict(state.scaler_state)
            if self.scheduler is not None and state.scheduler_state:
                self.scheduler.load_state_dict(state.scheduler_state)
            self.epoch = int(state.epoch)
            self.step = int(state.step)
            self.progress = EpochProgress(**state.epoch_progress)
            self.metrics = list(state.metrics)
            restore_rng_state(state.rng)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: its training state does not fit this run ({exc}); cannot resume") from None

    # the loop ----------------------------------------------------------------------------------------------
    def after_step(self, progress: EpochProgress, loss: float, batch_size: int) -> None:
        self.step += 1
        if self.scheduler is not None:
            self.scheduler.step()
        if (progress.batch - 1) % self.config.log_every == 0:
            self.reporter.batch_log(loss, progress.batch * batch_size, len(self.train_data))
        self.reporter.step(loss, batch_size)
        every = self.config.checkpoint_every
        if self.stop.requested or (every and self.step % every == 0):
            self.save()
        if self.stop.requested:
            raise TrainingInterrupted(str(self.run_dir), self.stop.requested)

    def run_epoch(self) -> dict[str, Any]:
        started = time.perf_counter()
        samples_before = self.progress.samples
        self.reporter.epoch_start(self.epoch + 1, len(self.loader), self.progress.batch)
        if self.progress.lr is None:
            self.progress.lr = self.optimizer.param_groups[0]["lr"]
        lr = self.progress.lr
        train = train_one_epoch(
            self.forward_model, self.batches(), self.loss_fn, self.optimizer,
            self.preprocess, self.progress, autocast=self.autocast, scaler=self.scaler,
            grad_clip=self.config.grad_clip, after_step=self.after_step, step_offset=self.step - self.progress.batch,
        )
        train_seconds = time.perf_counter() - started
        row = {"epoch": self.epoch + 1, "train_loss": train["loss"], "train_accuracy": train["accuracy"]}
        if self.val_data is not None:
            val = self.evaluate(self.val_data)
            row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        test = self.evaluate(self.test_data, return_predictions=True)
        self.last_test = test
        row.update(test_loss=test["loss"], test_accuracy=test["accuracy"], lr=lr,
                   machine_seconds=time.perf_counter() - started,
                   machine_samples_per_second=(self.progress.samples - samples_before) / max(train_seconds, 1e-9))
        self.epoch += 1
        self.progress = EpochProgress()
        self.metrics.append(row)
        if self.best is row:  # best.pt before last.pt: a kill between the two redoes this epoch, and both get written
            self.save(rundir.BEST_CHECKPOINT, rundir.LAST_CHECKPOINT)
        else:
            self.save()
        rundir.write_metrics(self.run_dir, self.metrics)
        self.reporter.epoch_end(row)
        return row

    def evaluate(self, data, return_predictions: bool = False) -> dict[str, Any]:
        return evaluate(self.forward_model, data, self.loss_fn, self.preprocess, self.config.eval_batch_size,
                        autocast=self.autocast, return_predictions=return_predictions)

    def analysis(self) -> dict[str, Any]:
        """What reports need: metrics, classes, test images and labels, the last epoch's predictions."""
        return {"run_dir": self.run_dir, "metrics": self.metrics, "classes": self.classes,
                "test_images": self.test_data.images, "test_labels": self.test_data.labels,
                **{key: self.last_test[key] for key in ("predictions", "confidences")}}

    def stop_if_requested(self) -> None:
        """Between epochs: a signal that came during evaluation or start-up stops the run, checkpoint written."""
        if not self.stop.requested:
            return
        if not (self.run_dir / rundir.LAST_CHECKPOINT).is_file():  # it came before the first step
            self.save()
        raise TrainingInterrupted(str(self.run_dir), self.stop.requested)

    def should_stop_early(self) -> bool:
        best = self.best
        patience = self.config.early_stop
        return bool(patience and best is not None and self.epoch - best["epoch"] >= patience)

    def summary(self, status: str) -> dict[str, Any]:
        final = self.metrics[-1] if self.metrics else {}
        best = self.best or {}
        return {
            "status": status,
            "run_dir": str(self.run_dir),
            "epochs": self.epoch,
            "steps": self.step,
            "test_accuracy": final.get("test_accuracy"),
            "test_loss": final.get("test_loss"),
            "train_loss": final.get("train_loss"),
            "val_accuracy": final.get("val_accuracy"),
            "best_epoch": best.get("epoch"),
            "best_val_accuracy": best.get("val_accuracy"),
            "best_checkpoint": str(self.run_dir / rundir.BEST_CHECKPOINT) if best else None,
            "machine_seconds": sum(r["machine_seconds"] for r in self.metrics),
            "checkpoint": str(self.run_dir / rundir.LAST_CHECKPOINT),
        }

    def run(self) -> dict[str, Any]:
        """Train the remaining epochs; returns the run summary."""
        with self.stop:
            while self.epoch < self.config.epochs:
                self.stop_if_requested()
                self.run_epoch()
                if self.should_stop_early():
                    self.reporter.message(f"Early stop: validation accuracy has not improved for "
                                          f"{self.config.early_stop} epochs (best: epoch {self.best['epoch']})")
                    break
            self.stop_if_requested()  # a signal during the last evaluation still stops the run (resume finishes it)
        summary = self.summary("stopped early" if self.epoch < self.config.epochs else "finished")
        rundir.write_json(self.run_dir / rundir.SUMMARY_FILE, summary)
        return summary


def check_splits(config: TrainConfig, data: DatasetSplits, train, val) -> None:
    """Every split has images, and all of them have the training images' shape and classes: checked before step 1."""
    if len(data.train) == 0:
        raise DataError(f"the training set of {describe_data(config)} holds no images; check the data files")
    if val is not None and len(val) == 0:
        raise DataError(f"--val-split {config.val_split:g} holds out none of the {len(data.train)} training images; "
                        "raise it or leave it out")
    if len(train) == 0:
        raise DataError(f"--val-split {config.val_split:g} leaves none of the {len(data.train)} images for "
                        "training; lower it")
    if len(data.test) == 0:
        raise DataError(f"the test set of {describe_data(config)} holds no images; check the data files")
    shape = "x".join(map(str, data.train.image_shape))
    for name, split in (("test", data.test), ("validation", val)):
        if split is None:
            continue
        if split.image_shape != data.train.image_shape:
            raise DataError(f"the {name} images of {describe_data(config)} are {'x'.join(map(str, split.image_shape))} "
                            f"(channels x height x width) but the training images are {shape}; both must match")
        if tuple(split.classes) != tuple(data.train.classes):
            raise DataError(f"the {name} set of {describe_data(config)} has {len(split.classes)} classes but the "
                            f"training set has {len(data.train.classes)} ({', '.join(data.train.classes[:5])}, ...); "
                            "both must have the same classes")


def describe_data(config: TrainConfig) -> str:
    """The data a config names, for messages: '--dataset fashion-mnist in /data' or the CSV/folder."""
    where = config.annotations or config.image_dir or config.data_dir or "the default data directory"
    return f"--dataset {config.dataset} ({where})"


def data_fingerprint(config: TrainConfig, data: DatasetSplits) -> dict[str, Any]:
    """What identifies the data a run trains on: counts, image shape, classes and a digest of every label."""
    digest = hashlib.sha256()
    for split in (data.train, data.test):
        digest.update(split.labels.cpu().to(torch.int64).numpy().tobytes())
    return {"dataset": config.dataset, "train_images": len(data.train), "test_images": len(data.test),
            "image_shape": list(data.train.image_shape), "classes": list(data.classes),
            "labels_sha256": digest.hexdigest()}


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
) -> dict[str, Any]:
    """Train `model` (or config.model) on `data` (or config.dataset); returns the run summary dict.

    A resumed run checks that its data is what it was trained on (counts, shapes, classes, labels) unless
    allow_other_data is set.
    """
    config = config or TrainConfig()
    if model is not None:
        config = config.replace(model=model_name_of(model, config.model))
    if not resume and data is None and config.dataset not in FILE_DATASETS and config.data_dir is None:
        # recorded, so that a resume reads the same copy whatever $TRAINLAB_DATA_DIR or the folder is then
        config = config.replace(data_dir=str(resolve_data_dir(None).expanduser().resolve()))
    reporter = reporter or Reporter()
    run_dir = Path(run_dir) if run_dir is not None else rundir.default_run_dir()
    created = rundir.first_missing_ancestor(run_dir)
    rundir.prepare_run_dir(run_dir, resume=resume, overwrite=overwrite)
    stop = StopRequest()
    with rundir.RunLock(run_dir), rundir.removed_if_unused(run_dir, created) as start, stop:  # only what we locked
        rundir.refuse_existing(run_dir, resume, overwrite)  # again: another process may have finished a run here
        rundir.remove_temporary_files(run_dir)
        last = run_dir / rundir.LAST_CHECKPOINT
        if data is None:
            data = load_dataset(config, download=download)
            for note in data.notes:  # csv/folder data: in memory or streamed, cached or decoded
                reporter.message(note)
        trainer = Trainer(config, run_dir, data, model, reporter, pretrained=not (resume and last.is_file()))
        trainer.stop = stop  # one stop request from the lock on: a signal during start-up stops the run too
        if resume and last.is_file():
            trainer.restore(last, allow_other_data)
            rundir.write_metrics(run_dir, trainer.metrics)  # a kill between checkpoint and metrics left it behind
            if trainer.epoch >= config.epochs or trainer.should_stop_early():
                if not (run_dir / rundir.SUMMARY_FILE).is_file():
                    status = "finished" if trainer.epoch >= config.epochs else "stopped early"
                    rundir.write_json(run_dir / rundir.SUMMARY_FILE, trainer.summary(status))
                if trainer.epoch >= config.epochs:
                    reporter.message(f"{run_dir} already finished its {config.epochs} epochs; nothing to do")
                    return trainer.summary("already finished")
                reporter.message(f"{run_dir} stopped early after {trainer.epoch} of its {config.epochs} epochs "
                                 f"(--early-stop {config.early_stop}); nothing to do")
                return trainer.summary("already stopped early")
            reporter.message(f"Resuming {run_dir} at epoch {trainer.epoch + 1}, batch {trainer.progress.batch}")
        elif resume:
            reporter.message(f"{run_dir} stopped before its first checkpoint; starting it from the beginning")
        elif init_from is not None:
            loaded = load_checkpoint(init_from)
            load_weights(trainer.model, loaded.model_state, source=str(loaded.path))
            reporter.message(f"Initialized weights from {loaded.path}")
        if overwrite and not resume:  # only now that data, model and weights are known good
            rundir.clear_run_dir(run_dir)
        start.wrote_config = not resume
        rundir.write_file(run_dir / rundir.CONFIG_FILE, config.to_toml().encode())
        reporter.start({"device": str(trainer.device), "threads": torch.get_num_threads(), "run_dir": str(run_dir),
                        "train_samples": len(trainer.train_data), "test_samples": len(trainer.test_data)})
        summary = trainer.run()
    reporter.end(summary, trainer.analysis())
    return summary
