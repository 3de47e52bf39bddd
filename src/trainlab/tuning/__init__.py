"""Experiments over train: Optuna studies (`trainlab tune`, the `tune` extra) and MLflow tracking (the `mlflow`
extra). Imported only when asked for, so that training without them never loads either package."""
