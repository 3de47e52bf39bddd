"""Tutorial equivalence: trainlab's defaults compute what the Quickstart computes, and weights move both ways.

The tutorial's model, train() and test() are re-written here from the Quickstart (DataLoader over x/255,
batch 64, no shuffle, SGD lr 1e-3, CrossEntropyLoss, backward/step/zero_grad) and compared with trainlab.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from trainlab import Predictor, TrainConfig, fit, load_dataset
from trainlab.checkpoint import FORMAT, load_checkpoint
from trainlab.engine.reporting import Reporter
from trainlab.errors import CheckpointError

from tutorial_code import TutorialNeuralNetwork, train_tutorial_model, tutorial_loader, tutorial_test


class BatchLosses(Reporter):
    def __init__(self):
        self.losses = []

    def batch_log(self, loss, current, size):
        self.losses.append(loss)


@pytest.fixture
def tiny(tiny_data):
    return load_dataset(data_dir=tiny_data, download=False)


@pytest.mark.parametrize("epochs", [1, 2])
def test_fit_with_defaults_ends_with_the_tutorial_loops_weights_bit_for_bit(tiny, tmp_path, epochs):
    expected_model, expected_losses = train_tutorial_model(tiny, epochs)
    reporter = BatchLosses()
    summary = fit(
        TrainConfig(epochs=epochs, seed=0, device="cpu", log_every=1),
        data=tiny,
        run_dir=tmp_path / "run",
        reporter=reporter,
    )
    actual = load_checkpoint(tmp_path / "run").model_state
    expected = expected_model.state_dict()
    assert list(actual) == list(expected)
    for key in expected:
        assert torch.equal(actual[key], expected[key]), key
    assert reporter.losses == expected_losses  # every logged loss, exactly
    accuracy, _ = tutorial_test(tutorial_loader(tiny.test), expected_model)
    assert summary["test_accuracy"] == pytest.approx(accuracy, abs=1e-12)


def test_tutorial_model_pth_loads_for_evaluate_and_predictor(tiny, tiny_data, tmp_path, run_main):
    model, _ = train_tutorial_model(tiny, epochs=1)
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)  # the tutorial's save
    accuracy, predicted = tutorial_test(tutorial_loader(tiny.test), model)

    predictor = Predictor.from_checkpoint(path, model="mlp")
    assert torch.equal(torch.tensor([p.index for p in predictor.predict(tiny.test.images)]), predicted)
    assert predictor.classes[0] == "T-shirt/top"

    result = run_main("evaluate", path, "--model", "mlp", "--data-dir", tiny_data, "--device", "cpu", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["samples"] == 160
    assert figures["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert f" Accuracy: {100 * accuracy:>0.1f}%, Avg loss: " in result.stderr


def test_plain_state_dict_without_model_name_asks_for_model(tiny, tmp_path):
    path = tmp_path / "model.pth"
    torch.save(TutorialNeuralNetwork().state_dict(), path)
    with pytest.raises(CheckpointError, match="plain state_dict that does not name its model; pass --model"):
        Predictor.from_checkpoint(path)


def test_state_dict_of_a_wrapped_model_loads(tiny, tmp_path):
    model = TutorialNeuralNetwork()
    path = tmp_path / "ddp.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # as DDP saves it
    predictor = Predictor.from_checkpoint(path, model="mlp")
    images = tiny.test.images[:8]
    with torch.no_grad():
        assert torch.equal(predictor.model(images.float() / 255), model(images.float() / 255))


def test_state_dict_of_another_model_names_the_mismatch(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).state_dict(), path)
    with pytest.raises(CheckpointError) as raised:
        Predictor.from_checkpoint(path, model="mlp")
    message = str(raised.value)
    assert "missing keys: linear_relu_stack.0.weight" in message
    assert "unexpected keys: 1.weight, 1.bias" in message


def test_exported_state_dict_loads_into_the_tutorials_class(tiny, tmp_path, run_main, capsys):
    fit(TrainConfig(epochs=1, device="cpu"), data=tiny, run_dir=tmp_path / "run")
    out = tmp_path / "model.pth"
    result = run_main("export", tmp_path / "run", "--format", "state-dict", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Wrote state-dict to {out}\n"

    model = TutorialNeuralNetwork()
    print(model.load_state_dict(torch.load(out, weights_only=True)))  # the tutorial's load
    assert capsys.readouterr().out == "<All keys matched successfully>\n"
    trained = Predictor.from_checkpoint(tmp_path / "run")
    model.eval()
    with torch.no_grad():
        x = tiny.test.images.float() / 255
        assert torch.equal(model(x), trained.model(x))


def test_trainlab_checkpoint_describes_itself_in_plain_types(tiny, tmp_path):
    config = TrainConfig(epochs=1, device="cpu", seed=3)
    fit(config, data=tiny, run_dir=tmp_path / "run")
    payload = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert payload["format"] == FORMAT
    assert payload["format_version"] == 1
    assert payload["config"] == config.replace(fine_tune=False).to_dict()  # recorded resolved: from scratch, off
    assert payload["classes"] == list(tiny.classes)
    assert payload["preprocessing"]["channels"] == 1
    assert (payload["preprocessing"]["height"], payload["preprocessing"]["width"]) == (28, 28)
    assert payload["epoch"] == 1
    assert payload["step"] == 10  # 640 images / 64
    assert list(payload["model_state"]) == list(TutorialNeuralNetwork().state_dict())
