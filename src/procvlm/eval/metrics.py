"""Progress-estimation metrics: pure numpy functions over per-frame progress arrays.

Against simulator truth (the referee no label scheme sees; ``Episode.true_progress``):

- ``ccc`` (Lin's concordance correlation) and ``mae`` of predictions against truth, all frames
  of all episodes pooled (``ccc_truth``, ``mae_truth``; ``ccc_truth_success`` on successes);
- ``stall_drift``: progress gained over still stretches (stall and hesitation events: nothing
  in the scene changes), should be 0;
- ``auroc``: success vs. failure ranking of final progress (rank-based, ties count one half);
  ``auroc_done`` the same ranking by ``success_score``, the model's own probability that the
  task is done (``ProgressPrediction.done``) over the episode's last frames;
- ``regression_detections``: sustained drops (below the running max of the median-smoothed
  curve by a margin, for several frames), so jitter does not count; ``regression_recall`` (true
  regressions with a drop nearby) and ``regression_precision`` (drops near a true regression);
- ``plan_exact`` / ``step_accuracy``: the predicted remaining actions (exactly) and current step
  against the annotation's, for models that reason.

For comparison with the literature: ``voc`` (value-order correlation, the Spearman correlation
of predictions with frame order on successes, which rewards time-like curves by construction),
``kendall_tau_a``, CCC against the models' labels, ``epr`` (resolution), ``mcc_at`` (MCC@95),
``boundary_f1`` / ``boundary_mae`` (BF1@5, mMAE, from ``procvlm.annotate.metrics``).

``summarize`` aggregates them over a list of ``EpisodeResult``; ``METRICS`` defines each
summary key with its reference and direction. Undefined values (no episode of the needed
kind, one class only) are ``nan``.
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
    "METRICS", "EpisodeResult", "Metric", "auroc", "boundary_f1", "boundary_mae", "ccc", "epr",
    "kendall_tau_a", "mae", "match_regressions", "mcc_at", "plan_exact", "rankdata",
    "regression_detections", "regression_hits", "regression_recall", "spearman",
    "stall_drift", "step_accuracy", "subtask_boundaries", "success_score", "summarize",
    "value_order_correlation", "voc",
]


@dataclass(frozen=True)
class Metric:
    """What a summary key means: against what it is measured, and which way is better."""

    label: str
    reference: str
    higher_is_better: bool
    definition: str
    literature: bool = False
    """Reported for comparison with the literature, after the metrics against truth."""

    @property
    def arrow(self) -> str:
        return "↑" if self.higher_is_better else "↓"


DONE_FRAMES = 3
"""Frames at the end of an episode whose P(done) ``success_score`` averages."""

METRICS: dict[str, Metric] = {
    "ccc_truth": Metric("CCC vs truth", "simulator truth", True,
                        "Lin's concordance correlation of predicted and true progress, all "
                        "frames of all episodes pooled"),
    "ccc_truth_success": Metric("CCC vs truth (successes)", "simulator truth", True,
                                "the same over the frames of successful episodes"),
    "mae_truth": Metric("MAE vs truth", "simulator truth", False,
                        "mean |predicted - true progress| over all frames"),
    "stall_drift": Metric("still drift", "stall and hesitation events", False,
                          "progress gained from the first to the last frame of a still "
                          "stretch (stall or hesitation: nothing changes), mean over episodes"),
    "auroc": Metric("success AUROC", "episode outcome", True,
                    "probability that a successful episode ends with more progress than a "
                    "failed one"),
    "auroc_done": Metric("success AUROC (P(done))", "episode outcome", True,
                         "the same ranking by the model's probability that the task is done, "
                         f"mean over the last {DONE_FRAMES} frames (models that decide a done "
                         "step)"),
    "regression_recall": Metric("regression recall", "regression events", True,
                                "true regressions (a finished step undone) with a sustained "
                                "drop within 10 frames: below the running max of the "
                                "5-frame-median curve by 0.1 for 5 frames"),
    "regression_precision": Metric("regression precision", "regression events", True,
                                   "sustained drops that are near a true regression"),
    "plan_exact": Metric("plan exact", "annotated remaining actions", True,
                         "frames whose predicted remaining actions equal the true list "
                         "(models that reason)"),
    "step_acc": Metric("step accuracy", "annotated current step", True,
                       "frames whose predicted current step is the true one"),
    "voc": Metric("VOC", "frame order", True,
                  "Spearman correlation of progress with frame order on successes (rewards "
                  "time-like curves by construction)", literature=True),
    "kendall_tau_a": Metric("Kendall tau-a", "frame order", True,
                            "Kendall tau-a with frame order on successes", literature=True),
    "ccc_labels": Metric("CCC vs labels", "labels of the models' scheme", True,
                         "CCC against the labels of the scheme the models trained on (procvlm "
                         "when they differ), mean over episodes (the paper's protocol; those "
                         "labels score 1 by construction)", literature=True),
    "epr@50": Metric("EPR@50", "none", True,
                     "fraction of 50 progress bins the predictions visit (resolution)",
                     literature=True),
    "mcc@95": Metric("MCC@95", "episode outcome", True,
                     "Matthews correlation of 'final progress >= 0.95' with success",
                     literature=True),
    "bf1@5": Metric("BF1@5", "annotated boundaries", True,
                    "F1 of predicted step boundaries within 5% of the episode", literature=True),
    "mmae": Metric("mMAE", "annotated boundaries", False,
                   "mean frames between predicted and true step boundaries", literature=True),
}


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


def success_score(done: Sequence[float] | np.ndarray, last: int = DONE_FRAMES) -> float:
    """An episode's success score from a model's per-frame probability that the task is done
    (``ProgressPrediction.done``): its mean over the last ``last`` frames (all frames of a
    shorter episode), so one glance away from the finished scene does not decide it."""
    if last < 1:
        raise ProcvlmError(f"success_score(last={last}): average over at least 1 frame")
    p = _vector(done, "done probabilities")
    if p.min() < 0 or p.max() > 1:
        raise ProcvlmError("done probabilities outside [0, 1]: pass ProgressPrediction.done")
    return float(p[-last:].mean())


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


def mae(pred: Sequence[float] | np.ndarray, ref: Sequence[float] | np.ndarray) -> float:
    """Mean absolute error ``mean |pred - ref|`` (e.g. against simulator-truth progress)."""
    a, b = _pair(pred, ref, 1)
    return float(np.mean(np.abs(a - b)))


def _trailing_median(a: np.ndarray, width: int) -> np.ndarray:
    """``out[j] = median(a[max(0, j - width + 1) : j + 1])``."""
    if width <= 1:
        return a.copy()
    pad = np.concatenate([np.full(width - 1, np.nan), a])
    windows = np.lib.stride_tricks.sliding_window_view(pad, width)
    return np.nanmedian(windows, axis=1)


def regression_detections(pred: Sequence[float] | np.ndarray, margin: float = 0.1,
                          hold: int = 5, smooth: int = 5) -> list[int]:
    """Frames where the predictions show a *sustained* drop (a regression, not jitter).

    The curve is smoothed by a trailing median over ``smooth`` frames (``s``). A drop starts at
    frame j when ``s[j] <= ref - margin``, ``ref`` the running max of ``s`` since the last
    detection, and counts when ``s`` stays that low for ``hold`` consecutive frames; the
    running max then restarts from the current value, so a second drop is a second detection.
    A one-frame dip, or noise of a few hundredths around a flat or rising curve, never counts.

    Args:
        pred: (T,) predicted progress.
        margin: how far below the running max progress must fall.
        hold: frames it must stay down.
        smooth: trailing-median width (1 = none).

    Returns:
        The first frame of each detected drop, in order.
    """
    a = _vector(pred, "predictions")
    if not (margin > 0 and hold >= 1 and smooth >= 1):
        raise ProcvlmError(f"margin={margin}, hold={hold}, smooth={smooth}: need a positive "
                           "margin and at least one frame of hold and smoothing")
    s = _trailing_median(a, smooth)
    out, ref, run = [], -math.inf, 0
    for j, v in enumerate(s):
        if v <= ref - margin:
            run += 1
            if run == hold:
                out.append(j - hold + 1)
                ref, run = v, 0
        else:
            ref, run = max(ref, v), 0
    return out


def _check_events(events: Sequence[int], n: int) -> list[int]:
    for e in events:
        if not 0 <= int(e) < n:
            raise ProcvlmError(f"regression event at frame {e} is outside [0, {n}): pass "
                               "frame indices of this episode")
    return [int(e) for e in events]


def match_regressions(detections: Sequence[int], events: Sequence[int], tolerance: int = 10
                      ) -> tuple[np.ndarray, int]:
    """Pair detections with true regression events (each used once, nearest first).

    Returns:
        ((len(events),) bool: the event has a detection within ``tolerance`` frames,
        the number of detections paired with an event).
    """
    pairs = sorted((abs(d - e), i, k) for i, e in enumerate(events)
                   for k, d in enumerate(detections) if abs(d - e) <= tolerance)
    hit, used = np.zeros(len(events), dtype=bool), set()
    for _, i, k in pairs:
        if not hit[i] and k not in used:
            hit[i] = True
            used.add(k)
    return hit, len(used)


def regression_hits(pred: Sequence[float] | np.ndarray, events: Sequence[int],
                    margin: float = 0.1, tolerance: int = 10, hold: int = 5, smooth: int = 5
                    ) -> np.ndarray:
    """Which regression events a sustained drop of the predictions catches.

    An event at frame e is caught when a drop of ``regression_detections`` starts within
    ``tolerance`` frames of e (each drop catches one event at most).

    Returns:
        (len(events),) bool.
    """
    a = _vector(pred, "predictions")
    if tolerance < 0:
        raise ProcvlmError(f"tolerance={tolerance}: need tolerance >= 0 frames")
    events = _check_events(events, a.size)
    return match_regressions(regression_detections(a, margin, hold, smooth), events,
                             tolerance)[0]


def regression_recall(pred: Sequence[float] | np.ndarray, events: Sequence[int],
                      margin: float = 0.1, tolerance: int = 10, hold: int = 5,
                      smooth: int = 5) -> float:
    """Fraction of ``events`` caught by ``regression_hits``."""
    if len(events) == 0:
        raise ProcvlmError("regression_recall got no event: pass the frames where sub-steps "
                           "were undone")
    return float(regression_hits(pred, events, margin, tolerance, hold, smooth).mean())


def plan_exact(pred_remaining: Sequence[Sequence[str]], true_remaining: Sequence[Sequence[str]]
               ) -> float:
    """Fraction of frames whose predicted remaining actions equal the true list exactly."""
    if len(pred_remaining) != len(true_remaining) or not true_remaining:
        raise ProcvlmError(f"{len(pred_remaining)} predicted and {len(true_remaining)} true "
                           "remaining-action lists: pass one non-empty list per frame for both")
    return float(np.mean([list(p) == list(t) for p, t in zip(pred_remaining, true_remaining)]))


def step_accuracy(pred_stage: Sequence[int] | np.ndarray, true_stage: Sequence[int] | np.ndarray
                  ) -> float:
    """Fraction of frames whose predicted current step (plan index, ``K`` = done) is the true
    one."""
    a, b = np.asarray(pred_stage).reshape(-1), np.asarray(true_stage).reshape(-1)
    if a.size != b.size or a.size == 0:
        raise ProcvlmError(f"{a.size} predicted and {b.size} true stages: pass one per frame")
    return float(np.mean(a == b))


@dataclass(frozen=True)
class EpisodeResult:
    """A model's predictions on one episode, with what is known about the episode.

    Attributes:
        episode: episode id.
        progress: (T,) predicted progress.
        success: whether the episode achieved its task.
        reference: (T,) reference progress labels (the models' scheme), for ``ccc_labels``.
        truth: (T,) simulator-truth progress, for ``ccc_truth`` and ``mae_truth``.
        stalls: ``[start, end)`` still stretches (stall and hesitation events).
        regressions: frames where an achieved sub-step is undone.
        pred_boundaries: predicted sub-step boundaries (frames), for BF1@5 / mMAE.
        true_boundaries: reference sub-step boundaries (frames).
        pred_stage: (T,) predicted current step (plan index, K = done; -1 = none given).
        true_stage: (T,) the annotation's current step.
        pred_remaining: T predicted lists of remaining actions.
        true_remaining: T true lists of remaining actions (from the annotation).
        done: (T,) the model's probability that the task is done (``ProgressPrediction.
            done``), for ``auroc_done``; None for models that give none.
    """

    episode: int | str
    progress: np.ndarray
    success: bool
    reference: np.ndarray | None = None
    truth: np.ndarray | None = None
    stalls: Sequence[Sequence[int]] = field(default_factory=tuple)
    regressions: Sequence[int] = field(default_factory=tuple)
    pred_boundaries: Sequence[int] | None = None
    true_boundaries: Sequence[int] | None = None
    pred_stage: np.ndarray | None = None
    true_stage: np.ndarray | None = None
    pred_remaining: Sequence[Sequence[str]] | None = None
    true_remaining: Sequence[Sequence[str]] | None = None
    done: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "progress", _vector(self.progress, f"episode {self.episode} "
                                                     "progress"))
        for name in ("reference", "truth", "done"):
            value = getattr(self, name)
            if value is None:
                continue
            ref = _vector(value, f"episode {self.episode} {name}")
            if ref.size != self.progress.size:
                raise ProcvlmError(f"episode {self.episode}: {self.progress.size} predictions "
                                   f"but {ref.size} {name} values: pass one per frame")
            object.__setattr__(self, name, ref)
        if (self.pred_boundaries is None) != (self.true_boundaries is None):
            raise ProcvlmError(f"episode {self.episode}: pass both pred_boundaries and "
                               "true_boundaries, or neither")

    @property
    def reasons(self) -> bool:
        """The prediction names a current step and remaining actions (a model that reasons)."""
        return (self.pred_stage is not None and self.true_stage is not None
                and self.pred_remaining is not None and self.true_remaining is not None
                and bool(np.any(np.asarray(self.pred_stage) >= 0)))


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _pooled(eps: Sequence[EpisodeResult], fn: Any) -> float:
    """``fn`` of all frames of ``eps`` pooled (predictions against simulator truth)."""
    eps = [e for e in eps if e.truth is not None]
    if not eps:
        return float("nan")
    return fn(np.concatenate([e.progress for e in eps]), np.concatenate([e.truth for e in eps]))


def _regressions(eps: Sequence[EpisodeResult], margin: float, tolerance: int
                 ) -> tuple[float, float]:
    """(recall over true events, precision over every detected drop), pooled over episodes."""
    hits, matched, detected = [], 0, 0
    for e in eps:
        found = regression_detections(e.progress, margin)
        hit, paired = match_regressions(found, _check_events(e.regressions, e.progress.size),
                                        tolerance)
        hits.append(hit)
        matched, detected = matched + paired, detected + len(found)
    events = np.concatenate(hits) if hits else np.zeros(0, dtype=bool)
    recall = float(events.mean()) if events.size else float("nan")
    return recall, (matched / detected if detected else float("nan"))


def _plans(eps: Sequence[EpisodeResult]) -> tuple[float, float]:
    """(exact remaining-action match, current-step accuracy) over frames of reasoning models."""
    eps = [e for e in eps if e.reasons]
    if not eps:
        return float("nan"), float("nan")
    exact = [list(p) == list(t) for e in eps for p, t in zip(e.pred_remaining, e.true_remaining)]
    step = np.concatenate([np.asarray(e.pred_stage) == np.asarray(e.true_stage) for e in eps])
    return float(np.mean(exact)), float(step.mean())


def summarize(results: Sequence[EpisodeResult | Mapping[str, Any]], *, bins: int = 50,
              success_threshold: float = 0.95, boundary_tolerance: float = 0.05,
              regression_margin: float = 0.1, regression_tolerance: int = 10,
              done_frames: int = DONE_FRAMES) -> dict[str, float]:
    """Aggregate the metrics over episodes (``nan`` where a metric has no episode to use).

    Against simulator truth first (see ``METRICS`` for each one's definition and direction):
    ``ccc_truth``, ``ccc_truth_success``, ``mae_truth`` (all frames pooled), ``stall_drift``
    (mean over episodes with still stretches), ``auroc``, ``regression_recall`` and
    ``regression_precision`` (pooled), ``plan_exact`` and ``step_acc`` (frames of models that
    reason), ``auroc_done`` (episodes that all carry ``done``); then, for comparison with the
    literature: ``voc``, ``kendall_tau_a`` (successes, against frame order), ``ccc_labels``
    (against reference labels), ``epr@{bins}``, ``mcc@{100 * success_threshold}``,
    ``bf1@{100 * boundary_tolerance}``, ``mmae``.

    Args:
        results: ``EpisodeResult`` objects or mappings with its fields.
        bins: EPR bins.
        success_threshold: final progress that counts as predicted success.
        done_frames: last frames whose P(done) ``success_score`` averages for ``auroc_done``.
        boundary_tolerance: BF1 window as a fraction of the episode.
        regression_margin: fall below the running max that counts as a regression.
        regression_tolerance: frames between a true regression and its detected drop.

    Returns:
        Metric name -> value, plus episode counts ``n_episodes``, ``n_success``, ``n_still``,
        ``n_regression``.
    """
    eps = [r if isinstance(r, EpisodeResult) else EpisodeResult(**r) for r in results]
    if not eps:
        raise ProcvlmError("summarize got no episode result: score some episodes first")
    ok = [e for e in eps if e.success]
    final = [float(e.progress[-1]) for e in eps]
    flags = [bool(e.success) for e in eps]
    recall, precision = _regressions(eps, regression_margin, regression_tolerance)
    exact, step = _plans(eps)
    seg = [e for e in eps if e.true_boundaries is not None]
    both = 0 < len(ok) < len(eps)
    with_done = both and all(e.done is not None for e in eps)
    out = {
        "ccc_truth": _pooled(eps, ccc), "ccc_truth_success": _pooled(ok, ccc),
        "mae_truth": _pooled(eps, mae),
        "stall_drift": _mean([stall_drift(e.progress, e.stalls) for e in eps if len(e.stalls)]),
        "auroc": auroc(final, flags) if both else float("nan"),
        "auroc_done": (auroc([success_score(e.done, done_frames) for e in eps], flags)
                       if with_done else float("nan")),
        "regression_recall": recall, "regression_precision": precision,
        "plan_exact": exact, "step_acc": step,
        "voc": _mean([value_order_correlation(e.progress) for e in ok if e.progress.size > 1]),
        "kendall_tau_a": _mean([kendall_tau_a(e.progress) for e in ok if e.progress.size > 1]),
        "ccc_labels": _mean([ccc(e.progress, e.reference) for e in eps
                             if e.reference is not None]),
        f"epr@{bins}": _mean([epr(e.progress, bins) for e in eps]),
        f"mcc@{round(100 * success_threshold)}": mcc_at(final, flags, success_threshold),
        f"bf1@{round(100 * boundary_tolerance)}": _mean([
            boundary_f1(e.pred_boundaries, e.true_boundaries, e.progress.size, boundary_tolerance)
            for e in seg]),
        "mmae": _mean([boundary_mae(e.pred_boundaries, e.true_boundaries, e.progress.size)
                       for e in seg]),
    }
    counts = {"n_episodes": len(eps), "n_success": len(ok),
              "n_still": sum(1 for e in eps if len(e.stalls)),
              "n_regression": sum(1 for e in eps if len(e.regressions))}
    return {**out, **counts}
