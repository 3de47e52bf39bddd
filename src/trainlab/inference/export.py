"""Export a trained model: a plain state_dict (the tutorial's model.pth), safetensors, or TorchScript."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch

from trainlab.checkpoint import model_state
from trainlab.fileio import atomic_write
from trainlab.inference.predictor import Predictor

EXPORT_FORMATS = ("state-dict", "safetensors", "torchscript")


def export_model(predictor: Predictor, export_format: str, out: str | os.PathLike) -> Path:
    """Write the predictor's model to `out` in `export_format`, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model_state(predictor.model).items()}
    if export_format == "state-dict":
        return atomic_write(out, lambda handle: torch.save(state, handle))
    if export_format == "safetensors":
        from safetensors.torch import save

        metadata = {"classes": "\n".join(predictor.classes), "format": "trainlab-weights"}
        content = save(state, metadata=metadata)
        return atomic_write(out, lambda handle: handle.write(content))
    if export_format == "torchscript":
        prep = predictor.preprocessing
        example = torch.zeros(1, prep.channels, prep.height, prep.width)
        with warnings.catch_warnings():
            # torch marks TorchScript deprecated; it is still what LibTorch (C++) and older runtimes load, so
            # users asked for it get the file without three warnings about torch's internals
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(predictor.model.cpu().eval(), example)
            return atomic_write(out, lambda handle: torch.jit.save(traced, handle))
    raise ValueError(f"unknown export format {export_format!r}")
