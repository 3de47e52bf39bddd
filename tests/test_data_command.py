"""`trainlab data show|info`: a sample grid PNG with class names, and counts and statistics per split."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from trainlab.data import load_dataset
from trainlab.data.memory import channel_stats
from trainlab.reports.preview import figure_size

from conftest import FASHION_CLASSES, make_images


def grid_pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def test_show_draws_the_tutorials_3x3_grid(run_main, tiny_data, tmp_path):
    out = tmp_path / "grid.png"
    result = run_main("data", "show", "--data-dir", tiny_data, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.splitlines()[-1])
    assert (values["width"], values["height"]) == figure_size(3, 3)
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.size == figure_size(3, 3) == (750, 750)
    pixels = grid_pixels(out)
    assert pixels.std() > 20  # images, not a blank page
    assert (pixels < 40).mean() > 0.1  # the dark backgrounds of the samples are there


def test_show_with_augment_puts_each_augmented_image_beside_its_original(run_main, tiny_data, tmp_path):
    out = tmp_path / "augmented.png"
    result = run_main("data", "show", "--data-dir", tiny_data, "--rows", "2", "--cols", "4", "--augment", "--out", out)
    assert result.returncode == 0, result.stderr
    with Image.open(out) as image:
        assert image.size == figure_size(2, 8) == (2000, 500)
    assert "with their augmented versions" in result.stdout


def test_show_picks_the_same_samples_for_the_same_seed(run_main, tiny_data, tmp_path):
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert (
            run_main(
                "data", "show", "--data-dir", tiny_data, "--seed", seed, "--out", tmp_path / f"{name}.png"
            ).returncode
            == 0
        )
    assert np.array_equal(grid_pixels(tmp_path / "a.png"), grid_pixels(tmp_path / "b.png"))
    assert not np.array_equal(grid_pixels(tmp_path / "a.png"), grid_pixels(tmp_path / "c.png"))


def test_show_bad_requests_are_one_line_exit_2(run_main, tiny_data, tmp_path):
    result = run_main("data", "show", "--data-dir", tiny_data, "--split", "val", "--out", tmp_path / "x.png")
    assert result.returncode == 2
    assert (
        result.stderr == "trainlab data: error: there is no val split here; --split val needs --val-split (e.g. 0.1)\n"
    )
    result = run_main("data", "show", "--data-dir", tiny_data, "--rows", "0", "--out", tmp_path / "x.png")
    assert result.returncode == 2 and result.stderr.count("\n") == 1


def test_info_counts_classes_per_split_with_size_channels_and_pixel_statistics(run_main, tiny_data):
    result = run_main("data", "info", "--data-dir", tiny_data, "--val-split", "0.25", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.splitlines()[-1])
    assert info["classes"] == list(FASHION_CLASSES)
    assert list(info["splits"]) == ["train", "val", "test"]
    assert [info["splits"][s]["samples"] for s in ("train", "val", "test")] == [480, 160, 160]
    assert set(info["splits"]["val"]["per_class"].values()) == {16}  # stratified: a quarter of each class
    assert info["splits"]["test"]["channels"] == 1
    assert (info["splits"]["test"]["height"], info["splits"]["test"]["width"]) == (28, 28)
    test = load_dataset(data_dir=tiny_data, download=False).test
    mean, std = channel_stats(test)
    assert info["splits"]["test"]["mean"] == pytest.approx(list(mean)) and info["splits"]["test"][
        "std"
    ] == pytest.approx(list(std))
    assert "T-shirt/top" in result.stderr and "pixel mean/std" in result.stderr


def test_info_says_when_images_are_streamed(run_main, tmp_path):
    images, labels = make_images(40, seed=0)
    (tmp_path / "imgs").mkdir()
    rows = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        Image.fromarray(image).save(tmp_path / "imgs" / f"{i}.png")
        rows.append(f"{i}.png,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    flags = [
        "--dataset",
        "csv",
        "--annotations",
        tmp_path / "labels.csv",
        "--image-dir",
        tmp_path / "imgs",
        "--workers",
        "0",
    ]
    in_memory = run_main("data", "info", *flags, "--json")
    streamed = run_main("data", "info", *flags, "--memory-budget-mb", "0", "--json")
    assert in_memory.returncode == 0 and streamed.returncode == 0, streamed.stderr
    memory_info, stream_info = (json.loads(r.stdout.splitlines()[-1]) for r in (in_memory, streamed))
    assert memory_info["storage"] == "in memory" and stream_info["storage"] == "streamed from files"
    assert "streamed from the files" in streamed.stdout + streamed.stderr
    assert "no test set" in in_memory.stderr  # one CSV and no --val-split: train only
    assert memory_info["splits"] == stream_info["splits"]  # same counts and statistics either way


def test_data_options_are_shared_by_every_command(run_main):
    from trainlab.cli import DATA_FLAGS, build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them here
    data_actions = commands["data"]._subparsers._group_actions[0].choices  # noqa: SLF001
    for parser_ in (
        commands["train"],
        commands["evaluate"],
        commands["predict"],
        data_actions["show"],
        data_actions["info"],
    ):
        known = {option for action in parser_._actions for option in action.option_strings}  # noqa: SLF001
        assert {flag for flag, _ in DATA_FLAGS} <= known


def test_predict_test_index_reads_a_csv_test_set(run_main, tmp_path, tiny_data):
    run = tmp_path / "run"
    assert run_main("train", "--data-dir", tiny_data, "--epochs", "1", "--run-dir", run).returncode == 0
    images, labels = make_images(5, seed=9)
    (tmp_path / "imgs").mkdir()
    Image.fromarray(images[3]).save(tmp_path / "imgs" / "x.png")
    (tmp_path / "test.csv").write_text(f"x.png,{FASHION_CLASSES[labels[3]]}\n")
    result = run_main(
        "predict",
        run,
        "--test-index",
        "0",
        "--dataset",
        "csv",
        "--annotations",
        tmp_path / "test.csv",
        "--image-dir",
        tmp_path / "imgs",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["actual"] == FASHION_CLASSES[labels[3]]
    wrong = run_main("evaluate", run, "--dataset", "csv", "--annotations", tmp_path / "test.csv", "--image-size", "32")
    assert wrong.returncode == 2
    assert "--image-size 32 does not fit the model, which takes 1x28x28 images" in wrong.stderr
    wrong = run_main("evaluate", run, "--dataset", "csv", "--annotations", tmp_path / "test.csv")  # no --image-dir
    assert wrong.returncode == 2
    assert "none of the 1 images in test.csv can be read (is --image-dir right?" in wrong.stderr
