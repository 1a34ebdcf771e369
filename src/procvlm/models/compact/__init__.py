"""The compact progress model: a small conv net over recent frames + frozen MiniLM text
embeddings, with a stage head over the plan's steps and a within-step progress head."""

from procvlm.models.compact.configuration_compact import CompactConfig
from procvlm.models.compact.modeling_compact import CompactNet, CompactOutput, CompactProgressModel
from procvlm.models.compact.text import TextEncoder

__all__ = ["CompactConfig", "CompactNet", "CompactOutput", "CompactProgressModel", "TextEncoder"]
