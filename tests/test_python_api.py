"""The Python API end to end: load data, train the built-in or the user's own model, predict; and the real data."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

from conftest import run_cli
from tutorial_code import TUTORIAL_KEYS


def test_public_api_trains_and_predicts(tiny_data, tmp_path):
    from trainlab import Predictor, TrainConfig, create_model, fit, load_dataset

    data = load_dataset(data_dir=tiny_data, download=False)
    summary = fit(
        TrainConfig(optimizer="adam", epochs=3, batch_size=32, device="cpu"), data=data, run_dir=tmp_path / "run"
    )
    assert summary["status"] == "finished"
    assert summary["epochs"] == 3
    assert summary["steps"] == 3 * 20
    assert summary["test_accuracy"] >= 0.9  # the generated bands are easy
    predictor = Predictor.from_checkpoint(tmp_path / "run")
    predictions = predictor.predict(data.test.images[:20])
    accuracy = sum(p.index == int(y) for p, y in zip(predictions, data.test.labels[:20], strict=True)) / 20
    assert accuracy >= 0.9
    assert isinstance(create_model("mlp"), nn.Module)


def test_fit_trains_the_users_own_module_in_place(tiny_data, tmp_path):
    from trainlab import Predictor, TrainConfig, fit, load_dataset
    from trainlab.checkpoint import load_checkpoint
    from trainlab.data import Preprocessing

    data = load_dataset(data_dir=tiny_data, download=False)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    initial = [p.detach().clone() for p in model.parameters()]
    summary = fit(
        TrainConfig(optimizer="adam", lr=3e-3, epochs=3, batch_size=32, device="cpu"),
        model=model,
        data=data,
        run_dir=tmp_path / "run",
    )
    assert summary["test_accuracy"] >= 0.9
    assert not all(torch.equal(a, b) for a, b in zip(initial, model.parameters(), strict=True))
    saved = load_checkpoint(tmp_path / "run").model_state
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())
    predictor = Predictor(model, data.classes, Preprocessing())
    assert predictor.predict(data.test.images[:1])[0].label in data.classes


def test_load_dataset_finds_the_data_through_the_environment(tiny_data, monkeypatch):
    from trainlab import load_dataset

    monkeypatch.setenv("TRAINLAB_DATA_DIR", str(tiny_data))
    assert len(load_dataset(download=False).train) == 640


def test_different_seeds_start_from_different_weights(tiny_data, tmp_path):
    from trainlab import TrainConfig, fit, load_dataset

    data = load_dataset(data_dir=tiny_data, download=False)
    rows = [
        fit(TrainConfig(epochs=1, seed=seed, device="cpu"), data=data, run_dir=tmp_path / str(seed)) for seed in (0, 1)
    ]
    assert rows[0]["train_loss"] != rows[1]["train_loss"]


@pytest.mark.slow
def test_tutorial_defaults_on_real_fashion_mnist_reach_the_tutorials_accuracy(real_data, tmp_path):
    """Two epochs of the Quickstart (MLP, SGD lr 1e-3, batch 64, seed 0): about 49.5% then 59.2%."""
    run_dir = tmp_path / "run"
    result = run_cli(
        "train",
        "--data-dir",
        str(real_data),
        "--epochs",
        "2",
        "--run-dir",
        str(run_dir),
        "--device",
        "cpu",
        env={"OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    loss_lines = [line for line in lines if line.startswith("loss: ")]
    assert len(loss_lines) == 2 * 10  # batches 1, 101, ..., 901 of 938 per epoch
    assert re.fullmatch(r"loss: 2\.3\d{5}  \[   64/60000\]", loss_lines[0])
    assert loss_lines[9].endswith("[57664/60000]")
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert 0.45 <= metrics[0]["test_accuracy"] <= 0.55
    assert 0.55 <= metrics[1]["test_accuracy"] <= 0.65
    assert metrics[1]["test_loss"] < metrics[0]["test_loss"] < 2.3
    result = run_cli("predict", str(run_dir), "--test-index", "0", "--data-dir", str(real_data))
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r'Predicted: "[^"]+", Actual: "Ankle boot"\n', result.stdout)


def test_a_users_own_module_is_recorded_so_the_checkpoint_rebuilds_it_when_the_user_names_it(
    tiny_data, tmp_path, monkeypatch
):
    import sys

    from trainlab import Predictor, TrainConfig, fit, load_dataset
    from trainlab.errors import ConfigError

    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(
        "from torch import nn\n"
        "class Tiny(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.body = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))\n"
        "    def forward(self, x):\n"
        "        return self.body(x)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from userpkg.nets import Tiny

    data = load_dataset(data_dir=tiny_data, download=False)
    summary = fit(TrainConfig(epochs=1, optimizer="adam"), model=Tiny(), data=data, run_dir=tmp_path / "run")
    assert 'model = "userpkg.nets:Tiny"' in (tmp_path / "run" / "config.toml").read_text()
    with pytest.raises(ConfigError, match="pass --model userpkg.nets:Tiny or --trust-model-code"):
        Predictor.from_checkpoint(tmp_path / "run")  # the file alone never imports code
    predictor = Predictor.from_checkpoint(tmp_path / "run", model="userpkg.nets:Tiny")
    assert isinstance(predictor.model, Tiny)
    assert isinstance(Predictor.from_checkpoint(tmp_path / "run", trust_model_code=True).model, Tiny)
    assert predictor.predict(data.test.images[:4])[0].label in data.classes
    assert summary["test_accuracy"] is not None
    del sys.modules["userpkg.nets"], sys.modules["userpkg"]


@pytest.mark.slow  # torch.compile generates and builds C++ kernels: about 20 s on 2 cores
def test_compiled_training_saves_plain_keys_that_load_into_an_uncompiled_model(tiny_data, tmp_path, run_main):
    from trainlab import Predictor, TrainConfig, fit, load_dataset
    from trainlab.checkpoint import load_checkpoint

    data = load_dataset(data_dir=tiny_data, download=False)
    summary = fit(
        TrainConfig(epochs=2, optimizer="adam", compile=True, threads=1, data_dir=str(tiny_data)),
        data=data,
        run_dir=tmp_path / "compiled",
    )
    state = load_checkpoint(tmp_path / "compiled").model_state
    assert list(state) == TUTORIAL_KEYS
    evaluated = run_main("evaluate", str(tmp_path / "compiled"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout.splitlines()[-1])["accuracy"] == summary["test_accuracy"]
    assert Predictor.from_checkpoint(tmp_path / "compiled").predict(data.test.images[:1])[0].label in data.classes
