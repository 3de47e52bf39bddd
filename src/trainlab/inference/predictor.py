"""Predictor: a model rebuilt from its checkpoint, with the training preprocessing, for new images."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from trainlab.checkpoint import LoadedCheckpoint, load_checkpoint, load_weights
from trainlab.config import TTA_CHOICES
from trainlab.data.decoding import (  # noqa: F401 - the one decoding path, re-exported
    MAX_IMAGE_PIXELS,
    InputImage,
    load_image,
    read_input,
)
from trainlab.data.input_styles import INPUT_STYLES, InputStyle, measure_look
from trainlab.data.pictures import check_batch
from trainlab.data.transforms import Preprocessing
from trainlab.datasets_registry import BUILTINS
from trainlab.engine.unlike import Scorer, forward_features
from trainlab.errors import CheckpointError
from trainlab.inference import showing
from trainlab.models import check_model_from_file, create_model
from trainlab.models.tta import with_tta
from trainlab.validation import check_choice


@dataclass
class Prediction:
    """The top classes for one image."""

    label: str
    index: int
    probability: float
    top: list[tuple[str, float]]
    input_style: str | None = None  # for image files: the style the picture went through ("raw" or "photo")
    input_reason: str | None = None  # and why
    unlike_training: bool | None = None  # looks unlike the training images (None: the checkpoint cannot say)
    unlike_score: float | None = None  # how unlike, in units of the checkpoint's threshold: flagged above 1
    picture: Any = field(default=None, repr=False, compare=False)  # the picture as given, at most ~2x as shown
    picture_size: tuple[int, int] | None = field(default=None, repr=False, compare=False)  # (width, height) given
    model_input: Any = field(default=None, repr=False, compare=False)  # uint8 (C, H, W): what the model received

    def __repr__(self) -> str:
        return showing.prediction_repr(self)

    def _repr_html_(self) -> str:
        return showing.prediction_html(self)

    def to_dict(self) -> dict[str, Any]:
        values = {
            "label": self.label,
            "index": self.index,
            "probability": self.probability,
            "top_k": [{"label": name, "probability": p} for name, p in self.top],
            "unlike_training": self.unlike_training,
            "unlike_score": self.unlike_score,
        }
        if self.input_style is not None:
            values["input_style"], values["input_style_reason"] = self.input_style, self.input_reason
        return values


UNLIKE_SENTENCE = "this picture looks unlike the training images; the answer may be meaningless"


def unlike_figures(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """An unlike record's plain figures (score, threshold, rate, held-out set, ...), its checks' tensors left out."""
    if record is None:
        return None
    return {key: value for key, value in record.items() if key != "checks"}


@dataclass
class ModelOutput:
    """What one forward pass gives for a batch: class probabilities and how unlike the training images each is."""

    probabilities: torch.Tensor  # (N, classes)
    unlike_scores: torch.Tensor | None = None  # (N,); None when the checkpoint has no unlike record

    def split(self, sizes: list[int]) -> list[ModelOutput]:
        """One ModelOutput per consecutive part of `sizes` images (the requests of a served batch)."""
        scores = self.unlike_scores.split(sizes) if self.unlike_scores is not None else [None] * len(sizes)
        return [ModelOutput(*parts) for parts in zip(self.probabilities.split(sizes), scores, strict=True)]


class Predictor:
    """Loads a checkpoint once and predicts classes for pictures: files, bytes, PIL images, arrays, tensors."""

    def __init__(
        self,
        model: nn.Module,
        classes: tuple[str, ...],
        preprocessing: Preprocessing,
        device: str | torch.device = "cpu",
        model_name: str | None = None,
        model_arguments: dict[str, Any] | None = None,
        tta: str = "none",
        unlike: dict[str, Any] | None = None,
    ):
        self.device = torch.device(device)
        self.tta = tta  # the run's test-time augmentation: predictions are computed as its evaluations were
        self.model = with_tta(model, tta).to(self.device).eval()
        self.classes = tuple(classes)
        self.preprocessing = preprocessing
        self.model_name = model_name  # the --model name that rebuilds the model (recorded in exports)
        self.model_arguments = dict(model_arguments or {})
        self.notes: list[str] = []  # what was assumed (e.g. where the training images' look came from)
        self.look_from: tuple[str, str | None] | None = None  # (data set, data dir) to measure the look on, once
        self.unlike = unlike  # the checkpoint's checked unlike record (engine.unlike), or None
        self.unlike_scorer = Scorer(unlike) if unlike is not None else None
        self.source = "the checkpoint"  # named in messages

    def __repr__(self) -> str:
        return showing.predictor_repr(self)

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
                f"{loaded.path} is {loaded.kind_name} that does not name its model; pass --model (e.g. --model mlp)"
            )
        extra = config.get("extra", {})
        check_model_from_file(model_name, extra, str(loaded.path), named_by_user=model, trusted=trust_model_code)
        if loaded.preprocessing is not None:
            preprocessing = Preprocessing.from_dict(loaded.preprocessing)
        else:  # a plain state_dict: the input of its data set (the tutorial's 1x28x28 for Fashion-MNIST)
            preprocessing = Preprocessing(*BUILTINS[dataset].shape)
        classes = loaded.classes or BUILTINS[dataset].classes
        net = create_model(
            model_name, (preprocessing.channels, preprocessing.height, preprocessing.width), len(classes), **extra
        )
        load_weights(net, loaded.model_state, source=str(loaded.path))
        tta = config.get("tta", "none")
        if tta not in TTA_CHOICES:
            raise CheckpointError(f"{loaded.path}: unknown test-time augmentation {tta!r} in its config")
        predictor = cls(net, classes, preprocessing, device, model_name, extra, tta, loaded.info.get("unlike"))
        predictor.source = str(loaded.path)
        if preprocessing.look is None:  # a checkpoint from before looks were recorded: measured when first needed
            predictor.look_from = (config.get("dataset", dataset), config.get("data_dir"))
        return predictor

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """Softmax class probabilities for a uint8 batch (N, C, H, W)."""
        with torch.inference_mode():
            logits = self.model(self.preprocessing(images.to(self.device)))
            return torch.softmax(logits.float(), dim=1).cpu()

    def outputs(self, images: torch.Tensor) -> ModelOutput:
        """Probabilities and, when the checkpoint records how, unlike scores for a uint8 batch (N, C, H, W)."""
        if self.unlike is None:
            return ModelOutput(self.probabilities(images))
        with torch.inference_mode():
            images = images.to(self.device)
            logits, features = forward_features(self.model, self.preprocessing(images))
            if features.shape[1] != self.unlike_scorer.features:
                raise CheckpointError(
                    f"{self.source}: its unlike record is for {self.unlike_scorer.features} features, the model "
                    f"gives {features.shape[1]}; recompute it with `trainlab calibrate`"
                )
            return ModelOutput(torch.softmax(logits, dim=1).cpu(), self.unlike_scorer(images, features).cpu())

    def predict(self, pictures: Any, top_k: int = 1, input_style: str = "auto") -> Prediction | list[Prediction]:
        """Top-k predictions, each saying whether its picture looks unlike the training data: one Prediction for
        one picture, a list for a list.

        A picture is a file path, an image file's bytes, a PIL image, or a numpy array or tensor ((H, W), numpy's
        (H, W, C), torch's (C, H, W); uint8 or floats in 0.0-1.0), made into the model's input by the one path
        `trainlab predict` and the server use, through `input_style` (auto, photo or raw). A uint8 tensor batch
        (N, C, H, W) is the model's input as it is, and gives a list.
        """
        if isinstance(pictures, torch.Tensor) and pictures.dim() == 4:
            check_batch(pictures)
            predictions = self.top_predictions(self.outputs(pictures), top_k)
            for prediction, image in zip(predictions, pictures.cpu(), strict=True):
                prediction.model_input = image
            return predictions
        single = not isinstance(pictures, list | tuple)
        predictions = self.predict_files([pictures] if single else list(pictures), top_k, input_style)
        return predictions[0] if single else predictions

    def top_predictions(self, output: ModelOutput | torch.Tensor, top_k: int = 1) -> list[Prediction]:
        """Top-k predictions from what `outputs` (or `probabilities`: no unlike flags) returned."""
        output = output if isinstance(output, ModelOutput) else ModelOutput(output)
        k = min(max(top_k, 1), len(self.classes))
        values, indices = output.probabilities.topk(k, dim=1)
        scores = output.unlike_scores.tolist() if output.unlike_scores is not None else [None] * len(values)
        return [
            Prediction(
                self.classes[row_i[0]],
                row_i[0],
                row_v[0],
                [(self.classes[i], v) for v, i in zip(row_v, row_i, strict=True)],
                unlike_training=None if score is None else score > 1.0,
                unlike_score=score,
            )
            for row_v, row_i, score in zip(values.tolist(), indices.tolist(), scores, strict=True)  # plain numbers
        ]

    def input_style(self, name: str = "auto") -> InputStyle:
        """The input style `name` (auto, photo or raw) with the training images' look, measured once on the
        built-in data set for a checkpoint from before looks were saved (a line in `notes` says so)."""
        check_choice("input style", name, INPUT_STYLES)
        if name != "raw" and self.look_from is not None:
            self.preprocessing, note = with_builtin_look(self.preprocessing, *self.look_from)
            self.notes.append(note)
            self.look_from = None
        return InputStyle(name, self.preprocessing.look, self.preprocessing.resize)

    def read_files(self, paths: list[str | os.PathLike | Any], input_style: str = "auto") -> list[InputImage]:
        """Image files of any size and mode, or pictures in memory (see predict), as the model receives them,
        through `input_style` (auto/photo/raw)."""
        style = self.input_style(input_style)
        count = len(paths)
        return [
            read_input(path, self.preprocessing, style.name, picture_name(path, number, count))
            for number, path in enumerate(paths, 1)
        ]

    def predict_files(
        self, paths: list[str | os.PathLike], top_k: int = 1, input_style: str = "auto"
    ) -> list[Prediction]:
        """Top-k predictions for image files of any size and mode, each saying the input style it went through."""
        return self.predict_inputs(self.read_files(paths, input_style), top_k)

    def predict_inputs(self, inputs: list[InputImage], top_k: int = 1) -> list[Prediction]:
        """Top-k predictions for pictures read by read_files."""
        if not inputs:
            return []
        predictions = self.predict(torch.stack([item.tensor for item in inputs]), top_k)
        for prediction, item in zip(predictions, inputs, strict=True):
            prediction.input_style, prediction.input_reason = item.choice.style, item.choice.reason
            prediction.picture, prediction.picture_size = showing.kept_picture(item.original), item.original.size
            prediction.model_input = item.tensor
        return predictions


def picture_name(picture: Any, number: int, count: int) -> str | None:
    """What messages call a picture: a path names itself; bytes or a picture in memory are 'picture' (one) or
    'picture 2 of 3' (in a list)."""
    if isinstance(picture, str | os.PathLike):
        return None
    return "picture" if count == 1 else f"picture {number} of {count}"


def with_builtin_look(preprocessing: Preprocessing, name: str, data_dir: str | None) -> tuple[Preprocessing, str]:
    """A checkpoint from before looks were recorded: the look of its built-in data set when a copy is here."""
    import dataclasses

    if name in BUILTINS:
        from trainlab.data import load_split
        from trainlab.errors import TrainlabError

        try:
            images = load_split(name, "train", data_dir, download=False).images
        except TrainlabError:
            images = None
        look = measure_look(images) if images is not None else None
        if look is not None:
            note = f"the checkpoint does not record its training images' look; measured on {name}: {look.describe()}"
            return dataclasses.replace(preprocessing, look=look), note
    why = f"no copy of {name} is here to measure it" if name in BUILTINS else f"it was trained on {name} data"
    return (
        preprocessing,
        f"the checkpoint does not record its training images' look and {why}: input style auto keeps pictures raw",
    )
