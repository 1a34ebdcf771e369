"""ProcVQA sample builders over in-memory label arrays: the three families of the paper.

- ``progress``: reasoning before estimation. The user turn is ``processor_vlm.progress_prompt`` with
  the observation; the assistant turn is ``processor_vlm.progress_answer`` (remaining actions, then
  ``<progress>XX.XX%</progress>``).
- ``segmentation``: frames sampled from a clip, each tagged with its index ("Frame 12: <image>");
  the answer is a JSON list of ``{"action", "start_frame", "end_frame"}`` (variants ``with_task``
  and ``no_task``).
- ``planning``: the next atomic action (variant ``next``) or the numbered remaining actions
  (variant ``remaining``); ``processor_vlm.NO_ACTION`` when the task is finished.

A sample is a plain dict in the chat format that LLaMA-Factory (``sharegpt`` with ``messages`` +
``images``), ms-swift and TRL read: one ``<image>`` placeholder in the user text per entry of
``images``, in order. ``structured_messages`` turns a sample into the typed-content form that
``transformers`` chat templates (and TRL, interleaved) take. These functions are pure: the frames
themselves are written by ``procvlm.vqa.build``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from procvlm.data.vocab import is_done
from procvlm.errors import ProcvlmError
from procvlm.models.vlm.processor_vlm import NO_ACTION, progress_answer, progress_prompt

IMAGE_TOKEN = "<image>"
FAMILIES = ("progress", "segmentation", "planning")

SEGMENTATION_PROMPT_TASK = (
    'The frames above come from a robot performing the task "{task}". Segment them into the '
    "atomic actions being performed. Answer with a JSON list of objects with keys \"action\", "
    '"start_frame" and "end_frame" (frame numbers as tagged), in temporal order.'
)
SEGMENTATION_PROMPT = (
    "The frames above come from a robot manipulation video. Segment them into the atomic "
    'actions being performed. Answer with a JSON list of objects with keys "action", '
    '"start_frame" and "end_frame" (frame numbers as tagged), in temporal order.'
)
PLANNING_NEXT_PROMPT = (
    'Given the recent observation and the task "{task}", what is the next atomic action to '
    f'perform? Answer with the action only, or "{NO_ACTION}" if the task is complete.'
)
PLANNING_REMAINING_PROMPT = (
    'Given the recent observation and the task "{task}", list the remaining atomic actions '
    f'required to complete the task as a numbered list, or answer "{NO_ACTION}" if the task is '
    "complete."
)


@dataclass(frozen=True)
class WindowConfig:
    """How the observation window before a frame is sampled.

    Attributes:
        single_frame_prob: probability that the current frame is shown alone.
        min_context: fewest preceding frames otherwise.
        max_context: most preceding frames otherwise.
        max_stride: largest stride (in frames) between the shown frames.
    """

    single_frame_prob: float = 0.3
    min_context: int = 4
    max_context: int = 16
    max_stride: int = 4

    def __post_init__(self) -> None:
        if not 0.0 <= self.single_frame_prob <= 1.0:
            raise ProcvlmError(f"single_frame_prob={self.single_frame_prob}: need a probability "
                               "in [0, 1]")
        if not 1 <= self.min_context <= self.max_context:
            raise ProcvlmError(f"context {self.min_context}..{self.max_context}: need "
                               "1 <= min_context <= max_context")
        if self.max_stride < 1:
            raise ProcvlmError(f"max_stride={self.max_stride}: need a stride of at least 1")


def sample_window(rng: np.random.Generator, t: int, config: WindowConfig = WindowConfig()
                  ) -> list[int]:
    """Frame indices shown for current frame ``t``: ``[t]`` alone, or preceding frames too.

    With probability ``1 - single_frame_prob``, ``n`` in ``[min_context, max_context]``
    preceding frames are taken with a stride in ``[1, max_stride]``; near the episode start the
    stride and then ``n`` shrink so that every index is >= 0.

    Args:
        rng: the random generator (the caller seeds it, for determinism).
        t: the current frame index (>= 0).
        config: window parameters.

    Returns:
        Increasing frame indices ending with ``t``.
    """
    if t < 0:
        raise ProcvlmError(f"frame index t={t}: need t >= 0")
    if rng.random() < config.single_frame_prob or t == 0:
        return [t]
    n = int(rng.integers(config.min_context, config.max_context + 1))
    stride = int(rng.integers(1, config.max_stride + 1))
    n = min(n, t)
    stride = max(1, min(stride, t // n))
    return [t - k * stride for k in range(n, -1, -1)]


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def _images_then(text: str, num_images: int) -> str:
    return IMAGE_TOKEN * num_images + "\n" + text


def progress_sample(task: str, frames: Sequence[int], remaining: Sequence[str],
                    progress: float) -> dict[str, Any]:
    """A progress sample (reasoning before estimation) for the last frame of ``frames``.

    Args:
        task: the instruction.
        frames: shown frame indices (the last is the current frame).
        remaining: atomic actions still to do at the current frame (empty when finished).
        progress: the label progress in [0, 1] at the current frame.

    Returns:
        ``{"messages", "frames", "family", "variant"}``; ``frames`` become ``images`` on write.
    """
    return {
        "messages": [_user(_images_then(progress_prompt(task), len(frames))),
                     _assistant(progress_answer(list(remaining), float(progress)))],
        "frames": [int(f) for f in frames], "family": "progress", "variant": "reasoning",
    }


def planning_sample(task: str, frames: Sequence[int], remaining: Sequence[str],
                    variant: str) -> dict[str, Any]:
    """A planning sample: the next action (``"next"``) or all remaining ones (``"remaining"``).

    Args:
        task: the instruction.
        frames: shown frame indices (the last is the current frame).
        remaining: atomic actions still to do at the current frame.
        variant: ``"next"`` or ``"remaining"``.

    Returns:
        The sample dict; the answer is ``processor_vlm.NO_ACTION`` when ``remaining`` is empty.
    """
    if variant == "next":
        question = PLANNING_NEXT_PROMPT.format(task=task)
        answer = remaining[0] if remaining else NO_ACTION
    elif variant == "remaining":
        question = PLANNING_REMAINING_PROMPT.format(task=task)
        answer = ("\n".join(f"{i}. {a}" for i, a in enumerate(remaining, 1))
                  if remaining else NO_ACTION)
    else:
        raise ProcvlmError(f"planning variant {variant!r}: use 'next' or 'remaining'")
    return {"messages": [_user(_images_then(question, len(frames))), _assistant(answer)],
            "frames": [int(f) for f in frames], "family": "planning", "variant": variant}


def segments_of(frames: Sequence[int], subtask: Sequence[str]) -> list[dict[str, Any]]:
    """Runs of equal atomic actions over the shown ``frames``.

    Frames whose label is empty or a finished marker (``is_done``) belong to no segment and
    split runs.

    Args:
        frames: shown frame indices, increasing.
        subtask: the atomic action of every frame of the episode (indexed by frame).

    Returns:
        ``[{"action", "start_frame", "end_frame"}]`` with tagged (shown) frame numbers, the end
        inclusive (the last shown frame of the run).
    """
    segments: list[dict[str, Any]] = []
    previous: str | None = None
    for f in frames:
        name = str(subtask[f]) if subtask[f] is not None else ""
        if not name or is_done(name):
            previous = None
            continue
        if name == previous:
            segments[-1]["end_frame"] = int(f)
        else:
            segments.append({"action": name, "start_frame": int(f), "end_frame": int(f)})
        previous = name
    return segments


def segmentation_sample(task: str | None, frames: Sequence[int], subtask: Sequence[str]
                        ) -> dict[str, Any]:
    """An action-segmentation sample over tagged ``frames`` (variant by whether ``task`` is given).

    Args:
        task: the instruction, or None for the variant without the task text.
        frames: shown frame indices, increasing.
        subtask: the atomic action of every frame of the episode.

    Returns:
        The sample dict; the answer is ``json.dumps`` of ``segments_of(frames, subtask)``.
    """
    tagged = "\n".join(f"Frame {int(f)}: {IMAGE_TOKEN}" for f in frames)
    question = (SEGMENTATION_PROMPT_TASK.format(task=task) if task is not None
                else SEGMENTATION_PROMPT)
    answer = json.dumps(segments_of(frames, subtask), ensure_ascii=False)
    return {"messages": [_user(f"{tagged}\n{question}"), _assistant(answer)],
            "frames": [int(f) for f in frames], "family": "segmentation",
            "variant": "with_task" if task is not None else "no_task"}


def segmentation_frames(rng: np.random.Generator, t: int, min_frames: int = 6,
                        max_frames: int = 12) -> list[int]:
    """Evenly spaced frames of a random clip ``[s, t]`` (``s`` uniform in ``[0, t]``).

    Args:
        rng: the random generator.
        t: the clip's last frame.
        min_frames: fewest frames drawn.
        max_frames: most frames drawn (fewer when the clip is shorter).

    Returns:
        Increasing unique frame indices ending with ``t``.
    """
    if not 1 <= min_frames <= max_frames:
        raise ProcvlmError(f"segmentation frames {min_frames}..{max_frames}: need "
                           "1 <= min_frames <= max_frames")
    k = int(rng.integers(min_frames, max_frames + 1))
    s = int(rng.integers(0, t + 1))
    return sorted({int(round(x)) for x in np.linspace(s, t, k)})


def structured_messages(sample: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample's messages in typed-content form, images interleaved where ``<image>`` stood.

    ``{"role": "user", "content": [{"type": "text", ...}, {"type": "image", "image": path}, ...]}``
    is what ``processor.apply_chat_template`` and TRL's vision collators take; paths are the
    sample's ``images`` entries (relative to the ProcVQA folder) in order.

    Args:
        sample: a written sample (with ``messages`` and ``images``).

    Returns:
        A new list of messages.
    """
    images = list(sample.get("images", []))
    out: list[dict[str, Any]] = []
    used = 0
    for message in sample["messages"]:
        parts = message["content"].split(IMAGE_TOKEN)
        content: list[dict[str, Any]] = []
        for i, text in enumerate(parts):
            if i > 0:
                if used >= len(images):
                    raise ProcvlmError(f"sample has more {IMAGE_TOKEN} placeholders than "
                                       f"images ({len(images)}): rebuild it with procvlm vqa")
                content.append({"type": "image", "image": images[used]})
                used += 1
            if text.strip("\n"):
                content.append({"type": "text", "text": text.strip("\n")})
        out.append({"role": message["role"], "content": content})
    if used != len(images):
        raise ProcvlmError(f"sample has {used} {IMAGE_TOKEN} placeholders for {len(images)} "
                           "images: rebuild it with procvlm vqa")
    return out
