"""Predictor: a model rebuilt from its checkpoint, with the training preprocessing, for new images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trainlab.checkpoint import LoadedCheckpoint, load_checkpoint, load_weights
from trainlab.data.builtin import BUILTIN_DATASETS
from trainlab.data.decoding import MAX_IMAGE_PIXELS, load_image  # noqa: F401 - the one decoding path, re-exported
from trainlab.data.transforms import Preprocessing
from trainlab.errors import CheckpointError
from trainlab.models import check_model_from_file, create_model


@dataclass
class Prediction:
    """The top classes for one image."""

    label: str
    index: int
    probability: float
    top: list[tuple[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "top_k": [{"label": name, "probability": p} for name, p in self.top],
        }


class Predictor:
    """Loads a checkpoint once and predicts classes for uint8 images or image files."""

    def __init__(
        self,
        model: nn.Module,
        classes: tuple[str, ...],
        preprocessing: Preprocessing,
        device: str | torch.device = "cpu",
        model_name: str | None = None,
        model_arguments: dict[str, Any] | None = None,
    ):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.classes = tuple(classes)
        self.preprocessing = preprocessing
        self.model_name = model_name  # the --model name that rebuilds the model (recorded in exports)
        self.model_arguments = dict(model_arguments or {})

    @classmethod
    def from_checkpoint(
        cls,
        checkpoint: str | os.PathLike | LoadedCheckpoint,
        model: str | None = None,
        dataset: str = "fashion-mnist",
        trust_pickle: bool = False,
        device: str | torch.device = "cpu",
        trust_model_code: bool = False,
    ) -> Predictor:
        """Rebuild the model from a trainlab checkpoint or export; a plain state_dict needs `model` (e.g. 'mlp').

        A package.module:Class model named by the file is built only when `model` names the same one or
        trust_model_code is set: a crafted checkpoint never imports code.
        """
        loaded = checkpoint if isinstance(checkpoint, LoadedCheckpoint) else load_checkpoint(checkpoint, trust_pickle)
        config = loaded.config or {}
        model_name = model or config.get("model")
        if model_name is None:
            raise CheckpointError(
                f"{loaded.path} is a plain state_dict that does not name its model; pass --model (e.g. --model mlp)"
            )
        extra = config.get("extra", {})
        check_model_from_file(model_name, extra, str(loaded.path), named_by_user=model, trusted=trust_model_code)
        if loaded.preprocessing is not None:
            preprocessing = Preprocessing.from_dict(loaded.preprocessing)
        else:
            preprocessing = Preprocessing()  # plain state_dicts: the tutorial's 1x28x28 input
        classes = loaded.classes or BUILTIN_DATASETS[dataset].classes
        net = create_model(
            model_name, (preprocessing.channels, preprocessing.height, preprocessing.width), len(classes), **extra
        )
        load_weights(net, loaded.model_state, source=str(loaded.path))
        return cls(net, classes, preprocessing, device, model_name, extra)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities for a uint8 batch (N, C, H, W)."""
        with torch.inference_mode():
            logits = self.model(self.preprocessing(images.to(self.device)))
            return torch.softmax(logits.float(), dim=1).cpu()

    def predict(self, images: torch.Tensor, top_k: int = 1) -> list[Prediction]:
        """Top-k predictions for a uint8 batch (N, C, H, W)."""
        probabilities = self.probabilities(images)
        k = min(max(top_k, 1), len(self.classes))
        values, indices = probabilities.topk(k, dim=1)
        return [
            Prediction(
                self.classes[int(row_i[0])],
                int(row_i[0]),
                float(row_v[0]),
                [(self.classes[int(i)], float(v)) for v, i in zip(row_v, row_i, strict=True)],
            )
            for row_v, row_i in zip(values, indices, strict=True)
        ]

    def predict_files(self, paths: list[str | os.PathLike], top_k: int = 1) -> list[Prediction]:
        """Top-k predictions for image files of any size and mode."""
        batch = torch.stack([load_image(path, self.preprocessing) for path in paths])
        return self.predict(batch, top_k)
