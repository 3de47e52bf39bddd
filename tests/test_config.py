"""TrainConfig: the tutorial's defaults, validation at the edge with messages naming the key, TOML in and out."""

from __future__ import annotations

import json
import math

import pytest
import torch

from trainlab.checkpoint import load_checkpoint
from trainlab.cli import build_parser, train_config
from trainlab.config import TrainConfig, read_config_file
from trainlab.errors import ConfigError, TrainlabError
from trainlab.resolution import PRESETS
from trainlab.testing.compare import without_machine_fields

from conftest import read_metrics, train_ok, write_fashion_layout

pytestmark = pytest.mark.usefixtures("no_run_reports")  # end-of-run PNGs are tested in test_reports


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
    original = TrainConfig(
        model="cnn",
        loss="nll",
        optimizer="adam",
        lr=3e-4,
        batch_size=128,
        epochs=3,
        seed=7,
        shuffle=True,
        data_dir="some/data",
        extra={"width": 16},
    )
    path = tmp_path / "config.toml"
    path.write_text(original.to_toml())
    assert TrainConfig.from_dict(read_config_file(path)) == original


def test_toml_round_trip_of_the_defaults(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(TrainConfig().to_toml())
    assert TrainConfig.from_dict(read_config_file(path)) == TrainConfig()


def test_config_file_keys_may_use_dashes_like_the_flags(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("batch-size = 32\nlr = 0.01\n")
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


def test_a_config_file_sets_the_run_flags_override_it_and_the_saved_config_reproduces_the_run(
    run_main, tiny_data, tmp_path
):
    config_file = tmp_path / "run.toml"
    config_file.write_text(
        'optimizer = "adam"\nlr = 0.5\nbatch-size = 32\nepochs = 5\nseed = 7\nshuffle = true\n'
        'schedule = "cosine"\nwarmup_epochs = 0.5\nval_split = 0.25\n'
    )
    first = tmp_path / "first"
    train_ok(run_main, tiny_data, first, "--config", config_file, "--lr", "0.003", "--epochs", "2", "--quiet")
    saved = read_config_file(first / "config.toml")
    assert {
        key: saved[key]
        for key in (
            "optimizer",
            "lr",
            "batch_size",
            "epochs",
            "seed",
            "shuffle",
            "schedule",
            "warmup_epochs",
            "val_split",
        )
    } == {
        "optimizer": "adam",
        "lr": 0.003,
        "batch_size": 32,
        "epochs": 2,
        "seed": 7,
        "shuffle": True,
        "schedule": "cosine",
        "warmup_epochs": 0.5,
        "val_split": 0.25,
    }
    assert len(read_metrics(first)) == 2
    assert json.loads((first / "summary.json").read_text())["steps"] == 2 * 15  # 480 training images / 32

    second = tmp_path / "second"
    result = run_main("train", "--config", first / "config.toml", "--run-dir", second, "--quiet")
    assert result.returncode == 0, result.stderr
    assert (second / "config.toml").read_text() == (first / "config.toml").read_text()
    assert without_machine_fields(read_metrics(second)) == without_machine_fields(read_metrics(first))
    weights = [load_checkpoint(run).model_state for run in (first, second)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_preset_values_show_up_in_the_saved_config_and_flags_override_them(run_main, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    train_ok(
        run_main,
        tiny_data,
        run_dir,
        "--preset",
        "speedrun",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--precision",
        "fp32",
        "--quiet",
    )
    saved = read_config_file(run_dir / "config.toml")
    # --epochs replaces the preset's time budget and halves its warm-up; the mlp has no width for auto_width
    overridden = {"model": "mlp", "epochs": 1, "precision": "fp32", "time_budget": None, "auto_width": False}
    overridden["warmup_epochs"] = 0.5
    for key, value in PRESETS["speedrun"].items():
        assert saved.get(key) == overridden.get(key, value), key
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 3  # 640 images in batches of 256


def test_a_config_file_overrides_the_preset_and_flags_override_both(tmp_path):
    from trainlab.cli import build_parser, train_config

    config_file = tmp_path / "c.toml"
    config_file.write_text("lr = 0.05\nepochs = 3\n")
    args = build_parser().parse_args(["train", "--preset", "speedrun", "--config", str(config_file), "--epochs", "2"])
    config = train_config(args)
    assert (config.lr, config.epochs, config.momentum, config.schedule) == (0.05, 2, 0.9, "linear")
    assert (config.time_budget, config.auto_width) == (None, False)  # a length was chosen: the preset's budget goes


@pytest.mark.parametrize(
    ("flags", "file", "expected"),
    [
        ([], "", (300.0, True, 12, None)),  # the preset's budget, the width fitted to it
        (["--model", "resnet"], "", (300.0, True, 12, None)),
        (["--model", "mlp"], "", (300.0, False, 12, None)),  # no width to fit: the budget stays
        (["--epochs", "3"], "", (None, False, 3, None)),
        (["--max-steps", "50"], "", (None, False, 12, 50)),
        ([], "epochs = 12\n", (None, False, 12, None)),  # in a config file, even the preset's own value
        (["--time-budget", "2m", "--epochs", "3"], "", (120.0, True, 3, None)),  # a budget the user gave stays
        (["--no-auto-width"], "", (300.0, False, 12, None)),
    ],
)
def test_the_speedrun_presets_budget_gives_way_to_a_length_the_user_chose(flags, file, expected, tmp_path):
    from trainlab.cli import build_parser, train_config

    config_file = tmp_path / "c.toml"
    config_file.write_text(file)
    from_file = ["--config", str(config_file)] if file else []
    config = train_config(build_parser().parse_args(["train", "--preset", "speedrun", *flags, *from_file]))
    assert (config.time_budget, config.auto_width, config.epochs, config.max_steps) == expected


def test_an_unknown_preset_is_one_line_listing_the_presets(run_main, tmp_path):
    result = run_main("train", "--preset", "fastest", "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr == "trainlab train: error: unknown preset 'fastest'; choose one of: tutorial, auto, speedrun\n"


def test_relative_data_paths_are_stored_absolute_so_evaluate_works_from_elsewhere(tmp_path, run_main, monkeypatch):
    write_fashion_layout(tmp_path / "work" / "data", train_count=64, test_count=16)
    monkeypatch.chdir(tmp_path / "work")
    trained = run_main("train", "--epochs", "1", "--data-dir", "data", "--run-dir", "run", "--quiet")
    assert trained.returncode == 0, trained.stderr
    assert read_config_file(tmp_path / "work" / "run" / "config.toml")["data_dir"] == str(tmp_path / "work" / "data")
    monkeypatch.chdir(tmp_path)
    evaluated = run_main("evaluate", "work/run", "--json")
    assert evaluated.returncode == 0, evaluated.stderr


def test_a_config_file_giving_a_built_in_model_an_unknown_argument_is_one_line_naming_the_file(run_main, tmp_path):
    config_file = tmp_path / "net.toml"
    config_file.write_text('model = "cnn"\n[extra]\nwidth = 8\ndepth = 3\n')
    result = run_main("train", "--config", config_file, "--run-dir", tmp_path / "run")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"trainlab train: error: {config_file}: model 'cnn' cannot be built with these arguments (extra): got an "
        "unexpected keyword argument 'depth'"
    )
    assert not (tmp_path / "run").exists()


def test_the_model_names_a_config_file_is_checked_against_need_no_torch():
    import subprocess
    import sys

    from trainlab.model_names import MODEL_ARGUMENTS
    from trainlab.models import _REGISTRY, keyword_arguments

    assert MODEL_ARGUMENTS == {name: keyword_arguments(factory) for name, factory in _REGISTRY.items()}
    code = "import sys, trainlab.model_names; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_resolve_gives_python_the_command_lines_config_without_importing_torch(tmp_path):
    import subprocess
    import sys

    config_file = tmp_path / "recipe.toml"
    config_file.write_text("batch_size = 128\nlr = 0.01\n")
    data_dir = str(tmp_path / "d")
    args = ["train", "--preset", "speedrun", "--config", str(config_file), "--epochs", "2", "--data-dir", data_dir]
    expected = train_config(build_parser().parse_args(args))
    code = (
        "import sys\nfrom trainlab.resolution import resolve\n"
        f"config = resolve('speedrun', {str(config_file)!r}, {{'epochs': 2, 'data_dir': {data_dir!r}}})\n"
        "print(config.to_toml())\nprint('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    *toml, torch_loaded = done.stdout.strip().splitlines()
    assert torch_loaded == "False"
    import tomllib

    got = tomllib.loads("\n".join(toml))
    assert got == tomllib.loads(expected.to_toml())
    assert got["epochs"] == 2 and got["lr"] == 0.01 and got["batch_size"] == 128 and "time_budget" not in got


def test_trainlab_resolve_is_the_resolution_of_the_command_line_with_its_one_line_errors():
    import trainlab
    import trainlab.resolution

    assert trainlab.resolve is trainlab.resolution.resolve and "resolve" in trainlab.__all__
    assert (
        trainlab.resolve("speedrun", flags={"epochs": 3}).to_dict()
        == train_config(build_parser().parse_args(["train", "--preset", "speedrun", "--epochs", "3"])).to_dict()
    )
    with pytest.raises(ConfigError) as caught:
        trainlab.resolve("nope")
    assert str(caught.value) == "unknown preset 'nope'; choose one of: tutorial, auto, speedrun"
