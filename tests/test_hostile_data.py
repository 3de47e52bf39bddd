"""Hostile and odd data: typo labels, numeric class folders, many classes, wide pixels, gzip bombs, link loops,
damaged runs and empty data sets. Each gets the right pixels, or one line naming the file and what to do."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import tracemalloc
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from trainlab.config import TrainConfig
from trainlab.data import load_dataset, load_split
from trainlab.data.annotations import derive_classes, read_csv_annotations
from trainlab.data.decoding import load_image, read_header
from trainlab.data.idx import read_bytes, read_idx_pair
from trainlab.errors import DataError

from conftest import assert_one_line_error, make_images, write_fashion_layout, write_idx

RAW = Path("FashionMNIST") / "raw"


def write_pngs(folder: Path, names: list[str]) -> None:
    for number, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((4, 4), 10 * number, dtype=np.uint8)).save(folder / name)


def write_labelled_csv(root: Path, labels: list[str]) -> Path:
    names = [f"img{i}.png" for i in range(len(labels))]
    write_pngs(root, names)
    (root / "labels.csv").write_text(
        "file_name,label\n" + "".join(f"{n},{label}\n" for n, label in zip(names, labels, strict=True))
    )
    return root / "labels.csv"


def csv_config(csv: Path, **options) -> TrainConfig:
    return TrainConfig(dataset="csv", annotations=str(csv), image_dir=str(csv.parent), workers=0, **options)


def folder_config(root: Path, **options) -> TrainConfig:
    return TrainConfig(dataset="folder", image_dir=str(root), workers=0, **options)


def train_args(data_dir: Path, run_dir: Path) -> list:
    return [
        "train",
        "--data-dir",
        data_dir,
        "--run-dir",
        run_dir,
        "--no-download",
        "--device",
        "cpu",
        "--quiet",
        "--epochs",
        "1",
    ]


# --- labels ----------------------------------------------------------------------------------------------------------


def test_a_mistyped_huge_integer_label_is_refused_naming_its_line(tmp_path):
    csv = write_labelled_csv(tmp_path, ["0", "1", "2", "100000000", "1"])
    with pytest.raises(DataError) as caught:
        load_split(csv_config(csv), "train")
    message = str(caught.value)
    assert message.startswith(
        f"{csv} line 5: label 100000000 would make 100,000,001 classes, more than the "
        "10,000 classes trainlab accepts; is it a typo?"
    )
    assert "\n" not in message


def test_a_sparse_integer_label_is_taken_for_a_typo_and_its_line_named(tmp_path):
    csv = write_labelled_csv(tmp_path, ["0", "1", "2", "3", "150", "2"])
    with pytest.raises(
        DataError,
        match=r"labels\.csv line 6: label 150 would make 151 classes, but only 5 "
        r"different labels appear; is it a typo\?",
    ):
        load_split(csv_config(csv), "train")


def test_csv_integer_labels_stay_class_numbers(tmp_path):
    csv = write_labelled_csv(tmp_path, ["0", "3", "9", "3"])
    train = load_split(csv_config(csv), "train")
    assert train.classes == tuple(str(i) for i in range(10))
    assert train.labels.tolist() == [0, 3, 9, 3]


def test_a_negative_label_names_its_line(tmp_path):
    csv = write_labelled_csv(tmp_path, ["0", "-2", "1"])
    with pytest.raises(DataError, match=r"labels\.csv line 3: label -2 is negative; integer labels are class numbers"):
        derive_classes(read_csv_annotations(csv, None))


def test_numeric_class_folders_are_class_names_not_class_numbers(tmp_path):
    write_pngs(tmp_path / "tree", ["100/a.png", "200/b.png", "200/c.png"])
    train = load_split(folder_config(tmp_path / "tree"), "train")
    assert train.classes == ("100", "200")
    assert train.labels.tolist() == [0, 1, 1]


def test_numeric_class_folders_sort_as_numbers(tmp_path):
    write_pngs(tmp_path / "tree", ["10/a.png", "9/b.png", "2/c.png"])
    train = load_split(folder_config(tmp_path / "tree"), "train")
    assert train.classes == ("2", "9", "10")
    assert [train.classes[i] for i in train.labels.tolist()] == ["10", "2", "9"]  # files in path order


def test_a_test_folder_named_like_a_class_number_is_an_unknown_class(tmp_path):
    write_pngs(tmp_path / "root" / "train", ["100/a.png", "200/b.png"])
    write_pngs(tmp_path / "root" / "test", ["1/c.png"])
    with pytest.raises(DataError, match=r"test/1: unknown class '1'; known classes: 100, 200"):
        load_dataset(folder_config(tmp_path / "root"))


# --- many classes in reports -----------------------------------------------------------------------------------------


def drawn_figure(monkeypatch, count: int, tmp_path: Path):
    """The figure confusion_matrix_plot draws for `count` classes (kept open to inspect), and the PNG's size."""
    import trainlab.reports.plots as plots

    kept = []
    save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda figure, *args: (kept.append(figure), save(figure, *args))[1])
    matrix = torch.arange(count * count).reshape(count, count) % 7
    path = plots.confusion_matrix_plot(
        matrix, tuple(f"class number {i} with a long name" for i in range(count)), tmp_path / f"matrix{count}.png"
    )
    with Image.open(path) as image:
        size = image.size
    return kept[0].axes[0], size


def test_a_confusion_matrix_of_30_classes_shows_every_count_and_name(monkeypatch, tmp_path):
    axis, _ = drawn_figure(monkeypatch, 30, tmp_path)
    assert len(axis.texts) == 30 * 30
    assert len(axis.get_xticklabels()) == len(axis.get_yticklabels()) == 30


def test_a_confusion_matrix_of_1100_classes_has_no_counts_few_names_and_a_bounded_size(monkeypatch, tmp_path):
    axis, (width, height) = drawn_figure(monkeypatch, 1100, tmp_path)
    assert len(axis.texts) == 0
    assert len(axis.get_xticklabels()) == len(axis.get_yticklabels()) == 58  # one class in 19
    assert axis.get_xticklabels()[1].get_text() == "class number 19 with a long name"
    assert width <= 2400 and height <= 2400  # 20 inches at dpi 100, plus the margins


# --- pixels of other bit depths --------------------------------------------------------------------------------------


def gray_shape(width: int, channels: int = 1) -> SimpleNamespace:
    return SimpleNamespace(channels=channels, height=1, width=width)


@pytest.mark.parametrize("dtype", [np.uint16, ">u2"])
def test_a_16_bit_png_is_scaled_by_its_range(tmp_path, dtype):
    path = tmp_path / "wide.png"
    Image.fromarray(np.array([[0, 257, 32768, 65535]], dtype=dtype)).save(path)
    assert Image.open(path).mode.startswith("I;16")
    assert load_image(path, gray_shape(4)).tolist() == [[[0, 1, 128, 255]]]
    assert load_image(path, gray_shape(4, channels=3)).tolist() == [[[0, 1, 128, 255]]] * 3
    assert read_header(path) == (1, 1, 4)


def test_a_float_tiff_in_0_to_1_is_scaled_to_0_to_255(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0, 0.25]], dtype=np.float32)).save(path)
    assert Image.open(path).mode == "F"
    assert load_image(path, gray_shape(4)).tolist() == [[[0, 128, 255, 64]]]


def test_a_float_tiff_above_1_is_taken_as_0_to_255_and_clipped(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[-5.0, 100.4, 300.0, float("nan")]], dtype=np.float32)).save(path)
    assert load_image(path, gray_shape(4)).tolist() == [[[0, 100, 255, 0]]]


def test_a_32_bit_integer_tiff_is_scaled_by_its_declared_depth(tmp_path):
    path = tmp_path / "int.tif"
    Image.fromarray(np.array([[0, 2**30, 2**31 - 1, -7]], dtype=np.int32)).save(path)
    assert Image.open(path).mode == "I"
    assert load_image(path, gray_shape(4)).tolist() == [[[0, 128, 255, 0]]]
    assert read_header(path) == (1, 1, 4)


def test_an_8_bit_png_keeps_its_pixels(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.array([[0, 1, 128, 255]], dtype=np.uint8)).save(path)
    assert load_image(path, gray_shape(4)).tolist() == [[[0, 1, 128, 255]]]


# --- gzip bombs ------------------------------------------------------------------------------------------------------


def write_gzip_bomb(path: Path, header_shape: tuple[int, ...], zeros: int) -> Path:
    """A .gz of a valid IDX header for header_shape followed by `zeros` zero bytes, compressed piece by piece."""
    header = bytes([0, 0, 8, len(header_shape)]) + b"".join(d.to_bytes(4, "big") for d in header_shape)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip container
    chunk = bytes(2**20)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(compressor.compress(header))
        for _ in range(zeros // len(chunk)):
            handle.write(compressor.compress(chunk))
        handle.write(compressor.flush())
    return path


def test_a_gzip_bomb_is_refused_before_it_is_inflated(tmp_path):
    path = write_gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", (10, 28, 28), zeros=200 * 2**20)
    assert path.stat().st_size < 2**20  # 200 MB of zeros in a few hundred KB
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as caught:
            read_bytes(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(caught.value) == (
        f"{path}: inflates to more than its IDX header declares (7,856 bytes for shape (10, 28, 28)); the file is "
        "corrupt or a decompression bomb: delete it and download it again"
    )
    assert peak < 16 * 2**20  # bytes: the 200 MB were never held


def test_a_gzip_whose_header_declares_more_than_2_gib_is_refused_unread(tmp_path):
    path = write_gzip_bomb(tmp_path / "train-images-idx3-ubyte.gz", (100_000, 1000, 1000), zeros=2**20)
    with pytest.raises(
        DataError,
        match=r"declares shape \(100000, 1000, 1000\) \(100,000,000,016 bytes\), more "
        r"than the 2,147,483,648 bytes trainlab reads",
    ):
        read_bytes(path)


def test_training_on_a_gzip_bomb_is_one_line_and_leaves_no_run(tmp_path, run_main):
    data_dir = write_fashion_layout(tmp_path / "data", compress=True)
    bomb = write_gzip_bomb(data_dir / RAW / "train-images-idx3-ubyte.gz", (640, 28, 28), zeros=64 * 2**20)
    result = run_main(*train_args(data_dir, tmp_path / "run"))
    assert_one_line_error(result, f"{bomb}: inflates to more than its IDX header declares")
    assert not (tmp_path / "run").exists()


def test_a_gzipped_idx_file_still_reads_exactly(tmp_path):
    images, _ = make_images(5, seed=0)
    path = write_idx(tmp_path / "x-idx3-ubyte", images, compress=True)
    content = read_bytes(path)
    assert content[16:] == images.tobytes() and len(content) == 16 + 5 * 28 * 28


# --- links in class folders ------------------------------------------------------------------------------------------


def test_a_symlink_loop_in_a_class_folder_gives_exactly_the_real_images_and_classes(tmp_path):
    tree = tmp_path / "tree"
    write_pngs(tree, ["cat/a.png", "cat/b.png", "dog/c.png"])
    os.symlink("..", tree / "cat" / "loop")
    os.symlink(tree / "dog", tree / "cat" / "dogs")
    train = load_split(folder_config(tree), "train")
    assert train.classes == ("cat", "dog")
    assert train.labels.tolist() == [0, 0, 1]
    assert train.images[:, 0, 0, 0].tolist() == [0, 10, 20]


def test_a_linked_image_inside_the_data_folder_is_read(tmp_path):
    tree = tmp_path / "tree"
    write_pngs(tree, ["cat/a.png", "dog/b.png"])
    os.symlink(tree / "cat" / "a.png", tree / "dog" / "also-a.png")
    train = load_split(folder_config(tree), "train")
    assert train.labels.tolist() == [0, 1, 1]


def test_a_linked_image_outside_the_data_folder_is_refused_naming_the_link(tmp_path):
    tree = tmp_path / "tree"
    write_pngs(tree, ["cat/a.png", "dog/b.png"])
    write_pngs(tmp_path / "elsewhere", ["secret.png"])
    link = tree / "dog" / "secret.png"
    os.symlink(tmp_path / "elsewhere" / "secret.png", link)
    with pytest.raises(
        DataError,
        match=rf"^{link}: a link to .*elsewhere/secret\.png, outside the data folder "
        r".*; links out of the data folder are not followed",
    ):
        load_split(folder_config(tree), "train")


# --- damaged runs ----------------------------------------------------------------------------------------------------


def write_run(
    folder: Path,
    config: str = 'model = "cnn"\noptimizer = "adam"\nlr = 0.01\nepochs = 2\n',
    metrics: str | None = None,
    summary: str = '{"status": "finished"}',
) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(config)
    rows = [
        {"epoch": 1, "test_accuracy": 0.5, "machine_seconds": 3.0},
        {"epoch": 2, "test_accuracy": 0.75, "machine_seconds": 4.0},
    ]
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    (folder / "metrics.jsonl").write_text(metrics if metrics is not None else lines)
    (folder / "summary.json").write_text(summary)
    return folder


@pytest.fixture
def runs_folder(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_run(root / "a-good")
    write_run(root / "b-bad-config", config="model = \n")
    write_run(root / "c-bad-metrics", metrics='{"epoch": 1}\n{"epoch": \n')
    write_run(root / "d-bad-summary", summary="[1, 2")
    write_run(root / "e-summary-list", summary="[1, 2]")
    return root


def test_runs_lists_the_good_runs_and_marks_each_damaged_one(runs_folder, run_main):
    result = run_main("runs", runs_folder)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:]}
    assert rows[str(runs_folder / "a-good")].split() == [
        str(runs_folder / "a-good"),
        "cnn",
        "adam",
        "0.01",
        "2/2",
        "-",
        "75.0%",
        "7s",
        "given",
        "finished",
    ]
    for name, reason in (
        ("b-bad-config", "damaged: config.toml cannot be read (Invalid value"),
        ("c-bad-metrics", "damaged: metrics.jsonl: cannot be read (Expecting value"),
        ("d-bad-summary", "damaged: summary.json cannot be read (Expecting"),
        ("e-summary-list", "damaged: summary.json is not a JSON object"),
    ):
        cells = rows[str(runs_folder / name)].split(None, 9)
        assert cells[1:9] == ["-"] * 8, cells
        assert cells[9].startswith(reason), cells[9]


def test_runs_json_gives_damaged_runs_null_figures_and_a_reason(runs_folder, run_main):
    result = run_main("runs", runs_folder, "--json")
    assert result.returncode == 0, result.stderr
    listed = {Path(row["run"]).name: row for row in json.loads(result.stdout.splitlines()[-1])["runs"]}
    assert listed["a-good"]["test_accuracy"] == 0.75 and listed["a-good"]["status"] == "finished"
    damaged = listed["d-bad-summary"]
    assert damaged["status"].startswith("damaged: summary.json cannot be read")
    assert [damaged[key] for key in ("model", "optimizer", "lr", "epochs", "test_accuracy")] == [None] * 5


# --- empty data sets -------------------------------------------------------------------------------------------------


def test_an_idx_file_of_zero_images_is_refused_naming_it(tmp_path):
    images = write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((0, 28, 28), dtype=np.uint8))
    labels = write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8))
    with pytest.raises(DataError, match=rf"^{images}: holds no images \(its IDX header declares 0\); delete it"):
        read_idx_pair(images, labels, 10)


def test_training_on_an_empty_idx_train_split_is_one_line(tmp_path, run_main):
    data_dir = write_fashion_layout(tmp_path / "data")
    write_idx(data_dir / RAW / "train-images-idx3-ubyte", np.zeros((0, 28, 28), dtype=np.uint8))
    write_idx(data_dir / RAW / "train-labels-idx1-ubyte", np.zeros(0, dtype=np.uint8))
    result = run_main(*train_args(data_dir, tmp_path / "run"))
    assert_one_line_error(result, f"{data_dir / RAW / 'train-images-idx3-ubyte'}: holds no images")
    assert not (tmp_path / "run").exists()


def test_a_cifar_batch_of_zero_images_is_refused_naming_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as handle:
        pickle.dump({"labels": [], "data": np.zeros((0, 3072), dtype=np.uint8)}, handle, protocol=2)
    with pytest.raises(DataError, match=rf"^{folder / 'test_batch'}: holds no images; delete"):
        load_split("cifar10", "test", tmp_path, download=False)


def test_a_csv_whose_every_image_is_skipped_is_refused(tmp_path):
    (tmp_path / "a.png").write_bytes(b"not a png")
    (tmp_path / "b.png").write_bytes(b"nor this")
    (tmp_path / "labels.csv").write_text("a.png,0\nb.png,1\n")
    with pytest.raises(DataError, match=r"^labels\.csv: holds no images once the 2 unreadable one\(s\) are skipped"):
        load_split(csv_config(tmp_path / "labels.csv", skip_bad_images=True), "test")


def test_a_csv_row_reaching_out_of_the_image_directory_through_a_linked_folder_is_refused(tmp_path, run_main):
    from PIL import Image

    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("L", (8, 8)).save(outside / "secret.png")
    images = tmp_path / "images"
    images.mkdir()
    Image.new("L", (8, 8)).save(images / "a.png")
    (images / "linked").symlink_to(outside)
    (images / "labels.csv").write_text("a.png, 0\nlinked/secret.png, 1\n")
    result = run_main("data", "info", "--dataset", "csv", "--annotations", images / "labels.csv")
    assert_one_line_error(
        result,
        "labels.csv line 2: linked/secret.png leads out of the image directory",
        "links out of the data folder are not followed",
    )


# --- special files, odd CSVs, odd paths (issue 27 item 7 and round two) ----------------------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A finished one-epoch MLP run on generated data (its checkpoint for predict and serve)."""
    from conftest import train_tiny_run

    return train_tiny_run(tmp_path_factory.mktemp("tiny"))[1]


def fifo_case(tmp_path: Path, run: Path, reader: str) -> tuple[list, Path]:
    """The command that gives a FIFO as `reader`'s input, and the FIFO."""
    folder = tmp_path / "imgs"
    write_pngs(folder, ["cat/a.png", "cat/b.png", "dog/c.png", "dog/d.png"])
    if reader == "image in a folder":
        os.mkfifo(folder / "cat" / "pipe.png")
        return ["data", "info", "--dataset", "folder", "--image-dir", folder], folder / "cat" / "pipe.png"
    fifo = tmp_path / {"image": "pipe.png", "--config": "pipe.toml", "--annotations": "pipe.csv"}.get(reader, "pipe.pt")
    os.mkfifo(fifo)
    return {
        "image": ["predict", run, fifo],
        "checkpoint": ["predict", fifo, folder / "cat" / "a.png"],
        "checkpoint in a run directory": ["evaluate", run.parent / "fifo-run", "--no-download"],
        "serve": ["serve", fifo, "--port", "0"],
        "--config": ["data", "info", "--config", fifo],
        "--annotations": ["data", "info", "--dataset", "csv", "--annotations", fifo, "--image-dir", folder],
    }[reader], fifo


@pytest.mark.timeout(60)  # the bug: open() of a FIFO waits for a writer forever
@pytest.mark.parametrize(
    "reader",
    [
        "image",
        "checkpoint",
        "checkpoint in a run directory",
        "serve",
        "--config",
        "--annotations",
        "image in a folder",
    ],
)
def test_a_fifo_given_to_any_reader_is_refused_at_once_naming_what_it_is(reader, tiny_run, tmp_path, run_main):
    if reader == "checkpoint in a run directory":
        fake = tiny_run.parent / "fifo-run" / "checkpoints"
        shutil.rmtree(fake.parent, ignore_errors=True)
        fake.mkdir(parents=True)
        os.mkfifo(fake / "last.pt")
    args, fifo = fifo_case(tmp_path, tiny_run, reader)
    if reader == "checkpoint in a run directory":
        fifo = fake / "last.pt"
    result = run_main(*args)
    assert_one_line_error(result, str(fifo), "is a named pipe (FIFO), not a regular file")


def test_a_character_device_given_as_an_image_is_refused_naming_it():
    from trainlab.data.decoding import open_image

    with pytest.raises(DataError, match=r"^/dev/null: is a character device, not a regular file; give an image file$"):
        open_image("/dev/null")


def test_reading_an_idx_file_that_is_a_fifo_is_refused_at_once(tmp_path):
    os.mkfifo(tmp_path / "train-images-idx3-ubyte")
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: cannot be read \(is a named pipe \(FIFO\)"):
        read_bytes(tmp_path / "train-images-idx3-ubyte")


def test_a_nul_byte_in_a_csv_file_name_is_refused_naming_its_line(tmp_path, run_main):
    write_pngs(tmp_path, ["a.png", "b.png"])
    (tmp_path / "labels.csv").write_bytes(b"a.png,0\nb\x00.png,1\n")
    result = run_main("data", "info", "--dataset", "csv", "--annotations", tmp_path / "labels.csv")
    assert_one_line_error(result, "labels.csv line 2: 'b\\x00.png' holds a NUL byte, which no file name can")


def test_a_nul_byte_in_the_first_rows_file_name_is_not_taken_for_a_header(tmp_path):
    write_pngs(tmp_path, ["a.png", "b.png"])
    (tmp_path / "labels.csv").write_bytes(b"a\x00.png,0\nb.png,1\n")
    with pytest.raises(DataError, match=r"labels\.csv line 1: 'a\\x00\.png' holds a NUL byte"):
        read_csv_annotations(tmp_path / "labels.csv", None)


def test_labels_3_and_3_0_are_one_class(tmp_path):
    data = load_split(csv_config(write_labelled_csv(tmp_path, ["0", "3", "3.0", "1.", "+2"])), "test")
    assert data.classes == ("0", "1", "2", "3")
    assert data.labels.tolist() == [0, 3, 3, 1, 2]


def test_one_number_written_two_ways_among_class_names_is_refused_naming_both_lines(tmp_path):
    csv = write_labelled_csv(tmp_path, ["cat", "3", "3.0"])
    with pytest.raises(
        DataError,
        match=r"labels\.csv line 4: label '3\.0' is the number '3' of .*labels\.csv line 3 written another way",
    ):
        load_split(csv_config(csv), "test")


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_semicolon_or_tab_separated_csv_is_read_by_its_delimiter_and_its_first_row_kept(delimiter, tmp_path):
    write_pngs(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "labels.csv").write_text(f"a.png{delimiter}1\nb.png{delimiter}0\nc.png{delimiter}1\n")
    files = read_csv_annotations(tmp_path / "labels.csv", None)
    assert (files.paths, files.raw_labels) == (["a.png", "b.png", "c.png"], ["1", "0", "1"])


def test_a_semicolon_csv_header_is_still_a_header(tmp_path):
    write_pngs(tmp_path, ["a.png"])
    (tmp_path / "labels.csv").write_text("file;label\na.png;1\n")
    assert read_csv_annotations(tmp_path / "labels.csv", None).paths == ["a.png"]


def test_pillows_decompression_bomb_warning_never_joins_the_one_line_refusal(tmp_path):
    import struct
    import warnings

    from trainlab.data.decoding import ImageTooLarge, open_image

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 10_000, 9_000, 8, 0, 0, 0, 0)  # 90 M pixels: over Pillow's 89.5 M warning
    (tmp_path / "bomb.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImageTooLarge, match=r"bomb\.png: image is larger than 50000000 pixels \(10000x9000\)"):
            open_image(tmp_path / "bomb.png")
    assert [str(w.message) for w in caught] == []


def test_a_run_refused_for_an_unreadable_image_leaves_no_decode_cache_in_the_data_folder(tmp_path, run_main):
    folder = tmp_path / "imgs"
    write_pngs(folder, ["cat/a.png", "cat/b.png", "dog/c.png", "dog/d.png"])
    (folder / "dog" / "broken.png").write_bytes(b"not a png")
    result = run_main(
        *train_args(tmp_path / "unused", tmp_path / "run"),
        "--dataset",
        "folder",
        "--image-dir",
        folder,
        "--val-split",
        "0.5",
    )
    assert_one_line_error(result, "1 of 5 images in", "broken.png")
    assert sorted(p.name for p in folder.iterdir()) == ["cat", "dog"]
    result = run_main("data", "info", "--dataset", "folder", "--image-dir", folder, "--skip-bad-images")
    assert result.returncode == 0, result.stderr
    assert (folder / ".trainlab-cache").is_dir()  # a data set that passes its checks is cached


def test_a_data_path_that_is_a_file_is_named_as_a_file_not_as_missing(tmp_path, run_main):
    (tmp_path / "file").write_text("x")
    result = run_main("data", "info", "--dataset", "folder", "--image-dir", tmp_path / "file")
    assert_one_line_error(result, f"image directory {tmp_path / 'file'} is a file, not a folder (--image-dir)")
    result = run_main("data", "info", "--data-dir", tmp_path / "file", "--no-download")
    assert_one_line_error(result, f"data directory {tmp_path / 'file'} is a file, not a folder")


def test_a_cache_folder_that_is_a_file_is_named_not_called_read_only(tmp_path):
    write_pngs(tmp_path, ["cat/a.png", "dog/b.png"])
    (tmp_path / ".trainlab-cache").write_text("a user's file")
    data = load_dataset(folder_config(tmp_path, val_split=0.5))
    assert any(f"decoded (no cache: {tmp_path / '.trainlab-cache'} is a file, not a folder)" in n for n in data.notes)
    assert (tmp_path / ".trainlab-cache").read_text() == "a user's file"
