"""README "Train on your own images": the recipe chosen from the data (--preset auto)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainlab.config import TrainConfig
from trainlab.config_file import read_config_file
from trainlab.data import load_dataset
from trainlab.testing.image_sets import (
    ARROW_CLASSES,
    SHAPE_CLASSES,
    arrows,
    shapes,
    write_class_folders,
    write_split_set,
)
from trainlab.training.recipe import DataProfile, choose, probe_flip, resolve_recipe


def values_of(profile: DataProfile, kept: dict | None = None) -> dict:
    return {choice.key: choice.value for choice in choose(profile, kept or {})}


def test_tiny_gray_digits_get_a_cnn_small_shifts_and_no_erasing_at_their_own_size():
    values = values_of(DataProfile(1437, 360, 1, 8, 8, (144,) * 9 + (141,)))
    assert values["model"] == "cnn" and values["shuffle"] is True and values["val_split"] == 0.15
    assert (values["augment"], values["augment_padding"], values["augment_erasing"]) == (True, 1, 0.0)
    assert values["batch_size"] == 64 and "image_size" not in values
    assert values["epochs"] == 150  # 3,000 steps at 20 per epoch, capped
    assert values["early_stop"] == 37 and values["time_budget"] == 300.0


def test_large_rgb_photos_are_downscaled_to_fit_with_erasing_and_larger_shifts():
    values = values_of(DataProfile(2000, 1000, 3, 96, 96, (200,) * 10))
    assert values["image_size"] == 48  # 2,000 x 64^2 pixels is over the epoch's budget, 48^2 is under
    assert (values["augment_padding"], values["augment_erasing"]) == (5, 0.25)
    assert values["batch_size"] == 64
    assert values_of(DataProfile(500, 100, 3, 200, 150, (250, 250)))["image_size"] == 64


def test_a_users_values_are_kept_and_not_chosen():
    values = values_of(DataProfile(1000, 100, 1, 28, 28, (500, 500)), kept={"lr": 0.1, "model": "mlp"})
    assert "lr" not in values and "model" not in values and values["optimizer"] == "adamw"


def small_set(tmp_path: Path, name: str) -> TrainConfig:
    make, classes, options = (arrows, ARROW_CLASSES, {}) if name == "arrows" else (shapes, SHAPE_CLASSES, {})
    root = write_split_set(tmp_path / name, make, classes, 320, 80, **options)
    return TrainConfig(dataset="folder", image_dir=str(root), device="cpu", recipe="auto", time_budget=60.0)


@pytest.mark.parametrize(("name", "flips"), [("arrows", False), ("shapes", True)])
def test_mirror_flips_are_used_only_where_the_validation_part_shows_they_keep_the_class(tmp_path, name, flips):
    torch.set_num_threads(1)
    config = small_set(tmp_path, name)
    data = load_dataset(config)
    recipe, _ = resolve_recipe(config, data, load_dataset)
    chosen = {choice.key: choice for choice in recipe.choices}
    assert recipe.config.augment_flip is flips and recipe.config.tta == ("flip" if flips else "none")
    reason = chosen["augment_flip"].reason
    assert reason.startswith("mirror flips kept" if flips else "no mirror flips: they lowered")
    if not flips:  # a left arrow mirrored is a right arrow: the flipped arm confuses the two
        probe = probe_flip(recipe.config, data)
        assert probe.without - probe.with_flip > 0.1


def test_too_few_validation_images_never_turn_flips_on(tmp_path):
    root = write_split_set(tmp_path / "few", shapes, SHAPE_CLASSES, 40, 20)
    config = TrainConfig(dataset="folder", image_dir=str(root), device="cpu", recipe="auto")
    recipe, _ = resolve_recipe(config, load_dataset(config), load_dataset)
    assert recipe.config.augment_flip is False
    assert "8 validation images are too few" in {c.key: c for c in recipe.choices}["augment_flip"].reason


def test_a_class_sorted_folder_with_no_flags_trains_shuffled_with_a_recorded_recipe_that_repeats(run_main, tmp_path):
    root = write_split_set(tmp_path / "shapes", shapes, SHAPE_CLASSES, 160, 40)
    run_dir = tmp_path / "run"
    # a process of its own: the budget counts from the process's start (in-process, from the test session's)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainlab",
            "train",
            "--dataset",
            "folder",
            "--image-dir",
            str(root),
            "--run-dir",
            str(run_dir),
            "--time-budget",
            "25",
            "--threads",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "Recipe chosen from the data (--preset auto" in result.stderr
    assert "  shuffle          on       batches must mix the classes" in result.stderr
    assert "pass --shuffle" not in result.stderr and "shuffle is off" not in result.stderr
    recorded = read_config_file(run_dir / "config.toml")
    assert recorded["shuffle"] is True and recorded["model"] == "cnn" and recorded["optimizer"] == "adamw"
    assert "recipe" not in recorded  # the choices are written as plain values
    summary = json.loads(result.stdout.splitlines()[-1])
    recipe = json.loads((run_dir / "recipe.json").read_text())
    assert summary["recipe"] == recipe
    assert {choice["key"] for choice in recipe["choices"]} >= {"model", "lr", "augment_flip", "tta", "shuffle"}
    listed = run_main("runs", run_dir)
    assert listed.returncode == 0
    row = listed.stdout.splitlines()[1]
    assert f"auto: cnn adamw lr 0.002 batch 16 flips {'on' if recorded['augment_flip'] else 'off'}" in row
    # the recorded config repeats the recipe exactly: its values are the user's own, so nothing is chosen again
    # (its length left to --epochs here: the budget's plan is fitted to the machine each time)
    planned = ("epochs", "max_steps", "warmup_epochs", "time_budget")
    copy = tmp_path / "copy.toml"
    copy.write_text(
        "".join(
            line + "\n"
            for line in (run_dir / "config.toml").read_text().splitlines()
            if line.split(" = ")[0] not in planned
        )
    )
    again = run_main("train", "--config", copy, "--run-dir", tmp_path / "again", "--epochs", "1", "--threads", "1")
    assert again.returncode == 0, again.stderr
    assert "Recipe chosen" not in again.stdout + again.stderr
    repeated = read_config_file(tmp_path / "again" / "config.toml")
    assert {k: v for k, v in repeated.items() if k not in planned} == {
        k: v for k, v in recorded.items() if k not in planned
    }


def test_the_tutorial_data_with_no_flags_keeps_the_tutorials_recipe():
    from trainlab.resolution import with_recipe

    assert with_recipe({"dataset": "fashion-mnist"}, {}, None) == {"dataset": "fashion-mnist"}
    assert with_recipe({}, {}, None) == {}
    auto = with_recipe({"dataset": "mnist"}, {"dataset": "mnist", "seed": 3}, None)
    assert auto["recipe"] == "auto" and auto["recipe_keep"] == ["dataset", "seed"]
    manual = with_recipe({"dataset": "folder", "epochs": 3}, {"dataset": "folder", "epochs": 3}, None)
    assert "recipe" not in manual and manual["shuffle"] is True
    kept = with_recipe({"dataset": "folder", "shuffle": False}, {"shuffle": False, "epochs": 2}, None)
    assert kept["shuffle"] is False  # --no-shuffle is the user's
    assert with_recipe({"recipe": "auto", "lr": 0.1}, {"lr": 0.1}, "auto")["recipe_keep"] == ["lr"]


def test_an_image_folder_or_csv_without_dataset_means_the_users_own_images():
    from trainlab.resolution import with_recipe

    folder = with_recipe({"image_dir": "photos"}, {"image_dir": "photos"}, None)
    assert folder["dataset"] == "folder" and folder["recipe"] == "auto"
    csv = with_recipe({"annotations": "a.csv", "image_dir": "img"}, {"annotations": "a.csv", "image_dir": "img"}, None)
    assert csv["dataset"] == "csv"
    named = with_recipe({"dataset": "folder", "image_dir": "p"}, {"dataset": "folder", "image_dir": "p"}, None)
    assert named["dataset"] == "folder"


def test_a_single_class_folder_tree_with_the_recipe_holds_out_its_test_part_and_evaluates_on_it(run_main, tmp_path):
    images, labels = shapes(60, side=12)  # 15 a class: 2 held out for testing, 2 of the rest for validation
    root = write_class_folders(tmp_path / "shapes", images, labels, SHAPE_CLASSES)  # no train/ and test/
    run = tmp_path / "run"
    result = run_main(
        "train", "--image-dir", root, "--preset", "auto", "--epochs", "1", "--time-budget", "1h", "--run-dir", run,
        "--threads", "1", "--device", "cpu",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (
        "  note: the test set: 8 images, a stratified 15% held out of the only source of images (the same ones "
        "whatever --seed), never used for choosing\n"
    ) in result.stdout
    assert "  val_split        0.15     a stratified 15% of the training images chooses the best epoch" in result.stdout
    assert "44 training and 8 test images in memory" in result.stdout
    assert read_config_file(run / "config.toml")["val_split"] == 0.15
    evaluated = run_main("evaluate", run)
    assert evaluated.returncode == 0, evaluated.stderr
    assert "on 8 test images" in evaluated.stdout  # the same held-out part, read back from the recorded config
