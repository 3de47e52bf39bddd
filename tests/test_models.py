"""Models: the tutorial's MLP layer for layer, the registry, and users' own pkg.module:Class models."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from torch import nn

from trainlab import TrainConfig, fit, load_dataset
from trainlab.checkpoint import load_checkpoint
from trainlab.config import read_config_file
from trainlab.engine.reporting import Reporter
from trainlab.errors import ConfigError
from trainlab.models import create_model, list_models
from trainlab.models.mlp import NeuralNetwork
from trainlab.training import Trainer

from conftest import train_ok, write_fashion_layout
from tutorial_code import TUTORIAL_KEYS, TutorialNeuralNetwork

pytestmark = pytest.mark.usefixtures("no_run_reports")  # end-of-run PNGs are tested in test_reports


def test_mlp_has_the_tutorials_669706_parameters_and_keys():
    model = create_model("mlp")
    assert sum(p.numel() for p in model.parameters()) == 669_706
    assert list(model.state_dict()) == TUTORIAL_KEYS
    assert str(model) == str(TutorialNeuralNetwork()).replace("TutorialNeuralNetwork", "NeuralNetwork")


@pytest.mark.parametrize("seed", [0, 42])
def test_seeded_mlp_equals_the_tutorials_class_with_the_same_seed(seed):
    torch.manual_seed(seed)
    expected = TutorialNeuralNetwork().state_dict()
    torch.manual_seed(seed)
    actual = NeuralNetwork().state_dict()
    torch.manual_seed(seed)
    via_registry = create_model("mlp", (1, 28, 28), 10).state_dict()
    for key in TUTORIAL_KEYS:
        assert torch.equal(actual[key], expected[key]), key
        assert torch.equal(via_registry[key], expected[key]), key


def test_mlp_follows_the_input_shape_and_class_count():
    model = create_model("mlp", (3, 32, 32), 100)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    assert model.linear_relu_stack[0].in_features == 3 * 32 * 32


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_cnn_gives_one_logit_per_class(shape):
    model = create_model("cnn", shape, 10).eval()
    assert model(torch.zeros(4, *shape)).shape == (4, 10)


def test_registry_lists_the_built_in_models():
    assert {"mlp", "cnn"} <= set(list_models())


def test_unknown_model_name_is_a_config_error_listing_the_choices():
    with pytest.raises(ConfigError, match=r"unknown model 'nope'; choose one of: .*mlp.*package\.module:Class"):
        create_model("nope")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's own models, importable as `name` from a folder on sys.path."""

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(__import__("sys").modules, name, raising=False)
        return name

    return write


USER_MODELS = """
    import torch
    from torch import nn

    class TutorialNet(nn.Module):  # takes no arguments, like the tutorial's class
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.linear = nn.Linear(28 * 28, 10)

        def forward(self, x):
            return self.linear(self.flatten(x))

    class SizedNet(nn.Module):  # takes the data's shape and class count
        def __init__(self, input_shape=(1, 28, 28), num_classes=10, hidden=8):
            super().__init__()
            self.input_shape, self.hidden = input_shape, hidden
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], hidden),
                                     nn.ReLU(), nn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.net(x)

    def build_linear(num_classes=10):  # a factory function is refused: only nn.Module subclasses are built
        return nn.Sequential(nn.Flatten(), nn.Linear(784, num_classes))

    NOT_CALLABLE = 3
"""


def test_user_model_given_as_module_colon_class_is_built(user_module):
    name = user_module("my_models_a", USER_MODELS)
    model = create_model(f"{name}:TutorialNet", (1, 28, 28), 10)
    assert type(model).__name__ == "TutorialNet"
    sized = create_model(f"{name}:SizedNet", (3, 32, 32), 7, hidden=5)
    assert sized.input_shape == (3, 32, 32) and sized.hidden == 5
    assert sized(torch.zeros(1, 3, 32, 32)).shape == (1, 7)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Net", r"model 'no_such_module_xyz:Net': cannot import 'no_such_module_xyz'"),
        ("{module}:Missing", r"model '{module}:Missing': {module} has no class 'Missing'"),
        ("{module}:NOT_CALLABLE", r"{module}.NOT_CALLABLE is not an nn.Module subclass"),
        ("{module}:build_linear", r"{module}.build_linear is not an nn.Module subclass"),
        ("{module}:", r"has no class ''"),
    ],
)
def test_bad_user_model_spec_is_a_config_error(user_module, spec, message):
    name = user_module("my_models_b", USER_MODELS)
    with pytest.raises(ConfigError, match=message.format(module=name)):
        create_model(spec.format(module=name))


def test_user_model_rejecting_its_arguments_is_a_config_error(user_module):
    name = user_module("my_models_c", USER_MODELS)
    with pytest.raises(ConfigError, match=r"cannot be built with these arguments"):
        create_model(f"{name}:SizedNet", depth=3)


def test_summary_command_prints_the_parameter_totals(run_main):
    result = run_main("summary", "--model", "mlp")
    assert result.returncode == 0
    assert "linear_relu_stack.0.weight  512x784" in result.stdout
    assert "Total parameters: 669,706" in result.stdout
    assert "Trainable parameters: 669,706" in result.stdout


def test_summary_json_gives_the_counts(run_main):
    import json

    result = run_main("summary", "--model", "mlp", "--json")
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "total_parameters": 669_706,
        "trainable_parameters": 669_706,
        "forward_flops": 2 * 668_672,
        "forward_macs": 668_672,
    }


def test_frozen_parameters_do_not_change_while_the_others_train(run_main, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    train_ok(
        run_main,
        tiny_data,
        run_dir,
        "--epochs",
        "1",
        "--optimizer",
        "adamw",
        "--lr",
        "0.01",
        "--weight-decay",
        "0.1",
        "--freeze",
        "linear_relu_stack.0",
        "--freeze",
        "linear_relu_stack.4.bias",
        "--quiet",
    )
    assert read_config_file(run_dir / "config.toml")["freeze"] == ["linear_relu_stack.0", "linear_relu_stack.4.bias"]
    torch.manual_seed(0)  # the run's seed: its initial weights
    initial = create_model("mlp").state_dict()
    trained = load_checkpoint(run_dir).model_state
    frozen = {"linear_relu_stack.0.weight", "linear_relu_stack.0.bias", "linear_relu_stack.4.bias"}
    for key, value in trained.items():
        assert torch.equal(value, initial[key]) == (key in frozen), key


def test_summary_marks_frozen_parameters_and_counts_the_trainable_ones(run_main):
    result = run_main("summary", "--model", "mlp", "--freeze", "linear_relu_stack.0")
    assert result.returncode == 0, result.stderr
    table = {
        line.split()[0]: line.split()[-1]
        for line in result.stdout.splitlines()
        if line.startswith("linear_relu_stack.") and line.split()[-1] in ("yes", "no")
    }
    assert table == {
        "linear_relu_stack.0.weight": "no",
        "linear_relu_stack.0.bias": "no",
        "linear_relu_stack.2.weight": "yes",
        "linear_relu_stack.2.bias": "yes",
        "linear_relu_stack.4.weight": "yes",
        "linear_relu_stack.4.bias": "yes",
    }
    assert "Total parameters: 669,706" in result.stdout
    assert f"Trainable parameters: {669_706 - (784 * 512 + 512):,}" in result.stdout


@pytest.mark.parametrize("model", ["mlp", "cnn", "resnet", "tv:resnet18"])
def test_summary_totals_are_the_models_parameter_counts(run_main, model):
    expected = sum(p.numel() for p in create_model(model, (1, 28, 28), 10).parameters())
    result = run_main("summary", "--model", model, "--json")
    assert result.returncode == 0, result.stderr
    totals = json.loads(result.stdout.splitlines()[-1])
    assert totals["total_parameters"] == totals["trainable_parameters"] == expected
    assert f"Total parameters: {expected:,}" in result.stderr  # --json: the table goes to stderr


def test_summary_trainable_count_of_a_frozen_torchvision_backbone(run_main):
    model = create_model("tv:resnet18", (1, 28, 28), 10)
    head = sum(p.numel() for name, p in model.named_parameters() if name.startswith("net.fc."))
    result = run_main(
        "summary",
        "--model",
        "tv:resnet18",
        "--freeze",
        "net.layer",
        "--freeze",
        "net.conv1",
        "--freeze",
        "net.bn1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["trainable_parameters"] == head == 512 * 10 + 10


def test_dropout_reaches_the_cnn(run_main, tiny_data, tmp_path):
    config_file = tmp_path / "cnn.toml"
    config_file.write_text('model = "cnn"\ndropout = 0.3\nepochs = 1\n[extra]\nwidth = 8\n')
    run_dir = tmp_path / "run"
    train_ok(run_main, tiny_data, run_dir, "--config", config_file, "--quiet")
    assert read_config_file(run_dir / "config.toml")["dropout"] == 0.3
    trainer = Trainer(
        TrainConfig(model="cnn", dropout=0.3, extra={"width": 8}, device="cpu"),
        run_dir,
        load_dataset(data_dir=tiny_data, download=False),
        None,
        Reporter(),
    )
    assert [m.p for m in trainer.model.modules() if isinstance(m, nn.Dropout)] == [0.3]


def test_dropout_for_the_mlp_is_refused_with_one_line(run_main, tiny_data, tmp_path):
    result = run_main(
        "train", "--data-dir", tiny_data, "--run-dir", tmp_path / "run", "--model", "mlp", "--dropout", "0.3"
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("trainlab train: error: ")
    assert "dropout" in result.stderr and "mlp" in result.stderr and "cnn" in result.stderr
    assert "__init__" not in result.stderr  # no Python internals
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("model", "extra", "lr"), [("cnn", {"width": 16}, 3e-3), ("resnet", {"width": 8}, 1e-2)])
def test_conv_nets_learn_the_bands_in_two_epochs(tiny_data, tmp_path, model, extra, lr):
    data = load_dataset(data_dir=tiny_data, download=False)
    config = TrainConfig(
        model=model, extra=extra, optimizer="adam", lr=lr, epochs=2, batch_size=32, shuffle=True, device="cpu"
    )
    summary = fit(config, data=data, run_dir=tmp_path / "run")
    assert summary["test_accuracy"] >= 0.95


def test_torchvision_resnet18_takes_one_channel_28x28_images():
    model = create_model("tv:resnet18", (1, 28, 28), 10).eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()


class Messages(Reporter):
    def __init__(self):
        self.lines = []

    def message(self, text: str) -> None:
        self.lines.append(text)


def test_local_weights_load_into_a_tv_model_and_the_skipped_head_is_reported(tmp_path):
    import torchvision

    torch.manual_seed(3)
    pretrained = torchvision.models.resnet18(num_classes=1000).state_dict()  # an ImageNet-shaped head
    path = tmp_path / "resnet18.pth"
    torch.save(pretrained, path)
    data_dir = write_fashion_layout(tmp_path / "data", train_count=20, test_count=10)
    messages = Messages()
    trainer = Trainer(
        TrainConfig(model="tv:resnet18", weights=str(path), device="cpu"),
        tmp_path / "run",
        load_dataset(data_dir=data_dir, download=False),
        None,
        messages,
    )
    loaded = trainer.model.net.state_dict()
    for key, value in pretrained.items():
        assert torch.equal(loaded[key], value) == (not key.startswith("fc.")), key
    assert loaded["fc.weight"].shape == (10, 512)
    report = [line for line in messages.lines if str(path) in line]
    assert len(report) == 1, messages.lines
    assert "fc.weight" in report[0] and "fc.bias" in report[0]


def test_frozen_batch_norm_keeps_its_running_statistics(tiny_data, tmp_path):
    data = load_dataset(data_dir=tiny_data, download=False)
    torch.manual_seed(0)
    fit(
        TrainConfig(
            model="cnn",
            epochs=1,
            batch_size=64,
            optimizer="adam",
            freeze=["features.0"],
            device="cpu",
            extra={"width": 8},
        ),
        data=data,
        run_dir=tmp_path / "run",
    )
    state = load_checkpoint(tmp_path / "run").model_state
    assert torch.equal(state["features.0.1.running_mean"], torch.zeros(8))  # untouched: still the initial values
    assert torch.equal(state["features.0.1.running_var"], torch.ones(8))
    assert not torch.equal(state["features.1.1.running_mean"], torch.zeros(8))  # trained layers do update


def test_resuming_a_tv_run_does_not_need_its_weights_file_any_more(tmp_path, run_main):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(num_classes=1000).state_dict(), path)
    data_dir = write_fashion_layout(tmp_path / "data", train_count=64, test_count=16)
    run_dir = tmp_path / "run"
    first = run_main(
        "train",
        "--model",
        "tv:resnet18",
        "--weights",
        str(path),
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--data-dir",
        str(data_dir),
        "--run-dir",
        str(run_dir),
        "--threads",
        "1",
        "--quiet",
    )
    assert first.returncode == 0, first.stderr
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text(metrics[0] + "\n")
    payload = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    payload["epoch"], payload["metrics"] = 1, payload["metrics"][:1]  # as if stopped after epoch 1
    torch.save(payload, run_dir / "checkpoints" / "last.pt")
    path.unlink()  # the pretrained file is gone; the checkpoint holds every weight
    resumed = run_main("train", "--resume", str(run_dir), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
