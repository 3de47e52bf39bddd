"""Every bad input gets one line naming the file and the problem, exit status 2, no traceback, nothing half-written."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab import TrainConfig, fit
from trainlab.checkpoint import load_checkpoint

from conftest import assert_one_line_error, make_images, run_cli, snapshot, write_fashion_layout, write_idx
from conftest import train_args as cpu_train_args

RAW = Path("FashionMNIST") / "raw"


@pytest.fixture(autouse=True)
def _one_thread_and_no_plots(monkeypatch):
    """One CPU thread (two are many times slower on a shared 2-core machine); no end-of-run plots."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    import trainlab.reports.run_reports as run_reports

    monkeypatch.setattr(run_reports, "write_run_reports", lambda analysis: [])
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir, run dir) of a finished one-epoch MLP run; tests copy what they change."""
    root = tmp_path_factory.mktemp("trained")
    data_dir = write_fashion_layout(root / "data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(TrainConfig(epochs=1, device="cpu", data_dir=str(data_dir)), run_dir=root / "run", download=False)
    finally:
        torch.set_num_threads(threads)
    return data_dir, root / "run"


def train_args(data_dir: Path, run_dir: Path, *extra: str) -> list[str]:
    """One epoch, unless a config file gives the epochs."""
    return cpu_train_args(data_dir, run_dir, *([] if "--config" in extra else ["--epochs", "1"]), *extra)


# --- data files ----------------------------------------------------------------------------------------------------


def truncated_gzip(raw: Path) -> tuple[Path, str]:
    path = raw / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path, "corrupt or truncated gzip file"


def corrupt_gzip(raw: Path) -> tuple[Path, str]:
    path = raw / "train-labels-idx1-ubyte.gz"
    content = bytearray(path.read_bytes())
    content[20:40] = b"\xff" * 20
    path.write_bytes(bytes(content))
    return path, "corrupt or truncated gzip file"


def empty_gzip(raw: Path) -> tuple[Path, str]:
    path = raw / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(b"")
    return path, "file is empty"


def wrong_magic(raw: Path) -> tuple[Path, str]:
    path = raw / "train-images-idx3-ubyte"
    write_idx(path, np.zeros(640, dtype=np.uint8))  # a labels file where the images belong
    return path, "wrong IDX magic number 0x00000801 (expected 0x00000803 for images)"


def wrong_sizes(raw: Path) -> tuple[Path, str]:
    path = raw / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    return path, "IDX header declares shape (640, 28, 28) (501760 bytes) but the file holds 501660 bytes"


def counts_differ(raw: Path) -> tuple[Path, str]:
    _, labels = make_images(639, seed=0)
    write_idx(raw / "train-labels-idx1-ubyte", labels)
    return raw / "train-images-idx3-ubyte", "holds 640 images but"


def label_out_of_range(raw: Path) -> tuple[Path, str]:
    _, labels = make_images(160, seed=1)
    labels[5] = 10
    write_idx(raw / "t10k-labels-idx1-ubyte", labels)
    return raw / "t10k-labels-idx1-ubyte", "label 10 at index 5 is out of range 0-9"


def empty_file(raw: Path) -> tuple[Path, str]:
    path = raw / "train-labels-idx1-ubyte"
    path.write_bytes(b"")
    return path, "file is empty"


@pytest.mark.parametrize(
    "damage",
    [truncated_gzip, corrupt_gzip, empty_gzip, wrong_magic, wrong_sizes, counts_differ, label_out_of_range, empty_file],
)
def test_bad_data_file_is_one_line_naming_the_file_and_leaves_no_run_directory(damage, tmp_path, run_main):
    gzipped = "gz" in damage.__name__
    data_dir = write_fashion_layout(tmp_path / "data", compress=gzipped)
    path, problem = damage(data_dir / RAW)
    result = run_main(*train_args(data_dir, tmp_path / "run"))
    assert_one_line_error(result, f"{path}: ", problem)
    assert not (tmp_path / "run").exists()


def test_bad_data_in_a_real_process_prints_no_traceback(tmp_path):
    data_dir = write_fashion_layout(tmp_path / "data", compress=True)
    path, problem = truncated_gzip(data_dir / RAW)
    result = run_cli(*train_args(data_dir, tmp_path / "run"))
    assert_one_line_error(result, str(path), problem)
    assert not (tmp_path / "run").exists()


# --- checkpoints -----------------------------------------------------------------------------------------------------


def test_checkpoint_of_another_model_lists_missing_and_unexpected_keys(trained, run_main):
    data_dir, run_dir = trained
    line = assert_one_line_error(
        run_main("evaluate", run_dir, "--model", "cnn", "--data-dir", data_dir),
        "does not fit this model",
        "missing keys: features.0.0.weight",
        "unexpected keys: linear_relu_stack.0.weight",
    )
    assert "try --model" in line


def test_checkpoint_with_mis_shaped_weights_names_the_shapes(trained, tmp_path, run_main):
    data_dir, run_dir = trained
    state = dict(load_checkpoint(run_dir).model_state)
    state["linear_relu_stack.4.weight"] = state["linear_relu_stack.4.weight"][:5]
    state["linear_relu_stack.4.bias"] = state["linear_relu_stack.4.bias"][:5]
    torch.save(state, tmp_path / "five_classes.pt")
    assert_one_line_error(
        run_main("evaluate", tmp_path / "five_classes.pt", "--model", "mlp", "--data-dir", data_dir),
        "mis-shaped: linear_relu_stack.4.weight (5, 512) vs model (10, 512), "
        "linear_relu_stack.4.bias (5,) vs model (10,)",
    )


def test_init_from_a_checkpoint_of_another_model_leaves_no_run_directory(trained, tmp_path, run_main):
    data_dir, run_dir = trained
    result = run_main(*train_args(data_dir, tmp_path / "new", "--model", "cnn", "--init-from", str(run_dir)))
    assert_one_line_error(result, "does not fit this model", "missing keys")
    assert not (tmp_path / "new").exists()


def not_checkpoints(folder: Path, real_checkpoint: Path) -> list[tuple[Path, str]]:
    content = real_checkpoint.read_bytes()
    files = {
        "random.pt": (
            np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
            "not a checkpoint (neither a PyTorch file nor safetensors)",
        ),
        "notes.pt": (b"these are my notes\n", "not a checkpoint (neither a PyTorch file nor safetensors)"),
        "empty.pt": (b"", "file is empty; not a checkpoint"),
        "truncated.pt": (content[: len(content) // 2], "not a checkpoint or corrupt (PytorchStreamReader failed"),
        "broken.safetensors": (b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}", "not a valid safetensors file"),
    }
    paths = []
    for name, (data, problem) in files.items():
        (folder / name).write_bytes(data)
        paths.append((folder / name, problem))
    torch.save([1, 2, 3], folder / "list.pt")
    paths.append((folder / "list.pt", "not a checkpoint (expected a trainlab checkpoint or a state_dict of tensors)"))
    return paths


def test_a_file_that_is_not_a_checkpoint_is_named_with_the_problem(trained, tmp_path, run_main):
    data_dir, run_dir = trained
    for path, problem in not_checkpoints(tmp_path, run_dir / "checkpoints" / "last.pt"):
        before = path.read_bytes()
        for command in (
            ["evaluate", path, "--model", "mlp", "--data-dir", data_dir],
            ["predict", path, "--model", "mlp", "--test-index", "0", "--data-dir", data_dir],
            ["export", path, "--model", "mlp", "--format", "state-dict", "--out", tmp_path / "out.pt"],
        ):
            assert_one_line_error(run_main(*command), f"{path}: {problem}")
        assert path.read_bytes() == before
    assert not (tmp_path / "out.pt").exists()


def test_resuming_from_a_corrupt_checkpoint_refuses_and_changes_nothing(trained, tmp_path, run_main):
    _, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    last = copy / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    before = snapshot(copy)
    assert_one_line_error(run_main("train", "--resume", copy), f"{last}: not a checkpoint or corrupt")
    assert snapshot(copy) == before


# --- run directories ----------------------------------------------------------------------------------------------


def test_an_existing_run_directory_is_refused_and_left_as_it_was(trained, run_main):
    data_dir, run_dir = trained
    before = snapshot(run_dir)
    assert_one_line_error(
        run_main(*train_args(data_dir, run_dir)),
        f"run directory {run_dir} already exists; to continue it: trainlab train --resume {run_dir} --data-dir "
        f"{data_dir} --device cpu --no-download; to replace it, add --overwrite",
    )
    assert snapshot(run_dir) == before


def test_overwrite_with_bad_input_leaves_the_old_run_intact(trained, tmp_path, run_main):
    _, run_dir = trained
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    before = snapshot(copy)
    bad_data = write_fashion_layout(tmp_path / "data")
    empty_file(bad_data / RAW)
    assert_one_line_error(run_main(*train_args(bad_data, copy, "--overwrite")), "file is empty")
    assert snapshot(copy) == before


def test_resume_refuses_flags_it_would_ignore(trained, run_main):
    _, run_dir = trained
    assert_one_line_error(
        run_main("train", "--resume", run_dir, "--lr", "0.1", "--epochs", "5"),
        f"--resume continues {run_dir} exactly as it was configured, so it takes no --lr 0.1 --epochs 5; ",
    )
    assert_one_line_error(run_main("train", "--resume", run_dir, "--overwrite"), "so it takes no --overwrite; ")


def test_resume_of_a_directory_that_is_not_a_run(tmp_path, run_main):
    assert_one_line_error(
        run_main("train", "--resume", tmp_path / "nowhere"),
        f"{tmp_path / 'nowhere'}: not a trainlab run directory (no config.toml)",
    )


# --- full disks and read-only folders -----------------------------------------------------------------------------


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tiny_data, tmp_path, run_main, monkeypatch):
    original_save = torch.save
    saves = []

    def save_until_the_disk_fills(obj, handle, *args, **kwargs):
        saves.append(1)
        if len(saves) <= 2:
            return original_save(obj, handle, *args, **kwargs)
        handle.write(b"the first bytes of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    run_dir = tmp_path / "run"
    result = run_main(*train_args(tiny_data, run_dir, "--checkpoint-every", "3"))
    last = run_dir / "checkpoints" / "last.pt"
    assert_one_line_error(
        result, f"cannot write checkpoint {last}: No space left on device; the previous checkpoint is intact"
    )
    monkeypatch.undo()
    assert load_checkpoint(last).payload["step"] == 6  # the second checkpoint, whole
    assert not list(run_dir.rglob("*.tmp"))


def test_a_full_disk_before_anything_is_saved_leaves_no_run_directory(tiny_data, tmp_path, run_main, monkeypatch):
    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", fsync)
    result = run_main(*train_args(tiny_data, tmp_path / "run"))
    assert_one_line_error(result, f"cannot write {tmp_path / 'run' / 'config.toml'}: No space left on device")
    assert not (tmp_path / "run").exists()


def test_a_read_only_file_system_while_checkpointing_keeps_the_previous_checkpoint(
    tiny_data, tmp_path, run_main, monkeypatch
):
    """Simulated with EROFS from os.open, so that it also runs as root (where chmod does not stop writes)."""
    real_open = os.open
    checkpoints = {"written": 0}

    def read_only_after_the_first_checkpoint(path, flags, *args, **kwargs):
        if ".last.pt." in str(path) and flags & os.O_CREAT:
            if checkpoints["written"]:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            checkpoints["written"] += 1
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only_after_the_first_checkpoint)
    run_dir = tmp_path / "run"
    result = run_main(*train_args(tiny_data, run_dir, "--checkpoint-every", "4"))
    monkeypatch.undo()
    assert_one_line_error(
        result,
        f"cannot write checkpoint {run_dir / 'checkpoints' / 'last.pt'}: "
        "Read-only file system; the previous checkpoint is intact",
    )
    assert load_checkpoint(run_dir).payload["step"] == 4
    assert not list(run_dir.rglob("*.tmp"))


def permissions_are_enforced() -> bool:
    """False for root with CAP_DAC_OVERRIDE, whom a read-only directory does not stop."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o555)
    try:
        (folder / "probe").write_bytes(b"")
        return False
    except PermissionError:
        return True
    finally:
        folder.chmod(0o755)
        shutil.rmtree(folder)


needs_non_root = pytest.mark.skipif(
    not permissions_are_enforced(), reason="running as root, whom chmod does not stop; the EROFS test covers this"
)


@needs_non_root
def test_a_read_only_checkpoint_folder_keeps_the_previous_checkpoint(tiny_data, tmp_path):
    """A real chmod, in a real process: the folder turns read-only after the first epoch's checkpoint."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "trainlab", *train_args(tiny_data, run_dir, "--epochs", "200")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    folder = run_dir / "checkpoints"
    try:
        while not (folder / "last.pt").exists() and process.poll() is None:
            time.sleep(0.005)
        folder.chmod(0o555)
        _, stderr = process.communicate(timeout=300)
    finally:
        folder.chmod(0o755)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, stderr
    assert stderr.strip().splitlines()[-1].endswith("Permission denied; the previous checkpoint is intact")
    assert load_checkpoint(folder / "last.pt").kind == "trainlab"
    assert not list(folder.glob("*.tmp"))


@needs_non_root
def test_a_run_directory_in_a_read_only_folder_is_refused(tiny_data, tmp_path, run_main):
    parent = tmp_path / "read_only"
    parent.mkdir(mode=0o555)
    try:
        assert_one_line_error(
            run_main(*train_args(tiny_data, parent / "run")),
            f"cannot create run directory {parent / 'run'}: Permission denied",
        )
    finally:
        parent.chmod(0o755)


# --- config values --------------------------------------------------------------------------------------------------


BAD_VALUES = [
    ("lr", "-1", -1, "lr must be > 0, got -1"),
    ("lr", "0", 0, "lr must be > 0, got 0"),
    ("batch_size", "0", 0, "batch_size must be >= 1, got 0"),
    ("epochs", "0", 0, "epochs must be >= 1, got 0"),
    ("optimizer", "adagrad", "adagrad", "unknown optimizer 'adagrad'; choose one of: sgd"),
    ("loss", "hinge", "hinge", "unknown loss 'hinge'; choose one of: cross-entropy"),
    ("model", "transformer", "transformer", "unknown model 'transformer'; choose one of:"),
]


@pytest.mark.parametrize(("key", "flag_value", "toml_value", "problem"), BAD_VALUES)
def test_invalid_config_value_in_a_flag_is_refused(key, flag_value, toml_value, problem, tiny_data, tmp_path, run_main):
    result = run_main(*train_args(tiny_data, tmp_path / "run", f"--{key.replace('_', '-')}", flag_value))
    assert_one_line_error(result, problem)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("key", "flag_value", "toml_value", "problem"), BAD_VALUES)
def test_invalid_config_value_in_a_config_file_is_refused_naming_the_file(
    key, flag_value, toml_value, problem, tiny_data, tmp_path, run_main
):
    config = tmp_path / "settings.toml"
    values = {"epochs": 1, key: toml_value}
    config.write_text("".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in values.items()))
    result = run_main(*train_args(tiny_data, tmp_path / "run", "--config", str(config)))
    line = assert_one_line_error(result, problem)
    if key != "model":  # model names are checked when the model is built, where the value's source is unknown
        assert line.startswith(f"trainlab train: error: {config}: "), line
    assert not (tmp_path / "run").exists()


def assert_config_file_refused(text: str, problem: str, tiny_data: Path, tmp_path: Path, run_main) -> None:
    """Train with a config file holding `text`: one line naming the problem ({config}: the file), no run folder."""
    config = tmp_path / "settings.toml"
    config.write_text(text)
    result = run_main(*train_args(tiny_data, tmp_path / "run", "--config", str(config)))
    assert_one_line_error(result, problem.format(config=config))
    assert not (tmp_path / "run").exists()


def test_unknown_key_in_a_config_file_is_named(tiny_data, tmp_path, run_main):
    assert_config_file_refused(
        "learning_rate = 0.1\n", "{config}: unknown key(s) learning_rate; valid keys:", tiny_data, tmp_path, run_main
    )


def test_a_bad_flag_beside_a_good_config_file_does_not_blame_the_file(tiny_data, tmp_path, run_main):
    config = tmp_path / "settings.toml"
    config.write_text('optimizer = "adam"\n')
    result = run_main(*train_args(tiny_data, tmp_path / "run", "--config", str(config), "--lr", "-1"))
    line = assert_one_line_error(result, "lr must be > 0, got -1")
    assert str(config) not in line


# --- damaged checkpoints and config files (issue 27, round two) ------------------------------------------------------


@pytest.mark.parametrize(
    "damage, problem",
    [
        ({"model_state": None}, "a trainlab checkpoint without its model weights (model_state: it has none)"),
        (
            {"model_state": [1, 2]},
            "a trainlab checkpoint without its model weights (model_state: it is not a table of tensors)",
        ),
        ({"preprocessing": {"channels": "x"}}, "its preprocessing record is malformed (channels is 'x', not a whole"),
        ({"preprocessing": [1, 28, 28]}, "its preprocessing record is malformed (list, not a table)"),
        (
            {"preprocessing": {"channels": 1, "height": 28, "width": 28, "mean": [0.5, 0.5]}},
            "its preprocessing record is malformed (mean is [0.5, 0.5], not 1 finite number(s))",
        ),
    ],
)
def test_a_checkpoint_without_its_weights_or_with_a_malformed_preprocessing_record_is_one_line(
    damage, problem, trained, tmp_path, run_main
):
    data_dir, run_dir = trained
    payload = load_checkpoint(run_dir).payload
    for key, value in damage.items():
        if value is None:
            del payload[key]
        else:
            payload[key] = value
    damaged = tmp_path / "damaged.pt"
    torch.save(payload, damaged)
    for command in (
        ["evaluate", damaged, "--data-dir", data_dir, "--no-download"],
        ["predict", damaged, "--test-index", "0", "--data-dir", data_dir, "--no-download"],
    ):
        assert_one_line_error(run_main(*command), f"{damaged}: {problem}")


def test_a_pickled_whole_model_is_named_as_one_not_as_a_plain_state_dict(tmp_path, run_main):
    torch.save(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), tmp_path / "whole.pt")
    with pytest.warns(UserWarning, match="--trust-pickle runs code"):
        result = run_main("predict", tmp_path / "whole.pt", "--test-index", "0", "--trust-pickle", "--no-download")
    assert_one_line_error(
        result, f"{tmp_path / 'whole.pt'} is a pickled whole model (torch.save(model)) that does not name its model"
    )


def test_a_config_file_starting_with_a_byte_order_mark_is_read(tiny_data, tmp_path):
    from trainlab.config import read_config_file

    config = tmp_path / "settings.toml"
    config.write_bytes(b"\xef\xbb\xbfbatch-size = 32\nlr = 0.01\n")
    assert read_config_file(config) == {"batch_size": 32, "lr": 0.01}


def test_a_config_file_setting_one_key_in_both_spellings_is_refused_naming_both(tiny_data, tmp_path, run_main):
    assert_config_file_refused(
        "batch-size = 32\nbatch_size = 64\n",
        "config file {config} sets batch_size twice, as batch-size and as batch_size",
        tiny_data,
        tmp_path,
        run_main,
    )
