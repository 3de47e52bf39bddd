"""Models: the tutorial's MLP layer for layer, the registry, and users' own pkg.module:Class models."""

from __future__ import annotations

import textwrap

import pytest
import torch

from trainlab.errors import ConfigError
from trainlab.models import create_model, list_models
from trainlab.models.mlp import NeuralNetwork
from tutorial_code import TutorialNeuralNetwork

TUTORIAL_KEYS = [
    "linear_relu_stack.0.weight", "linear_relu_stack.0.bias",
    "linear_relu_stack.2.weight", "linear_relu_stack.2.bias",
    "linear_relu_stack.4.weight", "linear_relu_stack.4.bias",
]


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
    assert json.loads(result.stdout.splitlines()[-1]) == {"total_parameters": 669_706,
                                                          "trainable_parameters": 669_706,
                                                          "forward_flops": 2 * 668_672,
                                                          "forward_macs": 668_672}
