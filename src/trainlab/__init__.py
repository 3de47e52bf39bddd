"""trainlab: the PyTorch "Learn the Basics" workflow as a fast, safe tool.

The public API is one import, `import trainlab as tl`, imported lazily so that `import trainlab` (and
`trainlab --help`) stays fast and loads no torch:

    tl.load_dataset(name or config) -> DatasetSplits (.train, .test: ImageData; shown with a grid of samples)
    tl.fit(config, data=..., run_dir=...) -> RunSummary (the summary dict; .run is its Run)
    tl.Run(run_dir)                      -> a run directory's config, metrics, checkpoints and reports, shown
    tl.Predictor.from_checkpoint(path)   -> Predictor; predictor.predict(pictures) -> Prediction(s)
    tl.evaluate_checkpoint(path)         -> Evaluation (accuracy, loss, confusion matrix, ...)

Layers, lowest first; a module imports only from its own layer and those below, not even inside a function
(tests/test_layers.py holds the same table and checks every import):

    errors, validation, fileio, layout            plain values and safe file writes, no torch
    config_file, datasets_registry, model_names,  TrainConfig and the names it checks against (data sets,
    data_source, config_checks, config,           models); resolution: preset < config file < flags; what to tell
    resolution, resume_advice                     a user whose run cannot continue as asked
    data             data sets, decoding, loaders
    models           the model registry, torchvision's zoo, the TTA wrapper
    engine           device and RNG runtime, the training step and evaluation loop, losses, torchrun's
                     collectives, the Reporter protocol
    checkpoint       the checkpoint format (checkpoint_records: its plain-type checks)
    reports          plots, per-class figures, run tables, the console and TensorBoard reporters
    training         setup, Trainer, fit, the run directory, time budget, recipes, lr finder
    inference        Predictor, evaluate_checkpoint, export
    serve            trainlab serve
    tuning           MLflow tracking (tracked.fit: fit with config.tracking's tracker), trainlab tune
    reviewing        trainlab review: out-of-fold label issues, duplicates, blank images (trainlab.review)
    devrun           --fast-dev-run
    cli, __main__    the command line
    testing          test helpers (fault injection drives the CLI)
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "TrainConfig": "trainlab.config",
    "resolve": "trainlab.resolution",
    "TrainlabError": "trainlab.errors",
    "load_dataset": "trainlab.data",
    "ImageData": "trainlab.data",
    "BatchLoader": "trainlab.data",
    "create_model": "trainlab.models",
    "list_models": "trainlab.models",
    "NeuralNetwork": "trainlab.models.mlp",
    "fit": "trainlab.tuning.tracked",
    "review": "trainlab.reviewing",
    "evaluate": "trainlab.engine.loop",
    "train_one_epoch": "trainlab.engine.loop",
    "Predictor": "trainlab.inference.predictor",
    "Prediction": "trainlab.inference.predictor",
    "Run": "trainlab.inference.run",
    "RunSummary": "trainlab.inference.run",
    "DatasetSplits": "trainlab.data",
    "load_split": "trainlab.data",
    "ConsoleReporter": "trainlab.reports.console",
    "evaluate_checkpoint": "trainlab.inference.evaluation",
    "load_checkpoint": "trainlab.checkpoint",
    "save_checkpoint": "trainlab.checkpoint",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
