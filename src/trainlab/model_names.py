"""The model names a config may hold, checked without torch: the built-in models and the keyword arguments each
takes, torchvision's tv:NAME, and the package.module:Class references a file may name only when trusted.

trainlab.models builds these names (and adds to MODEL_ARGUMENTS through register_model); the config layer and
every command's resolution check a file's model here, before torch is imported.
"""

from __future__ import annotations

import os
import re
from typing import Any

from trainlab.errors import ConfigError

ZOO_PREFIX = "tv:"  # torchvision's models by name, e.g. tv:resnet18
PLAIN_ARGUMENT_TYPES = (str, int, float, bool)
# --weights DEFAULT, IMAGENET1K_V1 or ResNet18_Weights.IMAGENET1K_V1: torchvision's enum members are upper case
WEIGHT_NAME = re.compile(r"(?:[A-Za-z0-9_]+_Weights\.)?[A-Z][A-Z0-9_]*")

# the keyword arguments of each registered model's class (None: any); tests/test_models.py checks the classes
MODEL_ARGUMENTS: dict[str, tuple[str, ...] | None] = {
    "mlp": ("input_shape", "num_classes", "hidden"),
    "cnn": ("input_shape", "num_classes", "width", "dropout"),
    "resnet": ("input_shape", "num_classes", "width", "blocks", "dropout"),
}


def model_names() -> list[str]:
    """Names accepted by --model (besides tv:NAME and package.module:Class)."""
    return sorted(MODEL_ARGUMENTS)


def is_weights_name(value: str | None) -> bool:
    """--weights names torchvision weights (not a file): an upper-case enum member name that is no file here."""
    return bool(value) and bool(WEIGHT_NAME.fullmatch(value)) and not os.path.exists(value)


def is_code_reference(name: str) -> bool:
    """True for 'package.module:Class' names, which import and run the user's code."""
    return isinstance(name, str) and ":" in name and not name.startswith(ZOO_PREFIX)


def check_model_from_file(
    name: Any, extra: Any, source: str, named_by_user: str | None = None, trusted: bool = False
) -> None:
    """Refuse a model that a file (checkpoint, run config, config file) names, unless it is safe to build.

    A file may name registered models and tv:NAME; a package.module:Class is imported only when the user
    named the same model on the command line (named_by_user) or passed --trust-model-code (trusted).
    Keyword arguments from a file must be plain values.
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: its model name {name!r} is not a model name such as 'mlp'")
    if is_code_reference(name) and not trusted and name != named_by_user:
        raise ConfigError(
            f"{source} names the model {name!r}, which would import and run code from {name.partition(':')[0]!r}; "
            "a file may name only built-in models (mlp, cnn, resnet, tv:NAME), so it was not imported. If you trust "
            f"the file, pass --model {name} or --trust-model-code"
        )
    if not isinstance(extra, dict) or not all(
        isinstance(key, str) and _is_plain(value) for key, value in extra.items()
    ):
        raise ConfigError(f"{source}: its model arguments (extra) must be a table of plain values, got {extra!r}")


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    return isinstance(value, PLAIN_ARGUMENT_TYPES)


def check_built_in_model(name: str, extra: dict[str, Any], config_file: str, name_from_file: bool) -> None:
    """A config file's model name and arguments, checked here so that the error names the file (only the
    built-in models: tv:NAME and package.module:Class are checked when they are built)."""
    if is_code_reference(name) or name.startswith(ZOO_PREFIX):
        return
    if name not in MODEL_ARGUMENTS:
        if name_from_file:
            raise ConfigError(
                f"{config_file}: unknown model {name!r}; choose one of: {', '.join(model_names())}, "
                "tv:NAME (torchvision), or your own as package.module:Class"
            )
        return  # the flag's model: refused with the flag's message when it is built
    accepted = MODEL_ARGUMENTS[name]
    unexpected = [key for key in extra if accepted is not None and key not in accepted]
    if unexpected:  # worded as inspect.Signature.bind words it
        raise ConfigError(
            f"{config_file}: model {name!r} cannot be built with these arguments (extra): got an unexpected "
            f"keyword argument {unexpected[0]!r}"
        )
