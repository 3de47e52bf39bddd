"""A resume that would change a run is refused in one line naming the run and commands that then work."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from conftest import assert_one_line_error, snapshot, train_args, train_tiny_run


@pytest.fixture
def finished(tmp_path: Path, no_run_reports) -> tuple[Path, Path]:
    """(data dir, run dir) of a finished one-epoch MLP run."""
    return train_tiny_run(tmp_path)


def advised_commands(line: str) -> list[list[str]]:
    """Every `trainlab train ...` command the line advises, as argument lists (without `trainlab`)."""
    return [shlex.split(command)[1:] for command in re.findall(r"trainlab train [^;]*", line.split(": error: ", 1)[1])]


def assert_each_command_works(run_main, line: str, count: int) -> None:
    commands = advised_commands(line)
    assert len(commands) == count, line
    for command in commands:
        result = run_main(*command, "--quiet")
        assert result.returncode == 0, (command, result.stderr)


@pytest.mark.parametrize(("flags", "init_from"), [(("--lr", "0.1"), True), (("--model", "cnn"), False)])
def test_resume_with_a_changed_lr_or_model_is_refused_naming_the_run_and_commands_that_then_work(
    finished, run_main, flags, init_from
):
    _, run_dir = finished
    before = snapshot(run_dir)
    line = assert_one_line_error(
        run_main("train", "--resume", run_dir, *flags),
        f"--resume continues {run_dir} exactly as it was configured, so it takes no {' '.join(flags)}; to continue "
        f"it: trainlab train --resume {run_dir}; for a new run with {' '.join(flags)}: trainlab train --config "
        f"{run_dir}/config.toml {f'--init-from {run_dir}/checkpoints/last.pt ' * init_from}{' '.join(flags)} "
        f"--run-dir {run_dir}-2",
    )
    assert snapshot(run_dir) == before
    assert_each_command_works(run_main, line, 2)
    assert (run_dir.parent / "run-2" / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("flags", [("--lr", "0.1"), ("--model", "cnn")])
def test_an_existing_run_directory_with_a_changed_lr_or_model_names_commands_that_then_work(finished, run_main, flags):
    data_dir, run_dir = finished
    before = snapshot(run_dir)
    line = assert_one_line_error(
        run_main(*train_args(data_dir, run_dir, *flags)),
        f"run directory {run_dir} already exists, and --resume would continue it as it was configured, without "
        f"{' '.join(flags)}; for a new run with {' '.join(flags)}: trainlab train --config {run_dir}/config.toml",
        f"--data-dir {data_dir} --device cpu --no-download --run-dir {run_dir}-2; to continue it as it was: "
        f"trainlab train --resume {run_dir} --data-dir {data_dir} --device cpu --no-download; to replace it, add "
        "--overwrite",
    )
    assert snapshot(run_dir) == before
    assert_each_command_works(run_main, line, 2)


def test_an_existing_run_directory_without_recipe_flags_names_the_resume_that_works(finished, run_main):
    data_dir, run_dir = finished
    line = assert_one_line_error(
        run_main(*train_args(data_dir, run_dir)),
        f"run directory {run_dir} already exists; to continue it: trainlab train --resume {run_dir} --data-dir "
        f"{data_dir} --device cpu --no-download; to replace it, add --overwrite; or choose another --run-dir",
    )
    assert_each_command_works(run_main, line, 1)


@pytest.mark.parametrize(
    "extra", [("--overwrite",), ("--config", "{run}/config.toml"), ("--run-dir", "{run}-new"), ("--preset", "tutorial")]
)
def test_resume_with_a_whole_recipe_or_another_folder_names_commands_that_then_work(finished, run_main, extra):
    _, run_dir = finished
    extra = tuple(value.format(run=run_dir) for value in extra)
    line = assert_one_line_error(
        run_main("train", "--resume", run_dir, *extra),
        f"--resume continues {run_dir} exactly as it was configured, so it takes no ",
        f"to continue it: trainlab train --resume {run_dir}; ",
    )
    assert_each_command_works(run_main, line, 2)


@pytest.mark.parametrize(
    ("line_before", "line_after", "init_from"),
    [('model = "mlp"', 'model = "cnn"', False), ("lr = 0.001", "lr = 0.1", True)],
)
def test_an_edited_config_toml_with_another_model_or_lr_is_refused_naming_both_values_and_the_file(
    tmp_path, no_run_reports, run_main, line_before, line_after, init_from
):
    _, run_dir = train_tiny_run(tmp_path)
    config = run_dir / "config.toml"
    config.write_text(config.read_text().replace(line_before, line_after))
    before = snapshot(run_dir)
    line = assert_one_line_error(
        run_main("train", "--resume", run_dir),
        f"{config} says {line_after} but {run_dir}/checkpoints/last.pt was trained with {line_before}, and a resume "
        f"continues the checkpoint exactly; to continue {run_dir}, put back {line_before} in {config} and run "
        f"trainlab train --resume {run_dir}; for a new run with {line_after}: trainlab train --config {config} "
        f"{f'--init-from {run_dir}/checkpoints/last.pt ' * init_from}--run-dir {run_dir}-2",
    )
    assert snapshot(run_dir) == before
    new_run = advised_commands(line)[1]
    assert run_main(*new_run, "--quiet").returncode == 0
    config.write_text(config.read_text().replace(line_after, line_before))
    assert run_main(*advised_commands(line)[0]).returncode == 0


def test_an_edited_config_toml_with_more_epochs_still_extends_the_run(tmp_path, no_run_reports, run_main):
    _, run_dir = train_tiny_run(tmp_path)
    config = run_dir / "config.toml"
    config.write_text(re.sub(r"(?m)^epochs = 1$", "epochs = 2", config.read_text()))
    result = run_main("train", "--resume", run_dir, "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"Resuming {run_dir} at epoch 2" in result.stdout


def test_an_existing_folder_that_holds_no_run_is_refused_without_advising_resume(tiny_data, tmp_path, run_main):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep")
    assert_one_line_error(
        run_main(*train_args(tiny_data, folder)),
        f"run directory {folder} already exists and holds no trainlab run (no config.toml); nothing was touched: "
        "choose another --run-dir",
    )
    assert [entry.name for entry in folder.iterdir()] == ["notes.txt"]
