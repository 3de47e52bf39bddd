"""trainlab: the PyTorch "Learn the Basics" workflow as a fast, safe tool.

The public API is imported lazily so that `import trainlab` (and `trainlab --help`) stays fast.
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "trainlab.config",
    "TrainlabError": "trainlab.errors",
    "load_dataset": "trainlab.data",
    "ImageData": "trainlab.data",
    "BatchLoader": "trainlab.data",
    "create_model": "trainlab.models",
    "list_models": "trainlab.models",
    "NeuralNetwork": "trainlab.models.mlp",
    "fit": "trainlab.tuning.tracked",
    "evaluate": "trainlab.engine.loop",
    "train_one_epoch": "trainlab.engine.loop",
    "Predictor": "trainlab.inference",
    "evaluate_checkpoint": "trainlab.inference.evaluation",
    "load_checkpoint": "trainlab.checkpoint",
    "save_checkpoint": "trainlab.checkpoint",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
