"""Objects that show themselves in a notebook: Run, data sets, Predictor and predictions; the one-import API."""

from __future__ import annotations

import base64
import html
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainlab.testing.synthetic import write_fashion_layout


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path, dict]:
    """(data dir, run dir, what tl.fit returned) of a two-epoch MLP run on generated data, with its PNG reports."""
    import trainlab as tl

    root = tmp_path_factory.mktemp("notebook")
    data_dir = write_fashion_layout(root / "data")
    config = tl.TrainConfig(epochs=2, device="cpu", data_dir=str(data_dir), threads=1, optimizer="adam")
    summary = tl.fit(config, run_dir=root / "run", download=False, reports=True)
    return data_dir, root / "run", summary


def embedded_pngs(text: str) -> list:
    """The base64 PNGs embedded in HTML, each decoded and opened with PIL (a broken one raises)."""
    from PIL import Image

    images = []
    for encoded in re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text):
        image = Image.open(io.BytesIO(base64.b64decode(encoded, validate=True)))
        image.load()
        images.append(image)
    return images


def test_the_python_api_is_one_import_and_loads_no_torch():
    code = (
        "import sys, trainlab as tl\n"
        "names = ['fit', 'Run', 'RunSummary', 'Predictor', 'Prediction', 'load_dataset', 'DatasetSplits']\n"
        "missing = [n for n in names if n not in dir(tl)]\n"
        "print(missing, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split("\n")[0] == "[] False"


def test_fit_returns_its_summary_dict_whose_run_shows_the_run(trained):
    import trainlab as tl

    _, run_dir, summary = trained
    assert isinstance(summary, dict) and summary["status"] == "finished" and summary["epochs"] == 2
    assert isinstance(summary.run, tl.Run) and summary.run.path == run_dir
    assert summary._repr_html_() == summary.run._repr_html_()


def test_a_runs_repr_is_one_line_with_model_data_status_epochs_and_test_accuracy(trained):
    import trainlab as tl

    _, run_dir, summary = trained
    run = tl.Run(run_dir)
    assert repr(run) == (
        f"Run({str(run_dir)!r}: mlp on fashion-mnist, finished, 2/2 epochs, "
        f"test accuracy {100 * summary['test_accuracy']:.1f}%)"
    )
    assert [row["epoch"] for row in run.metrics] == [1, 2]
    assert run.config["optimizer"] == "adam" and run.summary["steps"] == summary["steps"]
    assert run.checkpoints == {"last": run_dir / "checkpoints" / "last.pt"}
    assert set(run.reports) == {"learning_curves", "confusion_matrix", "top_losses"}


def test_a_runs_html_shows_settings_figures_and_its_report_pngs_as_they_are(trained):
    import trainlab as tl

    _, run_dir, summary = trained
    run = tl.Run(run_dir)
    page = run._repr_html_()
    assert "<th style='text-align:left'>optimizer</th><td>adam</td>" in page
    assert f"<th style='text-align:left'>test accuracy</th><td>{summary['test_accuracy']:.2%}</td>" in page
    assert f"<summary>all {len(run.config)} settings</summary>" in page
    embedded = [base64.b64decode(found) for found in re.findall(r"base64,([A-Za-z0-9+/=]+)", page)]
    assert embedded == [(run_dir / "learning_curves.png").read_bytes(), (run_dir / "confusion_matrix.png").read_bytes()]
    assert len(embedded_pngs(page)) == 2


def test_a_run_without_report_pngs_draws_its_curves_small_from_metrics(trained, tmp_path):
    import trainlab as tl

    _, run_dir, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    for name in ("learning_curves.png", "confusion_matrix.png", "top_losses.png"):
        (copy / name).unlink()
    (image,) = embedded_pngs(tl.Run(copy)._repr_html_())
    assert image.width < 600  # small: 7 inches at 72 dpi, trimmed


def test_showing_a_run_never_imports_torch(trained, tmp_path):
    _, run_dir, _ = trained
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    (copy / "learning_curves.png").unlink()  # drawn from metrics.jsonl: matplotlib, still no torch
    code = (
        f"import sys, trainlab as tl\nrun = tl.Run({str(copy)!r})\nrepr(run)\nassert 'base64' in run._repr_html_()\n"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_a_folder_that_is_no_run_is_one_line_naming_it(tmp_path):
    import trainlab as tl

    with pytest.raises(tl.TrainlabError) as caught:
        tl.Run(tmp_path)
    assert str(caught.value) == (
        f"{tmp_path}: not a trainlab run directory (no config.toml); give the folder fit or `trainlab train` "
        "wrote (--run-dir)"
    )


# data sets -------------------------------------------------------------------------------------------------------

FASHION_LINE = "10 classes: T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot"


def test_a_data_sets_repr_is_its_sizes_shape_and_classes_never_its_pixels(trained):
    import trainlab as tl

    data = tl.load_dataset(data_dir=trained[0], download=False)
    assert repr(data) == f"DatasetSplits(train 640 images 1x28x28, test 160 images 1x28x28; {FASHION_LINE})"
    assert repr(data.test) == f"ImageData(160 images 1x28x28, {FASHION_LINE})"


def test_a_data_set_shows_a_3x3_grid_of_samples_and_its_class_counts(trained):
    import trainlab as tl

    data = tl.load_dataset(data_dir=trained[0], download=False)
    page = data._repr_html_()
    assert "<tr><th>class</th><th>train</th><th>test</th></tr>" in page
    assert "<tr><th style='text-align:left'>Ankle boot</th><td>64</td><td>16</td></tr>" in page
    assert "<tr><th>total</th><td><b>640</b></td><td><b>160</b></td></tr>" in page
    (grid,) = embedded_pngs(page)
    png = data._repr_png_()
    assert base64.b64encode(png).decode() in page  # drawn once, shown in both forms
    assert png is data._repr_png_()
    assert 250 < grid.width < 400 and 250 < grid.height < 400  # three 1.5-inch cells a side at 72 dpi


def test_a_streamed_data_set_shows_its_grid_decoding_only_nine_files(tmp_path, monkeypatch):
    import trainlab as tl
    import trainlab.data.streaming as streaming
    from trainlab.testing.image_sets import SHAPE_CLASSES, shapes, write_class_folders

    images, labels = shapes(40, side=12)
    write_class_folders(tmp_path / "shapes", images, labels, SHAPE_CLASSES)
    config = tl.TrainConfig(dataset="folder", image_dir=str(tmp_path / "shapes"), memory_budget_mb=0.0, workers=0)
    data = tl.load_split(config, "test")
    decoded = []
    real = streaming.decode_files
    monkeypatch.setattr(streaming, "decode_files", lambda paths, *rest: decoded.append(rest[1]) or real(paths, *rest))
    assert repr(data) == "ImageData(40 images 3x12x12, streamed from files, 4 classes: cross, disc, ring, square)"
    assert len(embedded_pngs(data._repr_html_())) == 1
    assert [len(positions) for positions in decoded] == [9]


# Predictor and predictions ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor_and_picture(trained, tmp_path_factory):
    """(the run's Predictor, a test image as a gray PNG file, its (28, 28) uint8 pixels)."""
    import numpy as np
    from PIL import Image

    import trainlab as tl

    data_dir, run_dir, _ = trained
    pixels = tl.load_split("fashion-mnist", "test", data_dir, download=False).images[7, 0].numpy()
    path = tmp_path_factory.mktemp("picture") / "seven.png"
    Image.fromarray(np.ascontiguousarray(pixels)).save(path)
    return tl.Run(run_dir).predictor(), path, pixels


def test_a_predictor_shows_its_model_checkpoint_classes_input_and_input_style(trained, predictor_and_picture):
    predictor, _, _ = predictor_and_picture
    shown = repr(predictor)
    assert "\n" not in shown
    assert shown.startswith(f"Predictor(mlp from {trained[1] / 'checkpoints' / 'last.pt'}; {FASHION_LINE}; ")
    assert "input 1x28x28 uint8 scaled to 0-1; pictures: input style auto (raw or photo) to match " in shown
    assert shown.endswith("; tta none; on cpu)")


def test_every_kind_of_picture_gets_what_predict_gives_its_file(predictor_and_picture):
    import numpy as np
    import torch
    from PIL import Image

    predictor, path, pixels = predictor_and_picture
    (expected,) = predictor.predict_files([path], top_k=3)  # what `trainlab predict` and the server do
    pictures = {
        "str path": str(path),
        "Path": path,
        "bytes": path.read_bytes(),
        "PIL image": Image.open(path),
        "numpy HxW uint8": pixels,
        "numpy HxWx1": pixels[:, :, None],
        "numpy HxWx3": np.stack([pixels] * 3, axis=-1),
        "numpy HxW float": pixels.astype(np.float32) / 255,
        "tensor CxHxW uint8": torch.from_numpy(pixels.copy())[None],
        "tensor HxW float64": torch.from_numpy(pixels.astype(np.float64) / 255),
    }
    for kind, picture in pictures.items():
        prediction = predictor.predict(picture, top_k=3)
        assert [label for label, _ in prediction.top] == [label for label, _ in expected.top], kind
        assert [p for _, p in prediction.top] == pytest.approx([p for _, p in expected.top], abs=1e-6), kind
        assert torch.equal(prediction.model_input, expected.model_input), kind
        assert prediction.input_style == expected.input_style, kind
    listed = predictor.predict(list(pictures.values()), top_k=3)
    assert [p.label for p in listed] == [expected.label] * len(pictures)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda np, torch: np.zeros((28, 28), dtype=np.int64),
            "picture: a numpy array of dtype int64; give uint8 levels (0-255) or floats (0.0-1.0), "
            "e.g. array.astype('uint8')",
        ),
        (
            lambda np, torch: np.zeros((2, 1, 28, 28), dtype=np.uint8),
            "picture: a numpy array of shape (2, 1, 28, 28) (4 dimensions) is not one picture; give (H, W), "
            "(H, W, C) or (C, H, W) with C of 1, 3 or 4, or a list of pictures",
        ),
        (
            lambda np, torch: torch.full((1, 28, 28), 2.0),
            "picture: a tensor of floats from 2 to 2; floats must lie in 0.0-1.0 (divide 0-255 levels by 255, "
            "or give uint8)",
        ),
        (
            lambda np, torch: np.full((28, 28), np.nan),
            "picture: a numpy array of floats holding NaN or inf; give floats in 0.0-1.0 or uint8 levels",
        ),
        (
            lambda np, torch: torch.zeros((5, 28, 28), dtype=torch.uint8),
            "picture: a tensor of shape (5, 28, 28), whose first dimension is not 1, 3 or 4 channels; give one "
            "picture as (C, H, W) or (H, W)",
        ),
        (
            lambda np, torch: torch.zeros((2, 1, 28, 28)),
            "a batch tensor of shape (2, 1, 28, 28) and dtype float32: a (N, C, H, W) batch goes to the model as "
            "it is and must be uint8 (0-255); give batch.to(torch.uint8), or a list of pictures to have each made "
            "into the model's input",
        ),
        (
            lambda np, torch: b"these bytes are no image",
            "picture: cannot be read as an image (not a format PIL knows)",
        ),
        (
            lambda np, torch: {"pixels": 1},
            "picture: dict is not a picture; give a file path, image bytes, a PIL image, or a numpy array or "
            "tensor (H, W), (H, W, C) or (C, H, W)",
        ),
        (
            lambda np, torch: [np.zeros((28, 28), dtype=np.uint8), np.zeros((28, 0), dtype=np.uint8)],
            "picture 2 of 2: a numpy array of shape (28, 0) has no pixels",
        ),
    ],
)
def test_a_bad_picture_is_refused_in_one_line_naming_it_and_what_to_give(predictor_and_picture, make, message):
    import numpy as np
    import torch

    import trainlab as tl

    with pytest.raises(tl.TrainlabError) as caught:
        predictor_and_picture[0].predict(make(np, torch))
    assert str(caught.value) == message


def test_a_prediction_shows_its_picture_the_models_input_and_top_k_bars(predictor_and_picture):
    from PIL import Image

    predictor, path, _ = predictor_and_picture
    photo = Image.open(path).resize((140, 100))  # not the model's size: the model receives it made smaller
    prediction = predictor.predict(photo, top_k=3)
    assert repr(prediction) == f"Prediction({prediction.label!r}, {prediction.probability:.2f})"
    page = prediction._repr_html_()
    assert "picture (140x100)" in page and f"model input (28x28, {prediction.input_style})" in page
    for label, probability in prediction.top:
        assert f"<td style='text-align:right'>{label}</td>" in page and f"<td>{100 * probability:.1f}%</td>" in page
    picture, model_input = embedded_pngs(page)
    assert picture.size == (140, 100) and model_input.size == (112, 112)  # the input enlarged 4x, unsmoothed
    assert prediction.to_dict()["label"] == prediction.label  # the JSON form is unchanged


def test_a_prediction_keeps_a_large_photo_reduced_but_names_its_size(predictor_and_picture):
    from PIL import Image

    predictor, path, _ = predictor_and_picture
    prediction = predictor.predict(Image.open(path).resize((2000, 1500)))
    assert prediction.picture_size == (2000, 1500) and max(prediction.picture.size) <= 2 * 192
    assert "picture (2000x1500)" in prediction._repr_html_()


def test_the_readmes_python_api_example_runs_as_written_with_one_import(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Python API") :]
    code = section[section.index("```python\n") + len("```python\n") : section.index("```\n", 10)]
    assert [line for line in code.splitlines() if "import" in line] == ["import trainlab as tl"]
    write_fashion_layout(tmp_path / "data")  # the example's data_dir="data", generated
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("epochs=3", "epochs=1"), "README.md", "exec"), {})  # in this process: no second torch
    assert (tmp_path / "runs" / "notebook" / "learning_curves.png").is_file()
    assert "Epoch 1" in capsys.readouterr().out  # progress=True: the CLI's lines in a script


def test_a_damaged_run_shows_one_line_saying_why_instead_of_a_traceback(trained, tmp_path):
    import trainlab as tl

    copy = tmp_path / "copy"
    shutil.copytree(trained[1], copy)
    (copy / "metrics.jsonl").write_text('{"epoch": 1}\n{"epo')
    run = tl.Run(copy)
    assert repr(run).startswith(f"Run({str(copy)!r}: damaged: {copy / 'metrics.jsonl'}: cannot be read (")
    assert run._repr_html_() == f"<b>{html.escape(repr(run))}</b>"
