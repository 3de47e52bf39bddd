"""Using trained models: the Predictor (shared preprocessing), Run (a run directory to look at) and export.

Imported lazily: a Run shown in a notebook reads files and draws PNGs without importing torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Predictor": "trainlab.inference.predictor",
    "Prediction": "trainlab.inference.predictor",
    "load_image": "trainlab.inference.predictor",
    "Run": "trainlab.inference.run",
    "RunSummary": "trainlab.inference.run",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainlab.inference' has no attribute {name!r}")
