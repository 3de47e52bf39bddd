"""--fast-dev-run: every stage of a run once, on a couple of batches, to smoke-test a new model or data set.

Train, validate and test on `batches` batches each, write and reload the checkpoint, predict one test image
through the Predictor (the path `trainlab predict` and the server take) and draw the reports. Nothing is kept
unless a run directory is given: the run lives in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from trainlab.config import TrainConfig
from trainlab.data import DatasetSplits, load_dataset
from trainlab.engine.reporting import Reporter

DEV_RUN_BATCHES = 2  # what --fast-dev-run means without a number


def dev_run_config(config: TrainConfig, batches: int) -> TrainConfig:
    """One epoch of `batches` training and evaluation batches, every batch logged, no tracking."""
    return config.replace(
        epochs=1,
        limit_train_batches=batches,
        limit_eval_batches=batches,
        log_every=1,
        checkpoint_every=0,
        warmup_epochs=0.0,
        tracking="none",
        time_budget=None,  # every stage once, not a budget's worth (a preset's budget included)
        auto_width=False,
        max_steps=None,
    )


def fast_dev_run(
    config: TrainConfig | None = None,
    batches: int = DEV_RUN_BATCHES,
    *,
    run_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    data: DatasetSplits | None = None,
    download: bool = True,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """Run every stage once on `batches` batches; returns the run summary with the prediction it made.

    Raises what the real run would raise at the first stage that fails.
    """
    from trainlab.inference import Predictor
    from trainlab.tuning.tracked import fit

    reporter = reporter or Reporter()
    config = dev_run_config(config or TrainConfig(), batches)
    if data is None:
        data = load_dataset(config, download=download)
        for note in data.notes:
            reporter.message(note)
    with tempfile.TemporaryDirectory(prefix="trainlab-dev-run-") as scratch:
        target = run_dir if run_dir is not None else os.path.join(scratch, "run")
        summary = fit(
            config,
            data=data,
            run_dir=target,
            overwrite=overwrite,
            reporter=reporter,
            reports=True,
            on_interrupt="raise",
        )
        predictor = Predictor.from_checkpoint(summary["checkpoint"], device="cpu")  # reloaded from the file
        prediction = predictor.predict(data.test.images[:1].cpu(), top_k=1)[0]
        actual = data.test.classes[int(data.test.labels[0])]
        reporter.message(f'Predicted: "{prediction.label}", Actual: "{actual}" (test image 0, from the checkpoint)')
        kept = run_dir is not None
        reporter.message(
            f"Fast dev run passed: {batches} batch(es) of train, "
            f"{'validation, ' if config.val_split else ''}test, checkpoint, predict and reports; "
            + (f"the run is in {summary['run_dir']}" if kept else "nothing was kept (pass --run-dir to keep it)")
        )
        return {
            **summary,
            "status": "fast dev run passed",
            "run_dir": summary["run_dir"] if kept else None,
            "checkpoint": summary["checkpoint"] if kept else None,
            "best_checkpoint": summary["best_checkpoint"] if kept else None,
            "prediction": {**prediction.to_dict(), "actual": actual},
        }
