"""Sub-step segmentation: ``oracle`` (simulator), ``dataset`` (existing columns), ``gripper``
(proprioception heuristic) and ``vlm`` (any OpenAI-compatible endpoint)."""

from procvlm.annotate.base import Annotation, Annotator, OracleAnnotator, get_annotator

__all__ = ["Annotation", "Annotator", "OracleAnnotator", "get_annotator"]
