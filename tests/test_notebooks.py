"""The example notebooks (examples/*.ipynb) run top to bottom in a fresh Jupyter kernel of this venv, as a reader runs
them, and are committed without outputs (so they cannot go stale). The ones on the real Fashion-MNIST are marked slow
and skipped, saying why, without it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook extra (pip install -e .[notebook]) is not installed")
nbclient = pytest.importorskip("nbclient", reason="the notebook extra (pip install -e .[notebook]) is not installed")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))
REAL_DATA = {"01_quickstart", "03_training_options_and_lr_finder", "04_save_load_export", "05_serve"}
CELL_TIMEOUT = 120  # seconds a cell may take before the notebook fails (each takes a few)


@pytest.fixture(autouse=True)
def _this_venvs_kernel(monkeypatch):
    """The python3 kernelspec of this venv before any user-level one (JUPYTER_PATH is searched first); its argv
    names `python`, which jupyter_client starts as this interpreter."""
    monkeypatch.setenv("JUPYTER_PATH", str(Path(sys.prefix) / "share" / "jupyter"))


def test_the_examples_are_the_tutorials_chapters_and_own_images():
    assert [path.stem for path in NOTEBOOKS] == [
        "01_quickstart",
        "02_own_dataset_csv_and_folder",
        "03_training_options_and_lr_finder",
        "04_save_load_export",
        "05_serve",
        "06_own_images",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_a_committed_notebook_holds_no_outputs_nor_execution_counts(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    stale = [
        number
        for number, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert stale == [], f"{path.name}: cells {stale} hold outputs; clear them (jupyter nbconvert --clear-output)"


def run_notebook(path: Path, folder: Path) -> None:
    """Execute a copy of the notebook in `folder` with a fresh python3 kernel of this venv; any error fails with
    its cell."""
    copy = folder / path.name
    shutil.copy(path, copy)
    notebook = nbformat.read(copy, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()


@pytest.mark.parametrize(
    "path",
    [pytest.param(path, marks=pytest.mark.slow) if path.stem in REAL_DATA else path for path in NOTEBOOKS],
    ids=lambda path: path.stem,
)
def test_every_example_notebook_runs_in_a_fresh_kernel_without_an_error(path, tmp_path, monkeypatch, request):
    if path.stem in REAL_DATA:
        # the kernel reads $TRAINLAB_DATA_DIR (as a reader's would); never a download in the tests
        monkeypatch.setenv("TRAINLAB_DATA_DIR", str(request.getfixturevalue("real_data")))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # tiny models on a shared machine: one thread each
    monkeypatch.setenv("MPLBACKEND", "Agg")
    run_notebook(path, tmp_path)
