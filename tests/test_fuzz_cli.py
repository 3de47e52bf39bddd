"""Every command fed bad values: exit 2, one line naming the problem, no traceback, nothing left on disk.

A table per command (flags, positional arguments, files that are not what they should be), and every config key
in a TOML file with a value of the wrong type. The few legal-but-suspicious inputs get a warning after success.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trainlab import TrainConfig

from conftest import assert_one_line_error, run_cli, train_tiny_run

HUGE = str(10**30)  # overflows every C integer torch or numpy takes


pytestmark = pytest.mark.usefixtures("no_run_reports")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(data dir, run dir) of a finished one-epoch MLP run, shared: the tests check that it is left unchanged."""
    return train_tiny_run(tmp_path_factory.mktemp("trained"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory, trained) -> Path:
    """Files and folders that are not what a command expects."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("bad")
    (folder / "binary.bin").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (folder / "binary.png").write_bytes((folder / "binary.bin").read_bytes())
    (folder / "text.png").write_text("not an image\n")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "notes.toml").write_text("lr = 0.1\n\xff\n", encoding="latin-1")
    (folder / "empty_dir").mkdir()
    _, run_dir = trained
    for name, metrics in (
        ("run_list_rows", b'[1, 2]\n{"epoch": 1}\n'),
        ("run_binary_metrics", b"\xba\xff\x00" * 50),
        ("run_text_accuracy", b'{"epoch": 1, "test_accuracy": "high"}\n'),
        ("run_no_metrics", None),
    ):
        (folder / name).mkdir()
        (folder / name / "config.toml").write_bytes((run_dir / "config.toml").read_bytes())
        if metrics is not None:
            (folder / name / "metrics.jsonl").write_bytes(metrics)
    (folder / "not_a_png.toml").write_text("x = 1\n")
    images = folder / "images"  # --dataset folder: ROOT/train|test/<class>/*.png, 8x8 gray
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            (images / split / label).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(np.full((8, 8), 60 * i, dtype=np.uint8)).save(images / split / label / f"{i}.png")
    return folder


def snapshot_tree(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every path under the folders, files with their size and modification time: what was made or changed.

    Decoded-image caches are left out: trainlab keeps them beside csv/folder images on purpose, valid for the next run.
    """
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else (-1, 0)
        for folder in folders
        for p in [folder, *sorted(folder.rglob("*"))]
        if ".trainlab-cache" not in p.parts
    }


def fill(argv: list[str], **places: Path) -> list[str]:
    return [arg.format(**places) for arg in argv]


def assert_refused(result, fragment: str, work: Path, before: dict, *folders: Path) -> str:
    """One line holding the fragment, exit 2, and nothing created or changed anywhere we look.

    stdout may hold what was done before the problem showed (the data's notes); the error is stderr's only line.
    """
    line = assert_one_line_error(result, fragment)
    assert list(work.iterdir()) == [], list(work.iterdir())
    assert snapshot_tree(*folders) == before
    return line


# --- train ----------------------------------------------------------------------------------------------------------

TRAIN = [
    "train",
    "--data-dir",
    "{data}",
    "--run-dir",
    "{work}/run",
    "--no-download",
    "--device",
    "cpu",
    "--quiet",
    "--epochs",
    "1",
    "--threads",
    "1",
]
FOLDER = ["--dataset", "folder", "--image-dir", "{bad}/images"]

TRAIN_CASES = [
    (["--epochs", "0"], "epochs must be >= 1, got 0"),
    (["--epochs", "1000000000000"], "epochs must be <= 1,000,000"),  # was: trained "forever"
    (["--epochs", "1e999"], "argument --epochs: invalid int value: '1e999'"),
    (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
    (["--batch-size", HUGE], "batch_size must be <= 9,223,372,036,854,775,807"),
    (["--eval-batch-size", "0"], "eval_batch_size must be >= 1, got 0"),
    (["--seed", "-1"], "seed must be >= 0, got -1"),
    (["--seed", str(2**32)], "seed must be <= 4,294,967,295"),  # was: unexpected error: ValueError (numpy)
    (["--seed", HUGE], "seed must be <= 4,294,967,295"),  # was: unexpected error: ValueError: Overflow
    (["--threads", "-1"], "threads must be >= 0, got -1"),
    (["--threads", "1000000"], "threads must be <= 1,024"),  # was: a segmentation fault
    (["--threads", HUGE], "threads must be <= 1,024"),  # was: unexpected error: ValueError: Overflow
    (["--workers", "-1"], "workers must be >= 0, got -1"),
    (["--workers", "1000000"], "workers must be <= 256"),
    (["--memory-budget-mb", "-1"], "memory_budget_mb must be >= 0"),
    (["--memory-budget-mb", "nan"], "memory_budget_mb must be a finite number, got nan"),
    (["--checkpoint-every", "-1"], "checkpoint_every must be >= 0, got -1"),
    (["--log-every", "0"], "log_every must be >= 1, got 0"),
    (["--step-epochs", "0"], "step_epochs must be >= 1, got 0"),
    (["--early-stop", "-1"], "early_stop must be >= 0, got -1"),
    (["--lr", "0"], "lr must be > 0, got 0"),
    (["--lr", "nan"], "lr must be a finite number, got nan"),
    (["--lr", "1e999"], "lr must be a finite number, got inf"),
    (["--lr", "1e300"], "lr must be <= 1e+06"),  # was: unexpected error: RuntimeError (float overflow)
    (["--weight-decay", "1e300"], "weight_decay must be <= 1e+06"),  # the same
    (["--momentum", "inf"], "momentum must be a finite number, got inf"),
    (["--label-smoothing", "1"], "label_smoothing must be < 1"),
    (["--warmup-epochs", "nan"], "warmup_epochs must be a finite number"),
    (["--step-gamma", "0"], "step_gamma must be > 0"),
    (["--val-split", "1"], "val_split must be < 1"),
    (["--val-split", "0.999"], "leaves none of the 640 images for training"),
    (["--dropout", "-1"], "dropout must be >= 0"),
    (["--augment", "--augment-padding", "28"], "augment_padding must be smaller than the images' 28 pixels"),
    (["--augment", "--augment-padding", "1000000000000"], "augment_padding must be smaller"),  # was: RuntimeError
    (["--augment", "--augment-erasing", "2"], "augment_erasing must be <= 1"),
    (["--image-size", "0"], "image_size must be >= 1, got 0"),
    (["--image-size", "99999"], "image_size must be <= 4096 pixels"),
    (["--channels", "2"], "channels must be 1 (gray) or 3 (RGB), got 2"),
    (["--freeze", "linear_relu_stack"], "--freeze linear_relu_stack leaves no parameter to train"),  # was: ValueError
    (["--freeze", ""], "argument --freeze: expected a name, got an empty string"),
    (["--model", ""], "argument --model: expected a name, got an empty string"),
    (["--model", ":Net"], "model ':Net': '' is not a module name"),  # was: unexpected error: ValueError
    (["--model", "tv:resnet18", "--weights", ""], "argument --weights: expected a file or folder name"),  # was: exit 0
    (["--device", ""], "argument --device: unknown device ''"),
    (["--device", "tpu"], "argument --device: unknown device 'tpu'; choose one of: auto, cpu, cuda, mps"),
    (["--config", ""], "argument --config: expected a file or folder name"),  # was: exit 0, the file ignored
    (["--config", "{bad}/empty_dir"], "config file {bad}/empty_dir is a folder, not a file"),
    (["--config", "{bad}/binary.bin"], "config file {bad}/binary.bin cannot be read"),
    (["--config", "{bad}/notes.toml"], "config file {bad}/notes.toml cannot be read"),
    (["--preset", ""], "argument --preset: expected a name, got an empty string"),  # was: exit 0, ignored
    (["--run-dir", ""], "argument --run-dir: expected a file or folder name"),  # was: a run written into ./
    (["--run-dir", "{bad}/binary.bin"], "run directory {bad}/binary.bin exists and is a file"),
    (["--init-from", ""], "argument --init-from: expected a file or folder name"),
    (["--init-from", "{bad}/binary.bin"], "{bad}/binary.bin: not a checkpoint"),
    (["--init-from", "{bad}/empty_dir"], "{bad}/empty_dir: run directory has no checkpoints/last.pt"),
    (["--data-dir", ""], "argument --data-dir: expected a file or folder name"),  # was: silently ./data
    (["--data-dir", "{bad}/binary.bin"], "data directory {bad}/binary.bin is a file, not a folder"),
    (
        [*FOLDER, "--image-size", "2", "--model", "cnn", "--val-split", "0.5"],
        "the cnn halves its input twice, so it needs images of at least 4x4 pixels, got 2x2",
    ),  # was: RuntimeError
    ([*FOLDER, "--augment", "--augment-padding", "8", "--image-size", "8"], "augment_padding must be smaller"),
    (
        ["--dataset", "folder", "--image-dir", "{bad}/binary.bin"],
        "image directory {bad}/binary.bin is a file, not a folder",
    ),
    (["--dataset", "csv", "--annotations", "{bad}/empty_dir"], "is a folder, not a file"),
    (["--dataset", "csv", "--annotations", "{bad}/binary.bin"], "cannot be read"),
]


@pytest.mark.parametrize(("flags", "fragment"), TRAIN_CASES, ids=[" ".join(f) for f, _ in TRAIN_CASES])
def test_bad_train_input_is_one_line_and_leaves_no_run_directory(
    flags, fragment, tiny_data, bad, tmp_path, run_main, monkeypatch
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # so that a default runs/... or ./data would show up here
    before = snapshot_tree(bad, tiny_data)
    places = {"data": tiny_data, "work": work, "bad": bad}
    result = run_main(*fill(TRAIN, **places), *fill(flags, **places))
    assert_refused(result, fragment.format(**places), work, before, bad, tiny_data)


def test_resume_with_an_empty_name_is_refused_rather_than_starting_a_new_run(run_main, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_main("train", "--resume", "", "--no-download")  # was: a fresh default run (and a download)
    assert_refused(result, "argument --resume: expected a file or folder name", tmp_path, {})


# --- lr-find, evaluate, predict, export, runs, plot, summary, data --------------------------------------------------

LR_FIND = [
    "lr-find",
    "--data-dir",
    "{data}",
    "--no-download",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--out",
    "{work}/lr.png",
]
EVALUATE = [
    "evaluate",
    "{run}",
    "--data-dir",
    "{data}",
    "--device",
    "cpu",
    "--threads",
    "1",
    "--confusion-matrix",
    "{work}/cm.png",
]
PREDICT = ["predict", "{run}", "--data-dir", "{data}", "--device", "cpu", "--threads", "1"]
EXPORT = ["export", "{run}", "--format", "state-dict"]
SHOW = ["data", "show", "--data-dir", "{data}", "--no-download", "--threads", "1", "--out", "{work}/s.png"]
INFO = ["data", "info", "--data-dir", "{data}", "--no-download", "--threads", "1"]

COMMAND_CASES = [
    (LR_FIND + ["--start-lr", "0"], "--start-lr must be > 0 and below --end-lr"),
    (LR_FIND + ["--start-lr", "10"], "--start-lr must be > 0 and below --end-lr, got 10 and 10"),
    (LR_FIND + ["--start-lr", "nan"], "--start-lr must be a finite number"),
    (LR_FIND + ["--end-lr", "nan"], "--end-lr must be a finite number"),
    (LR_FIND + ["--end-lr", "inf"], "--end-lr must be a finite number up to 1e+06, got inf"),  # was: "diverged"
    (LR_FIND + ["--end-lr", "1e300"], "--end-lr must be a finite number up to 1e+06"),
    (LR_FIND + ["--steps", "9"], "--steps must be >= 10, got 9"),
    (LR_FIND + ["--steps", "1000000000"], "--steps must be <= 100,000"),  # was: ran for hours
    (LR_FIND + ["--steps", HUGE], "--steps must be <= 100,000"),
    (LR_FIND + ["--out", ""], "argument --out: expected a file or folder name"),
    (LR_FIND + ["--out", "{work}"], "{work} is a folder; give the name of a file to write"),
    (LR_FIND + ["--epochs", "1000000000000"], "epochs must be <= 1,000,000"),
    (LR_FIND + ["--lr", "nan"], "lr must be a finite number, got nan"),
    (LR_FIND + ["--threads", "1000000"], "--threads must be <= 1,024"),  # was: a segmentation fault
    (LR_FIND + ["--threads", HUGE], "--threads must be <= 1,024"),  # was: unexpected error: ValueError
    (LR_FIND + ["--threads", "0"], "--threads must be >= 1, got 0"),
    (LR_FIND + ["--config", ""], "argument --config: expected a file or folder name"),  # was: exit 0, ignored
    (EVALUATE + ["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
    (EVALUATE + ["--confusion-matrix", ""], "argument --confusion-matrix: expected a file"),  # was: into the run
    (EVALUATE + ["--confusion-matrix", "{work}"], "is a folder; give the name of a file to write"),
    (EVALUATE + ["--model", ""], "argument --model: expected a name"),  # was: ignored
    (EVALUATE + ["--model", ":Net"], "is not a module name"),  # was: unexpected error: ValueError
    (EVALUATE + ["--model", "cnn"], "does not fit this model"),
    (EVALUATE + ["--device", "x"], "argument --device: unknown device 'x'"),  # was: unexpected error: RuntimeError
    (EVALUATE + ["--device", ""], "argument --device: unknown device ''"),  # was: ignored
    (EVALUATE + ["--threads", HUGE], "--threads must be <= 1,024"),
    (EVALUATE + ["--image-size", "99999"], "image_size must be <= 4096 pixels"),
    (EVALUATE + ["--channels", "2"], "channels must be 1 (gray) or 3 (RGB)"),
    (EVALUATE + ["--workers", "1000000"], "workers must be <= 256"),
    (EVALUATE + ["--memory-budget-mb", "nan"], "memory_budget_mb must be a finite number"),
    (EVALUATE + ["--data-dir", ""], "argument --data-dir: expected a file or folder name"),
    (["evaluate", "", "--confusion-matrix", "{work}/cm.png"], "argument CHECKPOINT: expected a file or folder name"),
    (["evaluate", "{bad}/binary.bin"], "{bad}/binary.bin: not a checkpoint"),
    (["evaluate", "{bad}/empty.txt"], "{bad}/empty.txt: file is empty; not a checkpoint"),
    (["evaluate", "{bad}/empty_dir"], "{bad}/empty_dir: run directory has no checkpoints/last.pt"),
    (["evaluate", "{work}/missing.pt"], "{work}/missing.pt: no such checkpoint file"),
    (PREDICT + ["--test-index", "-1"], "--test-index must be between 0 and 159, got -1"),
    (PREDICT + ["--test-index", "160"], "--test-index must be between 0 and 159, got 160"),
    (PREDICT + ["--test-index", HUGE], "--test-index must be between 0 and 159"),
    (PREDICT + ["--test-index", "0", "--top-k", "0"], "--top-k must be >= 1, got 0"),
    (PREDICT, "give image files or --test-index N"),
    (PREDICT + ["--test-index", "0", "--device", "x"], "argument --device: unknown device 'x'"),  # was: exit 0
    (PREDICT + ["--test-index", "0", "--threads", HUGE], "--threads must be <= 1,024"),
    (PREDICT + ["--test-index", "0", "--model", ":Net"], "is not a module name"),
    (PREDICT + [""], "IMAGE: expected a file name, got an empty string"),
    (["predict", "{run}", "", "--test-index", "0"], "argument IMAGE: expected a file or folder name"),
    (PREDICT + ["{work}/missing.png"], "{work}/missing.png: no such image file"),
    (PREDICT + ["{bad}/binary.png"], "{bad}/binary.png"),
    (PREDICT + ["{bad}/text.png"], "{bad}/text.png"),
    (PREDICT + ["{bad}/empty_dir"], "{bad}/empty_dir"),
    (EXPORT + ["--out", ""], "argument --out: expected a file or folder name"),
    (EXPORT + ["--out", "{work}"], "{work}"),
    (EXPORT + ["--out", "{bad}/binary.bin/model.pt"], "cannot write {bad}/binary.bin/model.pt"),
    (EXPORT + ["--out", "{work}/m.pt", "--model", ""], "argument --model: expected a name"),  # was: ignored
    (["export", "{run}", "--format", "pickle", "--out", "{work}/m.pt"], "argument --format: invalid choice"),
    (["export", "{bad}/binary.bin", "--format", "onnx", "--out", "{work}/m.onnx"], "not a checkpoint"),
    (["runs", ""], "argument directory: expected a file or folder name"),  # was: exit 0, "no runs in "
    (["runs", "{bad}/binary.bin"], "{bad}/binary.bin: no such directory"),
    (["runs", "{work}/missing"], "{work}/missing: no such directory"),
    (["plot", "", "--out", "{work}/p.png"], "argument RUN: expected a file or folder name"),
    (["plot", "{bad}/empty_dir", "--out", "{work}/p.png"], "not a trainlab run directory (no config.toml)"),
    (["plot", "{bad}/run_no_metrics", "--out", "{work}/p.png"], "has no finished epoch to plot yet"),
    (["plot", "{bad}/run_list_rows", "--out", "{work}/p.png"], "metrics.jsonl: row 1 is not an epoch's figures"),
    (["plot", "{bad}/run_text_accuracy", "--out", "{work}/p.png"], "row 1 is not an epoch's figures"),  # TypeError
    (["plot", "{bad}/run_binary_metrics", "--out", "{work}/p.png"], "metrics.jsonl: cannot be read"),  # Unicode...
    (["plot", "{run}", "--out", ""], "argument --out: expected a file or folder name"),
    (["plot", "{run}", "--out", "{bad}/not_a_png.toml"], "exists and is not a PNG image, so it was not replaced"),
    (["summary", "--input-size", ""], "--input-size must be C,H,W such as 1,28,28, got ''"),
    (["summary", "--input-size", "0,0,0"], "--input-size must be C,H,W such as 1,28,28"),
    (["summary", "--input-size", "a,b,c"], "--input-size must be C,H,W such as 1,28,28"),
    (["summary", "--input-size", "1,28"], "--input-size must be C,H,W such as 1,28,28"),
    (["summary", "--input-size", "1,99999,99999"], "--input-size must have at most 64 channels and 4096 pixels"),
    (["summary", "--input-size", "1000000,28,28"], "--input-size must have at most 64 channels"),  # MemoryError
    (["summary", "--num-classes", "0"], "--num-classes must be between 1 and 10,000, got 0"),  # was: exit 0
    (["summary", "--num-classes", "-1"], "--num-classes must be between 1 and 10,000"),  # was: RuntimeError
    (["summary", "--num-classes", "1000000000"], "--num-classes must be between 1 and 10,000"),  # was: MemoryError
    (["summary", "--num-classes", HUGE], "--num-classes must be between 1 and 10,000"),  # was: C++ stack frames
    (["summary", "--model", ""], "argument --model: expected a name"),
    (["summary", "--model", ":Net"], "is not a module name"),
    (["summary", "--model", "cnn", "--input-size", "1,1,1"], "needs images of at least 4x4 pixels, got 1x1"),
    (["summary", "--freeze", ""], "argument --freeze: expected a name"),  # was: exit 0, everything frozen
    (["summary", "--freeze", "nothing.here"], "--freeze 'nothing.here' matches no parameter"),
    (SHOW + ["--rows", "0"], "--rows and --cols must be >= 1 with at most 400 images, got 0x3"),
    (SHOW + ["--cols", "-1"], "--rows and --cols must be >= 1"),
    (SHOW + ["--rows", "1000000000000"], "--rows and --cols must be >= 1 with at most 400 images"),
    (SHOW + ["--out", ""], "argument --out: expected a file or folder name"),
    (SHOW + ["--out", "{work}"], "is a folder; give the name of a file to write"),
    (SHOW + ["--split", "val"], "there is no val split here; --split val needs --val-split"),
    (SHOW + ["--val-split", "nan"], "val_split must be a finite number"),
    (SHOW + ["--seed", HUGE], "seed must be <= 4,294,967,295"),  # was: unexpected error: ValueError
    (SHOW + ["--augment", "--augment-padding", "28"], "augment_padding must be smaller than the images' 28 pixels"),
    (SHOW + ["--augment", "--augment-padding", "1000000000000"], "augment_padding must be smaller"),  # RuntimeError
    (SHOW + ["--config", ""], "argument --config: expected a file or folder name"),  # was: exit 0, ignored
    (SHOW + ["--config", "{bad}/binary.bin"], "config file {bad}/binary.bin cannot be read"),
    (SHOW + ["--threads", HUGE], "--threads must be <= 1,024"),
    (SHOW + ["--device", "x"], "argument --device: unknown device 'x'"),  # was: ignored
    (SHOW + ["--image-size", "0"], "image_size must be >= 1, got 0"),
    (
        ["data", "show", *FOLDER, "--augment", "--augment-padding", "8", "--out", "{work}/s.png"],
        "augment_padding must be smaller than the images' 8 pixels, got 8",
    ),  # the size is known once loaded
    (INFO + ["--val-split", "-1"], "val_split must be >= 0"),
    (INFO + ["--workers", "-1"], "workers must be >= 0"),
    (INFO + ["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (INFO + ["--data-dir", ""], "argument --data-dir: expected a file or folder name"),
    (INFO + ["--config", "{work}/missing.toml"], "config file {work}/missing.toml does not exist"),
]


@pytest.mark.parametrize(("argv", "fragment"), COMMAND_CASES, ids=[" ".join(a) for a, _ in COMMAND_CASES])
def test_bad_input_to_every_command_is_one_line_and_writes_nothing(
    argv, fragment, trained, bad, tmp_path, run_main, monkeypatch
):
    data_dir, run_dir = trained
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # default outputs (lr_find.png, samples.png, runs_compared.png) would land here
    before = snapshot_tree(bad, data_dir, run_dir)
    places = {"data": data_dir, "run": run_dir, "work": work, "bad": bad}
    result = run_main(*fill(argv, **places))
    assert_refused(result, fragment.format(**places), work, before, bad, data_dir, run_dir)


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["train", "--threads", "1000000", "--epochs", "1"], "threads must be <= 1,024"),  # was: a segmentation fault
        (["summary", "--num-classes", HUGE], "--num-classes must be between 1 and 10,000"),  # was: C++ frames on stderr
    ],
)
def test_bad_input_in_a_real_process_is_one_line(argv, fragment, tmp_path):
    result = run_cli(*argv, cwd=tmp_path, env={"OMP_NUM_THREADS": "1"}, timeout=60)
    assert_one_line_error(result, fragment)
    assert list(tmp_path.iterdir()) == []


# --- config files ---------------------------------------------------------------------------------------------------

FIELDS = [f for f in dataclasses.fields(TrainConfig)]
TEXT_FIELDS = {f.name for f in FIELDS if f.type in ("str", "str | None")}
NUMBER_FIELDS = {f.name for f in FIELDS if isinstance(f.default, (int, float)) and not isinstance(f.default, bool)} | {
    "image_size",
    "channels",
    "workers",
    "memory_budget_mb",
}
TOML_CASES = (
    [(f.name, "{x = 1}") for f in FIELDS]  # a table where no key takes one (extra: an unknown argument)
    + [(f.name, '"x"') for f in FIELDS if f.name not in TEXT_FIELDS]  # a string for a number, flag or list
    + [(name, "true") for name in sorted(NUMBER_FIELDS)]  # a boolean for a number
    + [(name, "[1, 2]") for name in sorted(NUMBER_FIELDS | TEXT_FIELDS)]  # an array
    + [(name, "nan") for name in sorted(NUMBER_FIELDS)]
    + [(name, "inf") for name in sorted(NUMBER_FIELDS)]
    + [(name, '""') for name in sorted(TEXT_FIELDS)]
)  # an empty name or path
PASSED_AS_FLAGS = {"data_dir": ["--data-dir", "{data}"], "device": ["--device", "cpu"], "threads": ["--threads", "1"]}


def test_the_config_file_cases_cover_every_field():
    assert {name for name, _ in TOML_CASES} == {f.name for f in FIELDS}
    assert {"lr", "epochs", "batch_size", "threads", "memory_budget_mb"} <= NUMBER_FIELDS
    assert {"model", "data_dir", "device", "weights"} <= TEXT_FIELDS


@pytest.mark.parametrize(("key", "value"), TOML_CASES, ids=[f"{k}={v}" for k, v in TOML_CASES])
def test_a_wrong_typed_value_in_a_config_file_is_one_line_naming_the_file(
    key, value, tiny_data, tmp_path, run_main, monkeypatch
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    config = tmp_path / "settings.toml"
    config.write_text(("" if key == "epochs" else "epochs = 1\n") + f"{key} = {value}\n")
    flags = [arg.format(data=tiny_data) for name, pair in PASSED_AS_FLAGS.items() if name != key for arg in pair]
    before = snapshot_tree(tiny_data)
    result = run_main("train", "--config", config, "--run-dir", work / "run", "--no-download", "--quiet", *flags)
    assert_refused(result, str(config), work, before, tiny_data)


# --- legal but suspicious: a warning after success -------------------------------------------------------------------


def test_top_k_above_the_classes_lists_them_all_with_a_warning(trained, run_main):
    data_dir, run_dir = trained
    result = run_main("predict", run_dir, "--data-dir", data_dir, "--test-index", "0", "--top-k", "11", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout.splitlines()[-1])["top_k"]) == 10
    assert result.stderr.strip().splitlines()[-1] == (
        "trainlab predict: warning: --top-k 11 is more than the model's 10 classes; listing all 10"
    )


def test_a_png_written_under_another_suffix_is_written_with_a_warning(trained, tmp_path, run_main):
    _, run_dir = trained
    out = tmp_path / "curves.txt"
    result = run_main("plot", run_dir, "--out", out)
    assert result.returncode == 0, result.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
    assert (
        result.stderr == f"trainlab plot: warning: {out} does not end in .png; a PNG image is written to it all "
        "the same\n"
    )


def test_more_threads_than_cpus_work_with_a_warning(trained, run_main, monkeypatch):
    import os

    data_dir, _ = trained
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    threads = torch.get_num_threads()
    try:
        result = run_main("data", "info", "--data-dir", data_dir, "--no-download", "--threads", "3")
    finally:
        torch.set_num_threads(threads)
    assert result.returncode == 0, result.stderr
    assert (
        result.stderr == "trainlab data: warning: --threads 3 is more than the 2 CPUs here; they will "
        "compete for them\n"
    )


def test_a_warning_never_joins_an_error_line(trained, tmp_path, run_main):
    """A suspicious value beside a bad one: the error is still the only line."""
    _, run_dir = trained
    result = run_main("plot", run_dir, tmp_path / "not_a_run", "--out", tmp_path / "curves.txt")
    assert_one_line_error(result, "not a trainlab run directory")
    assert not (tmp_path / "curves.txt").exists()
