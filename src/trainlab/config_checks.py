"""TrainConfig's checks across keys (switches, pairs of keys that only work together), apart to keep config.py short."""

from __future__ import annotations

from typing import Any

from trainlab.data_source import check_augment_padding, check_data_source
from trainlab.errors import ConfigError
from trainlab.validation import check_integer

SWITCHES = ("shuffle", "nesterov", "normalize", "augment", "augment_flip", "compile", "channels_last")


def check_combinations(config: Any) -> None:
    """The checks TrainConfig runs after each value's own: true/false keys, then keys that need one another."""
    for name in (*SWITCHES, "sync_batchnorm", "auto_width"):
        if not isinstance(getattr(config, name), bool):
            raise ConfigError(f"{name} must be true or false, got {getattr(config, name)!r}")
    if config.fine_tune is not None and not isinstance(config.fine_tune, bool):
        raise ConfigError(f"fine_tune must be true or false, got {config.fine_tune!r}")
    check_integer("freeze_epochs", config.freeze_epochs, minimum=0)
    if config.early_stop and not config.val_split:
        raise ConfigError("early_stop watches the validation accuracy; set val_split too (e.g. --val-split 0.1)")
    if config.warmup_epochs >= config.epochs:
        raise ConfigError(f"warmup_epochs ({config.warmup_epochs:g}) must be less than epochs ({config.epochs})")
    if config.nesterov and (config.optimizer != "sgd" or config.momentum == 0):
        raise ConfigError("nesterov needs --optimizer sgd and a --momentum above 0")
    if not isinstance(config.model, str) or not config.model:
        raise ConfigError("model must be a name such as 'mlp'; see `trainlab train --help`")
    if not isinstance(config.dataset, str) or not config.dataset:
        raise ConfigError("dataset must be a name such as 'fashion-mnist'")
    check_data_source(config)
    check_augment_padding(config)
    if config.dropout and config.model == "mlp":
        raise ConfigError(
            "dropout: the mlp (the tutorial's model) has no dropout layer; use --model cnn, resnet "
            "or tv:NAME, or leave dropout out"
        )
    if config.label_smoothing and config.loss != "cross-entropy":
        raise ConfigError("label_smoothing works with --loss cross-entropy only")
    if config.weights is not None and (not isinstance(config.weights, str) or not config.weights):
        raise ConfigError(
            "weights must name torchvision weights (DEFAULT, IMAGENET1K_V1) or a state_dict file, got "
            f"{config.weights!r}"
        )
    if config.weights is not None and not config.model.startswith("tv:"):
        raise ConfigError(
            f"--weights {config.weights} (pretrained weights) apply to tv:NAME models (e.g. --model tv:resnet18), "
            f"not --model {config.model}; use --init-from RUN for a trainlab model"
        )
    if not isinstance(config.freeze, (list, tuple)) or not all(isinstance(p, str) and p for p in config.freeze):
        raise ConfigError(f"freeze must be a list of parameter-name prefixes, got {config.freeze!r}")
    if not isinstance(config.extra, dict):
        raise ConfigError("extra must be a table of model keyword arguments")
