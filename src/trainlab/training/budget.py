"""--time-budget: a run that ends within a wall-clock budget on whatever machine it runs on.

Before training, a throwaway copy of the run's model, optimizer and data trains a few steps and evaluates a
few batches: that measures this machine's step and evaluation times (and, with auto_width, those of narrower
models). The plan fixes the run's steps (epochs and --max-steps, the last epoch partial) so that start-up,
training, every epoch's evaluation and checkpoint, and the reports end at the budget, and the lr schedule
spans exactly those steps. The real run then starts from its seed as any run does: a budget run equals a run
given the epochs and --max-steps it chose. After each epoch the plan is checked against the clock, and with the
linear schedule the end moves (the lr still falls linearly to zero) when this machine turned out faster or
slower than measured.

TimeBudget is the one owner of all this for a run: the clock (data preparation left out), the plan, its moves
after each epoch (from a small view of the run, EpochEnd), the plan's keys in a checkpoint, and the summary's part.
"""

from __future__ import annotations

import itertools
import math
import os
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch

from trainlab.config import FILE_DATASETS, MAX_EPOCHS, TrainConfig
from trainlab.data import DatasetSplits
from trainlab.engine import distributed
from trainlab.engine.loop import evaluate
from trainlab.engine.reporting import Reporter
from trainlab.errors import ConfigError, TrainlabError
from trainlab.resume_advice import PLANNED_KEYS
from trainlab.training.setup import build_training, total_steps

TARGET_FRACTION = 0.99  # the plan ends here: inside the 3% window below the budget, 1% left for noise
WARMUP_STEPS = 3  # untimed first steps: one-off imports, allocations, kernel choices
MIN_TIMED_STEPS = 5
MAX_TIMED_STEPS = 30
MEASURED_STEPS = WARMUP_STEPS + MAX_TIMED_STEPS  # the most steps one measurement trains
MEASURE_SHARE = 0.02  # of the budget, at most, for timing one model's steps
END_SECONDS = 3.0  # the final summary, reports and TensorBoard flush after the last epoch
WIDTH_FRACTIONS = (1.0, 0.75, 0.5, 0.375, 0.25)  # auto_width: the configured width and these shares of it
MIN_WIDTH = 4
MIN_EPOCHS = 10  # auto_width: the widest model that trains at least this many epochs
REPLAN_TOLERANCE = 0.005  # of the budget: a projected end closer to the target than this keeps the plan
REPLAN_SAID = 0.1  # a move of the run's end by this share of its steps or more is said


def process_seconds() -> float:
    """Wall seconds since this process started (Linux), else since trainlab was imported."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
            return float(uptime.read().split()[0]) - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - IMPORTED


IMPORTED = time.monotonic()


class Clock:
    """Seconds since the budget started: the process's start for the command line, the call for fit()."""

    def __init__(self, elapsed_at_start: float = 0.0):
        self.origin = time.monotonic() - elapsed_at_start

    def __call__(self) -> float:
        return time.monotonic() - self.origin

    def leave_out(self, seconds: float) -> None:
        """Do not count these seconds (data preparation: decoding and caching the user's images)."""
        self.origin += seconds


@dataclass(frozen=True)
class Costs:
    """What this machine takes for one run's parts, in seconds."""

    step: float  # one optimizer step
    epoch_end: float  # after each epoch: the validation and test passes and the checkpoint
    end: float = END_SECONDS  # after the last epoch: summary and reports


def plan_steps(available: float, costs: Costs, steps_per_epoch: int) -> int:
    """The most optimizer steps whose epochs, each with its evaluation, and the end fit in `available` seconds."""
    usable = available - costs.end
    epoch = steps_per_epoch * costs.step + costs.epoch_end
    whole = max(int(usable // epoch), 0)
    left = usable - whole * epoch - costs.epoch_end  # a partial last epoch still ends with an evaluation
    return whole * steps_per_epoch + max(min(int(left // costs.step), steps_per_epoch - 1), 0)


@dataclass(frozen=True)
class Plan:
    """What a budget run chose, for its config and its summary."""

    budget: float
    steps: int
    epochs: int
    steps_per_epoch: int
    width: int | None
    costs: Costs
    elapsed: float  # seconds of the budget gone when the plan was made
    cap: int | None = None  # steps the run may not exceed however fast the machine (the auto recipe's length)

    def describe(self) -> str:
        whole, extra = divmod(self.steps, self.steps_per_epoch)
        epochs = f"{whole} epochs" + (f" + {extra} steps" if extra else "")
        width = f", width {self.width}" if self.width is not None else ""
        return (
            f"time budget {self.budget:g} s: {epochs} ({self.steps} steps{width}); measured "
            f"{self.costs.step * 1e3:.1f} ms per step and {self.costs.epoch_end:.2f} s per evaluation and "
            f"checkpoint, {self.elapsed:.1f} s gone before training"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "time_budget": self.budget,
            "planned_steps": self.steps,
            "planned_epochs": self.epochs,
            "width": self.width,
            "step_seconds": self.costs.step,
            "epoch_end_seconds": self.costs.epoch_end,
            "seconds_before_training": self.elapsed,
        }


def widths_to_try(config: TrainConfig) -> list[int | None]:
    """auto_width: the configured width and narrower ones, widest first; else the configured model only."""
    if not config.auto_width:
        return [None]
    base = int(config.extra.get("width", 32))
    return sorted({max(MIN_WIDTH, int(round(base * share))) for share in WIDTH_FRACTIONS}, reverse=True)


def with_width(config: TrainConfig, width: int | None) -> TrainConfig:
    return config if width is None else config.replace(extra={**config.extra, "width": width})


def measure_costs(
    config: TrainConfig, data: DatasetSplits, model: torch.nn.Module | None, seconds: float
) -> tuple[Costs, int]:
    """This machine's step and epoch-end times for `config`, from a throwaway copy of the run trained briefly,
    and the run's optimizer steps per epoch."""
    # the throwaway trains as many epochs as the timing needs, whatever the run's own --epochs or --max-steps
    # (a 1-epoch run of 10 batches, or --max-steps 3, has fewer steps than the timing: it waited for them forever)
    measured = config.replace(epochs=max(config.epochs, MEASURED_STEPS), max_steps=None)
    setup = build_training(measured, data, model=None if model is None else _copy(model))
    stamps: list[float] = []
    deadline = time.perf_counter() + seconds

    def batches():
        for epoch in range(MEASURED_STEPS):  # every epoch has a step: bounded even if the loader were short
            for batch in setup.batches(epoch):
                timed = len(stamps) - WARMUP_STEPS
                if timed >= MAX_TIMED_STEPS or (timed >= MIN_TIMED_STEPS and time.perf_counter() > deadline):
                    return
                yield batch

    setup.train_steps(batches(), after_step=lambda *_: stamps.append(time.perf_counter()))
    timed = stamps[WARMUP_STEPS - 1 :]
    step = statistics.median(b - a for a, b in itertools.pairwise(timed))
    return Costs(step=step, epoch_end=evaluation_seconds(setup) + checkpoint_seconds(setup)), setup.steps_per_epoch


def evaluation_seconds(setup) -> float:
    """One epoch's validation and test passes, from the second of two timed evaluation batches."""
    config, test = setup.config, setup.test_data
    size = min(config.eval_batch_size, len(test))
    times = []
    for _ in range(2):
        started = time.perf_counter()
        evaluate(setup.eval_model, test.subset(size), setup.loss_fn, setup.preprocess, size, autocast=setup.autocast)
        times.append(time.perf_counter() - started)
    samples = len(test) + (len(setup.val_data) if setup.val_data is not None else 0)
    return times[-1] / size * samples


def checkpoint_seconds(setup) -> float:
    """Writing one checkpoint's weights and optimizer state (to memory; the disk adds little for small models)."""
    import io

    started = time.perf_counter()
    torch.save({"model": setup.model.state_dict(), "optimizer": setup.optimizer.state_dict()}, io.BytesIO())
    return time.perf_counter() - started


def _copy(model: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(model)


def may_fit(measured: tuple, width: int, available: float) -> bool:
    """Whether `width` could train MIN_EPOCHS in `available` seconds, judged from a wider width's measured costs
    scaled by the square of the widths (a conv layer's work). Narrower nets lose less than that (fixed costs per
    step), so this errs towards measuring: a width it rules out would have been too slow."""
    _, measured_width, costs, _, per_epoch = measured
    share = (width / measured_width) ** 2
    scaled = Costs(step=costs.step * share, epoch_end=costs.epoch_end * share, end=costs.end)
    return plan_steps(available, scaled, per_epoch) >= MIN_EPOCHS * per_epoch


def plan_run(
    config: TrainConfig,
    data: DatasetSplits,
    model: torch.nn.Module | None,
    clock: Clock,
    max_epochs: int | None = None,
) -> tuple[TrainConfig, Plan]:
    """The config with the epochs, --max-steps (and width) that end the run within config.time_budget, and at
    most max_epochs epochs when given."""
    budget = config.time_budget
    widths = widths_to_try(config) if model is None else [None]
    chosen = None
    for width in widths:
        available = TARGET_FRACTION * budget - clock()
        if chosen is not None and width != widths[-1] and not may_fit(chosen, width, available):
            continue  # even at the cost its width predicts, too slow for MIN_EPOCHS: not worth measuring
        candidate = with_width(config, width)
        costs, per_epoch = measure_costs(candidate, data, model, MEASURE_SHARE * budget)
        steps = plan_steps(TARGET_FRACTION * budget - clock(), costs, per_epoch)
        chosen = (candidate, width, costs, steps, per_epoch)
        if steps >= MIN_EPOCHS * per_epoch:
            break
    candidate, width, costs, _, per_epoch = chosen
    elapsed = clock()
    steps = plan_steps(TARGET_FRACTION * budget - elapsed, costs, per_epoch)
    cap = min(max_epochs or MAX_EPOCHS, MAX_EPOCHS) * per_epoch  # a huge budget on tiny data: a valid length
    steps = min(steps, cap)
    if steps < 1:
        raise ConfigError(
            f"a time budget of {budget:g} s leaves no time to train: {elapsed:.1f} s went to start-up and "
            f"measuring, and one evaluation takes {costs.epoch_end:.1f} s; give --time-budget "
            f"{needed_budget(elapsed, costs, per_epoch):.0f} or more (one epoch)"
        )
    epochs = math.ceil(steps / per_epoch)
    if candidate.schedule == "none":
        candidate = candidate.replace(schedule="linear")
    return with_length(candidate, steps, epochs), Plan(budget, steps, epochs, per_epoch, width, costs, elapsed, cap)


def with_length(config: TrainConfig, steps: int, epochs: int) -> TrainConfig:
    """config trained for `steps` optimizer steps over `epochs` epochs (PLANNED_KEYS), its warmup at most half."""
    return config.replace(epochs=epochs, max_steps=steps, warmup_epochs=min(config.warmup_epochs, epochs / 2))


def needed_budget(elapsed: float, costs: Costs, steps_per_epoch: int) -> float:
    """The smallest budget that trains one epoch after `elapsed` seconds, at these costs (seconds)."""
    return math.ceil((elapsed + steps_per_epoch * costs.step + costs.epoch_end + costs.end) / TARGET_FRACTION)


@dataclass(frozen=True)
class EpochEnd:
    """What the budget reads of a run after an epoch: a view, not the trainer."""

    config: TrainConfig  # the run's config now: its schedule and its length
    step: int  # optimizer steps taken
    epoch: int  # epochs finished
    steps_per_epoch: int
    trained_steps: int  # this epoch's steps (0: a resumed epoch that had none left)
    evaluation_seconds: float  # since this epoch's training ended: its validation and test passes


class TimeBudget:
    """A run's time budget, its one owner: the clock, the plan, its moves after each epoch, the plan's keys in a
    checkpoint and the summary's part. A run without config.time_budget plans nothing; then every hook is a no-op."""

    def __init__(self, clock: Clock | None = None, reporter: Reporter | None = None):
        self.clock, self.reporter = clock or Clock(), reporter or Reporter()
        self.plan: Plan | None = None  # a run's first process plans; a resumed run trains the steps it planned
        self.epoch_started = 0.0
        # every epoch so far, not the last one alone: on a busy machine one slow or fast epoch swung the plan
        self.train_seconds, self.end_seconds, self.steps, self.epochs = 0.0, 0.0, 0, 0

    def leave_out_preparation(self, config: TrainConfig, seconds: float) -> None:
        """Decoding and caching the user's image files is data preparation, which the budget does not count."""
        if config.time_budget is not None and config.dataset in FILE_DATASETS:
            self.clock.leave_out(seconds)
            self.reporter.message(
                f"data preparation: {seconds:.1f} s (decoding and caching; not counted in the time budget)"
            )

    def planned(
        self, config: TrainConfig, data: DatasetSplits, model: torch.nn.Module | None, cap: bool
    ) -> TrainConfig:
        """config with the epochs and steps (and width) this machine trains within its budget (said); cap: the
        config's epochs are a most (the auto recipe's length), which the budget may only shorten."""
        if config.time_budget is None:
            return config
        if distributed.current().active:
            raise TrainlabError("--time-budget plans a run of one process; leave out --nproc (or torchrun)")
        planned, self.plan = plan_run(config, data, model, self.clock, max_epochs=config.epochs if cap else None)
        if config.schedule == "none":
            self.reporter.message(
                "--time-budget: the lr decays linearly to zero at the budget's end (--schedule linear)"
            )
        self.reporter.message(self.plan.describe())
        return planned

    def resuming(self, config: TrainConfig) -> None:
        """A resumed budget run trains the steps it planned (said): its clock held for its first process only."""
        if config.time_budget is not None:
            self.reporter.message(
                f"Resuming a --time-budget run: it trains the steps it planned; the {config.time_budget:g} s "
                "budget held for its first process"
            )

    def start(self) -> None:
        """The run is built: its first epoch starts now."""
        self.epoch_started = self.clock()

    def restored(self, config: TrainConfig, recorded: dict[str, Any]) -> TrainConfig:
        """The budget's share of a checkpoint: the plan (PLANNED_KEYS) as its last re-plan left it."""
        if config.time_budget is None:
            return config
        return config.replace(**{key: recorded.get(key, getattr(config, key)) for key in PLANNED_KEYS})

    def after_epoch(self, run: EpochEnd) -> TrainConfig | None:
        """A planned run with the linear schedule: its config with the end moved to where the clock says it fits
        (said when the move is large), else None."""
        if self.plan is None or run.config.schedule != "linear":
            return None
        total = self.new_total(run)
        if total is None:
            return None
        before = total_steps(run.config, run.steps_per_epoch)
        epochs = max(-(-total // run.steps_per_epoch), run.epoch)
        if abs(total - before) >= REPLAN_SAID * before:  # small moves every epoch on a busy machine: not news
            self.reporter.message(
                f"time budget: this machine runs {'faster' if total > before else 'slower'} than measured; "
                f"the run now ends after {total} steps instead of {before} ({epochs} epochs)"
            )
        return with_length(run.config, total, epochs)

    def new_total(self, run: EpochEnd) -> int | None:
        """The run's new step count if the clock says the plan ends too early or too late, else None.

        The remaining epochs are costed as the epochs so far went by the budget's clock: their mean step time,
        then their mean time for everything else (evaluation, checkpoint, reports)."""
        now = self.clock()
        started, trained, self.epoch_started = self.epoch_started, now - run.evaluation_seconds, now
        if run.trained_steps == 0:
            return None
        self.train_seconds += trained - started
        self.end_seconds += max(now - trained, 0.0)
        self.steps, self.epochs = self.steps + run.trained_steps, self.epochs + 1
        costs = Costs(step=self.train_seconds / self.steps, epoch_end=self.end_seconds / self.epochs)
        budget, per_epoch = self.plan.budget, run.steps_per_epoch
        left_steps = total_steps(run.config, per_epoch) - run.step
        left_epochs = -(-left_steps // per_epoch)
        projected = now + left_steps * costs.step + left_epochs * costs.epoch_end + costs.end
        if abs(projected - TARGET_FRACTION * budget) <= REPLAN_TOLERANCE * budget:
            return None
        more = plan_steps(TARGET_FRACTION * budget - now, costs, per_epoch)
        if self.plan.cap is not None:
            more = min(more, self.plan.cap - run.step)
        return run.step + more if more != left_steps else None

    def summary(self, steps: int) -> dict[str, Any]:
        """The run summary's part: the budget, what the plan chose, and where the run ends (nothing unplanned)."""
        if self.plan is None:
            return {}
        report = {**self.plan.to_dict(), "steps": steps, "seconds_at_summary": round(self.clock(), 2)}
        return {"time_budget": report}
