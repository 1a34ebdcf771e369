"""Progress-estimation metrics: pure numpy functions over per-frame progress arrays.

- ``voc``: value-order correlation, the Spearman correlation of predictions with frame order,
  per episode, averaged (meaningful on successful episodes, whose progress should rise).
- ``kendall_tau_a``, ``ccc`` (Lin's concordance correlation with reference labels).
- ``epr``: resolution, the fraction of equal-width progress bins the predictions visit.
- ``mcc_at``: success detection by thresholding final progress (MCC@95).
- ``auroc``: success vs. failure ranking of final progress (rank-based, ties count one half).
- ``stall_drift``: progress gained over stalled frame ranges (should be 0).
- ``regression_recall``: fraction of regression events (an achieved sub-step undone) at which
  predicted progress drops.
- ``boundary_f1`` / ``boundary_mae`` (BF1@5, mMAE) come from ``procvlm.annotate.metrics``.

``summarize`` aggregates them over a list of ``EpisodeResult``. Undefined values (no episode of
the needed kind, one class only) are ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from procvlm.annotate.metrics import boundary_f1, boundary_mae, subtask_boundaries
from procvlm.errors import ProcvlmError

__all__ = [
    "EpisodeResult", "auroc", "boundary_f1", "boundary_mae", "ccc", "epr", "kendall_tau_a",
    "mcc_at", "rankdata", "regression_hits", "regression_recall", "spearman", "stall_drift",
    "subtask_boundaries", "summarize", "value_order_correlation", "voc",
]


def _vector(x: Sequence[float] | np.ndarray, what: str, min_len: int = 1) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1 or arr.size < min_len:
        raise ProcvlmError(f"{what} has shape {arr.shape}: need a 1-D array of at least "
                           f"{min_len} values")
    if not np.all(np.isfinite(arr)):
        raise ProcvlmError(f"{what} contains NaN or infinite values: drop or fix those frames")
    return arr


def _pair(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray | None,
          min_len: int) -> tuple[np.ndarray, np.ndarray]:
    a = _vector(x, "predictions", min_len)
    b = np.arange(a.size, dtype=np.float64) if y is None else _vector(y, "reference", min_len)
    if a.size != b.size:
        raise ProcvlmError(f"predictions ({a.size}) and reference ({b.size}) differ in length: "
                           "pass one value per frame for both")
    return a, b


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their average rank (like ``scipy.stats.rankdata``)."""
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    order = np.argsort(a, kind="mergesort")
    sorted_a = a[order]
    starts = np.r_[True, sorted_a[1:] != sorted_a[:-1]]
    group = np.cumsum(starts) - 1  # group id of each sorted value
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], a.size] - 1
    avg = (first + last) / 2.0 + 1.0  # average 1-based rank of each group
    ranks = np.empty(a.size, dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    da, db = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db / denom) if denom > 0 else 0.0


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray | None = None
             ) -> float:
    """Spearman rank correlation (Pearson of average ranks) of ``x`` with ``y``.

    Args:
        x: values, e.g. predicted progress per frame.
        y: reference values; frame order ``0..n-1`` when None.

    Returns:
        Correlation in [-1, 1]; 0.0 when either side is constant (no order to agree with).
    """
    a, b = _pair(x, y, 2)
    return _pearson(rankdata(a), rankdata(b))


def value_order_correlation(pred: Sequence[float] | np.ndarray) -> float:
    """VOC of one episode: Spearman correlation of ``pred`` with frame order (ties averaged)."""
    return spearman(pred)


def voc(episodes: Sequence[Sequence[float] | np.ndarray]) -> float:
    """VOC averaged over episodes (each a 1-D per-frame progress array of >= 2 frames).

    Example: ``voc([[0, .1, .5, 1], [0, 0, 1, 1]]) == (1.0 + 0.894...) / 2``.
    """
    if len(episodes) == 0:
        raise ProcvlmError("voc got no episode: pass a list of per-frame progress arrays")
    return float(np.mean([value_order_correlation(e) for e in episodes]))


def kendall_tau_a(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray | None = None
                  ) -> float:
    """Kendall's tau-a: (concordant - discordant pairs) / (n (n - 1) / 2); ties count as neither.

    Args:
        x: values, e.g. predicted progress per frame.
        y: reference values; frame order when None.
    """
    a, b = _pair(x, y, 2)
    sa = np.sign(a[:, None] - a[None, :])
    sb = np.sign(b[:, None] - b[None, :])
    n = a.size
    return float(np.triu(sa * sb, k=1).sum() / (n * (n - 1) / 2))


def ccc(pred: Sequence[float] | np.ndarray, ref: Sequence[float] | np.ndarray) -> float:
    """Lin's concordance correlation: 2 cov / (var_p + var_r + (mean_p - mean_r)^2).

    Population moments (ddof 0). 1.0 when both are the same constant.
    """
    a, b = _pair(pred, ref, 1)
    cov = float(np.mean((a - a.mean()) * (b - b.mean())))
    denom = float(a.var() + b.var() + (a.mean() - b.mean()) ** 2)
    return 2.0 * cov / denom if denom > 0 else 1.0


def epr(pred: Sequence[float] | np.ndarray, bins: int = 50) -> float:
    """Resolution (EPR@bins): fraction of ``bins`` equal-width progress bins the predictions visit.

    Predictions are clipped to [0, 1]; value p falls in bin ``min(floor(p * bins), bins - 1)``
    (so 1.0 is in the last bin). A model that outputs only 0 and 1 scores 2/50.
    """
    if bins < 1:
        raise ProcvlmError(f"bins={bins}: need at least one progress bin")
    a = np.clip(_vector(pred, "predictions"), 0.0, 1.0)
    idx = np.minimum(np.floor(a * bins).astype(np.int64), bins - 1)
    return float(np.unique(idx).size / bins)


def mcc_at(final_progress: Sequence[float] | np.ndarray, success: Sequence[bool] | np.ndarray,
           threshold: float = 0.95) -> float:
    """Matthews correlation of success detection (MCC@95): predicted success = final >= threshold.

    Returns:
        MCC in [-1, 1]; 0.0 when a row or column of the confusion matrix is empty.
    """
    p = _vector(final_progress, "final progress") >= threshold
    t = np.asarray(success, dtype=bool).reshape(-1)
    if t.size != p.size:
        raise ProcvlmError(f"{p.size} final progress values but {t.size} success flags: pass "
                           "one of each per episode")
    tp, tn = float(np.sum(p & t)), float(np.sum(~p & ~t))
    fp, fn = float(np.sum(p & ~t)), float(np.sum(~p & t))
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / denom if denom > 0 else 0.0


def auroc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2.

    Computed from average ranks (Mann-Whitney U).

    Args:
        scores: e.g. final predicted progress per episode.
        labels: True for positives (successful episodes).
    """
    s = _vector(scores, "scores")
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if y.size != s.size:
        raise ProcvlmError(f"{s.size} scores but {y.size} labels: pass one of each per episode")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise ProcvlmError(f"AUROC needs both classes, got {n_pos} positive and {n_neg} "
                           "negative episodes: evaluate on successes and failures")
    r = rankdata(s)
    u = r[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def _ranges(ranges: Sequence[Sequence[int]], n: int) -> list[tuple[int, int]]:
    out = []
    for r in ranges:
        if len(r) != 2 or not 0 <= int(r[0]) < int(r[1]) <= n:
            raise ProcvlmError(f"stall range {list(r)} is not [start, end) with "
                               f"0 <= start < end <= {n}: pass frame ranges of this episode")
        out.append((int(r[0]), int(r[1])))
    return out


def stall_drift(pred: Sequence[float] | np.ndarray, stalls: Sequence[Sequence[int]]) -> float:
    """Progress gained over stalled frames: ``pred[end - 1] - pred[start]`` per ``[start, end)``
    range, averaged over ranges. 0 is ideal; positive means progress creeps up while nothing
    happens.
    """
    a = _vector(pred, "predictions")
    spans = _ranges(stalls, a.size)
    if not spans:
        raise ProcvlmError("stall_drift got no stall range: pass [start, end) frame ranges")
    return float(np.mean([a[e - 1] - a[s] for s, e in spans]))


def regression_hits(pred: Sequence[float] | np.ndarray, events: Sequence[int],
                    threshold: float = 0.05, tolerance: int = 10) -> np.ndarray:
    """Which regression events the predictions catch.

    Event at frame e is caught when, within the window ``[e - tolerance, e + tolerance]``, some
    frame j has ``max(pred[window start .. j]) - pred[j] >= threshold`` (a drop of at least
    ``threshold`` from an earlier frame of the window).

    Returns:
        (len(events),) bool.
    """
    a = _vector(pred, "predictions")
    if tolerance < 0 or threshold <= 0:
        raise ProcvlmError(f"tolerance={tolerance}, threshold={threshold}: need tolerance >= 0 "
                           "frames and a positive drop threshold")
    hits = []
    for e in events:
        if not 0 <= int(e) < a.size:
            raise ProcvlmError(f"regression event at frame {e} is outside [0, {a.size}): pass "
                               "frame indices of this episode")
        w = a[max(0, int(e) - tolerance): int(e) + tolerance + 1]
        hits.append(bool(np.max(np.maximum.accumulate(w) - w) >= threshold))
    return np.asarray(hits, dtype=bool)


def regression_recall(pred: Sequence[float] | np.ndarray, events: Sequence[int],
                      threshold: float = 0.05, tolerance: int = 10) -> float:
    """Fraction of ``events`` caught by ``regression_hits``."""
    if len(events) == 0:
        raise ProcvlmError("regression_recall got no event: pass the frames where sub-steps "
                           "were undone")
    return float(regression_hits(pred, events, threshold, tolerance).mean())


@dataclass(frozen=True)
class EpisodeResult:
    """A model's predictions on one episode, with what is known about the episode.

    Attributes:
        episode: episode id.
        progress: (T,) predicted progress.
        success: whether the episode achieved its task.
        reference: (T,) reference progress labels, when known (for CCC).
        stalls: ``[start, end)`` frame ranges where nothing changes (stall episodes).
        regressions: frames where an achieved sub-step is undone (regression episodes).
        pred_boundaries: predicted sub-step boundaries (frames), for BF1@5 / mMAE.
        true_boundaries: reference sub-step boundaries (frames).
    """

    episode: int | str
    progress: np.ndarray
    success: bool
    reference: np.ndarray | None = None
    stalls: Sequence[Sequence[int]] = field(default_factory=tuple)
    regressions: Sequence[int] = field(default_factory=tuple)
    pred_boundaries: Sequence[int] | None = None
    true_boundaries: Sequence[int] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", _vector(self.progress, f"episode {self.episode} "
                                                     "progress"))
        if self.reference is not None:
            ref = _vector(self.reference, f"episode {self.episode} reference")
            if ref.size != self.progress.size:
                raise ProcvlmError(f"episode {self.episode}: {self.progress.size} predictions "
                                   f"but {ref.size} reference values: pass one per frame")
            object.__setattr__(self, "reference", ref)
        if (self.pred_boundaries is None) != (self.true_boundaries is None):
            raise ProcvlmError(f"episode {self.episode}: pass both pred_boundaries and "
                               "true_boundaries, or neither")


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def summarize(results: Sequence[EpisodeResult | Mapping[str, Any]], *, bins: int = 50,
              success_threshold: float = 0.95, boundary_tolerance: float = 0.05,
              regression_threshold: float = 0.05, regression_tolerance: int = 10
              ) -> dict[str, float]:
    """Aggregate the metrics over episodes (``nan`` where a metric has no episode to use).

    - ``voc`` and ``kendall_tau_a``: mean over successful episodes (against frame order);
    - ``ccc``: mean over episodes with a reference;
    - ``epr@{bins}``: mean over all episodes;
    - ``mcc@{100 * success_threshold}`` and ``auroc``: final progress vs. success, all episodes;
    - ``stall_drift``: mean over stall episodes; ``regression_recall``: pooled over all events;
    - ``bf1@{100 * boundary_tolerance}`` and ``mmae`` (in frames): mean over episodes with
      boundaries.

    Args:
        results: ``EpisodeResult`` objects or mappings with its fields.
        bins: EPR bins.
        success_threshold: final progress that counts as predicted success.
        boundary_tolerance: BF1 window as a fraction of the episode.
        regression_threshold: drop that counts as a detected regression.
        regression_tolerance: frames either side of a regression event.

    Returns:
        Metric name -> value, plus episode counts ``n_episodes``, ``n_success``, ``n_stall``,
        ``n_regression``.
    """
    eps = [r if isinstance(r, EpisodeResult) else EpisodeResult(**r) for r in results]
    if not eps:
        raise ProcvlmError("summarize got no episode result: score some episodes first")
    ok = [e for e in eps if e.success]
    final = [float(e.progress[-1]) for e in eps]
    flags = [bool(e.success) for e in eps]
    both = 0 < len(ok) < len(eps)
    hits = [regression_hits(e.progress, e.regressions, regression_threshold,
                            regression_tolerance) for e in eps if len(e.regressions)]
    seg = [e for e in eps if e.true_boundaries is not None]
    out = {
        "voc": _mean([value_order_correlation(e.progress) for e in ok if e.progress.size > 1]),
        "kendall_tau_a": _mean([kendall_tau_a(e.progress) for e in ok if e.progress.size > 1]),
        "ccc": _mean([ccc(e.progress, e.reference) for e in eps if e.reference is not None]),
        f"epr@{bins}": _mean([epr(e.progress, bins) for e in eps]),
        f"mcc@{round(100 * success_threshold)}": mcc_at(final, flags, success_threshold),
        "auroc": auroc(final, flags) if both else float("nan"),
        "stall_drift": _mean([stall_drift(e.progress, e.stalls) for e in eps if len(e.stalls)]),
        "regression_recall": (float(np.concatenate(hits).mean()) if hits else float("nan")),
        f"bf1@{round(100 * boundary_tolerance)}": _mean([
            boundary_f1(e.pred_boundaries, e.true_boundaries, e.progress.size, boundary_tolerance)
            for e in seg]),
        "mmae": _mean([boundary_mae(e.pred_boundaries, e.true_boundaries, e.progress.size)
                       for e in seg]),
    }
    counts = {"n_episodes": len(eps), "n_success": len(ok),
              "n_stall": sum(1 for e in eps if len(e.stalls)),
              "n_regression": sum(1 for e in eps if len(e.regressions))}
    return {**out, **counts}
