"""The image sets of benchmarks/own_images.py (issue 29): counts, shapes, classes, seeded bytes, layouts on disk."""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trainlab import TrainConfig, load_dataset

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_sets_module():
    spec = importlib.util.spec_from_file_location("own_image_sets", BENCHMARKS / "own_image_sets.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("own_image_sets", module)
    spec.loader.exec_module(module)
    return module


sets = _load_sets_module()

# name: (train images, test images, one image's shape, number of classes)
PROMISED = {
    "digits": (1437, 360, (8, 8), 10),
    "textures": (1200, 400, (40, 40), 5),
    "mirrored": (1200, 400, (24, 24), 4),
    "colour-shapes": (1800, 600, (32, 32, 3), 6),
    "many-classes": (1600, 400, (12, 12), 20),
    "tiny": (140, 60, (25, 25), 2),
}


def files_digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under root, by relative path."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_each_generated_set_has_its_promised_counts_shape_classes_and_balanced_labels(name):
    train_count, test_count, shape, class_count = PROMISED[name]
    image_set = sets.SETS[name].make(0)
    assert image_set.train_images.shape == (train_count, *shape)
    assert image_set.test_images.shape == (test_count, *shape)
    assert image_set.train_images.dtype == image_set.test_images.dtype == np.uint8
    assert len(image_set.classes) == len(set(image_set.classes)) == class_count
    for labels, count in ((image_set.train_labels, train_count), (image_set.test_labels, test_count)):
        per_class = np.bincount(labels, minlength=class_count)
        assert per_class.sum() == count and per_class.min() > 0
        if name != "digits":  # the generated and cropped sets have exactly equal classes; digits are as collected
            assert per_class.min() == per_class.max()
    assert image_set.train_images.std() > 10  # pictures, not blank canvases


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_the_same_seed_gives_the_same_pixels_and_another_seed_other_ones(name):
    first, again, other = sets.SETS[name].make(0), sets.SETS[name].make(0), sets.SETS[name].make(1)
    assert np.array_equal(first.train_images, again.train_images)
    assert np.array_equal(first.test_labels, again.test_labels)
    assert not np.array_equal(first.test_images, other.test_images)


@pytest.mark.parametrize("name", ["mirrored", "tiny"])
def test_writing_a_set_twice_from_one_seed_gives_the_same_files_byte_for_byte(tmp_path, name):
    first = sets.write_set(sets.SETS[name].make(3), tmp_path / "first")
    second = sets.write_set(sets.SETS[name].make(3), tmp_path / "second")
    assert files_digest(first.root) == files_digest(second.root)
    assert len(files_digest(first.root)) == len(first.train_files) + len(first.test_files) + 1  # + the marker


def test_a_mirrored_left_class_looks_like_its_right_class_and_not_like_itself():
    image_set = sets.make_mirrored(0)
    images = image_set.train_images.astype(np.float64)
    means = {name: images[image_set.train_labels == label].mean(0) for label, name in enumerate(image_set.classes)}
    for left, right in (("arrow_left", "arrow_right"), ("b", "d")):
        mirrored_left = means[left][:, ::-1]
        distances = {name: np.abs(mirrored_left - mean).mean() for name, mean in means.items()}  # pixels
        assert min(distances, key=distances.get) == right
        assert distances[right] < 5 and distances[left] > 3 * distances[right], distances


def test_the_colour_shapes_are_rgb_pictures_whose_class_is_not_their_colour():
    image_set = sets.make_colour_shapes(0)
    mean_colour = image_set.train_images.reshape(len(image_set.train_labels), -1, 3).mean(1)
    per_class = np.stack([mean_colour[image_set.train_labels == label].mean(0) for label in range(6)])
    assert np.ptp(per_class, axis=0).max() < 25  # every class spans the same colours, on average within 25 of 255


def test_digits_as_class_folders_are_written_class_by_class_and_trainlab_reads_every_image(tmp_path):
    written = sets.write_set(sets.make_digits(0), tmp_path / "digits", "folders")
    assert written.data_flags == ["--dataset", "folder", "--image-dir", str(tmp_path / "digits")]
    walked = sorted(path.relative_to(written.root / "train").parts[0] for path, _ in written.train_files)
    assert [path.parent.name for path, _ in written.train_files] == walked  # class-sorted, as a folder walk reads
    data = load_dataset(TrainConfig(dataset="folder", image_dir=str(written.root)))
    assert data.classes == tuple(str(digit) for digit in range(10))
    assert (len(data.train), len(data.test), data.train.image_shape) == (1437, 360, (1, 8, 8))
    assert data.train.labels.tolist() == [label for _, label in written.train_files]


def test_digits_in_the_csv_layout_keep_their_order_and_trainlab_reads_the_same_pixels(tmp_path):
    image_set = sets.make_digits(0)
    written = sets.write_set(image_set, tmp_path / "digits-csv", "csv")
    rows = (written.root / "labels.csv").read_text().splitlines()
    assert rows[0] == "file_name,label" and rows[1] == f"train_00000.png,{image_set.train_labels[0]}"
    assert len(rows) == 1 + 1437 and len((written.root / "test_labels.csv").read_text().splitlines()) == 1 + 360
    flags = dict(zip(written.data_flags[::2], written.data_flags[1::2], strict=True))
    config = TrainConfig(
        dataset="csv",
        annotations=flags["--annotations"],
        test_annotations=flags["--test-annotations"],
        image_dir=flags["--image-dir"],
    )
    data = load_dataset(config)
    assert data.train.labels.tolist() == image_set.train_labels.tolist()
    assert np.array_equal(data.test.images[:, 0].numpy(), image_set.test_images)
    pixels, labels = sets.read_pixels(written.test_files, rgb=False)
    assert np.array_equal(np.rint(pixels * 255).reshape(image_set.test_images.shape), image_set.test_images)
    assert labels.tolist() == image_set.test_labels.tolist()


def test_writing_over_a_folder_that_is_not_a_set_is_refused_and_leaves_it(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not a set written by own_image_sets.py"):
        sets.write_set(sets.make_tiny(0), folder)
    assert files_digest(folder) == {"notes.txt": hashlib.sha256(b"keep me").hexdigest()}
    sets.write_set(sets.make_tiny(0), tmp_path / "set")
    rewritten = sets.write_set(sets.make_tiny(1), tmp_path / "set")  # a set of ours is replaced whole
    assert len(files_digest(rewritten.root)) == 140 + 60 + 1


def test_products_are_96_pixel_rgb_jpegs_of_the_ten_garments(real_data, tmp_path):
    image_set = sets.make_products(0, real_data)
    assert image_set.train_images.shape == (2000, 96, 96, 3) and image_set.test_images.shape == (1000, 96, 96, 3)
    assert image_set.classes[0] == "T-shirt-top" and len(image_set.classes) == 10
    assert image_set.file_format == "jpg"


def test_products_without_fashion_mnist_are_skipped_with_the_reason(tmp_path):
    with pytest.raises(sets.SetUnavailable, match=f"no Fashion-MNIST in {tmp_path}"):
        sets.make_products(0, tmp_path)


def test_the_benchmark_script_names_every_set_and_its_options_in_its_help():
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / "own_images.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "300"},  # argparse would otherwise wrap a name such as colour-shapes
    )
    assert completed.returncode == 0, completed.stderr
    for option in ("--sets", "--out", "--json-out", "--quick", "--extra-args", "--data-dir", *sets.SETS):
        assert option in completed.stdout
