"""The end of training: each checkpoint of the run gets its unlike-the-training-data record (engine.unlike)."""

from __future__ import annotations

import copy
from typing import Any

from trainlab.checkpoint import load_checkpoint, load_weights, unwrap_model
from trainlab.engine import unlike
from trainlab.models.tta import with_tta
from trainlab.training import rundir


def calibrate_run(trainer: Any) -> None:
    """Add the unlike record to each checkpoint the finished run wrote (best.pt and last.pt), computed with its
    own weights; skipped where the evaluations covered part of the data (--limit-eval-batches)."""
    if not trainer.setup.dist.primary or trainer.config.limit_eval_batches is not None:
        return
    model = copy.deepcopy(unwrap_model(trainer.model)).eval()
    held, held_name = (trainer.val_data, "validation") if trainer.val_data is not None else (trainer.test_data, "test")
    records: dict[tuple[int, int], dict[str, Any]] = {}
    for name in (rundir.BEST_CHECKPOINT, rundir.LAST_CHECKPOINT):
        path = trainer.files.path / name
        if not path.is_file():
            continue
        payload = load_checkpoint(path).payload
        key = (payload["epoch"], payload["step"])  # best.pt and last.pt of one epoch hold the same weights
        if key not in records:
            load_weights(model, payload["model_state"], source=str(path))
            records[key] = unlike.calibrate(
                with_tta(model, trainer.config.tta),
                trainer.setup.preprocess,
                trainer.train_data,
                held,
                held_name,
                seed=trainer.config.seed,
            )
        payload["unlike"] = records[key]
        trainer.files.save_checkpoint(payload, name)
    if records:
        record = records[max(records)]
        trainer.reporter.message(
            f"Unlike the training data: a threshold that flags {record['flagged']:.1%} of the "
            f"{record['held_out_images']:,} {record['held_out']} images is recorded in the checkpoints"
        )
