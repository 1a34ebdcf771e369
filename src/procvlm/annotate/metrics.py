"""Segmentation quality: boundary F1 within a tolerance (BF1@5) and mean absolute boundary error
(mMAE) between a predicted and a reference timeline. Pure numpy, no model imports.

A *boundary* is a frame index where the sub-step label changes (the start of every sub-step but
the first). ``subtask_boundaries`` extracts them from a list of ``Subtask``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from procvlm.data.episode import Subtask
from procvlm.errors import ProcvlmError


def subtask_boundaries(subtasks: Sequence[Subtask], num_frames: int) -> list[int]:
    """Frame indices strictly inside the episode where a sub-step starts or ends.

    Args:
        subtasks: a timeline (end exclusive).
        num_frames: episode length T; 0 and T are not boundaries.

    Returns:
        Sorted, unique boundary frames in (0, T).
    """
    points = {s.start for s in subtasks} | {s.end for s in subtasks}
    return sorted(int(p) for p in points if 0 < p < num_frames)


def _as_boundaries(values: Sequence[int] | np.ndarray, what: str, num_frames: int) -> np.ndarray:
    arr = np.sort(np.asarray(values, dtype=np.float64).reshape(-1))
    if num_frames <= 0:
        raise ProcvlmError(f"num_frames={num_frames}: need a positive episode length")
    if arr.size and (arr.min() < 0 or arr.max() > num_frames):
        raise ProcvlmError(f"{what} boundaries {arr.tolist()} fall outside [0, {num_frames}]: "
                           "pass frame indices of this episode")
    return arr


def _match_count(pred: np.ndarray, true: np.ndarray, tol: float) -> int:
    """Maximum one-to-one matching of sorted points within ``tol`` (greedy is optimal in 1-D)."""
    i = j = matched = 0
    while i < len(pred) and j < len(true):
        if abs(pred[i] - true[j]) <= tol:
            matched += 1
            i += 1
            j += 1
        elif pred[i] < true[j]:
            i += 1
        else:
            j += 1
    return matched


def boundary_f1(pred: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray,
                num_frames: int, tolerance: float = 0.05) -> float:
    """Boundary F1: a predicted boundary is a hit when it lies within ``tolerance * num_frames``
    frames of a reference boundary not matched yet (one-to-one matching).

    Args:
        pred: predicted boundary frames.
        true: reference boundary frames.
        num_frames: episode length T.
        tolerance: matching window as a fraction of T (0.05 gives BF1@5).

    Returns:
        F1 in [0, 1]; 1.0 when both lists are empty, 0.0 when only one is.
    """
    if not 0 <= tolerance <= 1:
        raise ProcvlmError(f"tolerance={tolerance}: need a fraction of the episode in [0, 1]")
    p = _as_boundaries(pred, "predicted", num_frames)
    t = _as_boundaries(true, "reference", num_frames)
    if p.size == 0 and t.size == 0:
        return 1.0
    if p.size == 0 or t.size == 0:
        return 0.0
    hits = _match_count(p, t, tolerance * num_frames)
    if hits == 0:
        return 0.0
    precision, recall = hits / p.size, hits / t.size
    return float(2 * precision * recall / (precision + recall))


def boundary_mae(pred: Sequence[int] | np.ndarray, true: Sequence[int] | np.ndarray,
                 num_frames: int) -> float:
    """Mean absolute boundary error in frames (divide by ``num_frames`` for a fraction).

    With as many predicted as reference boundaries, the k-th predicted boundary is compared
    with the k-th reference one (the timelines are aligned step by step). Otherwise each
    reference boundary is compared with the nearest predicted one; with no prediction at all,
    with the nearest episode end (0 or T), as if every segment were merged.

    Args:
        pred: predicted boundary frames.
        true: reference boundary frames.
        num_frames: episode length T.

    Returns:
        Mean |error| in frames; 0.0 when there is no reference boundary.
    """
    p = _as_boundaries(pred, "predicted", num_frames)
    t = _as_boundaries(true, "reference", num_frames)
    if t.size == 0:
        return 0.0
    if p.size == t.size:
        return float(np.abs(p - t).mean())
    if p.size == 0:
        p = np.array([0.0, float(num_frames)])
    dist = np.abs(t[:, None] - p[None, :]).min(axis=1)
    return float(dist.mean())
