"""The user's own images (--dataset csv / folder), the decoded cache, streaming, and the other built-ins.

Image trees are written here with Pillow from Fashion-MNIST test images when ../shared/data has them,
else from generated arrays; PNG is lossless, so the copies hold exactly the IDX pixels.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainlab.config import TrainConfig
from trainlab.data import load_dataset, load_split, make_loader
from trainlab.data.builtin import BUILTIN_DATASETS, KMNIST, MNIST
from trainlab.data.cache import CACHE_FOLDER
from trainlab.data.file_datasets import NoTestSet
from trainlab.data.memory import BatchLoader, channel_stats
from trainlab.data.streaming import FileBackedImages, StreamingLoader
from trainlab.errors import ConfigError, DataError

from conftest import SHARED_DATA, make_images, write_idx

NAMES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def idx_images(count: int, prefix: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """The first `count` Fashion-MNIST images and labels of a split when present, else generated ones."""
    raw = SHARED_DATA / "FashionMNIST" / "raw"
    if (raw / f"{prefix}-images-idx3-ubyte").is_file():
        images = np.fromfile(raw / f"{prefix}-images-idx3-ubyte", dtype=np.uint8, offset=16, count=count * 784)
        labels = np.fromfile(raw / f"{prefix}-labels-idx1-ubyte", dtype=np.uint8, offset=8, count=count)
        return images.reshape(count, 28, 28), labels
    return make_images(count, seed=3 if prefix == "t10k" else 4)


def write_csv_copy(
    root: Path,
    images: np.ndarray,
    labels: np.ndarray,
    csv_name: str = "labels.csv",
    header: bool = False,
    names: bool = False,
    start: int = 0,
) -> Path:
    """PNG files (in nested folders) plus a CSV of `file name, label` rows, the tutorial's layout."""
    rows = ["file_name,label"] if header else []
    for i, (image, label) in enumerate(zip(images, labels, strict=True), start=start):
        name = f"{NAMES[label]}/{i // 50}/{NAMES[label]}{i}.png"
        (root / "imgs" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "imgs" / name)
        rows.append(f"{name}, {NAMES[label] if names else int(label)}")
    (root / csv_name).write_text("\n".join(rows) + "\n")
    return root / csv_name


def write_folder_copy(root: Path, images: np.ndarray, labels: np.ndarray, class_names=None) -> Path:
    """root/<class>/<i>.png, the ImageFolder layout."""
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / (class_names[label] if class_names else str(int(label)))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:05d}.png")
    return root


def csv_config(root: Path, **changes) -> TrainConfig:
    values = {
        "dataset": "csv",
        "annotations": str(root / "labels.csv"),
        "image_dir": str(root / "imgs"),
        "workers": 0,
        **changes,
    }
    return TrainConfig(**values)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """The same 600 test images as IDX files, a CSV copy and a class-folder copy, and a model trained on IDX."""
    from trainlab import fit

    root = tmp_path_factory.mktemp("copies")
    images, labels = idx_images(600)
    raw = root / "idx" / "FashionMNIST" / "raw"
    train_images, train_labels = idx_images(2000, "train")
    write_idx(raw / "train-images-idx3-ubyte", train_images)
    write_idx(raw / "train-labels-idx1-ubyte", train_labels)
    write_idx(raw / "t10k-images-idx3-ubyte", images)
    write_idx(raw / "t10k-labels-idx1-ubyte", labels)
    write_csv_copy(root / "csv", images, labels)
    write_folder_copy(root / "folder", images, labels)
    run = root / "run"
    fit(TrainConfig(epochs=1, lr=0.05, batch_size=32, data_dir=str(root / "idx")), run_dir=run, download=False)
    return {"root": root, "images": images, "labels": labels, "run": run}


# the acceptance test ----------------------------------------------------------------------------------------


def test_a_model_scores_exactly_the_same_on_csv_and_folder_copies_of_its_test_set(copies, run_main):
    root, run = copies["root"], copies["run"]
    results = {}
    for name, flags in {
        "idx": [],
        "csv": ["--dataset", "csv", "--annotations", root / "csv" / "labels.csv", "--image-dir", root / "csv" / "imgs"],
        "folder": ["--dataset", "folder", "--image-dir", root / "folder"],
    }.items():
        result = run_main("evaluate", run, *flags, "--json", "--confusion-matrix", root / f"{name}.png")
        assert result.returncode == 0, result.stderr
        results[name] = json.loads(result.stdout.splitlines()[-1])
    assert results["idx"]["samples"] == 600
    assert results["idx"]["accuracy"] > 0.3  # a trained model, so equal figures mean something
    for name in ("csv", "folder"):
        assert results[name]["accuracy"] == results["idx"]["accuracy"]
        # the folder copy is read class by class, so the loss is summed in another order (last float bits)
        assert results[name]["loss"] == pytest.approx(results["idx"]["loss"], rel=1e-6)
        assert results[name]["confusion_matrix"] == results["idx"]["confusion_matrix"]


def test_csv_and_folder_copies_hold_the_idx_pixels_and_labels(copies):
    root, images, labels = copies["root"], copies["images"], copies["labels"]
    csv_test = load_split(csv_config(root / "csv"), "test")  # a single CSV without --val-split: all test
    assert torch.equal(csv_test.images[:, 0], torch.from_numpy(images))
    assert csv_test.labels.tolist() == labels.tolist()
    folder_test = load_split(TrainConfig(dataset="folder", image_dir=str(root / "folder"), workers=0), "test")
    order = np.argsort(labels, kind="stable")  # the folder copy is read class by class
    assert torch.equal(folder_test.images[:, 0], torch.from_numpy(images[order]))
    assert folder_test.labels.tolist() == labels[order].tolist()


# CSV annotations --------------------------------------------------------------------------------------------


def test_csv_with_header_and_class_names_gives_a_sorted_class_list(tmp_path):
    images, labels = make_images(40, seed=0)
    write_csv_copy(tmp_path, images, labels, header=True, names=True)
    train = load_split(csv_config(tmp_path), "train")
    assert train.classes == tuple(sorted(NAMES))
    assert [train.classes[i] for i in train.labels.tolist()] == [NAMES[i] for i in labels]
    assert train.image_shape == (1, 28, 28)


def test_csv_with_integer_labels_numbers_the_classes(tmp_path):
    images, labels = make_images(30, seed=0)
    write_csv_copy(tmp_path, images, labels)
    train = load_split(csv_config(tmp_path), "train")
    assert train.classes == tuple(str(i) for i in range(10))
    assert train.labels.tolist() == labels.tolist()


def test_csv_class_names_are_saved_with_the_run_and_used_by_evaluate(tmp_path, run_main):
    images, labels = make_images(120, seed=0)
    write_csv_copy(tmp_path, images, labels, names=True)
    run = tmp_path / "run"
    flags = [
        "--dataset",
        "csv",
        "--annotations",
        tmp_path / "labels.csv",
        "--image-dir",
        tmp_path / "imgs",
        "--val-split",
        "0.2",
        "--workers",
        "0",
    ]
    result = run_main("train", *flags, "--epochs", "1", "--run-dir", run, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert "labels.csv: 120 images 1x28x28 in memory" in result.stderr
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["classes"] == sorted(NAMES)
    evaluated = run_main("evaluate", run, "--json")  # no data flags: the checkpoint's csv and its held-out part
    assert evaluated.returncode == 0, evaluated.stderr
    values = json.loads(evaluated.stdout.splitlines()[-1])
    assert values["samples"] == 20  # 20% of each class (2 of 12) held out for testing
    assert values["accuracy"] == summary["test_accuracy"]
    (tmp_path / "other.csv").write_text("\n".join((tmp_path / "labels.csv").read_text().splitlines()[:7]))
    other = run_main("evaluate", run, "--annotations", tmp_path / "other.csv", "--json")  # all of another CSV
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout.splitlines()[-1])["samples"] == 7


def test_a_single_csv_holds_out_a_fixed_stratified_test_part_with_val_split(tmp_path):
    images, labels = make_images(200, seed=0)
    write_csv_copy(tmp_path, images, labels)
    data = load_dataset(csv_config(tmp_path, val_split=0.1))
    other_seed = load_dataset(csv_config(tmp_path, val_split=0.1, seed=7))
    assert len(data.test) == 20 and len(data.train) == 180
    assert torch.bincount(data.test.labels).tolist() == [2] * 10
    assert torch.equal(data.test.images, other_seed.test.images)  # the test part does not move with --seed
    together = torch.cat([data.train.images, data.test.images]).flatten(1)
    assert len({tuple(row.tolist()) for row in together}) == 200  # disjoint, and nothing lost


def test_a_single_csv_without_a_test_set_is_refused_for_training_and_all_test_for_evaluation(tmp_path):
    images, labels = make_images(100, seed=0)  # 10 a class: --val-split 0.1 holds out a test and a validation image
    write_csv_copy(tmp_path, images, labels)
    with pytest.raises(NoTestSet, match="no test set: give --test-annotations TEST.csv, or --val-split 0.1"):
        load_dataset(csv_config(tmp_path))
    assert len(load_split(csv_config(tmp_path), "test")) == 100


def test_a_separate_test_csv_is_the_test_set(tmp_path):
    images, labels = make_images(60, seed=0)
    write_csv_copy(tmp_path, images[:40], labels[:40], names=True)
    write_csv_copy(tmp_path, images[40:], labels[40:], csv_name="test.csv", names=True, start=40)
    data = load_dataset(csv_config(tmp_path, test_annotations=str(tmp_path / "test.csv")))
    assert (len(data.train), len(data.test)) == (40, 20)
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(images[40:]))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("coat/0/coat3.png", r"labels\.csv line 4: expected two columns `file name, label`, got 'coat/0/coat3\.png'"),
        ("coat/0/coat3.png, 0, extra", None),  # extra columns are ignored, as the tutorial's iloc[idx, 0/1]
        ("coat/0/coat3.png,", r"labels\.csv line 4: expected two columns"),
        ("../outside.png, 1", r"labels\.csv line 4: '\.\./outside\.png' points outside the image directory"),
        ("a/../../outside.png, 1", r"points outside the image directory"),
        ("/etc/passwd, 1", r"labels\.csv line 4: '/etc/passwd' is an absolute path"),
        ("C:\\data\\x.png, 1", r"is an absolute path"),
    ],
)
def test_bad_csv_rows_are_named_by_line(tmp_path, row, message):
    images, labels = make_images(3, seed=0)
    write_csv_copy(tmp_path, images, labels)
    (tmp_path / "imgs" / "coat" / "0").mkdir(parents=True, exist_ok=True)
    Image.fromarray(images[0]).save(tmp_path / "imgs" / "coat" / "0" / "coat3.png")
    with open(tmp_path / "labels.csv", "a") as handle:
        handle.write(row + "\n")
    config = csv_config(tmp_path, skip_bad_images=True)  # skipping unreadable images does not excuse bad rows
    if message is None:
        assert len(load_split(config, "train")) == 4
        return
    with pytest.raises(DataError, match=message):
        load_split(config, "train")


def test_an_unknown_class_in_the_test_csv_is_named(tmp_path):
    images, labels = make_images(20, seed=0)
    write_csv_copy(tmp_path, images, labels, names=True)
    (tmp_path / "test.csv").write_text(f"{NAMES[labels[0]]}/0/{NAMES[labels[0]]}0.png, unicorn\n")
    config = csv_config(tmp_path, test_annotations=str(tmp_path / "test.csv"))
    with pytest.raises(DataError, match=r"test\.csv line 1: unknown class 'unicorn'; known classes: bag, boot"):
        load_dataset(config)


def test_an_out_of_range_class_number_is_named_against_the_models_classes(tmp_path):
    (tmp_path / "imgs").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "imgs" / "a.png")
    (tmp_path / "labels.csv").write_text("a.png, 12\n")
    with pytest.raises(DataError, match=r"line 1: label 12 is out of range: there are 10 classes \(0-9\)"):
        load_split(csv_config(tmp_path), "test", classes=tuple("abcdefghij"), image_shape=(1, 28, 28))


def test_a_missing_file_stops_with_its_line_or_is_skipped_and_counted(tmp_path):
    images, labels = make_images(10, seed=0)
    write_csv_copy(tmp_path, images, labels)
    with open(tmp_path / "labels.csv", "a") as handle:
        handle.write("gone.png, 1\n")
    with pytest.raises(
        DataError,
        match=r"1 of 11 images in labels\.csv cannot be read: .*labels\.csv line 11: "
        r"gone\.png does not exist in .*--skip-bad-images",
    ):
        load_split(csv_config(tmp_path), "train")
    data = load_dataset(csv_config(tmp_path, skip_bad_images=True, test_annotations=str(tmp_path / "labels.csv")))
    assert len(data.train) == 10
    assert any("skipped 1 unreadable image(s) (--skip-bad-images): gone.png" in note for note in data.notes)


# images as users have them ------------------------------------------------------------------------------------


def write_mixed_folder(root: Path) -> Path:
    """Two classes in every format and mode the issue lists, of several sizes, plus a nested folder."""
    gray = np.tile(np.arange(0, 240, 10, dtype=np.uint8), (24, 1))
    (root / "cat" / "nested").mkdir(parents=True)
    (root / "dog").mkdir()
    Image.fromarray(gray).save(root / "cat" / "gray.png")
    Image.fromarray(np.stack([gray] * 3, axis=2)).save(root / "cat" / "rgb.jpg", quality=95)
    Image.fromarray(gray).convert("RGBA").save(root / "cat" / "nested" / "rgba.png")
    Image.fromarray(gray).convert("P").save(root / "cat" / "palette.bmp")
    Image.fromarray(gray).resize((48, 40)).save(root / "dog" / "big.webp", lossless=True)
    Image.fromarray(gray).resize((10, 12)).save(root / "dog" / "small.png")
    Image.new("RGB", (24, 24), (200, 30, 30)).save(root / "dog" / "red.png")
    (root / "dog" / "notes.txt").write_text("not an image; ignored by extension")
    return root


def test_folder_reads_every_format_and_mode_to_the_most_common_size(tmp_path):
    root = write_mixed_folder(tmp_path / "tree")
    train = load_split(TrainConfig(dataset="folder", image_dir=str(root), workers=0), "train")
    assert train.classes == ("cat", "dog")
    assert train.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert train.image_shape == (3, 24, 24)  # one red image: 3 channels; 24x24 is the most common size
    gray = load_split(TrainConfig(dataset="folder", image_dir=str(root), workers=0, channels=1, image_size=16), "train")
    assert gray.image_shape == (1, 16, 16)
    assert gray.images.dtype == torch.uint8


def test_folder_with_train_and_test_folders_and_numbered_classes(tmp_path):
    images, labels = make_images(50, seed=1)
    write_folder_copy(tmp_path / "root" / "train", images[:30], labels[:30])
    write_folder_copy(tmp_path / "root" / "test", images[30:], labels[30:])
    data = load_dataset(TrainConfig(dataset="folder", image_dir=str(tmp_path / "root"), workers=0))
    assert (len(data.train), len(data.test)) == (30, 20)
    assert data.classes == tuple(str(i) for i in range(10))
    assert sorted(data.test.labels.tolist()) == sorted(labels[30:].tolist())


def test_an_unknown_class_folder_in_test_is_named(tmp_path):
    images, labels = make_images(20, seed=1)
    write_folder_copy(tmp_path / "root" / "train", images, labels, NAMES)
    write_folder_copy(tmp_path / "root" / "test", images[:1], [0], ["unicorn"])
    with pytest.raises(DataError, match=r"root/test/unicorn: unknown class 'unicorn'"):
        load_dataset(TrainConfig(dataset="folder", image_dir=str(tmp_path / "root"), workers=0))


def test_unreadable_images_are_counted_and_named_or_skipped(tmp_path):
    root = write_mixed_folder(tmp_path / "tree")
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "dog" / "empty.jpg").write_bytes(b"")
    config = TrainConfig(dataset="folder", image_dir=str(root), workers=0, image_size=24, channels=1)
    with pytest.raises(
        DataError,
        match=r"^2 of 9 images in .*tree cannot be read: .*cat/broken\.png: cannot be read "
        r"as an image .*dog/empty\.jpg: cannot be read as an image.*--skip-bad-images",
    ):
        load_split(config, "train")
    skipped = load_split(config.replace(skip_bad_images=True), "train")
    assert len(skipped) == 7


def png_claiming_size(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels: a decompression bomb's calling card."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    root = write_mixed_folder(tmp_path / "tree")
    (root / "cat" / "bomb.png").write_bytes(png_claiming_size(30_000, 30_000))
    config = TrainConfig(dataset="folder", image_dir=str(root), workers=0)
    with pytest.raises(DataError, match=r"cat/bomb\.png: image is larger than 50000000 pixels"):
        load_split(config, "train")
    assert len(load_split(config.replace(skip_bad_images=True), "train")) == 7


def test_bad_files_are_one_line_and_exit_2_on_the_command_line(tmp_path, run_main):
    root = write_mixed_folder(tmp_path / "tree")
    (root / "cat" / "broken.png").write_text("nope")
    result = run_main("data", "info", "--dataset", "folder", "--image-dir", root, "--workers", "0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "1 of 8 images" in result.stderr and "broken.png" in result.stderr


# the decoded cache ------------------------------------------------------------------------------------------


def test_the_cache_is_reused_without_decoding(tmp_path, monkeypatch):
    images, labels = make_images(30, seed=0)
    write_csv_copy(tmp_path, images, labels)
    first = load_split(csv_config(tmp_path), "train")
    assert len(list((tmp_path / "imgs" / CACHE_FOLDER).glob("*.pt"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr("trainlab.data.file_datasets.decode_files", no_decoding)
    monkeypatch.setattr("trainlab.data.file_datasets.scan_headers", no_decoding)
    second = load_split(csv_config(tmp_path), "train")
    assert torch.equal(first.images, second.images)


def test_the_cache_is_invalidated_when_a_file_changes_or_is_added(tmp_path):
    images, labels = make_images(20, seed=0)
    write_folder_copy(tmp_path / "tree", images, labels)
    config = TrainConfig(dataset="folder", image_dir=str(tmp_path / "tree"), workers=0)
    before = load_split(config, "train")
    first = int(np.flatnonzero(labels == labels.min())[0])  # the first file of the first class folder
    changed = tmp_path / "tree" / str(labels[first]) / f"{first:05d}.png"
    assert torch.equal(before.images[0, 0], torch.from_numpy(images[first]))
    Image.fromarray(255 - images[first]).save(changed)
    os.utime(changed, ns=(1, 1))  # a different time even on coarse file systems
    after = load_split(config, "train")
    assert torch.equal(after.images[0, 0], torch.from_numpy(255 - images[first]))
    assert torch.equal(after.images[1:], before.images[1:])
    Image.fromarray(images[1]).save(tmp_path / "tree" / str(labels.min()) / "zz-new.png")
    assert len(load_split(config, "train")) == 21
    assert len(list((tmp_path / "tree" / CACHE_FOLDER).glob("*.pt"))) == 1  # stale versions are removed


def test_a_damaged_cache_is_decoded_again(tmp_path):
    images, labels = make_images(10, seed=0)
    write_csv_copy(tmp_path, images, labels)
    first = load_split(csv_config(tmp_path), "train")
    for cache in (tmp_path / "imgs" / CACHE_FOLDER).glob("*.pt"):
        cache.write_bytes(b"garbage")
    assert torch.equal(load_split(csv_config(tmp_path), "train").images, first.images)


def test_a_read_only_image_directory_works_without_a_cache(tmp_path):
    images, labels = make_images(10, seed=0)
    write_csv_copy(tmp_path, images, labels)
    (tmp_path / "imgs" / CACHE_FOLDER).write_text("a file where the cache folder would go")
    data = load_dataset(csv_config(tmp_path, test_annotations=str(tmp_path / "labels.csv")))
    assert len(data.train) == 10
    assert any("decoded (no cache" in note for note in data.notes)


# streaming larger-than-memory data --------------------------------------------------------------------------


def test_over_the_memory_budget_images_are_streamed_with_the_same_batches(tmp_path):
    images, labels = make_images(90, seed=0)
    write_csv_copy(tmp_path, images, labels)
    config = csv_config(tmp_path, val_split=0.2, workers=1)
    memory = load_dataset(config)
    streamed = load_dataset(config.replace(memory_budget_mb=0.01))
    assert isinstance(streamed.train.images, FileBackedImages)
    assert any("streamed from the files by 1 DataLoader worker(s)" in note for note in streamed.notes)
    in_memory, streaming = BatchLoader(memory.train, 16, True, 3), make_loader(streamed.train, 16, True, 3)
    assert isinstance(streaming, StreamingLoader) and len(streaming) == len(in_memory)
    for epoch, start in ((0, 0), (1, 2)):
        pairs = list(zip(in_memory.batches(epoch, start), streaming.batches(epoch, start), strict=True))
        assert pairs
        for (a_images, a_labels), (b_images, b_labels) in pairs:
            assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    assert channel_stats(streamed.train) == channel_stats(memory.train)
    assert torch.equal(streamed.test.images[3:7], memory.test.images[3:7])


def test_training_on_streamed_data_gives_the_same_run(tmp_path):
    from trainlab import fit

    images, labels = make_images(96, seed=0)
    write_csv_copy(tmp_path, images, labels)
    config = csv_config(
        tmp_path, val_split=0.25, epochs=2, shuffle=True, normalize=True, augment=True, batch_size=16, lr=0.05
    )
    memory = fit(config, run_dir=tmp_path / "memory")
    streamed = fit(config.replace(memory_budget_mb=0.0), run_dir=tmp_path / "stream")
    for key in ("train_loss", "test_loss", "test_accuracy", "val_accuracy"):
        assert memory[key] == streamed[key], key


def test_a_file_that_breaks_while_streaming_is_named(tmp_path):
    images, labels = make_images(20, seed=0)
    write_csv_copy(tmp_path, images, labels)
    data = load_split(csv_config(tmp_path, memory_budget_mb=0.0), "train")
    victim = Path(data.images.paths[5])
    victim.write_bytes(victim.read_bytes()[:40])  # truncated after the scan
    with pytest.raises(DataError, match=rf"{victim.name}: cannot be read as an image .*while streaming"):
        list(make_loader(data, 8).batches())


# built-in data sets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [MNIST, KMNIST], ids=["mnist", "kmnist"])
def test_mnist_and_kmnist_read_torchvisions_layout(tmp_path, spec):
    images, labels = make_images(30, seed=2)
    raw = tmp_path / spec.folder / "raw"
    for prefix in ("train", "t10k"):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images, compress=prefix == "train")
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    data = load_dataset(spec.name, tmp_path, download=False)
    assert data.classes == spec.classes and len(data.classes) == 10
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(images))
    assert data.test.labels.tolist() == labels.tolist()


def test_gz_checksums_are_checked_on_the_archive(tmp_path, monkeypatch):
    content = write_idx(tmp_path / "src" / "x", np.zeros(3, dtype=np.uint8)).read_bytes()
    archive = gzip.compress(content)
    monkeypatch.setattr("trainlab.data.download.fetch", lambda url: archive)
    from trainlab.data.download import download_file

    good = hashlib.md5(archive).hexdigest()  # noqa: S324
    download_file("x", good, ("http://mirror/",), tmp_path / "out" / "x", md5_of="gz")
    assert (tmp_path / "out" / "x").read_bytes() == content  # stored decompressed, as for Fashion-MNIST
    with pytest.raises(DataError, match="does not match"):
        download_file("x", hashlib.md5(content).hexdigest(), ("http://mirror/",), tmp_path / "no" / "x", md5_of="gz")  # noqa: S324
    assert set(BUILTIN_DATASETS) >= {"fashion-mnist", "mnist", "kmnist"}


def write_cifar(root: Path, per_batch: int = 4) -> tuple[np.ndarray, list[int]]:
    """cifar-10-batches-py/ with five small training batches, a test batch and the meta file, pickled."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    test_data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
    test_labels = [int(v) for v in rng.integers(0, 10, per_batch)]
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        data = test_data if name == "test_batch" else rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        batch_labels = test_labels if name == "test_batch" else [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as handle:
            pickle.dump(
                {"batch_label": name, "labels": batch_labels, "data": data, "filenames": ["x.png"] * per_batch},
                handle,
                protocol=2,
            )
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": ["airplane"]}, handle, protocol=2)
    return test_data, test_labels


def test_cifar10_reads_pickled_batches_as_32x32_rgb(tmp_path):
    test_data, test_labels = write_cifar(tmp_path)
    data = load_dataset("cifar10", tmp_path, download=False)
    assert data.train.images.shape == (20, 3, 32, 32) and data.test.images.shape == (4, 3, 32, 32)
    assert data.classes[:3] == ("airplane", "automobile", "bird")
    assert data.test.labels.tolist() == test_labels
    # a row is the red plane, then green, then blue, each 32 rows of 32 pixels
    assert data.test.images[1, 2, 0, 5] == test_data[1, 2 * 1024 + 5]
    assert data.test.images[1, 0, 3, 0] == test_data[1, 3 * 32]


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path):
    write_cifar(tmp_path)

    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({"data": Payload()}, handle)
    with pytest.raises(DataError, match=r"test_batch: not a CIFAR-10 batch file .*refusing to load"):
        load_split("cifar10", "test", tmp_path, download=False)
    assert not (tmp_path / "pwned").exists()


def test_cifar10_download_checks_the_archive_and_extracts_only_the_batches(tmp_path, monkeypatch):
    from trainlab.data import cifar

    write_cifar(tmp_path / "source")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "source" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        tar.addfile(tarfile.TarInfo("../escape.txt"), io.BytesIO(b""))
    archive = buffer.getvalue()
    monkeypatch.setattr("trainlab.data.download.fetch", lambda url: archive)
    with pytest.raises(DataError, match="MD5 .* does not match"):
        load_split("cifar10", "test", tmp_path / "data", download=True)
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", hashlib.md5(archive).hexdigest())  # noqa: S324
    assert len(load_split("cifar10", "test", tmp_path / "data", download=True)) == 4
    assert not (tmp_path / "escape.txt").exists()


# options ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"dataset": "csv"}, "--dataset csv needs --annotations"),
        ({"dataset": "folder"}, "--dataset folder needs --image-dir"),
        ({"dataset": "imagenet"}, "unknown dataset 'imagenet'; choose one of: fashion-mnist, mnist"),
        ({"annotations": "labels.csv"}, "--annotations/--test-annotations are for --dataset csv"),
        ({"image_size": 32}, "--image-size: only for --dataset csv or folder"),
        ({"dataset": "folder", "image_dir": "x", "channels": 2}, "channels must be 1 (gray) or 3 (RGB)"),
        ({"dataset": "folder", "image_dir": "x", "image_size": 0}, "image_size must be >= 1"),
        ({"dataset": "folder", "image_dir": "x", "workers": -1}, "workers must be >= 0"),
        ({"dataset": "folder", "image_dir": "x", "memory_budget_mb": -5}, "memory_budget_mb must be >= 0"),
    ],
)
def test_data_options_are_validated_in_the_config(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**values)


def test_data_options_round_trip_through_toml(tmp_path):
    from trainlab.config import read_config_file

    config = TrainConfig(
        dataset="csv",
        annotations="a.csv",
        image_dir="imgs",
        image_size=32,
        channels=3,
        skip_bad_images=True,
        workers=2,
        memory_budget_mb=512.0,
    )
    (tmp_path / "c.toml").write_text(config.to_toml())
    assert TrainConfig.from_dict(read_config_file(tmp_path / "c.toml")) == config
