"""The command line contract: output formats, run directory contents, JSON mode, exit statuses, one-line errors."""

from __future__ import annotations

import json
import re
import sys
import textwrap

import pytest
import torch

from trainlab.config import TrainConfig, read_config_file

from conftest import read_metrics, run_cli

METRIC_KEYS = {
    "epoch",
    "train_loss",
    "test_loss",
    "test_accuracy",
    "lr",
    "machine_seconds",
    "machine_samples_per_second",
}


def train(run_main, tiny_data, run_dir, *flags):
    result = run_main("train", "--data-dir", tiny_data, "--run-dir", run_dir, "--device", "cpu", *flags)
    assert result.returncode == 0, result.stderr
    return result


def test_help_works_without_importing_torch():
    code = textwrap.dedent("""
        import sys
        import trainlab.cli
        print('torch' in sys.modules)
        for argv in (['--help'], ['train', '--help'], ['predict', '--help']):
            try:
                trainlab.cli.main(argv)
            except SystemExit as exc:
                print('exit', exc.code)
        print('torch' in sys.modules)
    """)
    import subprocess

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = result.stdout.splitlines()
    assert lines[0] == "False"
    assert lines[-1] == "False"
    assert [line for line in lines if line.startswith("exit")] == ["exit 0"] * 3
    assert "usage: trainlab [-h]" in result.stdout
    assert "--batch-size" in result.stdout
    assert result.stderr == ""


def test_train_json_in_a_real_process_leaves_only_the_json_line_on_stdout(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    result = run_cli(
        "train",
        "--data-dir",
        str(tiny_data),
        "--run-dir",
        str(run_dir),
        "--epochs",
        "1",
        "--device",
        "cpu",
        "--json",
        env={"OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["run_dir"] == str(run_dir)
    assert summary["test_accuracy"] == read_metrics(run_dir)[-1]["test_accuracy"]
    assert summary["status"] == "finished"
    assert "Using cpu device" in result.stderr  # the human output moved to stderr
    assert "Done!" in result.stderr


def test_train_prints_the_tutorials_lines(run_main, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    result = train(run_main, tiny_data, run_dir, "--epochs", "2", "--log-every", "4")
    lines = result.stdout.splitlines()
    assert lines[0] == "Using cpu device"
    done = lines.index("Done!")
    assert lines[done + 1] == f"Saved checkpoint to {run_dir / 'checkpoints' / 'last.pt'}"
    metrics = read_metrics(run_dir)
    for epoch in (1, 2):
        start = lines.index(f"Epoch {epoch}")
        assert lines[start + 1] == "-------------------------------"
        loss_lines = lines[start + 2 : start + 5]
        assert [re.fullmatch(r"loss: \d\.\d{6}  \[(.{5})/  640\]", line)[1] for line in loss_lines] == [
            "   64",
            "  320",
            "  576",
        ]  # batches 1, 5 and 9 of 10
        assert lines[start + 5] == "Test Error: "
        row = metrics[epoch - 1]
        assert lines[start + 6] == f" Accuracy: {100 * row['test_accuracy']:.1f}%, Avg loss: {row['test_loss']:f} "
        assert re.fullmatch(r" Accuracy: \d{1,3}\.\d%, Avg loss: \d\.\d{6} ", lines[start + 6])
        assert lines[start + 7] == ""
    assert result.stderr == ""


def test_default_log_lines_come_every_100_batches(run_main, tiny_data, tmp_path):
    result = train(run_main, tiny_data, tmp_path / "run", "--epochs", "1")
    assert re.findall(r"\[.*\]", result.stdout) == ["[   64/  640]"]


def test_run_directory_holds_config_metrics_checkpoint_and_summary(run_main, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    train(run_main, tiny_data, run_dir, "--epochs", "2", "--lr", "0.01", "--seed", "4")
    config = TrainConfig.from_dict(read_config_file(run_dir / "config.toml"))
    expected = TrainConfig(epochs=2, lr=0.01, seed=4, device="cpu", data_dir=str(tiny_data), fine_tune=False)
    assert config == expected  # fine_tune recorded resolved: off for a run from scratch
    metrics = read_metrics(run_dir)
    assert [row["epoch"] for row in metrics] == [1, 2]
    for row in metrics:
        assert METRIC_KEYS <= set(row)
        assert 0.0 <= row["test_accuracy"] <= 1.0
        assert row["test_accuracy"] * 160 == pytest.approx(round(row["test_accuracy"] * 160))  # a fraction of 160
        assert row["lr"] == 0.01
        assert row["machine_seconds"] > 0 and row["machine_samples_per_second"] > 0
    assert (run_dir / "checkpoints" / "last.pt").is_file()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2
    assert summary["steps"] == 20
    assert summary["test_accuracy"] == metrics[-1]["test_accuracy"]
    assert summary["run_dir"] == str(run_dir)


def test_config_file_values_apply_and_flags_override_them(run_main, tiny_data, tmp_path):
    config_file = tmp_path / "c.toml"
    config_file.write_text("epochs = 1\nlr = 0.5\nbatch_size = 32\n")
    run_dir = tmp_path / "run"
    train(run_main, tiny_data, run_dir, "--config", config_file, "--lr", "0.02")
    config = TrainConfig.from_dict(read_config_file(run_dir / "config.toml"))
    assert (config.epochs, config.lr, config.batch_size) == (1, 0.02, 32)
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == 20  # 640 / 32


def test_same_seed_gives_identical_metrics(run_main, tiny_data, tmp_path):
    runs = [tmp_path / "a", tmp_path / "b"]
    for run_dir in runs:
        train(run_main, tiny_data, run_dir, "--epochs", "2", "--shuffle", "--seed", "3", "--optimizer", "adam")
    strip = lambda rows: [{k: v for k, v in row.items() if not k.startswith("machine_")} for row in rows]  # noqa: E731
    assert strip(read_metrics(runs[0])) == strip(read_metrics(runs[1]))
    weights = [torch.load(run / "checkpoints" / "last.pt", weights_only=True)["model_state"] for run in runs]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_evaluate_json_reproduces_the_last_epochs_test_figures(run_main, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    train(run_main, tiny_data, run_dir, "--epochs", "2", "--optimizer", "adam")
    last = read_metrics(run_dir)[-1]
    result = run_main(
        "evaluate", run_dir / "checkpoints" / "last.pt", "--data-dir", tiny_data, "--device", "cpu", "--json"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    figures = json.loads(lines[0])
    assert figures["samples"] == 160
    assert figures["accuracy"] == last["test_accuracy"]
    assert figures["loss"] == pytest.approx(last["test_loss"], rel=1e-6)
    assert f" Accuracy: {100 * last['test_accuracy']:.1f}%" in result.stderr


def test_user_model_trains_from_the_command_line(run_main, tiny_data, tmp_path, monkeypatch):
    (tmp_path / "cli_user_models.py").write_text(
        textwrap.dedent("""
        from torch import nn

        class Linear(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

            def forward(self, x):
                return self.layers(x)
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    run_dir = tmp_path / "run"
    train(run_main, tiny_data, run_dir, "--epochs", "1", "--model", "cli_user_models:Linear")
    result = run_main(
        "predict", run_dir, "--test-index", "0", "--data-dir", tiny_data, "--model", "cli_user_models:Linear"
    )  # the user names it again: a file alone imports nothing
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('Predicted: "')


BAD_TRAIN_FLAGS = [
    (["--lr", "-1"], "trainlab train: error: lr must be > 0, got -1.0"),
    (["--lr", "abc"], "trainlab train: error: argument --lr: expected a number or auto, got 'abc' (see trainlab"),
    (["--batch-size", "0"], "trainlab train: error: batch_size must be >= 1, got 0"),
    (["--batch-size", "1.5"], "trainlab train: error: argument --batch-size: invalid int value: '1.5'"),
    (["--epochs", "0"], "trainlab train: error: epochs must be >= 1, got 0"),
    (["--model", "nope"], "trainlab train: error: unknown model 'nope'; choose one of: "),
    (["--model", "no_such_module_q:Net"], "trainlab train: error: model 'no_such_module_q:Net': cannot import"),
    (["--loss", "nope"], "trainlab train: error: unknown loss 'nope'; choose one of: cross-entropy, "),
    (["--optimizer", "nope"], "trainlab train: error: unknown optimizer 'nope'; choose one of: sgd, "),
    (["--precision", "fp8"], "trainlab train: error: unknown precision 'fp8'; choose one of: fp32, bf16, fp16, auto"),
    (["--bogus-flag"], "trainlab train: error: unrecognized arguments: --bogus-flag (see trainlab train --help)"),
    (["--config", "missing.toml"], "trainlab train: error: config file missing.toml does not exist"),
]


@pytest.mark.parametrize(("flags", "message"), BAD_TRAIN_FLAGS, ids=[" ".join(f) for f, _ in BAD_TRAIN_FLAGS])
def test_bad_training_flags_exit_2_with_one_line_and_no_run_directory(run_main, tiny_data, tmp_path, flags, message):
    run_dir = tmp_path / "run"
    result = run_main("train", "--data-dir", tiny_data, "--run-dir", run_dir, "--epochs", "1", *flags)
    assert result.returncode == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not run_dir.exists() or list(run_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["train", "--epochz", "3"],
            "trainlab train: error: unrecognized arguments: --epochz 3; did you mean --epochs? "
            "(see trainlab train --help)",
        ),
        (
            ["data", "show", "--rowz", "3"],
            "trainlab data show: error: unrecognized arguments: --rowz 3; did you mean --rows? "
            "(see trainlab data show --help)",
        ),
        (["runs", "--bogus"], "trainlab runs: error: unrecognized arguments: --bogus (see trainlab runs --help)"),
        (["--bogus"], "trainlab: error: unrecognized arguments: --bogus (see trainlab --help)"),
    ],
)
def test_an_unknown_flag_is_refused_by_its_command_naming_the_nearest_flag(run_main, tmp_path, args, line):
    result = run_main(*args)
    assert result.returncode == 2
    assert result.stderr == line + "\n"
    assert result.stdout == ""


def test_bad_flag_in_a_real_process_exits_2_with_one_line(tmp_path):
    result = run_cli("train", "--batch-size", "0", "--run-dir", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "trainlab train: error: batch_size must be >= 1, got 0\n"
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_existing_run_directory_is_not_overwritten(run_main, tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    train(run_main, tiny_data, run_dir, "--epochs", "1")
    before = (run_dir / "metrics.jsonl").read_bytes()
    result = run_main("train", "--data-dir", tiny_data, "--run-dir", run_dir, "--epochs", "1", "--lr", "0.1")
    assert result.returncode == 2
    assert result.stderr.startswith(f"trainlab train: error: run directory {run_dir} already exists")
    assert result.stderr.count("\n") == 1
    assert (run_dir / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["evaluate", "{tmp}/missing.pt"], "trainlab evaluate: error: {tmp}/missing.pt: no such checkpoint file"),
        (
            ["predict", "{tmp}/missing.pt", "--test-index", "0"],
            "trainlab predict: error: {tmp}/missing.pt: no such checkpoint file",
        ),
        (
            ["export", "{tmp}/missing.pt", "--format", "state-dict", "--out", "{tmp}/m.pth"],
            "trainlab export: error: {tmp}/missing.pt: no such checkpoint file",
        ),
        (
            ["predict", "{pth}", "--model", "mlp", "{tmp}/missing.png"],
            "trainlab predict: error: {tmp}/missing.png: no such image file",
        ),
        (["predict", "{pth}", "--model", "mlp"], "trainlab predict: error: give image files or --test-index N"),
        (
            ["predict", "{pth}", "{tmp}/x.png"],
            "trainlab predict: error: {pth} is a plain state_dict that does not name its model; pass --model",
        ),
        (["evaluate", "{pth}", "--model", "nope"], "trainlab evaluate: error: unknown model 'nope'"),
        (
            ["export", "{pth}", "--model", "mlp", "--format", "onnx2", "--out", "{tmp}/m"],
            "trainlab export: error: argument --format: invalid choice: 'onnx2'",
        ),
        (["evaluate"], "trainlab evaluate: error: the following arguments are required: CHECKPOINT"),
        (["fly"], "trainlab: error: argument COMMAND: invalid choice: 'fly'"),
    ],
)
def test_bad_input_to_other_commands_exits_2_with_one_line(run_main, tmp_path, args, message):
    from trainlab.models.mlp import NeuralNetwork

    pth = tmp_path / "model.pth"
    torch.save(NeuralNetwork().state_dict(), pth)  # the tutorial's model.pth
    pth_args = [arg.format(tmp=tmp_path, pth=pth) for arg in args]
    result = run_main(*pth_args)
    assert result.returncode == 2
    assert result.stderr.startswith(message.format(tmp=tmp_path, pth=pth)), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_predict_takes_image_files_before_or_after_options(run_main, tmp_path):
    from PIL import Image

    pth = tmp_path / "model.pth"
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)).state_dict(), pth)
    Image.new("L", (28, 28)).save(tmp_path / "a.png")
    Image.new("L", (28, 28)).save(tmp_path / "b.png")
    (tmp_path / "models.py").write_text(
        "from torch import nn\n"
        "class Linear(nn.Sequential):\n    def __init__(self):\n"
        "        super().__init__(nn.Flatten(), nn.Linear(784, 10))\n"
    )
    import sys as _sys

    _sys.path.insert(0, str(tmp_path))
    try:
        before = run_main("predict", pth, tmp_path / "a.png", "--model", "models:Linear", "--top-k", "1")
        after = run_main(
            "predict", pth, "--model", "models:Linear", "--top-k", "1", tmp_path / "a.png", tmp_path / "b.png"
        )
    finally:
        _sys.path.remove(str(tmp_path))
        _sys.modules.pop("models", None)
    assert before.returncode == 0, before.stderr
    assert after.returncode == 0, after.stderr
    note, *_ = before.stdout.splitlines()  # a plain state_dict records no look: where auto's came from
    assert note.startswith("the checkpoint does not record its training images' look")
    assert before.stdout.startswith(note + '\nPredicted: "')
    assert after.stdout.startswith(note + f'\n{tmp_path / "a.png"}: Predicted: "')
    assert f'{tmp_path / "b.png"}: Predicted: "' in after.stdout


def test_no_command_prints_help_and_exits_2(run_main):
    result = run_main()
    assert result.returncode == 2
    assert result.stdout.startswith("usage: trainlab")


def test_version(run_main):
    from trainlab import __version__

    result = run_main("--version")
    assert result.returncode == 0
    assert result.stdout == f"trainlab {__version__}\n"


def test_a_failed_start_leaves_no_empty_runs_folder_behind(tmp_path, run_main, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_main("train", "--data-dir", str(tmp_path / "missing"), "--no-download")
    assert result.returncode == 2
    assert list(tmp_path.iterdir()) == []


def test_evaluate_reports_the_runs_own_loss_so_it_matches_the_metrics(tiny_data, tmp_path, run_main):
    run_dir = tmp_path / "run"
    trained = run_main(
        "train",
        "--loss",
        "mse",
        "--optimizer",
        "adam",
        "--epochs",
        "1",
        "--data-dir",
        str(tiny_data),
        "--run-dir",
        str(run_dir),
        "--quiet",
    )
    assert trained.returncode == 0, trained.stderr
    evaluated = run_main("evaluate", str(run_dir), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    result = json.loads(evaluated.stdout.splitlines()[-1])
    last = read_metrics(run_dir)[-1]
    assert result["loss"] == pytest.approx(last["test_loss"], rel=1e-6)
    assert result["loss"] < 0.1  # a mean squared error on probabilities, not a cross-entropy near 2.3


# flags made from the config ------------------------------------------------------------------------------------


def test_every_config_field_is_a_train_flag_whose_help_shows_the_configs_default(run_main):
    import dataclasses

    from trainlab.cli import build_parser
    from trainlab.config import flag_fields

    commands = build_parser()._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them here
    actions = {action.dest: action for action in commands["train"]._actions}  # noqa: SLF001
    for item in flag_fields():
        action = actions[item.name]
        assert "--" + item.name.replace("_", "-") in action.option_strings
        assert action.default is None  # not given: the preset's, the config file's or the config's own value
        if item.default not in (None, dataclasses.MISSING) and not item.metadata.get("default_text"):
            shown = (
                ("on" if item.default else "off")
                if isinstance(item.default, bool)
                else (f"{item.default:g}" if isinstance(item.default, float) else str(item.default))
            )
            assert action.help.endswith(f"(default: {shown})"), (item.name, action.help)
    assert set(actions) >= {item.name for item in flag_fields()} and "extra" not in actions
    result = run_main("train", "--help")
    assert result.returncode == 0
    headings = [line[:-1] for line in result.stdout.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert headings == ["options", "data", "model", "optimization", "schedule", "precision and speed", "run"]


def test_dropout_help_names_every_model_kind_that_takes_it(run_main):
    text = " ".join(run_main("train", "--help").stdout.split())
    assert "--dropout DROPOUT dropout for models that have it (cnn, resnet, tv:NAME; not the mlp) (default: 0)" in text


# the Python API behind `trainlab evaluate` ---------------------------------------------------------------------


def test_evaluate_checkpoint_gives_the_figures_evaluate_prints(tmp_path, run_main):
    import trainlab

    from conftest import train_tiny_run

    data_dir, run_dir = train_tiny_run(tmp_path)
    result = trainlab.evaluate_checkpoint(run_dir, device="cpu", data_dir=str(data_dir), download=False)
    shown = run_main(
        "evaluate",
        run_dir,
        "--device",
        "cpu",
        "--data-dir",
        data_dir,
        "--no-download",
        "--json",
        "--confusion-matrix",
        tmp_path / "cm.png",
    )
    assert shown.returncode == 0, shown.stderr
    printed = json.loads(shown.stdout.splitlines()[-1])
    assert result.to_dict() == {key: printed[key] for key in result.to_dict()}
    assert result.samples == int(result.confusion_matrix.sum()) == printed["samples"] > 0
    assert result.correct == int(result.confusion_matrix.diag().sum())
    assert result.accuracy == result.correct / result.samples
    last_epoch = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert result.accuracy == last_epoch["test_accuracy"]


def test_evaluate_checkpoint_refuses_an_unknown_data_option(tmp_path):
    import trainlab

    from conftest import train_tiny_run

    _, run_dir = train_tiny_run(tmp_path)
    with pytest.raises(TypeError, match="unknown data options: data_folder"):
        trainlab.evaluate_checkpoint(run_dir, data_folder="x")
