"""--fine-tune (the head first with the body frozen, then every layer at discriminative learning rates, as fastai's
fine_tune) and the frozen-body feature cache, on tiny generated data; no test opens a socket."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from trainlab import TrainConfig, load_dataset
from trainlab.engine.reporting import Reporter
from trainlab.errors import ConfigError, TrainingInterrupted
from trainlab.testing.compare import differences, metrics_rows
from trainlab.testing.synthetic import write_fashion_layout
from trainlab.training import fine_tune, recipe
from trainlab.training import trainer as trainer_module
from trainlab.training.fine_tune import FineTuning, layer_lrs
from trainlab.training.fit import fit
from trainlab.training.setup import build_training
from trainlab.training.trainer import Trainer

CNN = {"model": "cnn", "extra": {"width": 8}, "optimizer": "adamw", "lr": 3e-3, "batch_size": 32, "log_every": 1000}
FEATURES = ("features.0", "features.1", "features.3", "features.4", "features.6")  # the cnn's conv blocks


class Said(Reporter):
    """Keeps every message; sends a signal to this process after optimizer step `stop_at` (0: never)."""

    def __init__(self, stop_at: int = 0):
        self.messages: list[str] = []
        self.steps, self.stop_at = 0, stop_at

    def message(self, text: str) -> None:
        self.messages.append(text)

    def step(self, loss: float, batch_size: int) -> None:
        self.steps += 1
        if self.steps == self.stop_at:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """A test that opens a socket fails."""

    def refuse(*args, **kwargs):
        raise AssertionError("a fine-tuning test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return write_fashion_layout(tmp_path_factory.mktemp("data"), train_count=256, test_count=64)


@pytest.fixture(scope="module")
def pretrained(data_dir, tmp_path_factory) -> Path:
    """A cnn trained two epochs on the generated set: the weights the fine-tuning runs start from."""
    run_dir = tmp_path_factory.mktemp("pretrained") / "run"
    fit(TrainConfig(data_dir=str(data_dir), epochs=2, **CNN), run_dir=run_dir, reporter=Reporter())
    return run_dir


def config_of(data_dir: Path, **changes) -> TrainConfig:
    return TrainConfig(data_dir=str(data_dir), **{**CNN, **changes})


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model_state"]


def recorded_fine_tune(run_dir: Path) -> str:
    return next(line for line in (run_dir / "config.toml").read_text().splitlines() if line.startswith("fine_tune"))


def test_fine_tune_is_on_from_init_from_and_off_from_scratch_recorded_resolved(data_dir, pretrained, tmp_path):
    fit(config_of(data_dir, epochs=1), run_dir=tmp_path / "scratch", reporter=Reporter())
    fit(config_of(data_dir, epochs=1), run_dir=tmp_path / "tuned", init_from=pretrained, reporter=Reporter())
    fit(
        config_of(data_dir, epochs=1, fine_tune=False),
        run_dir=tmp_path / "refused",
        init_from=pretrained,
        reporter=Reporter(),
    )
    assert recorded_fine_tune(tmp_path / "scratch") == "fine_tune = false"
    assert recorded_fine_tune(tmp_path / "tuned") == "fine_tune = true"
    assert recorded_fine_tune(tmp_path / "refused") == "fine_tune = false"
    start, tuned, untuned = weights(pretrained), weights(tmp_path / "tuned"), weights(tmp_path / "refused")
    body = [key for key in start if not key.startswith("classifier.")]
    assert all(torch.equal(tuned[key], start[key]) for key in body)  # one frozen epoch: the body as it was
    assert not torch.equal(tuned["classifier.1.weight"], start["classifier.1.weight"])
    assert not torch.equal(untuned["features.0.0.weight"], start["features.0.0.weight"])  # --no-fine-tune: all


def test_the_second_phase_trains_every_layer_at_half_the_lr_earlier_layers_slower(data_dir):
    config = config_of(data_dir, epochs=3, fine_tune=True)
    setup = build_training(config, load_dataset(config, download=False))
    phases = FineTuning(setup, Reporter())
    assert [len(group["params"]) for group in setup.optimizer.param_groups] == [2]  # the head's weight and bias
    assert not any(p.requires_grad for n, p in setup.model.named_parameters() if n.startswith("features."))
    phases.enter(1)
    lrs = [group["lr"] for group in setup.optimizer.param_groups]
    assert lrs[0] == pytest.approx(1.5e-3)  # the head first, at half the lr
    assert lrs[1:] == pytest.approx([1.5e-5 * 100 ** (i / 5) for i in range(5)])  # conv blocks, earliest first
    assert lrs[1:] == pytest.approx(layer_lrs(1.5e-3, len(FEATURES)))
    grouped = [
        {n for n, p in setup.model.named_parameters() if any(p is q for q in g["params"])}
        for g in setup.optimizer.param_groups
    ]
    assert [sorted({n.rsplit(".", 2)[0] for n in names}) for names in grouped[1:]] == [[f] for f in FEATURES]
    assert all(p.requires_grad for p in setup.model.parameters())


def test_each_epoch_says_its_fine_tune_phase(data_dir, pretrained, tmp_path):
    said = Said()
    fit(config_of(data_dir, epochs=3), run_dir=tmp_path / "run", init_from=pretrained, reporter=said)
    phases = [text for text in said.messages if text.startswith("fine-tune phase")]
    assert phases == [
        "fine-tune phase 1 of 2 (epoch 1 of the first 1): the head classifier.1 alone, the body frozen, on its "
        "features, computed once; lr 0.003",
        "fine-tune phase 2 of 2 (epoch 2): every layer; lr 0.0015 for the head down to 1.5e-05 for the first layers",
        "fine-tune phase 2 of 2 (epoch 3): every layer; lr 0.0015 for the head down to 1.5e-05 for the first layers",
    ]


STOPS = [  # (schedule, augment, optimizer step of the stop, its phase, its optimizer's parameter groups)
    ("linear", True, 13, 2, 6),  # epoch 2, batch 5 of 8: every layer, the head and the 5 conv blocks
    ("onecycle", True, 13, 2, 6),
    ("linear", False, 5, 1, 1),  # epoch 1, batch 5: the head alone, on cached features
]


@pytest.mark.parametrize(("schedule", "augment", "stop_at", "phase", "groups"), STOPS)
def test_a_run_stopped_in_either_phase_resumes_there_bit_identical_to_an_uninterrupted_run(
    schedule, augment, stop_at, phase, groups, data_dir, pretrained, tmp_path
):
    config = config_of(data_dir, epochs=3, shuffle=True, augment=augment, schedule=schedule, freeze_epochs=1)
    fit(config, run_dir=tmp_path / "clean", init_from=pretrained, reporter=Reporter())
    with pytest.raises(TrainingInterrupted):
        fit(config, run_dir=tmp_path / "stopped", init_from=pretrained, reporter=Said(stop_at=stop_at))
    stopped = torch.load(tmp_path / "stopped" / "checkpoints" / "last.pt", weights_only=True)
    assert (stopped["epoch"], stopped["step"]) == ((stop_at - 1) // 8, stop_at)
    assert len(stopped["optimizer_state"]["param_groups"]) == groups
    said = Said()
    fit(config, run_dir=tmp_path / "stopped", resume=True, reporter=said)
    phases = [text[: len("fine-tune phase 1")] for text in said.messages if text.startswith("fine-tune phase")]
    assert phases[0] == f"fine-tune phase {phase}" and len(phases) == 3 - stopped["epoch"]
    clean, resumed = (
        torch.load(tmp_path / run / "checkpoints" / "last.pt", weights_only=True) for run in ("clean", "stopped")
    )
    for key in ("model_state", "optimizer_state", "scheduler_state", "rng", "epoch", "step"):
        assert differences(clean[key], resumed[key], key) == []
    assert metrics_rows(tmp_path / "stopped") == metrics_rows(tmp_path / "clean")


def count_body_images(monkeypatch) -> dict[str, int]:
    """Counts the images the cnn's body (its `features`) is run on by the epochs of every run from now on."""
    counted = {"images": 0, "in_epoch": False}
    build, run_epoch = trainer_module.build_training, Trainer.run_epoch

    def counting_build(*args, **kwargs):
        setup = build(*args, **kwargs)
        setup.model.features.register_forward_hook(
            lambda module, inputs, output: counted.update(images=counted["images"] + counted["in_epoch"] * len(output))
        )
        return setup

    def counted_epoch(self):
        counted["in_epoch"] = True
        try:
            return run_epoch(self)
        finally:
            counted["in_epoch"] = False

    monkeypatch.setattr(trainer_module, "build_training", counting_build)
    monkeypatch.setattr(Trainer, "run_epoch", counted_epoch)
    return counted


def test_a_frozen_body_runs_once_per_image_and_its_cached_head_equals_the_one_trained_through_it(
    data_dir, pretrained, tmp_path, monkeypatch
):
    config = config_of(data_dir, epochs=3, freeze_epochs=3, shuffle=True, val_split=0.25, schedule="cosine")
    counted = count_body_images(monkeypatch)
    fit(config, run_dir=tmp_path / "cached", init_from=pretrained, reporter=Reporter())
    assert counted["images"] == 256 + 64  # train and validation (192 + 64), test (64): each image once
    monkeypatch.setattr(FineTuning, "feature_cache", lambda self: None)
    fit(config, run_dir=tmp_path / "through", init_from=pretrained, reporter=Reporter())
    assert counted["images"] > 320 + 3 * 256
    cached, through = weights(tmp_path / "cached"), weights(tmp_path / "through")
    for key in cached:
        torch.testing.assert_close(cached[key], through[key], rtol=1e-4, atol=1e-5)
    assert not torch.equal(cached["classifier.1.weight"], weights(pretrained)["classifier.1.weight"])
    for row, other in zip(metrics_rows(tmp_path / "cached"), metrics_rows(tmp_path / "through"), strict=True):
        assert row["test_accuracy"] == other["test_accuracy"]
        assert row["train_loss"] == pytest.approx(other["train_loss"], rel=1e-4)


def test_a_linear_probe_by_freeze_trains_the_head_on_cached_features(data_dir, pretrained, tmp_path, monkeypatch):
    counted = count_body_images(monkeypatch)
    said = Said()
    config = config_of(data_dir, epochs=4, freeze=["features"], fine_tune=False)
    fit(config, run_dir=tmp_path / "probe", init_from=pretrained, reporter=said)
    assert counted["images"] == 256 + 64
    start, probe = weights(pretrained), weights(tmp_path / "probe")
    assert all(torch.equal(probe[key], start[key]) for key in start if key.startswith("features."))
    assert metrics_rows(tmp_path / "probe")[-1]["test_accuracy"] > 0.5  # chance: 0.1
    assert not torch.equal(probe["classifier.1.weight"], start["classifier.1.weight"])
    assert not any(text.startswith("fine-tune phase") for text in said.messages)  # no phases: one frozen body


def test_the_auto_recipe_picks_fine_tuning_when_the_run_starts_from_trained_weights(data_dir, pretrained, tmp_path):
    data = load_dataset(config_of(data_dir), download=False)
    auto = config_of(data_dir, recipe="auto", recipe_keep=["augment_flip", "tta"])  # no flip test: not this one
    chosen, _ = recipe.resolve_recipe(fine_tune.resolved(auto, init_from=pretrained), data, lambda config: data)
    (choice,) = [c for c in chosen.choices if c.key == "fine_tune"]
    assert choice.value is True and chosen.config.fine_tune is True
    assert choice.reason.startswith("the run starts from trained weights (--init-from or --weights): the first 1 ")
    assert "  fine_tune        on       the run starts from trained weights" in chosen.describe()
    assert {"key": "fine_tune", "value": True, "reason": choice.reason} in chosen.to_dict()["choices"]
    scratch, _ = recipe.resolve_recipe(fine_tune.resolved(auto), data, lambda config: data)
    assert scratch.config.fine_tune is False and "fine_tune" not in [c.key for c in scratch.choices]
    kept = auto.replace(fine_tune=False, recipe_keep=[*auto.recipe_keep, "fine_tune"])
    refused, _ = recipe.resolve_recipe(fine_tune.resolved(kept, init_from=pretrained), data, lambda config: data)
    assert refused.config.fine_tune is False and "fine_tune" not in [c.key for c in refused.choices]


def test_a_time_budget_run_fine_tunes_and_ends_within_its_budget(data_dir, pretrained, tmp_path):
    said = Said()
    config = config_of(data_dir, time_budget=6.0)
    summary = fit(config, run_dir=tmp_path / "run", init_from=pretrained, reporter=said)
    assert summary["time_budget"]["seconds_at_summary"] <= 6.0
    assert summary["epochs"] >= 2 and recorded_fine_tune(tmp_path / "run") == "fine_tune = true"
    assert any(text.startswith("fine-tune phase 2 of 2") for text in said.messages)


def test_bad_fine_tune_values_are_one_line(data_dir, tmp_path, run_main):
    result = run_main("train", "--data-dir", data_dir, "--run-dir", tmp_path / "run", "--freeze-epochs", "-1")
    assert result.returncode == 2 and result.stderr.strip().endswith("freeze_epochs must be >= 0, got -1")
    assert not (tmp_path / "run").exists()


class TokenNet(torch.nn.Module):
    """A body holding a tensor of its own beside its layers, as a vision transformer's class token."""

    def __init__(self):
        super().__init__()
        self.token = torch.nn.Parameter(torch.zeros(4))
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 4))
        self.head = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.body(x + self.token))


def test_every_body_tensor_is_in_exactly_one_layer_group_the_models_own_first():
    model = TokenNet()
    groups = fine_tune.body_groups(model, "head")
    assert [[id(p) for p in group] for group in groups] == [
        [id(model.token)],
        [id(model.body[0].weight), id(model.body[0].bias)],
        [id(model.body[2].weight), id(model.body[2].bias)],
    ]


def test_several_processes_default_to_no_fine_tune_and_refuse_it_when_asked(data_dir, pretrained):
    config = config_of(data_dir, epochs=2)
    assert fine_tune.resolved(config, init_from=pretrained).fine_tune is True
    assert fine_tune.resolved(config, init_from=pretrained, several_processes=True).fine_tune is False
    asked = config.replace(fine_tune=True)
    assert fine_tune.resolved(asked, several_processes=True).fine_tune is True
    setup = build_training(asked, load_dataset(asked, download=False))
    setup.dist = SimpleNamespace(active=True, world=2)  # what DDP wraps keeps its trained parameters fixed
    with pytest.raises(ConfigError, match=r"^--fine-tune trains in one process; leave out --nproc"):
        FineTuning(setup, Reporter())


def test_fine_tune_asked_for_on_a_run_from_scratch_says_its_frozen_body_is_random(data_dir, tmp_path):
    messages: list[str] = []
    reporter = Reporter()
    reporter.message = messages.append
    fit(config_of(data_dir, epochs=1, fine_tune=True), run_dir=tmp_path / "scratch", reporter=reporter)
    assert messages[0] == (
        "--fine-tune without --weights or --init-from: the body its first phase freezes is randomly initialised, so "
        "that phase trains a head on random features; start from trained weights, or leave out --fine-tune"
    )
    quiet: list[str] = []
    reporter.message = quiet.append
    fit(config_of(data_dir, epochs=1), run_dir=tmp_path / "plain", reporter=reporter)  # off from scratch: no word
    assert not any(message.startswith("--fine-tune without") for message in quiet)
