"""Reports as specifications: the PNGs of a run, the confusion matrix and per-class figures, run listings and
comparison plots, TensorBoard scalars, and what the console shows (progress bar, tutorial lines, --quiet)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct

import numpy as np
import pytest
import torch

from trainlab import Predictor, TrainConfig, fit, load_dataset
from trainlab.reports.classification import confusion_matrix, format_per_class, per_class_report
from trainlab.reports.console import ConsoleReporter
from trainlab.reports.run_reports import most_confidently_wrong

from conftest import read_metrics, write_fashion_layout

REPORTS = ("learning_curves.png", "confusion_matrix.png", "top_losses.png")


def cli(*args) -> tuple[int, str, str]:
    """`trainlab ARGS` in this process: (exit status, stdout, stderr); usable from module-scoped fixtures."""
    from trainlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(arg) for arg in args])
        except SystemExit as exc:
            code = exc.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two CLI runs under one folder: `sgd` (2 epochs, val split, still making mistakes) and `adam` (1 epoch)."""
    root = tmp_path_factory.mktemp("reports")
    data_dir = write_fashion_layout(root / "data")
    common = ("train", "--data-dir", data_dir, "--device", "cpu", "--no-download")
    sgd = cli(*common, "--run-dir", root / "runs" / "sgd", "--epochs", "2", "--lr", "0.01", "--val-split", "0.25")
    assert sgd[0] == 0, sgd[2]
    adam = cli(*common, "--run-dir", root / "runs" / "adam", "--epochs", "1", "--optimizer", "adam", "--quiet")
    assert adam[0] == 0, adam[2]
    return {
        "root": root / "runs",
        "data": data_dir,
        "sgd": root / "runs" / "sgd",
        "adam": root / "runs" / "adam",
        "stdout": sgd[1],
    }


def png_pixels(path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def assert_drawn(pixels: np.ndarray, min_width: int, min_height: int) -> None:
    height, width, _ = pixels.shape
    assert width >= min_width and height >= min_height, (width, height)
    assert pixels.std() > 0
    assert (pixels.min(axis=2) < 200).mean() > 0.005  # ink on the page, not all white


# the PNG reports -----------------------------------------------------------------------------------------------


def test_a_run_draws_learning_curves_confusion_matrix_and_top_losses(runs):
    paths = [runs["sgd"] / name for name in REPORTS]
    assert f"Reports: {', '.join(str(path) for path in paths)}" in runs["stdout"]
    curves, matrix, top = (png_pixels(path) for path in paths)
    assert_drawn(curves, 800, 300)
    assert curves.shape[1] > 2 * curves.shape[0]  # loss and accuracy side by side
    assert_drawn(matrix, 400, 400)
    assert_drawn(top, 400, 200)


def test_top_losses_shows_a_grid_of_images_for_a_model_that_makes_mistakes(runs):
    assert read_metrics(runs["sgd"])[-1]["test_accuracy"] < 1.0  # so there are wrong predictions to show
    pixels = png_pixels(runs["sgd"] / "top_losses.png").min(axis=2)
    dark_rows = (pixels < 50).mean(axis=1) > 0.2  # the images' dark backgrounds span the width
    assert dark_rows.sum() >= 50


def test_top_losses_of_a_model_without_mistakes_says_so_instead_of_a_blank_page(runs):
    assert read_metrics(runs["adam"])[-1]["test_accuracy"] == 1.0
    pixels = png_pixels(runs["adam"] / "top_losses.png").min(axis=2)
    inked_rows = np.nonzero((pixels < 128).any(axis=1))[0]
    assert inked_rows.max() > 0.3 * pixels.shape[0]  # more than the title at the top


def test_most_confidently_wrong_lists_only_wrong_predictions_most_confident_first():
    predictions = torch.tensor([0, 1, 2, 3, 4, 5])
    labels = torch.tensor([0, 2, 2, 1, 4, 0])
    confidences = torch.tensor([0.99, 0.4, 0.9, 0.8, 0.7, 0.6])
    assert most_confidently_wrong(predictions, confidences, labels, 10).tolist() == [3, 5, 1]
    assert most_confidently_wrong(predictions, confidences, labels, 2).tolist() == [3, 5]


# confusion matrix and per-class figures ------------------------------------------------------------------------


def test_evaluate_confusion_matrix_counts_every_test_image_and_its_diagonal_is_the_accuracy(runs):
    code, stdout, stderr = cli(
        "evaluate",
        runs["sgd"],
        "--data-dir",
        runs["data"],
        "--device",
        "cpu",
        "--json",
        "--confusion-matrix",
        runs["root"].parent / "matrix.png",
    )
    assert code == 0, stderr
    figures = json.loads(stdout.splitlines()[-1])
    matrix = torch.tensor(figures["confusion_matrix"])
    assert matrix.shape == (10, 10)
    assert int(matrix.sum()) == figures["samples"] == 160
    assert int(matrix.trace()) == figures["correct"]
    assert (
        int(matrix.trace()) / int(matrix.sum()) == figures["accuracy"] == read_metrics(runs["sgd"])[-1]["test_accuracy"]
    )
    assert matrix.sum(dim=1).tolist() == [16] * 10  # rows are the true classes: 16 test images each
    assert [row["support"] for row in figures["per_class"]] == [16] * 10
    # the same counts as tallying the predictions one by one
    test = load_dataset(data_dir=runs["data"], download=False).test
    predicted = [p.index for p in Predictor.from_checkpoint(runs["sgd"]).predict(test.images)]
    tally = torch.zeros(10, 10, dtype=torch.long)
    for true, guess in zip(test.labels.tolist(), predicted, strict=True):
        tally[true, guess] += 1
    assert torch.equal(matrix, tally)
    assert_drawn(png_pixels(runs["root"].parent / "matrix.png"), 400, 400)


def test_evaluate_leaves_a_confusion_matrix_png_that_shows_the_same_counts_and_redraws_any_other(runs, tmp_path):
    from trainlab.reports.plots import png_content

    target = tmp_path / "matrix.png"
    evaluate = ("evaluate", runs["sgd"], "--data-dir", runs["data"], "--device", "cpu", "--confusion-matrix", target)
    assert cli(*evaluate)[0] == 0
    first = png_content(target)
    assert first is not None and len(first) == 64  # a sha256 of the counts and class names, in the PNG
    drawn = (target.read_bytes(), target.stat().st_mtime_ns)
    code, stdout, _ = cli(*evaluate)
    assert code == 0 and f"Confusion matrix: {target}" in stdout
    assert (target.read_bytes(), target.stat().st_mtime_ns) == drawn  # the same picture: not drawn again
    # the run's own report shows the same test predictions as evaluating its checkpoint: evaluate keeps it
    run_report = runs["sgd"] / "confusion_matrix.png"
    assert png_content(run_report) == first
    # another model's counts, or a PNG without trainlab's digest, are drawn over
    assert (
        cli("evaluate", runs["adam"], "--data-dir", runs["data"], "--device", "cpu", "--confusion-matrix", target)[0]
        == 0
    )
    assert png_content(target) not in (None, first)
    from PIL import Image

    Image.new("RGB", (8, 8)).save(target)
    assert png_content(target) is None
    assert cli(*evaluate)[0] == 0
    assert png_content(target) == first
    assert_drawn(png_pixels(target), 400, 400)


def test_png_content_of_files_that_carry_none_is_none(tmp_path):
    from trainlab.reports.plots import png_content

    (tmp_path / "text.png").write_text("not a picture")
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    # a chunk that claims 4 GB is stepped over, not read into memory
    claims = b"\x89PNG\r\n\x1a\n" + b"\xff\xff\xff\xf0zTXt" + b"tiny"
    (tmp_path / "claims.png").write_bytes(claims)
    names = ("text.png", "cut.png", "missing.png", "claims.png")
    assert [png_content(tmp_path / name) for name in names] == [None] * 4


def test_png_content_finds_the_digest_after_other_chunks(tmp_path):
    from trainlab.reports.plots import new_figure, png_content, save_figure

    path = save_figure(new_figure(figsize=(1, 1)), tmp_path / "a.png", "d" * 64)
    data = path.read_bytes()
    header_end = 8 + 8 + 13 + 4  # the signature, then IHDR: length and kind, 13 bytes, CRC
    extra = struct.pack(">I4s", 3000, b"zzTx") + bytes(3000) + b"\0\0\0\0"  # an ancillary chunk of 3,000 bytes
    path.write_bytes(data[:header_end] + extra + data[header_end:])
    assert png_content(path) == "d" * 64


def test_per_class_precision_and_recall_match_a_hand_count():
    actual = torch.tensor([0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
    predicted = torch.tensor([0, 0, 1, 2, 1, 0, 2, 2, 2, 0])
    matrix = confusion_matrix(predicted, actual, 4)
    assert matrix.tolist() == [[2, 1, 1, 0], [1, 1, 0, 0], [0, 0, 3, 0], [1, 0, 0, 0]]  # row: true, column: predicted
    rows = per_class_report(matrix, ("a", "b", "c", "d"))
    # class a: predicted 4 times, 2 right (precision 2/4); 4 true a's, 2 found (recall 2/4)
    # class b: predicted twice, 1 right; 2 true b's, 1 found.  c: 4 predicted, 3 right; all 3 found.
    # class d: never predicted (precision 0 by convention); its one image missed.
    assert rows == [
        {"class": "a", "precision": 2 / 4, "recall": 2 / 4, "support": 4},
        {"class": "b", "precision": 1 / 2, "recall": 1 / 2, "support": 2},
        {"class": "c", "precision": 3 / 4, "recall": 3 / 3, "support": 3},
        {"class": "d", "precision": 0.0, "recall": 0.0, "support": 1},
    ]
    assert format_per_class(rows).splitlines() == [
        "class  precision  recall  support",
        "a          0.500   0.500        4",
        "b          0.500   0.500        2",
        "c          0.750   1.000        3",
        "d          0.000   0.000        1",
    ]


# run listings and comparison plots -----------------------------------------------------------------------------


def test_runs_lists_each_run_with_model_optimizer_lr_epochs_and_accuracy(runs):
    code, stdout, stderr = cli("runs", runs["root"])
    assert code == 0, stderr
    lines = stdout.splitlines()
    assert lines[0].split() == [
        "run",
        "model",
        "optimizer",
        "lr",
        "epochs",
        "best",
        "val",
        "test",
        "time",
        "recipe",
        "status",
    ]
    assert all(line.split()[-2] == "given" for line in lines[1:])  # flags of their own: no recipe chosen
    sgd_metrics, adam_metrics = read_metrics(runs["sgd"]), read_metrics(runs["adam"])
    best = max(row["val_accuracy"] for row in sgd_metrics)
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {str(runs["sgd"]), str(runs["adam"])}
    assert rows[str(runs["sgd"])][1:7] == [
        "mlp",
        "sgd",
        "0.01",
        "2/2",
        f"{100 * best:.1f}%",
        f"{100 * sgd_metrics[-1]['test_accuracy']:.1f}%",
    ]
    assert rows[str(runs["sgd"])][-1] == "finished"
    assert rows[str(runs["adam"])][1:7] == [
        "mlp",
        "adam",
        "0.001",
        "1/1",
        "-",
        f"{100 * adam_metrics[-1]['test_accuracy']:.1f}%",
    ]


def test_runs_json_gives_the_same_rows_as_numbers(runs):
    code, stdout, stderr = cli("runs", runs["root"], "--json")
    assert code == 0, stderr
    listed = {row["run"]: row for row in json.loads(stdout.splitlines()[-1])["runs"]}
    sgd = listed[str(runs["sgd"])]
    metrics = read_metrics(runs["sgd"])
    assert {key: sgd[key] for key in ("model", "optimizer", "lr", "epochs", "status")} == {
        "model": "mlp",
        "optimizer": "sgd",
        "lr": 0.01,
        "epochs": "2/2",
        "status": "finished",
    }
    assert sgd["best_val_accuracy"] == max(row["val_accuracy"] for row in metrics)
    assert sgd["test_accuracy"] == metrics[-1]["test_accuracy"]
    assert sgd["machine_seconds"] == pytest.approx(sum(row["machine_seconds"] for row in metrics))
    assert listed[str(runs["adam"])]["best_val_accuracy"] is None


def test_runs_of_a_missing_folder_is_one_line_exit_2(tmp_path):
    code, stdout, stderr = cli("runs", tmp_path / "nowhere")
    assert code == 2
    assert (
        stderr == f"trainlab runs: error: {tmp_path / 'nowhere'}: no such directory; runs are written to runs/ "
        "unless --run-dir says otherwise\n"
    )


def test_plot_overlays_runs_into_one_png(runs, tmp_path):
    out = tmp_path / "compared.png"
    code, stdout, stderr = cli("plot", runs["sgd"], runs["adam"], "--out", out, "--json")
    assert code == 0, stderr
    assert json.loads(stdout.splitlines()[-1]) == {"out": str(out), "runs": [str(runs["sgd"]), str(runs["adam"])]}
    assert_drawn(png_pixels(out), 800, 300)


def test_plot_refuses_a_folder_that_is_not_a_run_and_writes_nothing(runs, tmp_path):
    out = tmp_path / "compared.png"
    code, stdout, stderr = cli("plot", runs["sgd"], tmp_path, "--out", out)
    assert code == 2
    assert stderr == f"trainlab plot: error: {tmp_path}: not a trainlab run directory (no config.toml)\n"
    assert not out.exists()


# TensorBoard ---------------------------------------------------------------------------------------------------


def test_tensorboard_events_hold_one_scalar_per_epoch_equal_to_the_metrics(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert list((runs["sgd"] / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(runs["sgd"] / "tensorboard"))
    events.Reload()
    assert {"loss/train", "accuracy/test", "accuracy/val", "loss/test", "lr"} <= set(events.Tags()["scalars"])
    metrics = read_metrics(runs["sgd"])
    for tag, key in (
        ("loss/train", "train_loss"),
        ("accuracy/test", "test_accuracy"),
        ("accuracy/val", "val_accuracy"),
        ("lr", "lr"),
    ):
        scalars = events.Scalars(tag)
        assert [event.step for event in scalars] == [1, 2], tag
        assert [event.value for event in scalars] == pytest.approx([row[key] for row in metrics], rel=1e-6), tag


# the console ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_splits(tmp_path_factory):
    return load_dataset(data_dir=write_fashion_layout(tmp_path_factory.mktemp("console") / "data"), download=False)


def console_output(splits, run_dir, **options) -> str:
    stream = io.StringIO()
    fit(
        TrainConfig(epochs=2, device="cpu", log_every=2),
        data=splits,
        run_dir=run_dir,
        reporter=ConsoleReporter(stream, **options),
    )
    return stream.getvalue()


def test_progress_bar_replaces_the_tutorials_loss_lines(tiny_splits, tmp_path):
    output = console_output(tiny_splits, tmp_path / "run", progress_bar=True)
    assert re.search(r"\d+/10 \[", output)  # tqdm's batches done / batches per epoch
    assert "batch/s" in output
    assert "\r" in output
    assert not re.search(r"^loss: ", output, flags=re.MULTILINE)
    lines = re.split(r"[\r\n]", output)  # the bar redraws itself after carriage returns
    assert len([line for line in lines if re.fullmatch(r"train loss: \d\.\d{6}, [\d,]+ images/s", line)]) == 2
    assert output.count("Test Error: ") == 2


def test_without_the_progress_bar_the_tutorials_loss_lines_are_printed_and_no_bar(tiny_splits, tmp_path):
    output = console_output(tiny_splits, tmp_path / "run", progress_bar=False)
    loss_lines = re.findall(r"^loss: \d\.\d{6}  \[ *(\d+)/  640\]$", output, flags=re.MULTILINE)
    assert loss_lines == ["64", "192", "320", "448", "576"] * 2  # batches 1, 3, 5, 7, 9 of each epoch
    assert "\r" not in output
    assert "batch/s" not in output and "%|" not in output


def test_the_console_is_a_terminal_bar_only_on_a_tty():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert ConsoleReporter(Terminal()).progress_bar is True
    assert ConsoleReporter(io.StringIO()).progress_bar is False
    assert ConsoleReporter(Terminal(), quiet=True).progress_bar is False


def test_quiet_prints_one_line_per_epoch(runs, tmp_path):
    run_dir = tmp_path / "run"
    code, stdout, stderr = cli(
        "train", "--data-dir", runs["data"], "--run-dir", run_dir, "--device", "cpu", "--epochs", "3", "--quiet"
    )
    assert code == 0, stderr
    lines = stdout.splitlines()
    accuracies = [row["test_accuracy"] for row in read_metrics(run_dir)]
    assert lines[0] == "Using cpu device"
    assert lines[1:4] == [f"epoch {n}: test accuracy {100 * a:.1f}%" for n, a in enumerate(accuracies, start=1)]
    assert lines[4].startswith("Unlike the training data: a threshold that flags ")  # the record, said once
    assert lines[5:7] == ["Done!", f"Saved checkpoint to {run_dir / 'checkpoints' / 'last.pt'}"]
    assert lines[7].startswith("Reports: ")
    assert len(lines) == 8


def test_per_class_table_of_many_classes_shows_the_worst_fifty_and_says_so():
    matrix = torch.diag(torch.arange(1, 201))
    matrix[0, 1] = 5  # class 0 has the lowest recall
    rows = per_class_report(matrix, tuple(f"c{i}" for i in range(200)))
    lines = format_per_class(rows).splitlines()
    assert len(lines) == 52
    assert lines[1].startswith("c0 ")
    assert lines[-1] == "(50 of 200 classes shown: those with the lowest recall; --json lists them all)"
