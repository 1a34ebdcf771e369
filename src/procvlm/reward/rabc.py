"""RA-BC sample weights (Reward-Aligned Behaviour Cloning, SARM paper eq. 8-9), computed the
way LeRobot's ``RABCWeights`` does from a progress file, so weights can be inspected offline.

For each frame, ``delta = p[min(t + chunk, end - 1)] - p[t]`` inside its episode. With the
global ``mu = max(mean(delta), 0)`` and ``sigma = max(std(delta), eps)``:
``soft = clip((delta - (mu - 2 sigma)) / (4 sigma + eps), 0, 1)`` and
``w = 1 if delta > kappa; soft if 0 <= delta <= kappa; 0 if delta < 0``; NaN -> fallback.
"""

from __future__ import annotations

import numpy as np

from procvlm.errors import ProcvlmError


def progress_deltas(progress: np.ndarray, episode_index: np.ndarray,
                    chunk_size: int = 50) -> np.ndarray:
    """(N,) progress gained over the next ``chunk_size`` frames of the same episode.

    Frames must be grouped by episode and in frame order (as in a score file sorted by index).
    """
    if chunk_size < 1:
        raise ProcvlmError(f"chunk_size={chunk_size}: need >= 1 frame")
    p = np.asarray(progress, np.float64)
    ep = np.asarray(episode_index)
    if len(p) != len(ep):
        raise ProcvlmError(f"{len(p)} progress values for {len(ep)} episode indices")
    out = np.empty(len(p), np.float64)
    bounds = np.flatnonzero(np.diff(ep)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(p)]):
        fut = np.minimum(np.arange(a, b) + chunk_size, b - 1)
        out[a:b] = p[fut] - p[a:b]
    return out


def rabc_weights(deltas: np.ndarray, kappa: float = 0.01, epsilon: float = 1e-6,
                 fallback_weight: float = 1.0) -> np.ndarray:
    """RA-BC weight of each sample from its progress delta (see the module docstring)."""
    d = np.asarray(deltas, np.float64)
    valid = ~np.isnan(d)
    if valid.any():
        mu = max(float(d[valid].mean()), 0.0)
        sigma = max(float(d[valid].std()), epsilon)
    else:
        mu, sigma = 0.0, epsilon
    soft = np.clip((d - (mu - 2 * sigma)) / (4 * sigma + epsilon), 0.0, 1.0)
    w = np.zeros(len(d), np.float64)
    w[valid & (d > kappa)] = 1.0
    mid = valid & (d >= 0) & (d <= kappa)
    w[mid] = soft[mid]
    w[~valid] = fallback_weight
    return w.astype(np.float32)


def normalize_batch(weights: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    """Scale a batch's weights to sum to the batch size (as LeRobot does per batch)."""
    w = np.asarray(weights, np.float64)
    return (w * len(w) / (w.sum() + epsilon)).astype(np.float32)


def rabc_weights_from_scores(table, chunk_size: int = 50, kappa: float = 0.01,
                             column: str | None = None) -> np.ndarray:
    """RA-BC weights of every row of a score table (``procvlm`` or ``lerobot-rabc`` format)."""
    column = column or ("progress_sparse" if "progress_sparse" in table.column_names
                        else "progress")
    if column not in table.column_names:
        raise ProcvlmError(f"score table has no {column!r} column (has {table.column_names})")
    t = table.sort_by([("episode_index", "ascending"), ("frame_index", "ascending")])
    deltas = progress_deltas(t.column(column).to_numpy(zero_copy_only=False),
                             t.column("episode_index").to_numpy(), chunk_size)
    w = rabc_weights(deltas, kappa)
    # back to the table's original row order
    order = np.lexsort((table.column("frame_index").to_numpy(),
                        table.column("episode_index").to_numpy()))
    out = np.empty_like(w)
    out[order] = w
    return out
