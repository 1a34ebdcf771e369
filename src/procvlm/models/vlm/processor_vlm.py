"""Model-side preprocessing of the VLM progress model: the ProcVQA prompt and answer templates,
the chat messages built from them, frame windows and resizing.

The model owns these (LeRobot's ``processor_*.py`` layout): ``procvlm.vqa`` (training data),
``procvlm.training`` and inference import them from here, so what a model is trained on and what
it is asked can never drift apart. This module imports neither torch nor transformers.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PROGRESS_PROMPT = (
    'Given the recent observation and the task "{task}", first infer the remaining atomic '
    "actions required to complete the task. Then estimate the current completion percentage "
    "and output it as a float wrapped by <progress> tags."
)
NO_ACTION = "No action required"
FINISHED_REASONING = "The task has been completed. No action required."
TAG = "<progress>"
CONCLUSION = "\nTherefore, the estimated progress is "


def progress_prompt(task: str) -> str:
    """The progress question for ``task``."""
    return PROGRESS_PROMPT.format(task=task)


def progress_tag(progress: float) -> str:
    """``<progress>XX.XX%</progress>`` for a progress in [0, 1]."""
    return f"{TAG}{100.0 * min(max(progress, 0.0), 1.0):.2f}%</progress>"


def reasoning_text(remaining: list[str]) -> str:
    """The reasoning part of an answer: the numbered remaining actions, or the finished
    sentence when none remain."""
    if not remaining:
        return FINISHED_REASONING
    steps = "\n".join(f"{i}. {a}" for i, a in enumerate(remaining, 1))
    return f"The following actions are required:\n{steps}"


def progress_answer(remaining: list[str], progress: float) -> str:
    """The answer: the remaining actions first (reasoning), then the progress estimate."""
    return f"{reasoning_text(remaining)}{CONCLUSION}{progress_tag(progress)}."


def answer_prefix(remaining: list[str]) -> str:
    """The answer up to and including ``<progress>``: what the digit readout teacher-forces
    when the remaining actions are known (labelled, or reused from an earlier frame)."""
    return f"{reasoning_text(remaining)}{CONCLUSION}{TAG}"


def progress_messages(num_images: int, task: str) -> list[dict]:
    """The progress question as typed chat messages: the images first, then the prompt."""
    content: list[dict] = [{"type": "image"} for _ in range(num_images)]
    return [{"role": "user", "content": [*content, {"type": "text",
                                                    "text": progress_prompt(task)}]}]


def to_pil(frame: np.ndarray | Image.Image, image_size: int | None) -> Image.Image:
    """An RGB PIL image whose longest side is at most ``image_size``."""
    img = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, np.uint8))
    img = img.convert("RGB")
    if image_size is not None and max(img.size) > image_size:
        scale = image_size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.BICUBIC)
    return img


def window_indices(t: int, window: int, stride: int) -> list[int]:
    """Frame indices shown at step ``t``: up to ``window`` frames ending at ``t``."""
    return sorted({max(t - k * stride, 0) for k in range(window)})
