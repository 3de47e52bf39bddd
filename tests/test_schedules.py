"""LR schedules: step, cosine, warmup, one-cycle; the lr logged per epoch is the schedule's."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from trainlab import TrainConfig, load_dataset
from trainlab.engine.reporting import Reporter
from trainlab.training import Trainer
from trainlab.training.schedules import make_scheduler

from conftest import (
    read_metrics,
    small_mlp,
    train_ok,
)

pytestmark = pytest.mark.usefixtures("no_run_reports")  # end-of-run PNGs are tested in test_reports


def scheduled_lrs(
    kind: str, total: int, warmup: int = 0, step_every: int = 1, gamma: float = 0.1, lr: float = 0.1
) -> list[float]:
    """The lr of each of `total` optimizer steps under make_scheduler."""
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make_scheduler(kind, optimizer, lr, total, warmup, step_every, gamma)
    lrs = []
    for _ in range(total):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_every_schedule_the_config_accepts_builds_a_scheduler_that_starts_at_a_positive_lr():
    from trainlab.config import SCHEDULES

    assert set(SCHEDULES) == {"none", "step", "cosine", "onecycle", "linear"}
    for kind in SCHEDULES:
        lrs = scheduled_lrs(kind, total=10)
        assert len(lrs) == 10 and lrs[0] > 0 and all(math.isfinite(lr) for lr in lrs), kind


def test_step_schedule_multiplies_by_gamma_every_step_every_steps():
    lrs = scheduled_lrs("step", total=100, step_every=20, gamma=0.5)
    for step in (0, 19, 20, 39, 40, 45, 99):
        assert lrs[step] == pytest.approx(0.1 * 0.5 ** (step // 20), rel=1e-12), step
    assert len(set(round(lr, 12) for lr in lrs)) == 5


def test_cosine_schedule_follows_half_a_cosine_after_a_linear_warmup():
    warmup, total = 10, 110
    lrs = scheduled_lrs("cosine", total=total, warmup=warmup)
    for step in range(warmup):  # linear warmup reaching the base lr at the warmup's last step
        assert lrs[step] == pytest.approx(0.1 * (step + 1) / warmup, rel=1e-12)
    for step in (10, 35, 60, 85, 109):
        t = step - warmup
        assert lrs[step] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi * t / (total - warmup))), rel=1e-9)
    assert lrs[60] == pytest.approx(0.05)  # halfway through the cosine
    assert lrs[-1] < 0.1 * 1e-3


def test_linear_warmup_alone_then_holds_the_base_lr():
    lrs = scheduled_lrs("none", total=30, warmup=8)
    assert lrs[:8] == pytest.approx([0.1 * (step + 1) / 8 for step in range(8)])
    assert lrs[8:] == pytest.approx([0.1] * 22)


def test_step_schedule_after_warmup_counts_its_steps_from_the_warmups_end():
    """As torchvision's references chain warmup and StepLR: the first drop comes step_every steps after warmup."""
    lrs = scheduled_lrs("step", total=50, warmup=5, step_every=10, gamma=0.1)
    assert lrs[4] == pytest.approx(0.1)
    assert lrs[14] == pytest.approx(0.1)
    assert lrs[15] == pytest.approx(0.01)
    assert lrs[25] == pytest.approx(0.001)


@pytest.mark.parametrize(("warmup", "peak"), [(30, 29), (0, 24)])  # no warmup: torch's default 25% rise
def test_onecycle_peaks_at_the_warmup_end_and_ends_near_zero(warmup, peak):
    lrs = scheduled_lrs("onecycle", total=100, warmup=warmup)
    assert max(range(100), key=lrs.__getitem__) == peak
    assert lrs[peak] == pytest.approx(0.1)
    assert lrs[0] == pytest.approx(0.1 / 25)  # OneCycleLR's div_factor
    assert all(a < b for a, b in zip(lrs[:peak], lrs[1 : peak + 1], strict=True))  # rises
    assert all(a > b for a, b in zip(lrs[peak:-1], lrs[peak + 1 :], strict=True))  # then falls
    assert lrs[-1] < 0.1 * 1e-3


@pytest.mark.parametrize(
    ("schedule", "flags", "factors"),
    [
        ("step", ["--step-epochs", "2", "--step-gamma", "0.1"], [1, 1, 0.1, 0.1]),
        # one warmup epoch of 10 steps, then 30 cosine steps: epoch starts at t = 0, 10, 20 of 30
        (
            "cosine",
            ["--warmup-epochs", "1"],
            [0.1, 1, 0.5 * (1 + math.cos(math.pi / 3)), 0.5 * (1 + math.cos(2 * math.pi / 3))],
        ),
        ("none", ["--warmup-epochs", "2"], [0.05, 0.55, 1, 1]),
    ],
)
def test_the_lr_logged_per_epoch_is_the_schedules_lr_at_the_epochs_first_step(
    run_main, tiny_data, tmp_path, schedule, flags, factors
):
    run_dir = tmp_path / "run"
    train_ok(run_main, tiny_data, run_dir, "--epochs", "4", "--lr", "0.2", "--schedule", schedule, "--quiet", *flags)
    assert [row["lr"] for row in read_metrics(run_dir)] == pytest.approx([0.2 * f for f in factors], rel=1e-9)


def test_onecycle_through_the_trainer_peaks_at_the_warmup_end(tiny_data, tmp_path):
    config = TrainConfig(schedule="onecycle", lr=0.4, epochs=4, warmup_epochs=1.5, device="cpu")
    data = load_dataset(data_dir=tiny_data, download=False)
    trainer = Trainer(config, tmp_path / "run", data, small_mlp(), Reporter())
    lrs = []
    for _ in range(40):  # 4 epochs x 10 batches of 64
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.scheduler.step()
    assert max(range(40), key=lrs.__getitem__) == 14  # 1.5 epochs = 15 steps
    assert lrs[14] == pytest.approx(0.4)
    assert lrs[-1] < 0.4 * 1e-3
