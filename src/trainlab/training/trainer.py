"""The Trainer: drives the loop epoch by epoch, checkpoints its progress and restores it exactly."""

from __future__ import annotations

import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainlab.checkpoint import TrainingState, load_checkpoint, load_weights, model_state
from trainlab.config import TrainConfig, limited_batches
from trainlab.data import DatasetSplits
from trainlab.engine import distributed
from trainlab.engine.loop import EpochProgress, evaluate
from trainlab.engine.reporting import Reporter, Reporters  # noqa: F401 - Reporters re-exported
from trainlab.engine.runtime import resolve_device, restore_rng_state, rng_state  # noqa: F401 - re-exported
from trainlab.errors import CheckpointError, RunEndedEarly, TrainingDiverged, TrainingInterrupted
from trainlab.resume_advice import edited_config_message, recipe_changes
from trainlab.training import rundir
from trainlab.training.budget import EpochEnd, TimeBudget
from trainlab.training.calibration import calibrate_run
from trainlab.training.divergence import DivergenceGuard
from trainlab.training.early_stop import anneal_before_stopping
from trainlab.training.fine_tune import FineTuning
from trainlab.training.setup import build_training, describe_data
from trainlab.training.signals import StopRequest

LOSS_TIE_BREAK = 0.01  # a relative drop of the validation loss that improves an epoch of equal accuracy


def better_validation(row: dict[str, Any], best: dict[str, Any]) -> bool:
    """Whether an epoch beats the best so far: a higher validation accuracy, or the same with a validation loss
    at least 1% lower (a small set whose accuracy has saturated still improves by its loss)."""
    if row["val_accuracy"] != best["val_accuracy"]:
        return row["val_accuracy"] > best["val_accuracy"]
    return row["val_loss"] < best["val_loss"] * (1 - LOSS_TIE_BREAK)


def from_setup(name: str) -> property:
    """A read-only view of the setup's `name`: the setup owns it, the Trainer copies nothing."""
    return property(lambda self: getattr(self.setup, name), doc=f"The setup's {name} (read-only).")


class Trainer:
    """One training run: its setup (model, optimizer, data, config) and progress; its run directory writes files."""

    # read by fit, the divergence guard and tests; each has one home, the setup (the config too: a re-plan, a
    # restore or a lowered lr replaces setup.config)
    config, device, model, optimizer = map(from_setup, ("config", "device", "model", "optimizer"))
    scheduler, loader = map(from_setup, ("scheduler", "loader"))
    train_data, val_data, test_data = map(from_setup, ("train_data", "val_data", "test_data"))
    run_dir = property(lambda self: self.files.path, doc="The run directory's path.")

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path | rundir.RunDirectory,
        data: DatasetSplits,
        model: nn.Module | None,
        reporter: Reporter,
        pretrained: bool = True,
        budget: TimeBudget | None = None,
    ):
        self.files = run_dir if isinstance(run_dir, rundir.RunDirectory) else rundir.RunDirectory(run_dir)
        self.reporter = reporter
        self.setup = build_training(config, data, model, reporter, pretrained)
        self.fine_tune = FineTuning(self.setup, reporter)  # --fine-tune's phases; a frozen body's cached features
        self.epoch = 0  # epochs finished
        self.step = 0  # optimizer steps taken
        self.progress = EpochProgress()
        self.metrics: list[dict[str, Any]] = []
        self.stop = StopRequest()
        self.agreed_stop = False  # several processes: this step's all-reduce found a stop request
        self.last_test: dict[str, Any] = {}
        self.recipe: dict[str, Any] | None = None  # --preset auto: the choices made from the data
        self.guard = DivergenceGuard()
        self.annealing = False  # early stopping on the linear schedule: its lr decays to zero, then it ends
        self.budget = budget if budget is not None else TimeBudget(reporter=reporter)
        self.budget.start()

    @property
    def epoch_samples(self) -> int:
        """Training samples in this epoch: all of them, or those --limit-train-batches or --max-steps leave."""
        if self.config.limit_train_batches is None and self.setup.steps_in_epoch(self.epoch) == len(self.loader):
            return len(self.train_data)
        per_step = self.config.per_process_batch_size(self.setup.dist.world) * self.setup.dist.world
        return min(len(self.train_data), self.setup.steps_in_epoch(self.epoch) * per_step)

    @property
    def best(self) -> dict[str, Any] | None:
        """The epoch with the best validation accuracy (None without a validation split)."""
        best = None
        for row in self.metrics:
            if "val_accuracy" in row and (best is None or better_validation(row, best)):
                best = row
        return best

    # checkpoints -------------------------------------------------------------------------------------------
    def training_state(self) -> TrainingState:
        return TrainingState(
            config=self.config.to_dict(),
            classes=list(self.setup.classes),
            preprocessing=self.setup.preprocess.to_dict(),
            model_state=model_state(self.model),
            optimizer_state=self.optimizer.state_dict(),
            scaler_state=self.setup.scaler.state_dict() if self.setup.scaler is not None else None,
            scheduler_state=self.scheduler.state_dict() if self.scheduler is not None else None,
            epoch=self.epoch,
            step=self.step,
            epoch_progress=asdict(self.progress),
            rng=self.rng_states(),
            metrics=self.metrics,
            data=self.setup.data_fingerprint,
        )

    def rng_states(self) -> dict[str, Any]:
        """This process's random generators, or every process's (in rank order) when there are several."""
        if not self.setup.dist.active:
            return rng_state()
        return {"world_size": self.setup.dist.world, "ranks": self.setup.dist.gather(rng_state())}

    def restore_rng(self, state: dict[str, Any], path: Path) -> None:
        """Each process gets back its own generators; a run resumes only with the processes it ran with."""
        distributed.check_same_process_count(path, int(state.get("world_size", 1)), self.setup.dist.world)
        restore_rng_state(state["ranks"][self.setup.dist.rank] if self.setup.dist.active else state)

    def save(self, *names: Path) -> None:
        """Write checkpoints/last.pt (or each of `names`, in order) atomically from one payload.

        Weights that are no longer finite are never saved.
        """
        if not torch.stack([p.isfinite().all() for p in self.model.parameters()]).all():
            raise TrainingDiverged(
                f"the weights became NaN or infinite by step {self.step}; checkpoints/last.pt keeps the last good "
                "state; lower the learning rate or set --grad-clip 1.0"
            )
        self.files.save_checkpoint(self.training_state().to_payload(), *names)

    def restore(self, path: Path, allow_other_data: bool = False) -> None:
        payload = load_checkpoint(path).payload
        self.refuse_another_recipe(TrainingState.from_payload(payload, path).config, path)
        self.restore_state(payload, path, allow_other_data)

    def refuse_another_recipe(self, recorded: dict[str, Any], path: Path) -> None:
        """A config.toml edited since the checkpoint (another model, lr, ...) is refused: the resume would run
        the checkpoint's recipe, not the file's."""
        changes = recipe_changes(recorded, self.config.to_dict(), budget=self.config.time_budget is not None)
        if changes:
            raise CheckpointError(edited_config_message(self.run_dir, path, changes))

    def restore_state(self, payload: dict[str, Any], path: Path | str, allow_other_data: bool = False) -> None:
        """Put the run back in the state a checkpoint payload holds (from `path`, named in errors)."""
        state = TrainingState.from_payload(payload, path)
        recorded, fingerprint = state.data, self.setup.data_fingerprint
        if recorded and recorded != fingerprint and not allow_other_data:
            changed = [key for key in fingerprint if recorded.get(key) != fingerprint[key]]
            raise CheckpointError(
                f"{path} was trained on other data than {describe_data(self.config)} holds now (different "
                f"{', '.join(changed)}); point the run at its data again, or pass --allow-other-data to resume on "
                "this data anyway"
            )
        load_weights(self.model, state.model_state, source=str(path))
        self.fine_tune.restored(int(state.epoch))  # the optimizer and schedule of the phase it resumes in
        self.restore_rng(state.rng, path)
        try:
            self.optimizer.load_state_dict(state.optimizer_state)
            if self.setup.scaler is not None and state.scaler_state:
                self.setup.scaler.load_state_dict(state.scaler_state)
            if self.scheduler is not None and state.scheduler_state:
                self.scheduler.load_state_dict(state.scheduler_state)
            self.setup.config = self.budget.restored(self.config, state.config)
            self.epoch = int(state.epoch)
            self.step = int(state.step)
            self.progress = EpochProgress(**state.epoch_progress)
            self.metrics = list(state.metrics)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{path}: its training state does not fit this run ({exc}); cannot resume") from None

    # the loop ----------------------------------------------------------------------------------------------
    def after_step(self, progress: EpochProgress, loss: float, batch_size: int) -> None:
        self.step += 1
        self.guard.watch(loss, self.step)
        if self.scheduler is not None:
            self.scheduler.step()
        if (progress.batch - 1) % self.config.log_every == 0:
            self.reporter.batch_log(loss, progress.batch * batch_size, self.epoch_samples)
        self.reporter.step(loss, batch_size)
        every = self.config.checkpoint_every
        # with several processes, the stop agreed in this step's all-reduce: a signal that lands on one process
        # after it must wait for the next step, or that process alone would enter the checkpoint's collective
        stopping = self.agreed_stop if self.setup.dist.active else bool(self.stop.requested)
        if stopping or (every and self.step % every == 0):
            self.save()
        if stopping:
            raise TrainingInterrupted(self.resume_target(), self.stop.requested)

    def combine(self, loss: float, size: int, correct: int) -> tuple[float, int, int, float]:
        """One all-reduce per step: the global batch's loss, size and correct count, and whether any process
        was asked to stop, so that every process logs, checks for NaN and stops alike."""
        loss_sum, total, correct_all, *stops = self.setup.dist.sum([loss * size, size, correct, *self.stop_votes()])
        self.agree_on_stop(stops)
        self.agreed_stop = bool(stops[0])
        return loss_sum / total, int(total), int(correct_all), size * self.setup.dist.world / total

    def resume_target(self) -> str:
        """What `trainlab train --resume` needs to continue this run: its directory (and its processes)."""
        return f"{self.run_dir} --nproc {self.setup.dist.world}" if self.setup.dist.active else str(self.run_dir)

    def stop_votes(self) -> list[float]:
        """This process's part of the stop decision: (asked to stop, the signal's number)."""
        if not self.stop.requested:
            return [0.0, 0.0]
        return [1.0, float(signal.Signals[self.stop.requested].value)]

    def agree_on_stop(self, votes: list[float]) -> None:
        """Any process asked to stop: every process stops, as if it had the same signal (the first one's, or
        SIGTERM when they differ)."""
        count, numbers = votes
        if count and not self.stop.requested:
            number = round(numbers / count)
            names = {item.value: item.name for item in signal.Signals}
            self.stop.requested = names.get(number, "SIGTERM") if number * count == numbers else "SIGTERM"

    def run_epoch(self) -> dict[str, Any]:
        started = time.perf_counter()
        samples_before, first_batch = self.progress.samples, self.progress.batch
        self.reporter.epoch_start(self.epoch + 1, self.setup.steps_in_epoch(self.epoch), self.progress.batch)
        if self.progress.lr is None:
            self.progress.lr = self.optimizer.param_groups[0]["lr"]
        lr = self.progress.lr
        train = self.fine_tune.train_steps(
            self.epoch,
            self.progress.batch,
            self.after_step,
            progress=self.progress,
            step_offset=self.step - self.progress.batch,
            combine=self.combine if self.setup.dist.active else None,
        )
        train_seconds = time.perf_counter() - started
        row = {"epoch": self.epoch + 1, "train_loss": train["loss"], "train_accuracy": train["accuracy"]}
        if self.val_data is not None:
            val = self.evaluate(self.val_data)
            row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
        test = self.evaluate(self.test_data, return_predictions=True)
        self.last_test = test
        row.update(
            test_loss=test["loss"],
            test_accuracy=test["accuracy"],
            lr=lr,
            machine_seconds=time.perf_counter() - started,
            machine_samples_per_second=(self.progress.samples - samples_before) / max(train_seconds, 1e-9),
        )
        self.epoch += 1
        steps = self.fine_tune.budgeted(self.progress.batch - first_batch)
        replanned = self.replan(steps, row["machine_seconds"] - train_seconds)
        self.fine_tune.enter(self.epoch)  # before the checkpoint: it holds the phase the next epoch trains in
        self.progress = EpochProgress()
        self.metrics.append(row)
        if self.best is row:  # best.pt before last.pt: a kill between the two redoes this epoch, and both get written
            self.save(rundir.BEST_CHECKPOINT, rundir.LAST_CHECKPOINT)
        else:
            self.save()
        if replanned:  # after the checkpoint that holds the moved schedule: a resume reads both alike
            self.files.write_config(self.config)
        self.files.write_metrics(self.metrics)
        self.reporter.epoch_end(row)
        return row

    def replan(self, trained_steps: int, evaluation_seconds: float) -> bool:
        """The time budget's hook after each epoch: where it moves the run's end, the schedule ends there too and
        the next step's lr moves at once."""
        run = EpochEnd(
            self.config, self.step, self.epoch, self.setup.steps_per_epoch, trained_steps, evaluation_seconds
        )
        moved = None if self.annealing else self.budget.after_epoch(run)  # annealing: its end is fixed
        if moved is None:
            return False
        self.move_schedule_end(moved)
        return True

    def move_schedule_end(self, moved: TrainConfig) -> None:
        """The run's length becomes `moved`'s; the linear schedule ends there and the next step's lr moves at once."""
        self.setup.config = moved
        schedule = self.scheduler.lr_lambdas[0]  # the linear schedule: only its end moves
        schedule.replan(self.step, moved.max_steps)
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs, strict=True):
            group["lr"] = base * schedule(self.scheduler.last_epoch)

    def evaluate(self, data, return_predictions: bool = False) -> dict[str, Any]:
        """Loss and accuracy on `data`: all of it, or --limit-eval-batches of it."""
        batches = -(-len(data) // self.config.eval_batch_size)
        limit = self.config.limit_eval_batches
        model, data, preprocess = self.fine_tune.evaluation(data)  # a frozen body: its cached features
        return evaluate(
            model,
            data,
            self.setup.loss_fn,
            preprocess,
            self.config.eval_batch_size,
            autocast=self.setup.autocast,
            return_predictions=return_predictions,
            max_batches=limited_batches(limit, batches) if limit is not None else None,
            dist=self.setup.dist,
        )

    def analysis(self) -> dict[str, Any]:
        """What reports need: metrics, classes, test images and labels, the last epoch's predictions."""
        test = self.test_data
        evaluated = self.last_test.get("samples", len(test))  # all, or --limit-eval-batches of them
        if evaluated < len(test):
            test = test.subset(evaluated)
        return {
            "run_dir": self.run_dir,
            "metrics": self.metrics,
            "classes": self.setup.classes,
            "test_images": test.images,
            "test_labels": test.labels,
            **{key: self.last_test[key] for key in ("predictions", "confidences")},
        }

    def stop_if_requested(self) -> None:
        """Between epochs: a signal that came during evaluation or start-up stops the run, checkpoint written
        (every process decides together)."""
        if self.setup.dist.active:  # decided on the votes, not on a signal that may land on one process after them
            votes = self.setup.dist.sum(self.stop_votes())
            self.agree_on_stop(votes)
            if not votes[0]:
                return
        elif not self.stop.requested:
            return
        if not self.setup.dist.broadcast(self.files.last_checkpoint.is_file()):  # it came before the first step
            self.save()
        raise TrainingInterrupted(self.resume_target(), self.stop.requested)

    def should_stop_early(self) -> bool:
        best = self.best
        patience = self.config.early_stop
        return bool(patience and best is not None and self.epoch - best["epoch"] >= patience and not self.annealing)

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
            "best_test_accuracy": best.get("test_accuracy"),  # the kept model's (best.pt, what evaluate reads)
            "best_checkpoint": str(self.files.best_checkpoint) if best else None,
            "machine_seconds": sum(r["machine_seconds"] for r in self.metrics),
            "checkpoint": str(self.files.last_checkpoint),
            **self.budget.summary(self.step),
            **({"recipe": self.recipe} if self.recipe is not None else {}),
        }

    def run(self) -> dict[str, Any]:
        """Train the remaining epochs; returns the run summary."""
        if self.guard.start is None:
            self.guard.keep_start(self.training_state().to_payload())
        with self.stop:
            while self.epoch < self.setup.epochs:
                self.stop_if_requested()
                try:
                    self.run_epoch()
                except RunEndedEarly as ended:  # a reporter ended the run after this epoch's files were written
                    self.files.write_summary(self.summary(ended.status))
                    raise
                except TrainingDiverged as diverged:
                    self.guard.recover(diverged, self)  # back to the last good state at a lower lr, or stop
                    continue
                if self.should_stop_early() and not anneal_before_stopping(self):
                    self.reporter.message(
                        f"Early stop: validation accuracy has not improved for "
                        f"{self.config.early_stop} epochs (best: epoch {self.best['epoch']})"
                    )
                    break
            self.stop_if_requested()  # a signal during the last evaluation still stops the run (resume finishes it)
            calibrate_run(self)  # how unlike the training images a picture is, recorded for predict
        summary = self.summary("stopped early" if self.epoch < self.setup.epochs or self.annealing else "finished")
        self.files.write_summary(summary)
        return summary
