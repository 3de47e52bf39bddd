"""Using trained models: the Predictor (shared preprocessing) and export."""

from trainlab.inference.predictor import Predictor, load_image

__all__ = ["Predictor", "load_image"]
