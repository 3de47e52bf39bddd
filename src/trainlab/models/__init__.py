"""The model registry: a name and the data's shape in, an nn.Module out."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from trainlab.errors import ConfigError
from trainlab.model_names import (  # noqa: F401 - checked without torch; re-exported for the layers above
    MODEL_ARGUMENTS,
    ZOO_PREFIX,
    check_model_from_file,
    is_code_reference,
    model_names,
)
from trainlab.models.cnn import SmallCNN
from trainlab.models.mlp import NeuralNetwork
from trainlab.models.resnet import SmallResNet

ModelFactory = Callable[..., nn.Module]

_REGISTRY: dict[str, ModelFactory] = {
    "mlp": NeuralNetwork,
    "cnn": SmallCNN,
    "resnet": SmallResNet,
}


def register_model(name: str, factory: ModelFactory) -> None:
    """Make `factory(input_shape=..., num_classes=..., **kwargs)` available as --model name."""
    _REGISTRY[name] = factory
    MODEL_ARGUMENTS[name] = keyword_arguments(factory)  # what a config file naming it is checked against


def keyword_arguments(factory: ModelFactory) -> tuple[str, ...] | None:
    """The keyword arguments a model class takes (None: any, or a factory that is not a class)."""
    if not isinstance(factory, type):
        return None
    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return tuple(p.name for p in parameters if p.kind in keyword_kinds)


def registered_class(name: str) -> type | None:
    """The class behind a registered model name (None for other names)."""
    factory = _REGISTRY.get(name)
    return factory if isinstance(factory, type) else None


def list_models() -> list[str]:
    """Names accepted by --model (besides pkg.module:Class)."""
    return model_names()


def create_model(
    name: str, input_shape: tuple[int, int, int] = (1, 28, 28), num_classes: int = 10, **kwargs: Any
) -> nn.Module:
    """Build a registered model, or a user's nn.Module subclass given as 'package.module:Class'."""
    factory = _REGISTRY.get(name)
    if factory is None and name.startswith(ZOO_PREFIX):
        from trainlab.models.zoo import build_zoo_model

        zoo_name = name[len(ZOO_PREFIX) :]
        factory = lambda **arguments: build_zoo_model(zoo_name, **arguments)  # noqa: E731
    elif factory is None and ":" in name:
        factory = _import_user_model(name)
    if factory is None:
        raise ConfigError(
            f"unknown model {name!r}; choose one of: {', '.join(list_models())}, tv:NAME (torchvision), "
            "or your own as package.module:Class"
        )
    try:
        return factory(input_shape=tuple(input_shape), num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"model {name!r} cannot be built with these arguments: {exc}") from None
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        shape = "x".join(map(str, input_shape))
        raise ConfigError(
            f"model {name!r} for {shape} images in {num_classes:,} classes does not fit in memory; "
            "use smaller images (--image-size), fewer classes or a smaller model"
        ) from None


def is_out_of_memory(error: BaseException) -> bool:
    """An allocation that failed: MemoryError, torch's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    import torch

    return isinstance(error, (MemoryError, torch.OutOfMemoryError)) or "can't allocate memory" in str(error)


def _import_user_model(spec: str) -> ModelFactory:
    module_name, _, attribute = spec.partition(":")
    if not all(part.isidentifier() for part in module_name.split(".")):  # importlib: ValueError, or a file path
        raise ConfigError(
            f"model {spec!r}: {module_name!r} is not a module name; give package.module:Class, e.g. my_pkg.nets:Net"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"model {spec!r}: cannot import {module_name!r} ({exc}); is it on PYTHONPATH?") from None
    factory = getattr(module, attribute, None)
    if factory is None:
        raise ConfigError(f"model {spec!r}: {module_name} has no class {attribute!r}")
    if not (isinstance(factory, type) and issubclass(factory, nn.Module)):
        raise ConfigError(
            f"model {spec!r}: {module_name}.{attribute} is not an nn.Module subclass; name your model's class"
        )
    return _pass_accepted_arguments(factory)


def _pass_accepted_arguments(factory: ModelFactory) -> ModelFactory:
    """Let user classes such as the tutorial's NeuralNetwork() ignore input_shape/num_classes.

    Only those two are dropped when not accepted; the user's own keyword arguments always go through, so a
    misspelt one is an error rather than silently ignored.
    """
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    def build(**kwargs: Any) -> nn.Module:
        return factory(
            **{
                k: v
                for k, v in kwargs.items()
                if takes_any or k in parameters or k not in ("input_shape", "num_classes")
            }
        )

    return build


def freeze_parameters(model: nn.Module, prefixes: list[str] | tuple[str, ...]) -> list[str]:
    """Mark parameters whose names start with any prefix as not trainable; returns their names."""
    frozen = []
    for prefix in prefixes:
        matched = [name for name, _ in model.named_parameters() if name.startswith(prefix)]
        if not matched:
            names = sorted({name.split(".")[0] for name, _ in model.named_parameters()})
            raise ConfigError(f"--freeze {prefix!r} matches no parameter; top-level names: {', '.join(names)}")
        frozen += matched
    for name, parameter in model.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    for module in model.modules():  # frozen batch norm keeps its running statistics too
        parameters = list(module.parameters(recurse=False))
        if (
            isinstance(module, nn.modules.batchnorm._BatchNorm)
            and parameters
            and not any(p.requires_grad for p in parameters)
        ):
            module.momentum = 0.0
    return frozen
