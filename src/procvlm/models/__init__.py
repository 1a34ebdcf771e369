"""Progress models behind one interface: ``compact/`` (CPU) and ``vlm/`` (transformers)."""

from procvlm.models.base import ProgressModel, ProgressPrediction, load_model

__all__ = ["ProgressModel", "ProgressPrediction", "load_model"]
