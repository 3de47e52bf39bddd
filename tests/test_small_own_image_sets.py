"""Small sets of one's own images that --preset auto (their default) met badly: one class, a short --epochs."""

from __future__ import annotations

import numpy as np

from trainlab.testing.image_sets import shapes, write_class_folders

from conftest import assert_one_line_error


def test_a_folder_set_of_one_class_is_refused_naming_the_class_and_leaves_no_run(tmp_path, run_main):
    images, _ = shapes(12, side=8, channels=1)
    root = write_class_folders(tmp_path / "cats", images, np.zeros(12, dtype=int), ("cat",))
    for flags in ((), ("--preset", "auto")):
        assert_one_line_error(
            run_main(
                "train",
                "--dataset",
                "folder",
                "--image-dir",
                root,
                "--val-split",
                "0.25",
                "--run-dir",
                tmp_path / "run",
                "--threads",
                "1",
                "--device",
                "cpu",
                *flags,
            ),
            f"--dataset folder ({root}) holds one class (cat); a classifier needs two or more: add a class folder "
            "(or CSV label) for each other kind of image",
        )
        assert not (tmp_path / "run").exists()


def test_preset_auto_with_a_short_epochs_flag_warms_up_within_it(tmp_path, run_main):
    from trainlab.testing.image_sets import SHAPE_CLASSES, write_split_set

    root = write_split_set(tmp_path / "shapes", shapes, SHAPE_CLASSES, 80, 40, side=12)
    result = run_main(
        "train", "--dataset", "folder", "--image-dir", root, "--preset", "auto", "--epochs", "2", "--run-dir",
        tmp_path / "run", "--threads", "1", "--device", "cpu", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "warmup_epochs = 0.2\n" in (tmp_path / "run" / "config.toml").read_text()


def few_images(root, per_class: int):
    """ROOT/disc and ROOT/ring with per_class 8x8 images each."""
    images, _ = shapes(2 * per_class, side=8, channels=1)
    return write_class_folders(root, images, np.arange(2 * per_class) % 2, ("disc", "ring"))


def train_folder(run_main, root, run, *flags):
    """`trainlab train` on the class folders at root, on the CPU, into run."""
    return run_main(
        "train", "--dataset", "folder", "--image-dir", root, "--run-dir", run, "--threads", "1", "--device", "cpu",
        "--quiet", *flags,
    )  # fmt: skip


def leaves(root, value: float, train: int, validation: int, test: int) -> str:
    """The start of the refusal of a --val-split on a single folder: what it leaves each split."""
    return (
        f"--val-split {value:g} on --dataset folder ({root}), the only source of images, leaves {train} for training, "
        f"{validation} for validation and {test} for testing"
    )


def test_a_single_folder_of_two_images_a_class_is_too_small_to_split_whatever_the_val_split(tmp_path, run_main):
    root = few_images(tmp_path / "few", per_class=2)
    too_few = (
        "its images are too few to split into training, validation and test images (at most 2 in a class; a class "
        f"needs 3): give {root}/train and {root}/test, or more images"
    )
    expected = {
        (): f"{root} is the only source of images, so there is no test set, and {too_few}",
        ("--val-split", "0.1"): f"{leaves(root, 0.1, 4, 0, 0)}; {too_few}",
        ("--val-split", "0.5"): f"{leaves(root, 0.5, 2, 0, 2)}; {too_few}",
        ("--val-split", "0.6"): f"{leaves(root, 0.6, 0, 2, 2)}; {too_few}",
    }
    for flags, message in expected.items():
        line = assert_one_line_error(train_folder(run_main, root, tmp_path / "run", *flags))
        assert line == f"trainlab train: error: {message}"
        assert not (tmp_path / "run").exists()


def test_a_val_split_that_cannot_split_a_single_folder_names_one_that_does(tmp_path, run_main):
    root = few_images(tmp_path / "few", per_class=3)
    expected = {
        (): f"{root} is the only source of images, so there is no test set: give {root}/train and {root}/test, or "
        "--preset auto --val-split 0.3 to hold out a seeded, stratified part of it for testing",  # the recipe kept
        ("--val-split", "0.1"): f"{leaves(root, 0.1, 6, 0, 0)}; use --val-split 0.3",
        ("--val-split", "0.6"): f"{leaves(root, 0.6, 0, 2, 4)}; use --val-split 0.3",
    }
    for flags, message in expected.items():
        line = assert_one_line_error(train_folder(run_main, root, tmp_path / "run", *flags))
        assert line == f"trainlab train: error: {message}"
        assert not (tmp_path / "run").exists()
    named = train_folder(
        run_main, root, tmp_path / "run", "--val-split", "0.3", "--epochs", "1", "--preset", "tutorial"
    )
    assert named.returncode == 0, named.stderr
    advised = train_folder(
        run_main, root, tmp_path / "advised", "--preset", "auto", "--val-split", "0.3", "--epochs", "1"
    )
    assert advised.returncode == 0, advised.stderr
    assert "Recipe chosen from the data" in advised.stdout


def test_a_val_split_on_a_training_folder_of_few_images_names_a_value_that_works_or_says_they_are_too_few(
    tmp_path, run_main
):
    one = few_images(tmp_path / "one" / "train", per_class=1).parent
    few_images(one / "test", per_class=1)
    two = few_images(tmp_path / "two" / "train", per_class=2).parent
    few_images(two / "test", per_class=1)
    expected = {
        (one, "0.3"): "--val-split 0.3 holds out none of the 2 training images, and they are too few to split into "
        "training and validation images (at most 1 in a class; a class needs 2): leave it out",
        (two, "0.1"): "--val-split 0.1 holds out none of the 4 training images; raise it to 0.3, or leave it out",
        (two, "0.9"): "--val-split 0.9 leaves none of the 4 images for training; lower it to 0.3",
    }
    for (root, value), message in expected.items():
        line = assert_one_line_error(train_folder(run_main, root, tmp_path / "run", "--val-split", value))
        assert line == f"trainlab train: error: {message}"
        assert not (tmp_path / "run").exists()
