"""Objects that show themselves in a notebook: Run, data sets, Predictor and predictions; the one-import API."""

from __future__ import annotations

import base64
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
