"""--tta flip: every evaluation of the run (validation, test, evaluate, predict, the server's model, exports) is
the mean of the logits of each image and its mirror image; the weights saved are the model's own."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from trainlab import Predictor, TrainConfig, fit, load_dataset
from trainlab.checkpoint import load_checkpoint, model_state, unwrap_model
from trainlab.config import read_config_file
from trainlab.engine.loop import evaluate
from trainlab.engine.losses import make_loss
from trainlab.models import create_model
from trainlab.models.tta import FlipAveraged, with_tta

from conftest import assert_one_line_error, read_metrics

pytestmark = pytest.mark.usefixtures("no_run_reports")


def test_flip_averaged_logits_are_the_mean_of_the_image_and_its_mirror_image():
    torch.manual_seed(0)
    net = create_model("mlp", (1, 28, 28), 10).eval()
    images = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        expected = (net(images) + net(images.flip(-1))) / 2
        assert torch.equal(FlipAveraged(net)(images), expected)
        assert not torch.allclose(net(images), expected)  # the mirror image changes the logits of these images
    assert with_tta(net, "none") is net
    assert unwrap_model(with_tta(net, "flip")) is net
    assert list(model_state(FlipAveraged(net))) == list(net.state_dict())  # no prefix in what is saved


@pytest.fixture(scope="module")
def flip_run(tmp_path_factory):
    from conftest import write_fashion_layout

    root = tmp_path_factory.mktemp("tta")
    data_dir = write_fashion_layout(root / "data")
    data = load_dataset(data_dir=data_dir, download=False)
    config = TrainConfig(
        optimizer="adam", epochs=1, batch_size=32, device="cpu", threads=1, tta="flip", data_dir=str(data_dir)
    )
    summary = fit(config, data=data, run_dir=root / "run")
    return {"run": root / "run", "data": data, "summary": summary, "config": config}


def the_runs_net(run) -> torch.nn.Module:
    net = create_model("mlp", (1, 28, 28), 10)
    net.load_state_dict(load_checkpoint(run).model_state)
    return net.eval()


def test_the_runs_test_figures_are_those_of_the_flip_averaged_model(flip_run):
    run, data = flip_run["run"], flip_run["data"]
    assert read_config_file(run / "config.toml")["tta"] == "flip"
    net, loss_fn = the_runs_net(run), make_loss("cross-entropy", 10, 0.0)
    preprocess = Predictor.from_checkpoint(run).preprocessing
    flipped = evaluate(FlipAveraged(net), data.test, loss_fn, preprocess)
    plain = evaluate(net, data.test, loss_fn, preprocess)
    last = read_metrics(run)[-1]
    assert last["test_loss"] == pytest.approx(flipped["loss"], rel=1e-6)
    assert last["test_accuracy"] == flipped["accuracy"]
    assert flipped["loss"] != pytest.approx(plain["loss"], rel=1e-4)  # so the figures above tell the two apart


def test_predict_evaluate_and_exports_follow_the_runs_tta(flip_run, run_main, tmp_path):
    run, data = flip_run["run"], flip_run["data"]
    predictor = Predictor.from_checkpoint(run)
    assert predictor.tta == "flip"
    net, images = the_runs_net(run), data.test.images[:16]
    with torch.no_grad():
        expected = torch.softmax(FlipAveraged(net)(predictor.preprocessing(images)), 1)
    assert torch.allclose(predictor.probabilities(images), expected, atol=1e-6, rtol=0)

    result = run_main("evaluate", run, "--json", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["accuracy"] == read_metrics(run)[-1]["test_accuracy"]

    out = tmp_path / "model.safetensors"
    assert run_main("export", run, "--format", "safetensors", "--out", out).returncode == 0
    reloaded = Predictor.from_checkpoint(out, model="mlp")
    assert reloaded.tta == "flip"
    assert torch.equal(reloaded.probabilities(images), predictor.probabilities(images))

    script = tmp_path / "model.ts"
    assert run_main("export", run, "--format", "torchscript", "--out", script).returncode == 0
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
        logits = torch.jit.load(str(script))(images)  # uint8 in: preprocessing and the flip are in the graph
    assert torch.allclose(torch.softmax(logits, 1), expected, atol=1e-6, rtol=0)

    ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")
    graph = tmp_path / "model.onnx"
    assert run_main("export", run, "--format", "onnx", "--out", graph).returncode == 0
    onnx_logits = ort.InferenceSession(str(graph)).run(None, {"images": images.numpy()})[0]
    assert torch.allclose(torch.softmax(torch.from_numpy(onnx_logits), 1), expected, atol=1e-5, rtol=0)


def test_an_unknown_tta_is_one_line_and_exit_2(tiny_data, tmp_path, run_main):
    result = run_main("train", "--data-dir", tiny_data, "--run-dir", tmp_path / "run", "--tta", "rotate")
    assert_one_line_error(result, "unknown tta 'rotate'; choose one of: none, flip")
    assert not (tmp_path / "run").exists()
