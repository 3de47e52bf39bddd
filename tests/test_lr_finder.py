"""The lr range test: a suggestion with its rule, a plot, the user's model untouched, --lr auto."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from trainlab import TrainConfig, fit, load_dataset
from trainlab.config import read_config_file
from trainlab.errors import TrainlabError

from conftest import (
    read_metrics,
    train_ok,
)

pytestmark = pytest.mark.usefixtures("no_run_reports")  # end-of-run PNGs are tested in test_reports


def assert_png_has_a_drawing(path, min_width=300, min_height=200):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width >= min_width and image.height >= min_height
        pixels = np.asarray(image.convert("L"), dtype=float)
    assert pixels.std() > 0
    assert (pixels < 200).mean() > 0.005  # some ink, not a white page


def test_lr_find_suggests_an_lr_with_its_rule_and_confidence_and_plots_the_curve(run_main, tiny_data, tmp_path):
    plot = tmp_path / "lr.png"
    result = run_main(
        "lr-find",
        "--data-dir",
        tiny_data,
        "--device",
        "cpu",
        "--steps",
        "60",
        "--batch-size",
        "32",
        "--out",
        plot,
        "--json",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    found = json.loads(lines[0])
    assert set(found) == {"suggested_lr", "steepest_lr", "confidence", "rule", "notes", "steps", "plot"}
    assert 1e-7 < found["suggested_lr"] < 10
    assert found["confidence"] in ("high", "medium", "low")
    assert "minimum of the smoothed loss divided by 10" in found["rule"]
    assert 10 <= found["steps"] <= 60
    assert found["plot"] == str(plot)
    assert f"Suggested lr: {found['suggested_lr']:.3g} ({found['confidence']} confidence" in result.stderr
    assert_png_has_a_drawing(plot)


def test_find_lr_leaves_the_users_model_untouched(tiny_data):
    from trainlab.training.lr_finder import find_lr

    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10)).eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    data = load_dataset(data_dir=tiny_data, download=False)
    result = find_lr(TrainConfig(optimizer="adam", device="cpu", freeze=["1."]), data, model=model, steps=40)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed)
    after = model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    assert not model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_the_range_test_takes_its_steps_over_several_epochs_whatever_the_runs_length(tiny_data):
    """640 images in batches of 64 are 10 steps an epoch; the run's --epochs 1 and --max-steps 5 do not bound it.

    It used to train empty epochs forever once the run's own steps were spent.
    """
    from trainlab.training.lr_finder import find_lr

    data = load_dataset(data_dir=tiny_data, download=False)
    config = TrainConfig(device="cpu", threads=1, epochs=1, max_steps=5)
    result = find_lr(config, data, start_lr=1e-6, end_lr=1e-3, steps=25)  # too low an lr to diverge
    assert len(result.lrs) == 25
    assert result.lrs[0] == 1e-6 and result.lrs[-1] == pytest.approx(1e-3)


def test_train_lr_auto_trains_with_the_range_tests_suggestion(run_main, tiny_data, tmp_path):
    from trainlab.training.lr_finder import find_lr

    run_dir = tmp_path / "run"
    result = train_ok(run_main, tiny_data, run_dir, "--lr", "auto", "--epochs", "1", "--batch-size", "32", "--quiet")
    config = TrainConfig.from_dict(read_config_file(run_dir / "config.toml"))
    expected = find_lr(config.replace(lr=1e-3), load_dataset(config, download=False)).suggestion
    assert expected != 1e-3
    assert f"Training with lr {expected:.3g} (--lr auto)" in result.stdout
    # a suggestion too high for this tiny set diverges: the guard goes back at 0.3x, says so, and records it
    returns = result.stdout.count("back to the state after")
    assert config.lr == pytest.approx(expected * 0.3**returns)
    assert read_metrics(run_dir)[0]["lr"] == pytest.approx(config.lr)


@pytest.mark.slow
def test_suggested_lr_trains_the_tutorial_mlp_at_least_as_well_as_the_default(real_data, tmp_path):
    """First 12,000 training images, 3 epochs, tested on all 10,000 test images.

    Measured here: SGD 1e-3 reaches 43.2%, the suggested 0.027 71.0%; Adam 1e-3 83.0%, the suggested 5.5e-4 83.6%
    (on the full training set: SGD 61.3% vs 80.6%, Adam 85.9% vs 86.6%). Adam's two are close, so its suggestion
    may trail 1e-3 by up to 1 point; SGD's default is far too low, so its suggestion must win by 10 points.
    """
    from trainlab.training.lr_finder import find_lr

    full = load_dataset(data_dir=real_data, download=False)
    data = type(full)(full.train.subset(12_000), full.test)
    margin = {"sgd": 0.10, "adam": -0.01}
    for optimizer in ("sgd", "adam"):
        config = TrainConfig(optimizer=optimizer, epochs=3, device="cpu")
        suggested = find_lr(config, data).suggestion
        accuracy = {
            lr: fit(config.replace(lr=lr), data=data, run_dir=tmp_path / f"{optimizer}-{lr:g}")["test_accuracy"]
            for lr in (1e-3, suggested)
        }
        assert accuracy[suggested] >= accuracy[1e-3] + margin[optimizer], (optimizer, suggested, accuracy)


@pytest.mark.parametrize(
    ("start_lr", "end_lr", "steps", "message"),
    [
        (1e-3, 1e-4, 200, "--start-lr must be > 0 and below --end-lr, got 0.001 and 0.0001"),
        (1e-7, math.inf, 200, "--end-lr must be a finite number up to 1e+06, got inf"),
        (1e-7, 10.0, 5, "--steps must be >= 10, got 5"),
    ],
)
def test_find_lr_from_python_refuses_a_bad_range_in_the_command_lines_words(start_lr, end_lr, steps, message):
    from trainlab.training.lr_finder import find_lr

    with pytest.raises(TrainlabError) as caught:
        find_lr(TrainConfig(device="cpu"), None, start_lr=start_lr, end_lr=end_lr, steps=steps)
    assert str(caught.value) == message
