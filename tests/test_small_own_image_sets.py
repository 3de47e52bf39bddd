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
