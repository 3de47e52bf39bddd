"""Files from elsewhere (checkpoints, run directories, config files, exports) name data, never code to run,
and trainlab never deletes or writes through what it did not make."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab import TrainConfig, fit
from trainlab.checkpoint import load_checkpoint

from conftest import assert_one_line_error, snapshot, train_tiny_run

pytestmark = pytest.mark.usefixtures("no_run_reports")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir, run dir) of a finished one-epoch MLP run; tests copy what they change."""
    return train_tiny_run(tmp_path_factory.mktemp("trained"))


def checkpoint_with(run_dir: Path, path: Path, **config) -> Path:
    """A copy of run_dir's checkpoint at `path`, its config's keys replaced by `config`."""
    payload = load_checkpoint(run_dir).payload
    payload["config"] = {**payload["config"], **config}
    torch.save(payload, path)
    return path


def crafted_checkpoint(run_dir: Path, path: Path, model: str, marker: Path) -> Path:
    """A weights-only-loadable checkpoint whose config names `model` with arguments that would touch `marker`."""
    return checkpoint_with(run_dir, path, model=model, extra={"cmd": f"touch {marker}"})


CODE = "subprocess:getoutput"  # called with cmd=..., it would run a shell command


@pytest.mark.parametrize(
    "command",
    [
        ["evaluate", "{ckpt}"],
        ["predict", "{ckpt}", "--test-index", "0"],
        ["export", "{ckpt}", "--format", "state-dict", "--out", "{tmp}/out.pth"],
        ["export", "{ckpt}", "--format", "onnx", "--out", "{tmp}/out.onnx"],
    ],
)
def test_a_checkpoint_naming_code_as_its_model_never_runs_it(command, trained, tmp_path, run_main):
    data_dir, run_dir = trained
    marker = tmp_path / "ran"
    checkpoint = crafted_checkpoint(run_dir, tmp_path / "crafted.pt", CODE, marker)
    args = [part.format(ckpt=checkpoint, tmp=tmp_path) for part in command]
    result = run_main(*args, "--data-dir", data_dir) if command[0] != "export" else run_main(*args)
    assert_one_line_error(
        result, "names the model 'subprocess:getoutput'", "so it was not imported", "--trust-model-code"
    )
    assert not marker.exists()
    assert not (tmp_path / "out.pth").exists() and not (tmp_path / "out.onnx").exists()


def test_resuming_a_run_whose_config_names_code_never_runs_it(trained, tmp_path, run_main):
    _, run_dir = trained
    copy = tmp_path / "copied_run"
    shutil.copytree(run_dir, copy)
    marker = tmp_path / "ran"
    config = (copy / "config.toml").read_text().replace('model = "mlp"', f'model = "{CODE}"')
    (copy / "config.toml").write_text(config + f'\n[extra]\ncmd = "touch {marker}"\n')
    before = snapshot(copy)
    assert_one_line_error(run_main("train", "--resume", copy), "config.toml names the model 'subprocess:getoutput'")
    assert not marker.exists()
    assert snapshot(copy) == before


def test_a_config_file_naming_code_needs_the_same_model_on_the_command_line(tiny_data, tmp_path, run_main):
    marker = tmp_path / "ran"
    config = tmp_path / "run.toml"
    config.write_text(f'model = "{CODE}"\nepochs = 1\n[extra]\ncmd = "touch {marker}"\n')
    result = run_main(
        "train", "--config", config, "--data-dir", tiny_data, "--run-dir", tmp_path / "run", "--no-download"
    )
    assert_one_line_error(result, f"config file {config} names the model 'subprocess:getoutput'")
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_init_from_a_crafted_checkpoint_takes_only_its_weights(trained, tmp_path, run_main):
    data_dir, run_dir = trained
    marker = tmp_path / "ran"
    checkpoint = crafted_checkpoint(run_dir, tmp_path / "crafted.pt", CODE, marker)
    result = run_main(
        "train",
        "--init-from",
        checkpoint,
        "--data-dir",
        data_dir,
        "--run-dir",
        tmp_path / "run",
        "--epochs",
        "1",
        "--quiet",
        "--no-download",
        "--device",
        "cpu",
    )
    assert result.returncode == 0, result.stderr
    assert f"Initialized weights from {checkpoint}" in result.stdout
    assert not marker.exists()
    assert 'model = "mlp"' in (tmp_path / "run" / "config.toml").read_text()


def test_pretrained_weights_from_a_crafted_checkpoint_take_only_tensors(trained, tmp_path):
    from trainlab.errors import ConfigError
    from trainlab.models import create_model
    from trainlab.training.setup import load_pretrained

    _, run_dir = trained
    marker = tmp_path / "ran"
    checkpoint = crafted_checkpoint(run_dir, tmp_path / "crafted.pt", CODE, marker)
    with pytest.raises(ConfigError, match="none of its weights fit tv model"):
        load_pretrained(create_model("tv:resnet18", (1, 28, 28), 10), str(checkpoint))
    assert not marker.exists()


USER_MODULE = """
from pathlib import Path
from torch import nn

IMPORTED = Path({marker!r})
IMPORTED.write_text("imported")

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear_relu_stack = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                                               nn.Linear(512, 10))

    def forward(self, x):
        return self.linear_relu_stack(self.flatten(x))

def not_a_class(**kwargs):
    IMPORTED.write_text("called")
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module `trusted_nets_q` on sys.path that writes a marker file when imported; (name, marker)."""
    marker = tmp_path / "imported"
    (tmp_path / "trusted_nets_q.py").write_text(USER_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "trusted_nets_q", marker
    sys.modules.pop("trusted_nets_q", None)


def test_a_users_class_named_by_a_checkpoint_is_built_only_when_the_user_names_or_trusts_it(
    trained, tmp_path, run_main, user_module
):
    data_dir, run_dir = trained
    name, marker = user_module
    checkpoint = checkpoint_with(run_dir, tmp_path / "user.pt", model=f"{name}:Net")
    assert_one_line_error(run_main("evaluate", checkpoint, "--data-dir", data_dir), f"names the model '{name}:Net'")
    assert not marker.exists() and name not in sys.modules  # not even imported
    named = run_main("evaluate", checkpoint, "--data-dir", data_dir, "--model", f"{name}:Net")
    assert named.returncode == 0, named.stderr
    trusted = run_main("predict", checkpoint, "--test-index", "0", "--data-dir", data_dir, "--trust-model-code")
    assert trusted.returncode == 0, trusted.stderr
    assert trusted.stdout.startswith('Predicted: "')


def test_a_trusted_name_must_still_be_an_nn_module_subclass(trained, tmp_path, run_main, user_module):
    data_dir, run_dir = trained
    name, marker = user_module
    checkpoint_with(run_dir, tmp_path / "fn.pt", model=f"{name}:not_a_class")
    result = run_main("evaluate", tmp_path / "fn.pt", "--data-dir", data_dir, "--trust-model-code")
    assert_one_line_error(result, f"{name}.not_a_class is not an nn.Module subclass")
    assert marker.read_text() == "imported"  # imported (trusted), never called


# --- --overwrite and other replaced paths ----------------------------------------------------------------------


def test_overwrite_refuses_a_folder_that_is_not_a_run_and_touches_nothing(tiny_data, tmp_path, run_main):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "notes.txt").write_text("my notes")
    (project / "src" / "model.py").write_text("print('mine')")
    before = snapshot(project)
    result = run_main(
        "train",
        "--run-dir",
        project,
        "--overwrite",
        "--data-dir",
        tiny_data,
        "--epochs",
        "1",
        "--no-download",
        "--quiet",
    )
    assert_one_line_error(
        result,
        "--overwrite replaces only a trainlab run directory or an empty folder",
        "notes.txt",
        "nothing was touched",
    )
    assert snapshot(project) == before
    assert sorted(p.name for p in project.iterdir()) == ["notes.txt", "src"]


@pytest.mark.parametrize(
    "users_file",
    [
        "checkpoints/keep.txt",
        "checkpoints/epoch1-keep-this.pt",  # a run writes last.pt and best.pt there, no other .pt
        "checkpoints/.notes",
        "checkpoints/.keep.pt",
        "checkpoints/.notes.tmp",  # not the temporary file of an atomic write (.NAME.HEX.tmp)
        "checkpoints/.epoch1.pt.0123456789ab.tmp",  # a temporary name, but of no file a run writes
        "checkpoints/.lock",  # the lock lives at the top level only
        ".notes.tmp",
        "tensorboard/notes.txt",
    ],
)
def test_overwrite_refuses_a_run_directory_holding_a_users_file(users_file, trained, tmp_path, run_main):
    data_dir, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / users_file).parent.mkdir(exist_ok=True)
    (copy / users_file).write_text("mine")
    before = snapshot(copy)
    result = run_main(
        "train", "--run-dir", copy, "--overwrite", "--data-dir", data_dir, "--epochs", "1", "--no-download", "--quiet"
    )
    assert_one_line_error(result, users_file, "which no run writes")
    assert snapshot(copy) == before


def test_a_users_files_beside_a_run_survive_the_start_of_a_resume(trained, tmp_path, run_main):
    """Only the temporary files of a run's own writes are tidied away when a run starts."""
    data_dir, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    mine = [copy / ".notes.tmp", copy / "checkpoints" / ".draft.tmp", copy / "checkpoints" / ".x.pt.0123456789ab.tmp"]
    for path in mine:
        path.write_text("mine")
    leftover = copy / "checkpoints" / ".last.pt.0123456789ab.tmp"  # a writer killed mid-write left it
    leftover.write_bytes(b"half a checkpoint")
    result = run_main("train", "--resume", copy, "--data-dir", data_dir, "--no-download", "--quiet")
    assert result.returncode == 0, result.stderr
    assert [path.read_text() for path in mine] == ["mine"] * 3
    assert not leftover.exists()


def test_overwrite_replaces_a_run_and_fills_an_empty_folder(trained, tmp_path, run_main):
    data_dir, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (tmp_path / "empty").mkdir()
    for target in (copy, tmp_path / "empty"):
        result = run_main(
            "train",
            "--run-dir",
            target,
            "--overwrite",
            "--data-dir",
            data_dir,
            "--epochs",
            "1",
            "--no-download",
            "--quiet",
            "--seed",
            "3",
        )
        assert result.returncode == 0, result.stderr
        assert "seed = 3" in (target / "config.toml").read_text()


@pytest.mark.parametrize(
    ("out", "problem"),
    [
        ("folder", "is a folder; give the name of a file to write"),
        ("notes.txt", "exists and is not a PyTorch file, so it was not replaced"),
        ("checkpoint", "is the checkpoint being exported"),
    ],
)
def test_export_never_replaces_a_folder_another_kind_of_file_or_its_own_checkpoint(
    out, problem, trained, tmp_path, run_main
):
    _, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.txt").write_text("my notes")
    target = copy / "checkpoints" / "last.pt" if out == "checkpoint" else tmp_path / out
    before = snapshot(tmp_path)
    assert_one_line_error(
        run_main("export", copy / "checkpoints" / "last.pt", "--format", "state-dict", "--out", target), problem
    )
    assert snapshot(tmp_path) == before


def test_a_report_path_that_holds_another_kind_of_file_is_not_replaced(trained, tmp_path, run_main):
    data_dir, run_dir = trained
    notes = tmp_path / "notes.md"
    notes.write_text("# mine")
    result = run_main("evaluate", run_dir, "--data-dir", data_dir, "--confusion-matrix", notes)
    assert_one_line_error(result, f"{notes} exists and is not a PNG image")
    assert result.stdout == ""  # refused before evaluating, not after printing the figures
    assert notes.read_text() == "# mine"


def special_file(tmp_path: Path, kind: str) -> Path:
    """A FIFO made here, or a symbolic link here to /dev/null (the real one is never the output: we run as root)."""
    path = tmp_path / f"{kind}.png"
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(os.devnull)
    return path


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("fifo", "is a named pipe (FIFO), not a regular file, so it was not replaced"),
        ("devnull", "is a character device (through a symbolic link), not a regular file, so it was not replaced"),
    ],
)
@pytest.mark.parametrize("command", ["export", "evaluate --confusion-matrix", "predict --show-input"])
@pytest.mark.timeout(120)  # a command that opened the FIFO would wait for a writer forever
def test_an_output_path_that_is_a_device_or_a_pipe_is_refused_and_left_as_it_was(
    command, kind, problem, trained, tmp_path, run_main
):
    from PIL import Image

    data_dir, run_dir = trained
    target = special_file(tmp_path, kind)
    image = tmp_path / "image.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(image)
    args = {
        "export": ["export", run_dir, "--format", "state-dict", "--out", target],
        "evaluate --confusion-matrix": ["evaluate", run_dir, "--data-dir", data_dir, "--confusion-matrix", target],
        "predict --show-input": ["predict", run_dir, image, "--show-input", target],
    }[command]
    result = run_main(*args)
    assert_one_line_error(result, f"{target} {problem}")
    assert result.stdout == ""  # refused before the work, not after printing its figures
    if kind == "fifo":
        assert stat.S_ISFIFO(target.lstat().st_mode)
    else:
        assert target.is_symlink() and os.readlink(target) == os.devnull
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["image.png", target.name])  # no temporary file


@pytest.mark.timeout(120)  # reading the old picture through the FIFO would wait for a writer forever
def test_a_fifo_in_place_of_the_runs_confusion_matrix_is_refused_at_once_and_left_as_it_was(
    trained, tmp_path, run_main
):
    data_dir, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "confusion_matrix.png").unlink(missing_ok=True)
    os.mkfifo(copy / "confusion_matrix.png")
    before = sorted(p.name for p in copy.iterdir())
    result = run_main("evaluate", copy, "--data-dir", data_dir)
    line = assert_one_line_error(result)
    assert line == (
        f"trainlab evaluate: error: {copy / 'confusion_matrix.png'} is a named pipe (FIFO), not a regular file, so it "
        "was not replaced; give the name of a file to write"
    )
    assert stat.S_ISFIFO((copy / "confusion_matrix.png").lstat().st_mode)
    assert sorted(p.name for p in copy.iterdir()) == before  # no temporary file


# --- links in a run directory ------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", [".lock", "checkpoints"])
def test_resume_never_writes_through_a_symlink_in_the_run_directory(link, trained, tmp_path, run_main):
    _, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    precious = tmp_path / "precious"
    if link == ".lock":
        precious.write_text("someone else's file")
        (copy / ".lock").unlink(missing_ok=True)
    else:
        shutil.move(copy / "checkpoints", precious)
    (copy / link).symlink_to(precious)
    config = (copy / "config.toml").read_text().replace("epochs = 1", "epochs = 2")
    (copy / "config.toml").write_text(config)
    before = snapshot(tmp_path)
    assert_one_line_error(
        run_main("train", "--resume", copy), f"holds symbolic links ({link})", "never writes through links"
    )
    assert snapshot(tmp_path) == before


def test_the_lock_is_never_opened_through_a_link(tmp_path):
    from trainlab.errors import TrainlabError
    from trainlab.training.rundir import RunLock

    target = tmp_path / "target"
    target.write_text("keep")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / ".lock").symlink_to(target)
    with pytest.raises(TrainlabError, match="cannot lock .*is it a symbolic link"):
        with RunLock(tmp_path / "run"):
            pass
    assert target.read_text() == "keep"


# --- exports carry what rebuilds their model ------------------------------------------------------------------------


@pytest.fixture
def three_class_run(tmp_path):
    """A finished run on a 3-class folder data set of 12x12 RGB images; (run dir, image root)."""
    import numpy as np
    from PIL import Image

    root = tmp_path / "shapes"
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for label, name in enumerate(("circle", "square", "star")):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 50, (12, 12, 3), dtype=np.uint8)
                pixels[4 * label : 4 * label + 4] = 220
                Image.fromarray(pixels).save(root / split / name / f"{i}.png")
    config = TrainConfig(dataset="folder", image_dir=str(root), epochs=3, lr=0.05, shuffle=True, threads=1)
    fit(config, run_dir=tmp_path / "run")
    return tmp_path / "run", root


@pytest.mark.parametrize(("export_format", "name"), [("state-dict", "model.pth"), ("safetensors", "model.safetensors")])
def test_an_export_of_a_three_class_model_predicts_and_evaluates_without_more_flags(
    export_format, name, three_class_run, tmp_path, run_main
):
    run_dir, root = three_class_run
    out = tmp_path / name
    assert run_main("export", run_dir, "--format", export_format, "--out", out).returncode == 0
    from trainlab import Predictor

    predictor = Predictor.from_checkpoint(out)
    assert predictor.classes == ("circle", "square", "star")
    assert (predictor.preprocessing.channels, predictor.preprocessing.height) == (3, 12)
    predicted = run_main("predict", out, root / "test" / "star" / "0.png", "--json")
    assert predicted.returncode == 0, predicted.stderr
    assert '"label": "' in predicted.stdout.splitlines()[-1]
    from_run = run_main("evaluate", run_dir, "--json")
    from_export = run_main("evaluate", out, "--dataset", "folder", "--image-dir", root, "--json")
    assert from_export.returncode == 0, from_export.stderr
    assert (
        from_export.stdout.splitlines()[-1].split('"accuracy": ')[1][:8]
        == from_run.stdout.splitlines()[-1].split('"accuracy": ')[1][:8]
    )


def test_the_tutorials_code_loads_a_state_dict_export_with_its_description(trained, tmp_path, run_main):
    from tutorial_code import TutorialNeuralNetwork

    _, run_dir = trained
    assert run_main("export", run_dir, "--format", "state-dict", "--out", tmp_path / "model.pth").returncode == 0
    model = TutorialNeuralNetwork()
    result = model.load_state_dict(torch.load(tmp_path / "model.pth", weights_only=True))
    assert str(result) == "<All keys matched successfully>"
    assert load_checkpoint(tmp_path / "model.pth").classes[9] == "Ankle boot"
    assert load_checkpoint(tmp_path / "model.pth").config == {"model": "mlp", "extra": {}, "tta": "none"}


def test_the_decoded_image_cache_never_writes_through_a_linked_folder_nor_deletes_other_files(tmp_path):
    import numpy as np
    from PIL import Image

    from trainlab.data import load_dataset

    root = tmp_path / "images"
    for split in ("train", "test"):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(root / split / name / f"{i}.png")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (root / "test" / ".trainlab-cache").symlink_to(elsewhere)
    (root / "train" / ".trainlab-cache").mkdir()
    users = root / "train" / ".trainlab-cache" / "train-0000-notes.pt"
    users.write_text("not a cache file")
    data = load_dataset(TrainConfig(dataset="folder", image_dir=str(root)))
    assert len(data.train) == 6 and len(data.test) == 6
    assert list(elsewhere.iterdir()) == []
    assert users.read_text() == "not a cache file"
    assert len(list((root / "train" / ".trainlab-cache").glob("*.pt"))) == 2  # its own cache beside the user's file


# --- every file trainlab reads names code only when the user named or trusts it (issue 27) -------------------------


def tune_tiny(data_dir: Path, study: Path, *extra) -> list:
    """`trainlab tune` of one mlp trial on generated data: 2 batches, one epoch, a 20% validation split."""
    return [
        "tune", "--data-dir", data_dir, "--device", "cpu", "--threads", "1", "--no-download", "--val-split", "0.2",
        "--epochs", "1", "--limit-train-batches", "2", "--trials", "1", "--run-dir", study, *extra,
    ]  # fmt: skip


def crafted_export(run_main, run_dir: Path, path: Path, model: str) -> Path:
    """A state-dict or safetensors export (by path's suffix) of run_dir whose description names `model`."""
    import json

    from trainlab.checkpoint import EXPORT_METADATA_KEY

    export_format = "safetensors" if path.suffix == ".safetensors" else "state-dict"
    assert run_main("export", run_dir, "--format", export_format, "--out", path).returncode == 0
    if export_format == "safetensors":
        from safetensors import safe_open
        from safetensors.torch import save_file

        with safe_open(str(path), framework="pt") as handle:
            metadata, state = handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}
        description = json.loads(metadata[EXPORT_METADATA_KEY])
        description["config"]["model"] = model
        save_file(state, str(path), metadata={**metadata, EXPORT_METADATA_KEY: json.dumps(description)})
        return path
    state = torch.load(path, weights_only=True)
    description = json.loads(state._metadata[""][EXPORT_METADATA_KEY])
    description["config"]["model"] = model
    state._metadata[""][EXPORT_METADATA_KEY] = json.dumps(description)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("kind", ["checkpoint", "state-dict export", "safetensors export", "run config", "config file"])
def test_a_file_naming_a_users_module_never_imports_it(kind, trained, tmp_path, run_main, user_module):
    data_dir, run_dir = trained
    name, marker = user_module
    model = f"{name}:Net"
    if kind == "checkpoint":
        named = crafted_checkpoint(run_dir, tmp_path / "crafted.pt", model, marker)
        result = run_main("evaluate", named, "--data-dir", data_dir)
    elif kind.endswith("export"):
        named = crafted_export(
            run_main,
            run_dir,
            tmp_path / ("model.safetensors" if kind.startswith("safetensors") else "model.pth"),
            model,
        )
        result = run_main("predict", named, "--test-index", "0", "--data-dir", data_dir)
    elif kind == "run config":
        shutil.copytree(run_dir, tmp_path / "run")
        named = tmp_path / "run" / "config.toml"
        named.write_text(
            named.read_text().replace('model = "mlp"', f'model = "{model}"').replace("epochs = 1", "epochs = 2")
        )
        result = run_main("train", "--resume", tmp_path / "run")
    else:
        named = tmp_path / "run.toml"
        named.write_text(f'model = "{model}"\nepochs = 1\n')
        result = run_main(
            "train", "--config", named, "--data-dir", data_dir, "--run-dir", tmp_path / "new", "--no-download"
        )
    assert_one_line_error(result, f"{named} names the model '{model}'", f"pass --model {model} or --trust-model-code")
    assert not marker.exists() and name not in sys.modules
    assert not (tmp_path / "new").exists()


def test_a_study_folder_whose_recorded_model_names_a_users_module_never_imports_it(
    trained, tmp_path, run_main, user_module
):
    data_dir, _ = trained
    name, marker = user_module
    study = tmp_path / "study"
    assert run_main(*tune_tiny(data_dir, study, "--search", "lr=1e-3:1e-1:log")).returncode == 0
    recorded = study / "study.toml"
    recorded.write_text(recorded.read_text().replace('model = "mlp"', f'model = "{name}:Net"'))
    before = snapshot(study)
    result = run_main("tune", "--run-dir", study, "--trials", "2", "--no-download")
    assert_one_line_error(
        result, f"{recorded} names the model '{name}:Net'", f"pass --model {name}:Net or --trust-model-code"
    )
    assert not marker.exists() and name not in sys.modules
    assert snapshot(study) == before  # no trial ran, nothing was written
    trusted = run_main("tune", "--run-dir", study, "--trials", "2", "--no-download", "--trust-model-code")
    assert trusted.returncode == 0, trusted.stderr
    assert marker.read_text() == "imported"
    assert f"Study study in {study}: 1 of 2 trials finished" in trusted.stdout


def test_a_search_table_naming_a_users_module_is_refused_naming_the_file(trained, tmp_path, run_main, user_module):
    data_dir, _ = trained
    name, marker = user_module
    config = tmp_path / "tune.toml"
    config.write_text(f'val_split = 0.2\n\n[search]\nmodel = ["{name}:Net"]\nlr = "1e-3:1e-1:log"\n')
    study = tmp_path / "study"
    result = run_main(*tune_tiny(data_dir, study, "--config", config))
    assert_one_line_error(
        result, f"config file {config} [search] names the model '{name}:Net'", "so it was not imported"
    )
    assert not marker.exists() and name not in sys.modules
    assert not study.exists()

    top_level = tmp_path / "top.toml"  # the same name outside [search] is refused the same way
    top_level.write_text(f'val_split = 0.2\nmodel = "{name}:Net"\n\n[search]\nlr = "1e-3:1e-1:log"\n')
    result = run_main(*tune_tiny(data_dir, study, "--config", top_level))
    assert_one_line_error(result, f"config file {top_level} names the model '{name}:Net'")
    assert not marker.exists() and not study.exists()

    trusted = run_main(*tune_tiny(data_dir, study, "--config", config, "--trust-model-code"))
    assert trusted.returncode == 0, trusted.stderr
    assert marker.read_text() == "imported"
    assert f'"model=\\"{name}:Net\\""' not in (study / "study.toml").read_text()
    assert f"model={name}:Net" in (study / "study.toml").read_text()


def test_a_model_named_in_search_on_the_command_line_is_the_users_own(trained, tmp_path, run_main, user_module):
    data_dir, _ = trained
    name, marker = user_module
    study = tmp_path / "study"
    result = run_main(*tune_tiny(data_dir, study, "--search", f"model={name}:Net", "lr=1e-3:1e-1:log"))
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "imported"
    # the recorded study continues with the same words on the command line, and only with them
    again = run_main(*tune_tiny(data_dir, study, "--search", f"model={name}:Net", "lr=1e-3:1e-1:log"))
    assert again.returncode == 0, again.stderr
    bare = run_main("tune", "--run-dir", study, "--trials", "1", "--no-download")
    assert_one_line_error(bare, f"{study / 'study.toml'} names the model '{name}:Net'")


def test_a_best_toml_naming_a_users_module_never_imports_it(trained, tmp_path, run_main, user_module):
    data_dir, run_dir = trained
    name, marker = user_module
    best = tmp_path / "study" / "best.toml"
    best.parent.mkdir()
    best.write_text((run_dir / "config.toml").read_text().replace('model = "mlp"', f'model = "{name}:Net"'))
    result = run_main("train", "--config", best, "--run-dir", tmp_path / "again", "--no-download")
    assert_one_line_error(result, f"config file {best} names the model '{name}:Net'", "--trust-model-code")
    assert not marker.exists() and name not in sys.modules
    assert not (tmp_path / "again").exists()


def test_mlflow_tracking_logs_a_runs_weights_as_its_own_model_never_the_checkpoints_code(
    trained, tmp_path, monkeypatch, user_module
):
    """A resumed run's best.pt may be older than the process; the logged weights are built as the run's model."""
    from types import SimpleNamespace

    import trainlab.inference.export as export

    pytest.importorskip("mlflow")
    from trainlab.tuning.tracking import MlflowReporter

    _, run_dir = trained
    name, marker = user_module
    best = checkpoint_with(run_dir, tmp_path / "best.pt", model=f"{name}:Net")
    exported = []

    class Built(Exception):
        """The weights were built; what MLflow does with them is not this test's concern."""

    def export_model(predictor, *args, **kwargs):
        exported.append(predictor.model_name)
        raise Built

    monkeypatch.setattr(export, "export_model", export_model)
    reporter = MlflowReporter(TrainConfig(model="mlp"), SimpleNamespace(primary=False))
    with pytest.raises(Built):
        reporter.log_weights(best)
    assert not marker.exists() and name not in sys.modules
    assert exported == ["mlp"]
