"""Configuration of a VLM progress model: which base / adapter, how frames are shown, how the
answer is read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from procvlm.errors import ProcvlmError

DEFAULT_BASE = "Qwen/Qwen3-VL-2B-Instruct"
READOUTS = ("text", "probs")
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class VLMConfig:
    """What ``config.json`` of a procvlm VLM run holds (with ``"type": "vlm"``).

    Attributes:
        base: the base model, a local folder or a hub id (``AutoModelForImageTextToText``).
        adapter: a peft LoRA adapter folder over ``base``, or None.
        processor: where the processor lives (defaults to ``adapter`` or ``base``).
        window: how many recent frames the model sees at each step.
        stride: frames between the shown frames of a window.
        image_size: frames are resized so their longest side is at most this (None: as is).
        max_new_tokens: longest generated answer.
        batch_size: prompts per generation batch.
        readout: ``"text"`` (parse the greedy answer) or ``"probs"`` (expected value of the
            digits inside the tag, from the token probabilities).
        dtype: weights dtype; ``"auto"`` is bfloat16 on a GPU that supports it, else float32.
        device: torch device; None picks cuda when available.
    """

    base: str = DEFAULT_BASE
    adapter: str | None = None
    processor: str | None = None
    window: int = 8
    stride: int = 1
    image_size: int | None = 224
    max_new_tokens: int = 128
    batch_size: int = 16
    readout: str = "text"
    dtype: str = "auto"
    device: str | None = None

    def __post_init__(self) -> None:
        if not self.base:
            raise ProcvlmError("VLMConfig.base is empty: give a local model folder or a hub id, "
                               f"e.g. {DEFAULT_BASE}")
        for name in ("window", "stride", "max_new_tokens", "batch_size"):
            if getattr(self, name) < 1:
                raise ProcvlmError(f"VLMConfig.{name}={getattr(self, name)}: need at least 1")
        if self.image_size is not None and self.image_size < 8:
            raise ProcvlmError(f"VLMConfig.image_size={self.image_size}: need at least 8 pixels "
                               "(or None to keep frames as they are)")
        if self.readout not in READOUTS:
            raise ProcvlmError(f"VLMConfig.readout={self.readout!r}: choose one of "
                               f"{', '.join(READOUTS)}")
        if self.dtype not in DTYPES:
            raise ProcvlmError(f"VLMConfig.dtype={self.dtype!r}: choose one of {', '.join(DTYPES)}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, with ``"type": "vlm"`` first."""
        return {"type": "vlm", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VLMConfig:
        """Build from ``config.json`` content, ignoring ``"type"`` and unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
