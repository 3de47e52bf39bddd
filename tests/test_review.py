"""trainlab review: planted bad labels, a test image copied into training and a blank image are found; the CSV
it writes relabels and drops files in `train --relabel`, and a bad CSV is one line."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainlab.testing.synthetic import make_images

from conftest import assert_one_line_error

FLIPPED = ("train0003.png", "train0050.png", "train0100.png", "train0150.png", "train0200.png", "train0250.png")
DATA_FLAGS = ("--dataset", "csv", "--annotations", "train.csv", "--test-annotations", "test.csv")


def write_csv_set(root: Path) -> tuple[Path, dict[str, int]]:
    """300 training and 60 test PNGs of the banded generated set, with 6 labels flipped, a copy of test0007.png
    in the training rows (copy.png) and a blank image; returns the folder and the flipped files' true labels."""
    root.mkdir(parents=True)
    rows = {}
    for prefix, count, seed in (("train", 300, 0), ("test", 60, 1)):
        images, labels = make_images(count, seed)
        rows[prefix] = []
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            Image.fromarray(image).save(root / f"{prefix}{index:04d}.png")
            rows[prefix].append([f"{prefix}{index:04d}.png", int(label)])
    truth = {}
    for row in rows["train"]:
        if row[0] in FLIPPED:
            truth[row[0]] = row[1]
            row[1] = (row[1] + 5) % 10
    shutil.copy(root / "test0007.png", root / "copy.png")
    rows["train"].append(["copy.png", rows["test"][7][1]])
    Image.fromarray(np.full((28, 28), 17, np.uint8)).save(root / "blank.png")
    rows["train"].append(["blank.png", 0])
    for prefix in ("train", "test"):
        (root / f"{prefix}.csv").write_text("".join(f"{name},{label}\n" for name, label in rows[prefix]))
    return root, truth


@pytest.fixture(scope="module")
def reviewed_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A 3-epoch Adam MLP run on the planted set, and its review (2 folds of 10 epochs) in RUN/review."""
    from trainlab import TrainConfig, fit, review

    root = tmp_path_factory.mktemp("review")
    data, truth = write_csv_set(root / "data")
    config = TrainConfig(
        dataset="csv",
        annotations=str(data / "train.csv"),
        test_annotations=str(data / "test.csv"),
        optimizer="adam",
        epochs=3,
        device="cpu",
        threads=1,
    )
    fit(config, run_dir=root / "run")
    suspects = review(root / "run", folds=2, fold_epochs=10)  # RUN/review/review.csv, as the CLI writes it
    return {"data": data, "truth": truth, "run": root / "run", "config": config, "suspects": suspects}


def review_json(run_main, run: Path, *flags: str) -> dict:
    result = run_main("review", run, "--folds", "2", "--fold-epochs", "10", "--json", *flags)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_review_finds_every_flipped_label_the_test_image_copied_into_training_and_the_blank_image(
    reviewed_run, run_main
):
    answer = review_json(run_main, reviewed_run["run"])
    suspects = answer["suspects"]
    assert set(answer) >= {"suspects", "counts", "csv", "png"}
    assert all(set(s) >= {"file", "given", "suggested", "confidence", "reason"} for s in suspects)
    by_file = {(s["split"], s["file"]): s for s in suspects}
    for name, true_label in reviewed_run["truth"].items():
        assert by_file[("train", name)]["suggested"] == str(true_label), by_file[("train", name)]
        assert by_file[("train", name)]["reason"].startswith("label: the model gives ")
    leak = by_file[("test", "test0007.png")]
    assert (leak["suggested"], leak["confidence"]) == ("drop", 1.0)
    assert "exact duplicate of copy.png (train, " in leak["reason"]
    assert "a test image that is also in the training set" in leak["reason"]
    assert by_file[("train", "blank.png")]["suggested"] == "drop"
    assert "blank: every pixel is 17" in by_file[("train", "blank.png")]["reason"]
    assert [s["kind"] for s in suspects[:2]] == ["blank", "exact duplicate"]  # what the pixels prove comes first
    top = {s["file"] for s in suspects[:8]}
    assert set(reviewed_run["truth"]) <= top  # the six flips are the next six
    review_dir = reviewed_run["run"] / "review"
    assert answer["csv"] == str(review_dir / "review.csv")
    with open(review_dir / "review.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["file", "split", "given", "suggested", "confidence", "reason"]
    assert [row[:4] for row in rows[1:]] == [[s["file"], s["split"], s["given"], s["suggested"]] for s in suspects]
    assert (review_dir / "review.png").read_bytes().startswith(b"\x89PNG")


def test_relabel_with_the_review_csv_restores_the_flipped_labels_drops_the_rest_and_is_recorded(
    reviewed_run, run_main, tmp_path
):
    from trainlab import TrainConfig
    from trainlab.data import load_dataset, load_split

    reviewed = reviewed_run["run"] / "review" / "review.csv"
    relabelled = load_dataset(reviewed_run["config"].replace(relabel=str(reviewed)))
    names = relabelled.train.names
    for name, true_label in reviewed_run["truth"].items():
        assert int(relabelled.train.labels[names.index(name)]) == true_label
    assert "blank.png" not in names and "copy.png" in names  # the blank image is dropped from training
    assert "test0007.png" not in relabelled.test.names and len(relabelled.test) == 59  # the leaked test copy too
    data = reviewed_run["data"]
    result = run_main(
        "train",
        *DATA_FLAGS,
        "--image-dir",
        data,
        "--annotations",
        data / "train.csv",
        "--test-annotations",
        data / "test.csv",
        "--relabel",
        reviewed,
        "--epochs",
        "1",
        "--run-dir",
        tmp_path / "again",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    assert f'relabel = "{reviewed}"' in (tmp_path / "again" / "config.toml").read_text()  # a resume reads it too
    config = TrainConfig(dataset="csv", annotations=str(data / "train.csv"), relabel=str(reviewed))
    assert len(load_split(config, "train")) == 301  # its test rows are left aside: no test split is loaded


def test_a_label_column_wins_over_suggested_and_an_empty_cell_keeps_the_given_label(reviewed_run, tmp_path):
    from trainlab.data import load_dataset

    edited = tmp_path / "edited.csv"
    edited.write_text("file,split,suggested,label\ntrain0003.png,train,6,drop\ntrain0050.png,train,7,\n")
    data = load_dataset(reviewed_run["config"].replace(relabel=str(edited)))
    assert "train0003.png" not in data.train.names
    original = load_dataset(reviewed_run["config"])
    index = original.train.names.index("train0050.png")
    assert int(data.train.labels[data.train.names.index("train0050.png")]) == int(original.train.labels[index])


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        ("file,split,suggested\nnope.png,train,3\n", ("line 2: nope.png is not in the train images",)),
        ("file,split,suggested\ntrain0003.png,train,cat\n", ("line 2: unknown label 'cat' for train0003.png",)),
        ("file,split,suggested\ntrain0003.png,valid,3\n", ("line 2: unknown split 'valid'",)),
        ("name,label\ntrain0003.png,3\n", ("must name the columns `file` and `suggested` (or `label`)",)),
        (
            "file,suggested\ntrain0003.png,3\ntrain0003.png,4\n",
            ("line 3: train0003.png is listed again with another label",),
        ),
    ],
)
def test_a_bad_relabel_csv_is_one_line_and_no_run_directory(reviewed_run, run_main, tmp_path, text, fragments):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    data = reviewed_run["data"]
    result = run_main(
        "train",
        "--dataset",
        "csv",
        "--annotations",
        data / "train.csv",
        "--test-annotations",
        data / "test.csv",
        "--relabel",
        bad,
        "--epochs",
        "1",
        "--run-dir",
        tmp_path / "run",
    )
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_the_python_api_reviews_a_builtin_set_naming_images_by_split_and_index(tmp_path):
    import trainlab
    from trainlab import TrainConfig, fit
    from trainlab.testing.synthetic import write_fashion_layout, write_idx

    data = write_fashion_layout(tmp_path / "data")
    _, labels = make_images(640, 0)
    true_label = int(labels[5])
    labels[5] = (true_label + 5) % 10
    write_idx(data / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte", labels)
    config = TrainConfig(data_dir=str(data), optimizer="adam", epochs=3, device="cpu", threads=1)
    fit(config, run_dir=tmp_path / "run")
    suspects = trainlab.review(tmp_path / "run", folds=2, top=5, out=tmp_path / "out")
    classes = trainlab.load_dataset("fashion-mnist", data_dir=data, download=False).classes
    assert (suspects[0].file, suspects[0].split, suspects[0].suggested) == ("train[5]", "train", classes[true_label])
    assert len(suspects) <= 5 and all(s.file.startswith(f"{s.split}[") for s in suspects)
    assert (
        (tmp_path / "out" / "review.csv")
        .read_text()
        .splitlines()[1]
        .startswith(f"train[5],train,{classes[labels[5]]},")
    )


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (("--folds", "1"), "--folds must be a whole number from 2 to 20, got 1"),
        (("--top", "0"), "--top must be"),
        (("--repeats", "0"), "--repeats must be a whole number from 1 to 20, got 0"),
    ],
)
def test_review_options_out_of_range_are_one_line_and_write_nothing(reviewed_run, run_main, tmp_path, flags, fragment):
    result = run_main("review", reviewed_run["run"], "--out", tmp_path / "out", *flags)
    assert_one_line_error(result, fragment)
    assert not (tmp_path / "out").exists()


def served(run: Path):
    """A TestClient of `trainlab serve RUN` (whatever $TRAINLAB_TOKEN holds where the tests run)."""
    from fastapi.testclient import TestClient

    from trainlab.serve.app import create_app
    from trainlab.serve.settings import TOKEN_VARIABLE, ServeSettings

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(TOKEN_VARIABLE, raising=False)
        return TestClient(create_app(ServeSettings(checkpoint=str(run)).checked()))


def test_the_served_page_gets_the_runs_review_rows_and_grid(reviewed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reviewed_run["run"], run, ignore=shutil.ignore_patterns("review"))
    with served(run) as client:
        assert client.get("/v1/model/review").status_code == 404  # no review yet
        assert "review" not in client.get("/v1/model").json()["reports"]
    shutil.copytree(reviewed_run["run"] / "review", run / "review")
    with served(run) as client:
        assert client.get("/v1/model").json()["reports"]["review"] == "/v1/model/reports/review.png"
        body = client.get("/v1/model/review").json()
        suspects = reviewed_run["suspects"]
        assert body["total"] == len(suspects)
        assert body["suspects"][0] == {key: str(value) for key, value in suspects[0].to_dict().items() if key != "kind"}
        assert client.get("/v1/model/reports/review.png").content.startswith(b"\x89PNG")
    assert 'id="review-block"' in (Path(__file__).parents[1] / "src/trainlab/serve/static/index.html").read_text()


def test_a_review_csv_linked_out_of_the_run_directory_is_not_served(reviewed_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(reviewed_run["run"], run, ignore=shutil.ignore_patterns("review"))
    secret = tmp_path / "secret.csv"
    secret.write_text("file,split,given,suggested,confidence,reason\nsecret.png,train,1,2,0.9,x\n")
    (run / "review").mkdir()
    (run / "review" / "review.csv").symlink_to(secret)
    with served(run) as client:
        answer = client.get("/v1/model/review")
        assert answer.status_code == 404
        assert "outside the run directory" in answer.json()["error"] and "secret.png" not in answer.text
