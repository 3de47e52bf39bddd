"""The run directory's layout: the one place its file and folder names are spelled.

RUN_DIR/config.toml  metrics.jsonl  summary.json  .lock
        checkpoints/last.pt  checkpoints/best.pt
        learning_curves.png  confusion_matrix.png  top_losses.png  tensorboard/  tracking.json  recipe.json
"""

from __future__ import annotations

from pathlib import Path

CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
LOCK_FILE = ".lock"
CHECKPOINT_FOLDER = "checkpoints"
LAST_CHECKPOINT = Path(CHECKPOINT_FOLDER) / "last.pt"
BEST_CHECKPOINT = Path(CHECKPOINT_FOLDER) / "best.pt"
TENSORBOARD_FOLDER = "tensorboard"
CURVES_FILE = "learning_curves.png"
CONFUSION_FILE = "confusion_matrix.png"
TOP_LOSSES_FILE = "top_losses.png"
TRACKING_FILE = "tracking.json"  # the MLflow run this run logs to, so that a resume continues it
RECIPE_FILE = "recipe.json"  # --preset auto: the choices made from the data and their reasons
REVIEW_FOLDER = "review"  # trainlab review's default output: review.csv and review.png (served on the page)
REVIEW_CSV = Path(REVIEW_FOLDER) / "review.csv"
REVIEW_PNG = Path(REVIEW_FOLDER) / "review.png"
REVIEW_COLUMNS = ("file", "split", "given", "suggested", "confidence", "reason")
RUN_FILES = (
    CONFIG_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    LOCK_FILE,
    CURVES_FILE,
    CONFUSION_FILE,
    TOP_LOSSES_FILE,
    TRACKING_FILE,
    RECIPE_FILE,
)
