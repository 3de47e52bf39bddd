"""Predicting with a trained model (test-set images and image files of any size and mode) and exporting it."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch
from PIL import Image

from trainlab import Predictor, TrainConfig, fit, load_dataset
from trainlab.checkpoint import load_checkpoint
from trainlab.data import Preprocessing
from trainlab.errors import DataError
from trainlab.inference import load_image
from trainlab.inference.predictor import UNLIKE_SENTENCE

from conftest import write_fashion_layout

PREDICTION_LINE = re.compile(r'^(?:(?P<path>.+): )?Predicted: "(?P<label>[^"]+)" \((?P<percent>\d{1,3}\.\d)%\)$')


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run that has learned the generated bands (test accuracy 1.0), its data and a predictor."""
    root = tmp_path_factory.mktemp("predict")
    data_dir = write_fashion_layout(root / "data")
    data = load_dataset(data_dir=data_dir, download=False)
    run_dir = root / "run"
    summary = fit(TrainConfig(optimizer="adam", epochs=2, batch_size=32, device="cpu"), data=data, run_dir=run_dir)
    assert summary["test_accuracy"] == 1.0
    return {"run": run_dir, "data_dir": data_dir, "data": data, "predictor": Predictor.from_checkpoint(run_dir)}


def band_image(data, index: int) -> np.ndarray:
    """Test image `index` as a 28x28 uint8 array."""
    return data.test.images[index, 0].numpy()


def test_predict_test_index_prints_the_tutorials_line(trained, run_main):
    data = trained["data"]
    actual = data.classes[int(data.test.labels[0])]
    result = run_main("predict", trained["run"], "--test-index", "0", "--data-dir", trained["data_dir"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f'Predicted: "{actual}", Actual: "{actual}"\n'


def test_predict_test_index_json(trained, run_main):
    result = run_main(
        "predict", trained["run"], "--test-index", "5", "--data-dir", trained["data_dir"], "--json", "--top-k", "2"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    values = json.loads(lines[0])
    assert values["test_index"] == 5
    assert values["label"] == values["actual"] == trained["data"].classes[int(trained["data"].test.labels[5])]
    assert len(values["top_k"]) == 2
    assert 0.0 <= values["probability"] <= 1.0


def test_predict_test_index_out_of_range_is_one_line_exit_2(trained, run_main):
    result = run_main("predict", trained["run"], "--test-index", "160", "--data-dir", trained["data_dir"])
    assert result.returncode == 2
    assert result.stderr == "trainlab predict: error: --test-index must be between 0 and 159, got 160\n"


def write_variants(folder, image: np.ndarray) -> list:
    """One garment as files of other sizes, modes and formats, all light on black like Fashion-MNIST."""
    gray = Image.fromarray(image, mode="L")
    big = gray.resize((100, 60), Image.Resampling.BILINEAR)
    rgba = big.convert("RGBA")
    rgba.putalpha(255)
    paths = {
        "gray.png": gray,
        "rgb-100x60.png": big.convert("RGB"),
        "rgba.png": rgba,
        "palette.png": big.convert("P"),
        "gray.jpg": gray.resize((56, 56)),
        "rgb.jpeg": big.convert("RGB"),
    }
    written = []
    for name, picture in paths.items():
        path = folder / name
        picture.save(path, quality=95) if name.endswith(("jpg", "jpeg")) else picture.save(path)
        written.append(path)
    return written


def test_predict_image_files_of_any_size_and_mode(trained, run_main, tmp_path):
    data = trained["data"]
    index = 3
    expected = data.classes[int(data.test.labels[index])]
    paths = write_variants(tmp_path, band_image(data, index))
    for path in paths:
        result = run_main("predict", trained["run"], path, "--top-k", "1")
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if UNLIKE_SENTENCE not in line]  # tests/test_unlike.py
        match = PREDICTION_LINE.match(lines[0])
        assert match, lines[0]
        assert match["path"] is None
        assert match["label"] == expected, path.name
        assert 0.0 <= float(match["percent"]) <= 100.0
        assert lines[1:] == [f"  1. {expected:<12} {match['percent']:>5}%"]


def test_predict_several_files_prefixes_each_line_with_its_path(trained, run_main, tmp_path):
    paths = write_variants(tmp_path, band_image(trained["data"], 0))[:3]
    result = run_main("predict", trained["run"], *paths, "--top-k", "2")
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if not line.startswith("  ")]
    assert [PREDICTION_LINE.match(line)["path"] for line in heads] == [str(p) for p in paths]
    lines = [line for line in result.stdout.splitlines() if UNLIKE_SENTENCE not in line]  # tests/test_unlike.py
    styles = [line for line in lines if line.startswith("  input style ")]
    # gray.png is 28x28 on black like the data (auto keeps it raw: no line); the 100x60 pictures go as photos
    assert len(styles) == 2 and all(line.startswith("  input style photo: 100x60 on a dark") for line in styles)
    assert len(lines) == 3 * 3 + 2


def test_predict_files_json(trained, run_main, tmp_path):
    paths = write_variants(tmp_path, band_image(trained["data"], 1))[:2]
    result = run_main("predict", trained["run"], *paths, "--json")
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.splitlines()[-1])
    assert [p["image"] for p in values["predictions"]] == [str(p) for p in paths]
    assert all(len(p["top_k"]) == 3 for p in values["predictions"])
    assert result.stdout.count("\n") == 1  # human lines went to stderr
    assert "Predicted:" in result.stderr


def test_image_files_become_the_training_datas_shape_and_type(tmp_path):
    image = np.zeros((28, 28), dtype=np.uint8)
    image[10:14, 4:24] = 230
    prep = Preprocessing()
    for path in write_variants(tmp_path, image):
        tensor = load_image(path, prep)
        assert tensor.shape == (1, 28, 28), path.name
        assert tensor.dtype == torch.uint8
    exact = load_image(tmp_path / "gray.png", prep)
    assert np.array_equal(exact[0].numpy(), image)
    assert torch.equal(load_image(tmp_path / "rgba.png", prep), load_image(tmp_path / "rgb-100x60.png", prep))


def test_transparent_pixels_become_the_black_background(tmp_path):
    Image.new("RGBA", (40, 40), (255, 255, 255, 0)).save(tmp_path / "clear.png")
    assert int(load_image(tmp_path / "clear.png", Preprocessing()).max()) == 0


def test_a_file_that_is_not_an_image_is_a_data_error(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.png: cannot be read as an image"):
        load_image(path, Preprocessing())


def test_export_safetensors_loads_back_with_the_same_weights_and_predictions(trained, run_main, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    out = tmp_path / "model.safetensors"
    result = run_main("export", trained["run"], "--format", "safetensors", "--out", out)
    assert result.returncode == 0, result.stderr
    state = load_file(str(out))
    expected = load_checkpoint(trained["run"]).model_state
    assert sorted(state) == sorted(expected)
    assert all(torch.equal(state[k], expected[k]) for k in expected)
    with safe_open(str(out), framework="pt") as handle:
        assert handle.metadata()["classes"].split("\n") == list(trained["data"].classes)
    reloaded = Predictor.from_checkpoint(out, model="mlp")
    images = trained["data"].test.images
    assert torch.equal(reloaded.probabilities(images), trained["predictor"].probabilities(images))


def test_export_torchscript_runs_without_trainlab_and_quietly(trained, run_main, tmp_path):
    import warnings

    out = tmp_path / "model.ts"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_main("export", trained["run"], "--format", "torchscript", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert [str(w.message) for w in caught] == []  # no deprecation noise from torch.jit for the user
    assert result.stdout == f"Wrote torchscript to {out}\n"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated too
        scripted = torch.jit.load(str(out))
    images = trained["data"].test.images[:16]  # uint8: the graph holds the preprocessing
    predictor = trained["predictor"]
    with torch.no_grad():
        assert torch.allclose(scripted(images), predictor.model(predictor.preprocessing(images)), atol=0, rtol=0)


def test_export_onnx_takes_uint8_images_and_matches_the_predictor(trained, run_main, tmp_path):
    onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    out = tmp_path / "model.onnx"
    result = run_main("export", trained["run"], "--format", "onnx", "--out", out)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"Wrote onnx to {out}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temporary file left beside it
    metadata = {prop.key: prop.value for prop in onnx.load(str(out)).metadata_props}
    assert metadata["classes"].split("\n") == list(trained["predictor"].classes)
    session = ort.InferenceSession(str(out))
    for count in (1, 7):  # the batch size is dynamic
        images = trained["data"].test.images[:count]
        logits = session.run(None, {"images": images.numpy()})[0]
        expected = trained["predictor"].probabilities(images).numpy()
        assert logits.shape == (count, 10)
        np.testing.assert_allclose(torch.softmax(torch.from_numpy(logits), 1).numpy(), expected, atol=1e-5)


def test_export_onnx_without_its_packages_says_what_to_install(trained, run_main, tmp_path, monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *args: None if name == "onnxscript" else real_find_spec(name, *args)
    )
    result = run_main("export", trained["run"], "--format", "onnx", "--out", tmp_path / "m.onnx")
    assert result.returncode == 2
    assert result.stderr == "trainlab export: error: ONNX export needs onnxscript: pip install 'trainlab[onnx]'\n"
    assert not (tmp_path / "m.onnx").exists()


def test_exported_files_are_readable_by_others_as_usual(trained, run_main, tmp_path):
    out = tmp_path / "model.pth"
    assert run_main("export", trained["run"], "--format", "state-dict", "--out", out).returncode == 0
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask


def test_export_to_an_unwritable_place_is_one_line_exit_2(trained, run_main, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = run_main("export", trained["run"], "--format", "state-dict", "--out", blocker / "model.pth")
    assert result.returncode == 2
    assert result.stderr.startswith(f"trainlab export: error: cannot write {blocker / 'model.pth'}: ")
    assert result.stderr.count("\n") == 1
