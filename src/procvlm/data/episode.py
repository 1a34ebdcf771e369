"""The data model every stage shares: an ``Episode`` of frames, states and actions, and the
``Subtask`` segments (atomic actions) that a plan is made of."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

DONE = "done"
"""Name of the pseudo sub-step after the last one: the task is finished."""


@dataclass(frozen=True)
class Subtask:
    """One atomic action in an episode's timeline.

    Attributes:
        name: the atomic action, e.g. ``"Grasp the puck"``, ``"Place the puck onto the goal"``.
        start: first frame index.
        end: frame index one past the last frame (end exclusive).
        completed: whether the action was achieved by ``end``.
    """

    name: str
    start: int
    end: int
    completed: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("Subtask.name is empty: give the atomic action, e.g. 'Grasp the puck'")
        if not 0 <= self.start < self.end:
            raise ValueError(f"Subtask {self.name!r} has start={self.start}, end={self.end}: "
                             "need 0 <= start < end (end exclusive)")

    @property
    def length(self) -> int:
        return self.end - self.start


@runtime_checkable
class Frames(Protocol):
    """A camera stream of ``len(frames)`` images (H, W, 3) uint8, possibly decoded lazily.

    Indexing with an int returns one (H, W, 3) array; with a slice or an index array it returns
    (N, H, W, 3). Implementations decode only what is asked for.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray: ...


class ArrayFrames:
    """``Frames`` over an in-memory (T, H, W, 3) uint8 array."""

    def __init__(self, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {array.shape} {array.dtype}")
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, (list, tuple)):
            index = np.asarray(index, dtype=np.int64)
        return self.array[index]

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)


@dataclass
class Episode:
    """One demonstration.

    Attributes:
        episode_index: index in its dataset.
        task: the natural-language instruction.
        fps: frames per second.
        frames: camera name -> ``Frames`` (each of length T). The first camera is the main one.
        state: (T, D) proprioception (float32).
        action: (T, A) actions (float32).
        success: whether the task was achieved, or None when unknown.
        subtasks: the timeline of atomic actions, when known (oracle or existing annotation).
        plan: the ordered atomic actions that complete the task, when known.
        meta: extra JSON-able facts (failure mode, injected events, simulator name, ...).
        true_progress: (T,) float32 simulator-truth progress in [0, 1] (see
            ``procvlm.sim.truth``), or None when the episode does not come from a simulator.
    """

    episode_index: int
    task: str
    fps: float
    frames: dict[str, Frames]
    state: np.ndarray
    action: np.ndarray
    success: bool | None = None
    subtasks: list[Subtask] | None = None
    plan: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    true_progress: np.ndarray | None = None

    def __len__(self) -> int:
        return int(len(self.state))

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def cameras(self) -> list[str]:
        return list(self.frames)

    @property
    def main_camera(self) -> str:
        if not self.frames:
            raise ValueError(f"episode {self.episode_index} has no camera frames")
        return next(iter(self.frames))

    def main_frames(self) -> Frames:
        return self.frames[self.main_camera]

    def subtask_index_per_frame(self) -> np.ndarray:
        """(T,) index into ``subtasks`` for every frame, -1 where no sub-step covers it."""
        out = np.full(len(self), -1, dtype=np.int64)
        for k, s in enumerate(self.subtasks or []):
            out[s.start:min(s.end, len(self))] = k
        return out
