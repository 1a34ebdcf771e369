"""Configuration of a VLM progress model: which base / adapter, how frames are shown, how the
answer is read."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from procvlm.errors import ProcvlmError

DEFAULT_BASE = "Qwen/Qwen3-VL-2B-Instruct"
READOUTS = ("text", "probs")
DTYPES = ("auto", "float32", "bfloat16", "float16")
REASONING = ("every", "reuse")
CACHES = ("dynamic", "static")
ENCODINGS = ("threads", "processes")


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
        camera: the camera the model was trained on (score, eval and serve default to it).
        scheme: the label scheme its progress targets follow (``procvlm.labels``).
        reasoning: ``"every"`` generates the whole answer at every frame; ``"reuse"``
            generates it on a sparse set of frames and reads the progress of the others with
            the reused reasoning as a teacher-forced prefix (see ``reasoning.py``).
        refresh: with ``reasoning="reuse"``, frames between regenerated answers.
        workers: workers preparing the next batches' inputs (None: 2 on a GPU, 0 on the CPU).
        encoding: where the workers run: ``"threads"`` of this process, or forked
            ``"processes"`` (``engine.Prefetcher``: no GIL shared with the main thread).
        cache: ``"dynamic"`` KV cache, or ``"static"`` (preallocated in batch and length
            buckets and reused, see ``engine.StaticCachePool``; transformers compiles the
            decoding step with ``torch.compile`` and CUDA graphs on a GPU).
        compile: with ``cache="static"``, compile the decoding step: None on a GPU only
            (transformers' choice), True on any device, False never.
        compile_layers: run the pointwise parts of the text decoder layers compiled during
            inference (``engine.compiled_layers``). On an H200 it cut the device time of a
            readout batch by about 30 % but not the wall-clock, which the host bounds
            (docs/vlm.md), so it is off by default. The first calls compile; training is not
            affected.
        attn: the attention implementation (``"sdpa"``, ``"eager"``, ``"flash_attention_2"``).
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
    camera: str | None = None
    scheme: str | None = None
    reasoning: str = "every"
    refresh: int = 8
    workers: int | None = None
    encoding: str = "threads"
    cache: str = "dynamic"
    compile: bool | None = None
    compile_layers: bool = False
    attn: str = "sdpa"

    def __post_init__(self) -> None:
        if not self.base:
            raise ProcvlmError("VLMConfig.base is empty: give a local model folder or a hub id, "
                               f"e.g. {DEFAULT_BASE}")
        for name in ("window", "stride", "max_new_tokens", "batch_size", "refresh"):
            if getattr(self, name) < 1:
                raise ProcvlmError(f"VLMConfig.{name}={getattr(self, name)}: need at least 1")
        if self.image_size is not None and self.image_size < 8:
            raise ProcvlmError(f"VLMConfig.image_size={self.image_size}: need at least 8 pixels "
                               "(or None to keep frames as they are)")
        if self.readout not in READOUTS:
            raise ProcvlmError(f"VLMConfig.readout={self.readout!r}: choose one of "
                               f"{', '.join(READOUTS)}")
        for name, choices in (("reasoning", REASONING), ("cache", CACHES),
                              ("encoding", ENCODINGS)):
            if getattr(self, name) not in choices:
                raise ProcvlmError(f"VLMConfig.{name}={getattr(self, name)!r}: choose one of "
                                   f"{', '.join(choices)}")
        if self.scheme is not None:
            from procvlm.labels import SCHEMES

            if self.scheme not in SCHEMES:
                raise ProcvlmError(f"VLMConfig.scheme={self.scheme!r}: choose one of "
                                   f"{', '.join(SCHEMES)}")
        if self.workers is not None and self.workers < 0:
            raise ProcvlmError(f"VLMConfig.workers={self.workers}: need >= 0 (or None)")
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
