"""Saying when a picture is unlike the training images: the record training writes into its checkpoints (checked on
load), the flag and score that `Predictor`, `trainlab predict` (human and --json), the served /v1/predict and /v2
outputs and the page carry, null for a checkpoint without the record, and `trainlab calibrate` for such a one.

One tiny run per module: two classes of bright shapes (bars and blocks) on black, 28x28 gray, an MLP for 3 epochs.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from trainlab import TrainConfig, fit
from trainlab.checkpoint import load_checkpoint, save_checkpoint
from trainlab.checkpoint_records import check_unlike
from trainlab.inference.predictor import UNLIKE_SENTENCE, Predictor
from trainlab.serve.app import create_app
from trainlab.serve.settings import TOKEN_VARIABLE, ServeSettings

from conftest import assert_one_line_error

CLASSES = ("bar", "block")


def shape_picture(label: int, rng: np.random.Generator) -> np.ndarray:
    """A bright vertical bar (0) or square block (1) of random size and place on a dark noisy 28x28 background."""
    image = rng.normal(10, 4, (28, 28))
    half = int(rng.integers(4, 7))
    y, x = (int(v) for v in rng.integers(9, 19, size=2))
    if label == 0:
        image[3:25, x - 2 : x + 2] = rng.uniform(180, 250)
    else:
        image[y - half : y + half, x - half : x + half] = rng.uniform(180, 250)
    return image.clip(0, 255).astype(np.uint8)


def write_set(root: Path, split: str, count: int, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        label = index % 2
        folder = root / split / CLASSES[label]
        folder.mkdir(parents=True, exist_ok=True)
        paths.append(folder / f"{index:04d}.png")
        Image.fromarray(shape_picture(label, rng)).save(paths[-1])
    return paths


def unlike_pictures(folder: Path) -> list[Path]:
    """Pictures nothing like bars and blocks: uniform noise and a fine checkerboard, 28x28 gray."""
    rng = np.random.default_rng(5)
    noise = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    checkers = ((np.indices((28, 28)).sum(0) // 2) % 2 * 255).astype(np.uint8)
    paths = [folder / "noise.png", folder / "checkers.png"]
    for image, path in zip((noise, checkers), paths, strict=True):
        Image.fromarray(image).save(path)
    return paths


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory) -> dict:
    """The trained run, some of its training pictures, and pictures unlike them."""
    import trainlab.reports.run_reports as run_reports

    root = tmp_path_factory.mktemp("unlike")
    training = write_set(root / "data", "train", 400, seed=1)
    write_set(root / "data", "test", 100, seed=2)
    config = TrainConfig(
        dataset="folder", image_dir=str(root / "data"), model="mlp", optimizer="adam", lr=1e-3, batch_size=32,
        epochs=3, device="cpu", threads=1, recipe="none",
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(run_reports, "write_run_reports", lambda analysis: [])
        fit(config, run_dir=root / "run", download=False)
    return {"run": root / "run", "training": training[:20], "unlike": unlike_pictures(root)}


def test_a_picture_unlike_the_training_shapes_is_flagged_and_training_pictures_are_not(shapes_run):
    predictor = Predictor.from_checkpoint(shapes_run["run"])
    unlike = predictor.predict_files(shapes_run["unlike"])
    training = predictor.predict_files(shapes_run["training"])
    assert [p.unlike_training for p in unlike] == [True, True]
    assert sum(p.unlike_training for p in training) <= 1
    assert all(p.unlike_score > 1 for p in unlike)  # the score is in units of the threshold
    assert min(p.unlike_score for p in unlike) > 3 * np.median([p.unlike_score for p in training])


def test_training_records_the_threshold_on_the_held_out_test_set_in_best_and_last(shapes_run):
    record = load_checkpoint(shapes_run["run"] / "checkpoints" / "last.pt").payload["unlike"]
    assert (record["score"], record["rate"], record["held_out"], record["held_out_images"]) == (
        "mahalanobis",
        0.04,
        "test",
        100,
    )
    assert record["flagged"] == pytest.approx(0.04, abs=0.011)  # 4 of the 100 test pictures, ties aside
    features, pixels, levels, neighbours = (
        record["checks"][name] for name in ("features", "pixels", "levels", "neighbours")
    )
    assert (features["projection"].shape, features["whitening"].shape) == ((512, 64), (2, 64, 64))
    assert (pixels["means"].shape, levels["means"].shape) == ((2, 49), (2, 2))  # 7x7 gray pixels; mean and spread
    assert neighbours["bank"].shape == (400, 512)  # every training picture: fewer than 3,000
    check_unlike(record, "last.pt")  # what load_checkpoint checks: the record round-trips as written


def test_predict_json_carries_unlike_training_and_unlike_score_and_the_human_output_the_sentence(shapes_run, run_main):
    pictures = [shapes_run["unlike"][0], shapes_run["training"][0]]
    result = run_main("predict", shapes_run["run"], *pictures, "--json")
    assert result.returncode == 0, result.stderr
    predictions = json.loads(result.stdout.strip().splitlines()[-1])["predictions"]
    assert [p["unlike_training"] for p in predictions] == [True, False]
    assert all(isinstance(p["unlike_score"], float) for p in predictions)

    human = run_main("predict", shapes_run["run"], *pictures)
    lines = human.stdout.splitlines()
    assert lines.count(f"  {UNLIKE_SENTENCE}") == 1
    assert lines.index(f"  {UNLIKE_SENTENCE}") < next(i for i, line in enumerate(lines) if str(pictures[1]) in line)


def crafted(run: Path, tmp_path: Path, change) -> Path:
    """A copy of the run's last.pt with its payload changed by `change`."""
    payload = load_checkpoint(run / "checkpoints" / "last.pt").payload
    change(payload)
    return save_checkpoint(tmp_path / "crafted.pt", payload)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r.update(threshold="high"), "threshold is 'high', not a number above 0"),
        (lambda r: r.update(score="entropy"), "score is 'entropy', not one of mahalanobis"),
        (lambda r: r.update(rate=1.5), "rate is 1.5, not a number above 0 and below 1"),
        (
            lambda r: r["checks"].pop("pixels"),
            "checks are ['features', 'levels', 'neighbours'], not features, pixels, levels, neighbours",
        ),
        (
            lambda r: r["checks"]["pixels"].update(whitening=torch.zeros(2, 3, 3)),
            "its pixels check: means (2, 49) and whitening (2, 3, 3) do not fit",
        ),
        (
            lambda r: r["checks"]["features"]["means"].__setitem__((0, 0), float("nan")),
            "its features check: means holds values that are not finite",
        ),
    ],
)
def test_a_malformed_unlike_record_is_refused_in_one_line_naming_the_file(
    shapes_run, tmp_path, run_main, change, problem
):
    path = crafted(shapes_run["run"], tmp_path, lambda payload: change(payload["unlike"]))
    result = run_main("predict", path, shapes_run["unlike"][0])
    assert_one_line_error(result, str(path), "unlike-the-training-data record is malformed", problem)


def test_a_checkpoint_without_the_record_gives_null_and_calibrate_writes_it(shapes_run, tmp_path, run_main):
    path = crafted(shapes_run["run"], tmp_path, lambda payload: payload.pop("unlike"))
    result = run_main("predict", path, *shapes_run["unlike"], "--json")
    predictions = json.loads(result.stdout.strip().splitlines()[-1])["predictions"]
    assert [(p["unlike_training"], p["unlike_score"]) for p in predictions] == [(None, None), (None, None)]
    assert UNLIKE_SENTENCE not in run_main("predict", path, *shapes_run["unlike"]).stdout

    calibrated = run_main("calibrate", path, "--unlike-rate", "0.05")
    assert calibrated.returncode == 0, calibrated.stderr
    line = calibrated.stdout.strip()
    flags = re.fullmatch(rf"{re.escape(str(path))}: flags (\d\.\d)% of its 100 test images as unlike the .*", line)
    assert flags and 4.0 <= float(flags[1]) <= 5.0, line  # 5 of 100, fewer where distances tie
    record = load_checkpoint(path).payload["unlike"]
    assert (record["rate"], record["held_out"]) == (0.05, "test")
    assert [p.unlike_training for p in Predictor.from_checkpoint(path).predict_files(shapes_run["unlike"])] == [
        True,
        True,
    ]


def test_calibrate_refuses_a_rate_outside_0_to_half_and_a_plain_state_dict_in_one_line(shapes_run, tmp_path, run_main):
    assert_one_line_error(run_main("calibrate", shapes_run["run"], "--unlike-rate", "0.9"), "--unlike-rate", "0.9")
    plain = tmp_path / "model.pth"
    torch.save(load_checkpoint(shapes_run["run"]).model_state, plain)
    assert_one_line_error(run_main("calibrate", plain, "--model", "mlp"), str(plain), "only a trainlab checkpoint")


@pytest.fixture(scope="module")
def client(shapes_run):
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(TOKEN_VARIABLE, raising=False)
        settings = ServeSettings(checkpoint=str(shapes_run["run"]), dataset="fashion-mnist").checked()
    with TestClient(create_app(settings)) as client:
        yield client


def test_the_served_predict_carries_the_same_flag_and_score_as_predict_for_the_same_file(shapes_run, client):
    predictor = Predictor.from_checkpoint(shapes_run["run"])
    for path in [*shapes_run["unlike"], shapes_run["training"][0]]:
        expected = predictor.predict_files([path])[0]
        response = client.post("/v1/predict", content=path.read_bytes(), headers={"content-type": "image/png"})
        assert response.status_code == 200, response.text
        served = response.json()["predictions"][0]
        assert served["unlike_training"] is expected.unlike_training
        assert served["unlike_score"] == pytest.approx(expected.unlike_score, rel=1e-4)


def test_the_oip_infer_answers_the_unlike_outputs_asked_for_by_name(shapes_run, client):
    predictor = Predictor.from_checkpoint(shapes_run["run"])
    images = torch.stack([x.tensor for x in predictor.read_files(shapes_run["unlike"])])
    request = {
        "inputs": [{"name": "x", "shape": list(images.shape), "datatype": "UINT8", "data": images.flatten().tolist()}],
        "outputs": [{"name": "unlike_training"}, {"name": "unlike_score"}],
    }
    body = client.post(f"/v2/models/{shapes_run['run'].name}/infer", json=request).json()
    outputs = {output["name"]: output for output in body["outputs"]}
    assert sorted(outputs) == ["unlike_score", "unlike_training"]
    assert (outputs["unlike_training"]["datatype"], outputs["unlike_training"]["data"]) == ("BOOL", [True, True])
    assert outputs["unlike_score"]["shape"] == [2]


def test_the_page_says_the_predict_sentence_when_the_answer_is_flagged():
    script = (resources.files("trainlab.serve") / "static" / "app.js").read_text()
    assert f'"{UNLIKE_SENTENCE}"' in script and "prediction.unlike_training" in script


def test_calibrate_replaces_a_malformed_record_as_the_refusal_advises(shapes_run, tmp_path, run_main):
    path = crafted(shapes_run["run"], tmp_path, lambda payload: payload["unlike"]["checks"].pop("pixels"))
    assert_one_line_error(run_main("predict", path, shapes_run["unlike"][0]), f"`trainlab calibrate {path}`")
    assert run_main("calibrate", path).returncode == 0
    assert [p.unlike_training for p in Predictor.from_checkpoint(path).predict_files(shapes_run["unlike"])] == [
        True,
        True,
    ]


def test_a_forward_pass_in_another_thread_never_joins_the_features_of_a_prediction():
    import threading

    from trainlab.engine.unlike import feature_tap
    from trainlab.models import create_model

    model = create_model("mlp", (1, 28, 28), 2)
    with feature_tap(model) as seen:
        other = threading.Thread(target=model, args=(torch.zeros(5, 1, 28, 28),))  # the server's model-card thread
        other.start()
        other.join()
        model(torch.zeros(3, 1, 28, 28))
    assert [tuple(features.shape) for features in seen] == [(3, 512)]
