"""TrainConfig: the tutorial's defaults, validation at the edge with messages naming the key, TOML in and out."""

from __future__ import annotations

import math

import pytest

from trainlab.cli import build_parser, train_config
from trainlab.config import TrainConfig, read_config_file
from trainlab.errors import ConfigError, TrainlabError


def test_defaults_are_the_tutorials():
    config = TrainConfig()
    assert config.model == "mlp"
    assert config.dataset == "fashion-mnist"
    assert config.loss == "cross-entropy"
    assert config.optimizer == "sgd"
    assert config.lr == 1e-3
    assert config.momentum == 0.0
    assert config.weight_decay == 0.0
    assert config.batch_size == 64
    assert config.epochs == 10
    assert config.shuffle is False
    assert config.precision == "fp32"
    assert config.log_every == 100  # the tutorial prints a loss line every 100 batches


def test_config_error_is_the_one_user_facing_error_type():
    assert issubclass(ConfigError, TrainlabError)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"lr": 0.0}, "lr"),
        ({"lr": -1.0}, "lr"),
        ({"lr": math.nan}, "lr"),
        ({"lr": math.inf}, "lr"),
        ({"lr": "abc"}, "lr"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": -64}, "batch_size"),
        ({"batch_size": 6.4}, "batch_size"),
        ({"batch_size": True}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"seed": -1}, "seed"),
        ({"momentum": 1.0}, "momentum"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"loss": "hinge"}, "loss"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"precision": "fp8"}, "precision"),
        ({"device": "tpu"}, "device"),
        ({"shuffle": "yes"}, "shuffle"),
        ({"model": ""}, "model"),
    ],
)
def test_invalid_values_raise_config_error_naming_the_key(changes, key):
    with pytest.raises(ConfigError) as raised:
        TrainConfig(**changes)
    message = str(raised.value)
    assert key in message
    assert "\n" not in message


def test_unknown_choice_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown optimizer 'lbfgs'; choose one of: sgd, rmsprop, adam, adamw"):
        TrainConfig(optimizer="lbfgs")


def test_replace_validates_again():
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig().replace(lr=-1.0)
    assert TrainConfig().replace(lr=0.5).lr == 0.5


def test_toml_round_trip_gives_an_equal_config(tmp_path):
    original = TrainConfig(model="cnn", loss="nll", optimizer="adam", lr=3e-4, batch_size=128, epochs=3, seed=7,
                           shuffle=True, data_dir="some/data", extra={"width": 16})
    path = tmp_path / "config.toml"
    path.write_text(original.to_toml())
    assert TrainConfig.from_dict(read_config_file(path)) == original


def test_toml_round_trip_of_the_defaults(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(TrainConfig().to_toml())
    assert TrainConfig.from_dict(read_config_file(path)) == TrainConfig()


def test_config_file_keys_may_use_dashes_like_the_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('batch-size = 32\nlr = 0.01\n')
    assert TrainConfig.from_dict(read_config_file(path)) == TrainConfig(batch_size=32, lr=0.01)


def test_unknown_key_in_a_config_file_is_named(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("lr = 0.01\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError) as raised:
        TrainConfig.from_dict(read_config_file(path), source=str(path))
    message = str(raised.value)
    assert "unknown key(s) learning_rate" in message
    assert str(path) in message


def test_bad_value_in_a_config_file_names_the_key(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('batch_size = "large"\n')
    with pytest.raises(ConfigError, match="batch_size must be a whole number, got 'large'"):
        TrainConfig.from_dict(read_config_file(path), source=str(path))


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("lr = = 1\n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML"):
        read_config_file(path)


def test_missing_config_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"config file .*nope\.toml does not exist"):
        read_config_file(tmp_path / "nope.toml")


def test_flags_override_the_config_file_which_overrides_the_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('lr = 0.5\nepochs = 3\noptimizer = "adam"\n')
    args = build_parser().parse_args(["train", "--config", str(path), "--lr", "0.01", "--batch-size", "16"])
    config = train_config(args)
    assert config == TrainConfig(lr=0.01, epochs=3, optimizer="adam", batch_size=16)


def test_shuffle_flag_overrides_the_config_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("shuffle = true\n")
    args = build_parser().parse_args(["train", "--config", str(path), "--no-shuffle"])
    assert train_config(args).shuffle is False
    args = build_parser().parse_args(["train", "--config", str(path)])
    assert train_config(args).shuffle is True
