"""The input torchvision's pretrained weights were trained on: their name resolved, and their preprocessing.

--weights is a weight name of torchvision's multi-weight API (DEFAULT, IMAGENET1K_V1, ResNet18_Weights.IMAGENET1K_V1)
or a local file. Data decoding and the model's weights both follow what the named weights' transforms() say.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from trainlab.data.memory import ImageData
from trainlab.data.transforms import Preprocessing
from trainlab.errors import ConfigError
from trainlab.model_names import ZOO_PREFIX, is_weights_name


@dataclass(frozen=True)
class WeightsInput:
    """What named weights expect: pictures resized (shorter side), centre-cropped, normalized; RGB."""

    name: str  # the enum member's own name, DEFAULT resolved: IMAGENET1K_V1
    full_name: str  # ResNet18_Weights.IMAGENET1K_V1
    resize: int  # pixels, the shorter side before the crop
    crop: int  # pixels, the side of the square the model sees
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def describe(self) -> str:
        """e.g. 'resize 256, centre crop 224, mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225)'."""
        mean = ", ".join(f"{v:g}" for v in self.mean)
        std = ", ".join(f"{v:g}" for v in self.std)
        return f"resize {self.resize}, centre crop {self.crop}, mean ({mean}), std ({std})"


def named_weights(model: str, value: str) -> Any:
    """The torchvision weights enum member `value` names for model tv:NAME (DEFAULT resolved to its member)."""
    from torchvision import models

    name = model.removeprefix(ZOO_PREFIX)
    try:
        enum = models.get_model_weights(name)
    except (ValueError, KeyError):
        raise ConfigError(
            f"--weights {value}: torchvision has no pretrained weights for {model}; give a local weights file, "
            "or a model that has them (e.g. tv:resnet18)"
        ) from None
    prefix, _, member = value.rpartition(".")
    members = enum.__members__
    if (prefix and prefix != enum.__name__) or member not in members:
        raise ConfigError(
            f"--weights {value} is no weight of {model}; choose one of: {', '.join(members)} "
            f"(torchvision's {enum.__name__}), or give a local weights file"
        )
    return members[member]


def weights_input(model: str, value: str | None) -> WeightsInput | None:
    """What the weights --weights names expect of their input; None for no weights or a local file."""
    if not model.startswith(ZOO_PREFIX) or not is_weights_name(value):
        return None
    weights = named_weights(model, value)
    transforms = weights.transforms()
    try:
        resize, crop = int(transforms.resize_size[0]), int(transforms.crop_size[0])
        mean, std = tuple(map(float, transforms.mean)), tuple(map(float, transforms.std))
    except (AttributeError, IndexError, TypeError):
        raise ConfigError(
            f"--weights {value}: {weights} come with {type(transforms).__name__}, not the resize, crop and "
            "normalization of an image classifier; give a local weights file"
        ) from None
    return WeightsInput(weights.name, f"{type(weights).__name__}.{weights.name}", resize, crop, mean, std)


def check_against(config: Any, wanted: WeightsInput) -> None:
    """A flag that contradicts the weights' own preprocessing is refused, naming both (never a silent loss)."""
    weights = f"--weights {config.weights} ({wanted.full_name}: {wanted.describe()})"
    if config.image_size is not None and config.image_size != wanted.crop:
        raise ConfigError(
            f"--image-size {config.image_size} contradicts {weights}: they were trained on {wanted.crop}x"
            f"{wanted.crop} pictures; leave --image-size out"
        )
    if config.channels == 1:
        raise ConfigError(
            f"--channels 1 contradicts {weights}: they were trained on RGB pictures (gray ones are repeated into "
            "3 channels); leave --channels out"
        )
    if config.normalize:
        raise ConfigError(
            f"--normalize (the training images' own mean and std) contradicts {weights}: their mean and std are "
            "used; leave --normalize out"
        )


def repeated_channels(splits: dict[str, ImageData], channels: int | None) -> dict[str, ImageData]:
    """Gray splits with each image repeated into `channels` (as decoding a gray file as RGB does), for RGB weights
    or a model that takes them; others as they are."""
    if channels is None or channels == 1:
        return splits
    return {
        name: replace(data, images=data.images.expand(-1, channels, -1, -1).contiguous())
        if data.images.shape[1] == 1
        else data
        for name, data in splits.items()
    }


def with_weights_input(preprocess: Preprocessing, wanted: WeightsInput | None, decoded: bool) -> Preprocessing:
    """The run's preprocessing with the weights' mean and std, and their resize when the pictures were decoded
    through it (files; a built-in set's tensors keep their size, which the model upsamples)."""
    if wanted is None:
        return preprocess
    return replace(preprocess, mean=wanted.mean, std=wanted.std, resize=wanted.resize if decoded else None)


__all__ = [
    "WeightsInput",
    "check_against",
    "repeated_channels",
    "is_weights_name",
    "named_weights",
    "weights_input",
    "with_weights_input",
]
