"""Progress models behind one interface: ``compact/`` (CPU) and ``vlm/`` (transformers)."""

from procvlm.models.base import LastScores, ProgressModel, ProgressPrediction, load_model

__all__ = ["LastScores", "ProgressModel", "ProgressPrediction", "load_model"]
