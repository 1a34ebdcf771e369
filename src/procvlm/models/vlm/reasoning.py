"""Reasoning reuse: which frames of an episode need a generated answer.

The reasoning (the remaining atomic actions) changes only at sub-step boundaries, while the
progress number changes every frame. So the full answer is generated on a sparse set of frames
and, between two generated frames whose reasoning agrees, the other frames reuse that reasoning:
their progress is read by the teacher-forced digit readout with the reused reasoning as the
answer prefix (one pass over the prompt, a few number tokens), not a whole generated answer.

Which frames: every ``refresh``-th frame and the last; then, wherever two neighbouring generated
frames disagree (or either answer is unreadable), the frame halfway between is generated too,
until neighbours agree or are adjacent. With one boundary per interval this finds it exactly, at
``n / refresh + changes * log2(refresh)`` generated answers instead of ``n``. A reasoning that
changes and changes back inside one interval is missed; ``refresh=1`` generates every frame.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping


def anchor_frames(n: int, refresh: int) -> list[int]:
    """The frames generated first: every ``refresh``-th and the last."""
    if n < 1 or refresh < 1:
        raise ValueError(f"anchor_frames needs n >= 1 and refresh >= 1, got {n}, {refresh}")
    return sorted({*range(0, n, refresh), n - 1})


def frames_to_split(keys: Mapping[int, Hashable | None]) -> list[int]:
    """The next frames to generate: halfway inside each interval between neighbouring
    generated frames whose reasoning differs or is unreadable (key None)."""
    done = sorted(keys)
    out = []
    for a, b in zip(done, done[1:]):
        if b - a > 1 and (keys[a] is None or keys[a] != keys[b]):
            out.append((a + b) // 2)
    return out


def reuse_sources(n: int, keys: Mapping[int, Hashable | None]) -> list[int]:
    """For every frame, the generated frame whose reasoning it uses (itself when generated).

    Raises:
        ValueError: when a frame lies between generated frames that disagree (split first).
    """
    done = sorted(keys)
    src = list(range(n))
    for a, b in zip(done, done[1:]):
        if b - a > 1:
            if keys[a] is None or keys[a] != keys[b]:
                raise ValueError(f"frames {a} and {b} disagree: split the interval first")
            src[a + 1:b] = [a] * (b - a - 1)
    return src
