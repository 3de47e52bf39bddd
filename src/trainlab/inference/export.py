"""Export a trained model: a plain state_dict (the tutorial's model.pth), safetensors, TorchScript or ONNX.

TorchScript and ONNX graphs include the training preprocessing: they take uint8 images (N, C, H, W), as
the training data and `Predictor` do, and return logits, so a runtime without trainlab needs no
knowledge of scaling or normalization.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

from trainlab.checkpoint import EXPORT_METADATA_KEY, export_description, model_state, unwrap_model
from trainlab.data.transforms import Preprocessing
from trainlab.errors import TrainlabError
from trainlab.fileio import atomic_path, atomic_write, check_replaceable
from trainlab.inference.predictor import Predictor

EXPORT_FORMATS = ("state-dict", "safetensors", "torchscript", "onnx")


class PreprocessedModel(nn.Module):
    """The model behind its preprocessing: uint8 images in, logits out."""

    def __init__(self, model: nn.Module, preprocessing: Preprocessing):
        super().__init__()
        self.model = model
        self.preprocessing = preprocessing

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(self.preprocessing(images))


EXPORT_KINDS = {
    "state-dict": "PyTorch file",
    "safetensors": "safetensors file",
    "torchscript": "PyTorch file",
    "onnx": "ONNX model",
}


def export_model(
    predictor: Predictor, export_format: str, out: str | os.PathLike, source: str | os.PathLike | None = None
) -> Path:
    """Write the predictor's model to `out` in `export_format`, atomically.

    An existing `out` is replaced only if it is a file of the same kind, and never when it is `source`
    (the checkpoint being exported).
    """
    if export_format not in EXPORT_FORMATS:
        raise TrainlabError(f"unknown export format {export_format!r}; choose one of: {', '.join(EXPORT_FORMATS)}")
    check_replaceable(out, EXPORT_KINDS[export_format])
    if source is not None and Path(out).exists() and Path(out).resolve() == Path(source).resolve():
        raise TrainlabError(f"--out {out} is the checkpoint being exported; choose another file name")
    state = {k: v.detach().cpu().contiguous() for k, v in model_state(predictor.model).items()}
    description = export_description(
        predictor.model_name or "mlp",
        predictor.model_arguments,
        predictor.classes,
        predictor.preprocessing.to_dict(),
        predictor.tta,
    )
    if export_format == "state-dict":
        # The tutorial's model.pth: a state_dict of tensors. The description rides in its _metadata, which
        # load_state_dict passes to modules that ignore keys they do not know, so the tutorial's code loads it.
        ordered = OrderedDict(state)
        metadata = OrderedDict(getattr(unwrap_model(predictor.model).state_dict(), "_metadata", {}))
        metadata[""] = {**metadata.get("", {}), EXPORT_METADATA_KEY: description}
        ordered._metadata = metadata  # type: ignore[attr-defined]
        return atomic_write(out, lambda handle: torch.save(ordered, handle))
    if export_format == "safetensors":
        from safetensors.torch import save

        metadata = {
            "classes": "\n".join(predictor.classes),
            "format": "trainlab-weights",
            EXPORT_METADATA_KEY: description,
        }
        content = save(state, metadata=metadata)
        return atomic_write(out, lambda handle: handle.write(content))
    prep = predictor.preprocessing
    graph = PreprocessedModel(predictor.model.cpu().eval(), prep).eval()
    example = torch.zeros(2, prep.channels, prep.height, prep.width, dtype=torch.uint8)
    if export_format == "onnx":
        return export_onnx(graph, example, predictor.classes, out)
    if export_format == "torchscript":
        with warnings.catch_warnings():
            # torch marks TorchScript deprecated; it is still what LibTorch (C++) and older runtimes load, so
            # users asked for it get the file without three warnings about torch's internals
            warnings.simplefilter("ignore", FutureWarning)
            traced = torch.jit.trace(graph, example)
            return atomic_write(out, lambda handle: torch.jit.save(traced, handle))
    raise ValueError(f"unknown export format {export_format!r}")


def export_onnx(graph: nn.Module, example: torch.Tensor, classes: tuple[str, ...], out: str | os.PathLike) -> Path:
    """ONNX through torch.export (needs the `onnx` and `onnxscript` packages), with a dynamic batch size."""
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise TrainlabError(f"ONNX export needs {' and '.join(missing)}: pip install 'trainlab[onnx]'")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's notes on its own internals are not for the user
        program = torch.onnx.export(
            graph,
            (example,),
            input_names=["images"],
            output_names=["logits"],
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            dynamo=True,
            verbose=False,
        )
    program.model.metadata_props["classes"] = "\n".join(classes)
    with atomic_path(out) as temporary:
        program.save(str(temporary))
    return Path(out)
