"""Proprioceptive signals for the ``gripper`` annotator: which state columns hold the hand
position, the gripper opening and object positions, and the events read from them (gripper
closing / opening, hand speed minima, objects starting and stopping to move).

Layouts recognised from ``Episode.meta["state_names"]``: MetaWorld (``hand_*``, ``gripper*``,
``obj*``; and the bare 39-d observation when names are missing), robomimic / LIBERO
(``robot0_eef_pos*``, ``robot0_gripper_qpos*``, ``object*``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from procvlm.errors import ProcvlmError

METAWORLD_DIM = 39
_AXIS = r"(?:[_.\-\[]?(?:x|y|z|0|1|2)\]?)"
_SKIP = re.compile(r"prev|quat|rot|goal|vel|target", re.I)


@dataclass(frozen=True)
class StateLayout:
    """Column indices of the state vector.

    Attributes:
        hand: 3 indices of the end-effector position, or empty when unknown.
        gripper: 1 index (opening) or 2 (finger positions, opening = |q0 - q1|).
        objects: one triple of indices per object position.
        goal: 3 indices of the goal position (MetaWorld shows it), or empty.
        empty_level: gripper opening (in state units) when fully closed on nothing; a grasp that
            stays above it closed on something. None: unknown.
    """

    hand: tuple[int, ...] = ()
    gripper: tuple[int, ...] = ()
    objects: tuple[tuple[int, int, int], ...] = field(default_factory=tuple)
    empty_level: float | None = None
    goal: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.hand and len(self.hand) != 3:
            raise ProcvlmError(f"hand_dims={self.hand}: give the 3 columns of the hand position")
        if len(self.gripper) not in (1, 2):
            raise ProcvlmError(f"gripper_dims={self.gripper}: give 1 column (opening) or 2 "
                               "(finger positions)")
        for obj in self.objects:
            if len(obj) != 3:
                raise ProcvlmError(f"object_dims entry {obj}: give 3 columns per object")


def _xyz_groups(names: Sequence[str], pattern: re.Pattern,
                skip: bool = True) -> list[tuple[int, int, int]]:
    """Triples of consecutive columns whose names match ``pattern`` and end in x/y/z or 0/1/2."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        if (skip and _SKIP.search(name)) or not pattern.search(name):
            continue
        m = re.match(rf"^(.*?){_AXIS}$", name)
        if m:
            groups.setdefault(m.group(1), []).append(i)
    return [tuple(v[:3]) for v in groups.values() if len(v) >= 3]


def detect_layout(state_names: Sequence[str] | None, state_dim: int) -> StateLayout | None:
    """Find the hand, gripper and object columns from the state's column names.

    Args:
        state_names: one name per state column, or None.
        state_dim: D, used for the bare MetaWorld observation (39 columns, no names).

    Returns:
        The layout, or None when no gripper column can be identified.
    """
    if not state_names:
        if state_dim == METAWORLD_DIM:
            return StateLayout(hand=(0, 1, 2), gripper=(3,), objects=((4, 5, 6), (11, 12, 13)),
                               empty_level=0.33, goal=(36, 37, 38))
        return None
    names = [str(n) for n in state_names]
    grip = [i for i, n in enumerate(names)
            if re.search(r"gripper|finger", n, re.I) and not _SKIP.search(n)
            and not re.search(r"eef|hand_pos|pos_[xyz]", n, re.I)]
    if not grip:
        return None
    hands = _xyz_groups(names, re.compile(r"hand|eef|end_effector|tcp|ee_pos", re.I))
    objects = _xyz_groups(names, re.compile(r"obj|puck|cube|block|peg", re.I))
    goals = [g for g in _xyz_groups([n if "goal" in n and "prev" not in n else "-" for n in names],
                                    re.compile("goal"), skip=False)]
    is_robomimic = any("robot0" in n for n in names)
    empty = 0.0 if is_robomimic else (0.33 if any(n.startswith("hand") for n in names) else None)
    return StateLayout(hand=hands[0] if hands else (), gripper=tuple(grip[:2]),
                       objects=tuple(objects), empty_level=empty,
                       goal=goals[0] if goals else ())


@dataclass
class Signals:
    """Per-frame signals of one episode.

    Attributes:
        opening: (T,) gripper opening in state units (larger = more open).
        hand: (T, 3) hand position, or None.
        objects: (J, T, 3) positions of the objects that move at all, the most moved first.
        goal: (T, 3) goal position, or None.
    """

    opening: np.ndarray
    hand: np.ndarray | None
    objects: np.ndarray
    goal: np.ndarray | None = None


def extract_signals(state: np.ndarray, layout: StateLayout, open_high: bool = True) -> Signals:
    """Read the layout's columns from a (T, D) state array."""
    state = np.asarray(state, dtype=np.float64)
    top = max([*layout.hand, *layout.gripper, *[i for o in layout.objects for i in o]])
    if state.ndim != 2 or state.shape[1] <= top:
        raise ProcvlmError(f"state has shape {state.shape} but the layout needs column {top}: "
                           "pass hand_dims / gripper_dims / object_dims that fit the state")
    g = state[:, list(layout.gripper)]
    opening = np.abs(g[:, 0] - g[:, 1]) if g.shape[1] == 2 else g[:, 0]
    if not open_high:
        opening = -opening
    hand = state[:, list(layout.hand)] if layout.hand else None
    objs = [state[:, list(o)] for o in layout.objects]
    moving = sorted((o for o in objs if np.ptp(o, axis=0).max() > 1e-3),
                    key=lambda o: -float(np.ptp(o, axis=0).max()))
    objects = np.stack(moving) if moving else np.zeros((0, len(state), 3))
    goal = state[:, list(layout.goal)] if layout.goal and state.shape[1] > max(layout.goal) \
        else None
    return Signals(opening=opening, hand=hand, objects=objects, goal=goal)


def smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average with edge padding (window 1 returns ``x``)."""
    if window <= 1 or len(x) < 2:
        return np.asarray(x, dtype=np.float64)
    pad = window // 2
    xp = np.pad(np.asarray(x, dtype=np.float64), (pad, window - 1 - pad), mode="edge")
    return np.convolve(xp, np.ones(window) / window, mode="valid")


def runs(mask: np.ndarray, min_len: int = 1, max_gap: int = 0) -> list[tuple[int, int]]:
    """[start, end) runs of True in ``mask``; runs separated by <= max_gap False frames merge."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return []
    out = []
    start = prev = int(idx[0])
    for i in idx[1:]:
        if i - prev > max_gap + 1:
            out.append((start, prev + 1))
            start = int(i)
        prev = int(i)
    out.append((start, prev + 1))
    return [(a, b) for a, b in out if b - a >= min_len]


def gripper_motions(opening: np.ndarray, min_change: float, rate: float = 0.04
                    ) -> list[tuple[int, int, int]]:
    """Closing (-1) and opening (+1) motions of the gripper.

    Args:
        opening: (T,) opening, smoothed.
        min_change: smallest total change of a motion, in state units.
        rate: per-frame change, as a fraction of ``min_change``, that counts as moving.

    Returns:
        (direction, onset, done) per motion, in time order (done exclusive).
    """
    d = np.diff(opening, prepend=opening[:1])
    eps = rate * min_change
    out = []
    for sign in (-1, 1):
        for a, b in runs(sign * d > eps, min_len=2, max_gap=2):
            if abs(opening[min(b, len(opening) - 1)] - opening[a]) >= min_change:
                out.append((sign, a, b))
    return sorted(out, key=lambda m: m[1])


def speed_minima(hand: np.ndarray, window: int = 5, rel: float = 0.35) -> list[int]:
    """Frames where the hand slows to a local minimum below ``rel`` of its median moving speed."""
    v = smooth(np.linalg.norm(np.diff(hand, axis=0, prepend=hand[:1]), axis=1), window)
    if len(v) < 3 or v.max() <= 0:
        return []
    level = rel * np.median(v[v > 0.1 * v.max()])
    return [t for t in range(1, len(v) - 1)
            if v[t] <= v[t - 1] and v[t] < v[t + 1] and v[t] < level]


def object_motions(objects: np.ndarray, window: int = 3, min_disp: float = 0.01,
                   rel: float = 0.15) -> list[tuple[int, int, int]]:
    """When each object moves: (object, onset, stop) per run of motion.

    Args:
        objects: (J, T, 3) positions.
        window: smoothing of the per-frame speed.
        min_disp: smallest displacement (state units) over a run that counts.
        rel: speed threshold as a fraction of the object's peak speed.
    """
    out = []
    for j, pos in enumerate(objects):
        v = smooth(np.linalg.norm(np.diff(pos, axis=0, prepend=pos[:1]), axis=1), window)
        if v.max() <= 0:
            continue
        for a, b in runs(v > rel * v.max(), min_len=2, max_gap=3):
            if np.linalg.norm(pos[min(b, len(pos) - 1)] - pos[a]) >= min_disp:
                out.append((j, a, b))
    return sorted(out, key=lambda m: m[1])


def carried(hand: np.ndarray | None, obj: np.ndarray, start: int, end: int,
            tol: float = 0.02) -> bool:
    """True when the object moved with the hand over [start, end): their offset stayed within
    ``tol`` while the object travelled farther than ``tol``."""
    if hand is None or end - start < 2:
        return False
    offset = obj[start:end] - hand[start:end]
    travel = np.linalg.norm(obj[end - 1] - obj[start])
    spread = np.linalg.norm(offset - offset[0], axis=1).max()
    return bool(travel > tol and spread < max(tol, 0.5 * travel))


def first_after(mask: np.ndarray, start: int) -> int | None:
    """First frame >= start where ``mask`` holds, or None."""
    idx = np.flatnonzero(mask[start:])
    return int(start + idx[0]) if idx.size else None
