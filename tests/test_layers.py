"""Layers stand on lower layers: no import runs back up, and inference and serving never load training."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import trainlab

PACKAGE = Path(trainlab.__file__).parent

# lowest first; a module belongs to the longest prefix named here. The same table is in trainlab/__init__.py.
LAYERS = (
    ("trainlab", "trainlab.errors", "trainlab.validation", "trainlab.fileio", "trainlab.layout"),
    (
        "trainlab.config_file",
        "trainlab.datasets_registry",
        "trainlab.model_names",
        "trainlab.data_source",
        "trainlab.config_checks",
        "trainlab.config",
        "trainlab.resolution",
        "trainlab.resume_advice",
    ),
    ("trainlab.data",),
    ("trainlab.models",),
    ("trainlab.engine",),
    ("trainlab.checkpoint_records", "trainlab.checkpoint"),
    ("trainlab.reports",),
    ("trainlab.training",),
    ("trainlab.inference",),
    ("trainlab.serve",),
    ("trainlab.tuning",),
    ("trainlab.reviewing",),
    ("trainlab.devrun",),
    ("trainlab.cli", "trainlab.__main__"),
    ("trainlab.testing",),
)


def layer_of(module: str) -> int | None:
    """The index in LAYERS of the longest prefix that names `module` (None: in no layer)."""
    best, found = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[str, int]]:
    """Every trainlab module `path` imports, at module level or inside a function, with its line."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from trainlab.training import budget` imports trainlab.training.budget
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names]
    return [(target, line) for target, line in found if target.split(".")[0] == "trainlab"]


def sources() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "static" not in path.parts)


def test_every_module_of_trainlab_has_a_layer():
    assert [module_name(path) for path in sources() if layer_of(module_name(path)) is None] == []


def test_no_import_runs_from_a_lower_layer_to_a_higher_one_not_even_inside_a_function():
    upward = []
    for path in sources():
        source = module_name(path)
        for target, line in imported_modules(path):
            if layer_of(target) is not None and layer_of(target) > layer_of(source):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {source} imports {target}")
    assert upward == []


def modules_loaded_by(code: str) -> list[str]:
    """The trainlab modules a fresh interpreter holds after running `code`."""
    code += "\nimport sys\nprint('\\n'.join(sorted(m for m in sys.modules if m.startswith('trainlab'))))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_serving_and_evaluating_a_checkpoint_never_import_the_training_package(tiny_data, tmp_path):
    import torch

    from trainlab.models import create_model

    weights = tmp_path / "model.pth"
    torch.save(create_model("mlp").state_dict(), weights)  # a plain state_dict, as the tutorial saves it
    where = f"checkpoint={str(weights)!r}, model='mlp', data_dir={str(tiny_data)!r}"
    for code in (
        "from trainlab.serve.app import create_app\n"
        "from trainlab.serve.settings import ServeSettings\n"
        f"create_app(ServeSettings({where}))",
        "from trainlab import evaluate_checkpoint, Predictor, evaluate, train_one_epoch\n"
        f"evaluate_checkpoint({where.replace('checkpoint=', '')}, device='cpu', download=False)",
    ):
        loaded = modules_loaded_by(code)
        above = [name for name in loaded if name.split(".")[1:2] in (["training"], ["tuning"], ["cli"])]
        assert above == [], code
        assert "trainlab.engine.runtime" in loaded, code  # they stand on the engine instead


def test_training_fit_without_a_tracker_refuses_a_tracked_config_naming_trainlab_fit(tiny_data, tmp_path):
    from trainlab.config import TrainConfig
    from trainlab.errors import TrainlabError
    from trainlab.training import fit

    config = TrainConfig(data_dir=str(tiny_data), tracking="mlflow", device="cpu")
    with pytest.raises(TrainlabError) as caught:
        fit(config, run_dir=tmp_path / "run")
    assert str(caught.value) == (
        "tracking 'mlflow' needs its tracker: call trainlab.fit, which passes it, or pass tracker="
    )
    assert not (tmp_path / "run").exists()
