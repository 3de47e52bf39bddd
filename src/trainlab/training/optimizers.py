"""Optimizers by name, over the trainable parameters only."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Iterable

import torch
from torch.optim import optimizer as torch_optimizer_module

from trainlab.config import TrainConfig
from trainlab.errors import ConfigError

OPTIMIZER_CLASSES: dict[str, type[torch.optim.Optimizer]] = {
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
}


def make_optimizer(config: TrainConfig, parameters: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """SGD, RMSprop, Adam or AdamW with the config's lr, momentum and weight decay."""
    trainable = [p for p in parameters if p.requires_grad]
    if not trainable:
        raise ConfigError(f"--freeze {' '.join(config.freeze)} leaves no parameter to train; freeze fewer prefixes")
    if config.optimizer not in OPTIMIZER_CLASSES:
        raise ValueError(f"unknown optimizer {config.optimizer!r}")
    # torch.compile traces the optimizer's own methods: it gets torch's classes as they are
    optimizer_class = OPTIMIZER_CLASSES[config.optimizer]
    if not config.compile:
        optimizer_class = without_dynamo_import(optimizer_class)
    if config.optimizer == "sgd":
        return optimizer_class(
            trainable,
            lr=config.lr,
            momentum=config.momentum,
            nesterov=config.nesterov,
            weight_decay=config.weight_decay,
        )
    if config.optimizer == "rmsprop":
        return optimizer_class(trainable, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    return optimizer_class(trainable, lr=config.lr, weight_decay=config.weight_decay)


# Why: every torch.optim.Optimizer method that sets up parameter groups, zeroes gradients or saves state is
# wrapped in torch._disable_dynamo, and step() in _use_grad_for_differentiable; both import torch._dynamo
# (857 modules: 1-2 s on a 2-core CPU) on their first call, only to mark the method as not to be
# compiled or to break a graph being compiled. While torch._dynamo has not been imported nothing can be
# compiling, so the subclass below calls the methods' own code directly then, and torch's wrappers as soon
# as anything imports torch._dynamo. The arithmetic, the state_dict and the hooks are torch's own.


def _wrapper_codes() -> tuple[object, object] | None:
    """The code objects of torch's two dynamo wrappers, or None where this torch has other ones."""
    try:
        disable_code = torch._disable_dynamo(lambda: None).__code__
        use_grad_code = torch_optimizer_module._use_grad_for_differentiable(lambda: None).__code__
    except (AttributeError, TypeError):
        return None
    return disable_code, use_grad_code


def _unwrapped(function: Callable, wrapper_code: object) -> tuple[Callable, Callable] | None:
    """(the wrapper whose code is wrapper_code, the function it wraps) along function's __wrapped__ chain."""
    while function is not None and inspect.isfunction(function):
        inner = getattr(function, "__wrapped__", None)
        if function.__code__ is wrapper_code and inspect.isfunction(inner):
            return function, inner
        function = inner
    return None


def _dynamo_loaded() -> bool:
    return "torch._dynamo" in sys.modules


def _direct_method(wrapped: Callable, own: Callable) -> Callable:
    @functools.wraps(own)
    def method(self, *args, **kwargs):
        if _dynamo_loaded():
            return wrapped(self, *args, **kwargs)
        return own(self, *args, **kwargs)

    return method


def _direct_step(wrapped: Callable, own: Callable) -> Callable:
    @functools.wraps(own)
    def step(self, *args, **kwargs):
        if _dynamo_loaded():
            return wrapped(self, *args, **kwargs)
        # what _use_grad_for_differentiable does, less the graph breaks that only a compiler reads
        with torch.set_grad_enabled(self.defaults["differentiable"]):
            return own(self, *args, **kwargs)

    return step


@functools.cache
def without_dynamo_import(optimizer_class: type[torch.optim.Optimizer]) -> type[torch.optim.Optimizer]:
    """A subclass of optimizer_class that imports torch._dynamo only if something else did (same results)."""
    codes = _wrapper_codes()
    if codes is None:
        return optimizer_class
    disable_code, use_grad_code = codes
    overrides: dict[str, Callable] = {}
    for name in dir(optimizer_class):
        attribute = inspect.getattr_static(optimizer_class, name)
        if not inspect.isfunction(attribute):
            continue
        disabled = _unwrapped(attribute, disable_code)
        if disabled is not None:
            overrides[name] = _direct_method(*disabled)
            continue
        graph_broken = _unwrapped(attribute, use_grad_code)
        if graph_broken is not None:
            overrides[name] = _direct_step(*graph_broken)
    if "step" not in overrides:
        return optimizer_class  # a torch whose step is wrapped otherwise: its own class, as it is
    overrides["__module__"] = optimizer_class.__module__
    overrides["__qualname__"] = optimizer_class.__qualname__
    overrides["__doc__"] = optimizer_class.__doc__
    return type(optimizer_class.__name__, (optimizer_class,), overrides)
