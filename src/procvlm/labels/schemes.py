"""Frame-level progress labels from an episode's sub-steps, plan and visual change.

Four schemes (``SCHEMES``), all returning one ``EpisodeLabels``:

``procvlm`` (default, failure-aware)
    Budgets ``w_k = clip(K * L_k / T, 0.75, 1.25)`` over the *whole plan* (a plan step never
    attempted has ``L_k = 0`` and still takes its share), ``B_k = w_k / sum w``. Inside a segment
    of step k, frame i (but the first) adds ``floor + 1 - S_i`` (``S`` the visual similarity to
    the last frame that counted as a change, ``anchored_change``, or to the previous frame when
    only that is given; ``floor`` 0 by default, so frames without visual change add nothing and
    compression flicker in a still stretch does not accumulate),
    normalised to sum to 1 over the segment: the step's credit climbs from its start value to 1
    when the segment is completed, to ``uncompleted_fraction`` (0.5) when it is not. A completed
    segment whose frames are all identical keeps its credit until its last frame; an uncompleted
    one keeps it to the end (nothing moved, nothing earned). When a segment repeats
    an earlier plan step (a completed sub-step was undone), the credit of that step and of every
    later one falls back to 0 and climbs again. ``progress = sum_k B_k * credit_k``; the done tail
    of a successful episode is flat at exactly 1 and its last frame is exactly 1. In a failed
    episode the last plan step earns at most ``uncompleted_fraction``, so progress stays below 1.

``procvlm-paper`` (the paper's reference code, quirks kept)
    Segments are runs of equal consecutive labels (a label that returns after a regression is a
    new segment); "done" / "not done" and empty labels earn nothing and are not counted in K and
    T; a one-frame segment earns nothing; increments use ``d_i = 1.5 - S_i`` (floor 0.5);
    ``p_i = sum(dp[:i]) / sum(dp)`` (the prefix excludes frame i). The tail after the last sub-step
    is labelled "done" in a successful episode and "not done" in a failed one.

``time``
    ``p_t = t / (T - 1)``; ``stage = min(floor(t / T * K), K - 1)``, ``stage_progress`` the
    fractional part; never done.

``sarm`` (SARM's stage + linear time, exactly as LeRobot 0.4.4 computes its targets)
    Stage proportions by SARM's Eq. 1, ``a_k = mean_i(L_ik / T_i)`` over the episodes of the task
    that contain step k, renormalised to sum to 1 (``sarm_proportions``; LeRobot's bookkeeping
    kept: a step repeated in an episode counts with its *last* occurrence's length while ``T_i``
    sums every sub-step). Breakpoints ``b_k = a_1 + ... + a_k`` (``b_K = 1``). Frame t inside
    sub-step [s, e] (the end frame *included*, the first matching sub-step wins) has stage k
    (the step's plan index, 0 if not in the plan) and ``tau = (t - s) / (e - s)``; before the
    first sub-step ``(0, 0)``; between sub-steps the previous one with ``tau = 1``; after the
    last ``(K - 1, 0.999)``, and the last plan step at ``tau = 1`` is clamped to 0.999 too. With
    ``x = k + tau``: ``stage = floor(x)``, ``p = b_floor(x) + frac(x) * a_floor(x)``. So a
    successful episode ends at ``1 - 0.001 a_K``, never at 1, and "done" segments earn nothing.

Every scheme yields ``stage`` (index into the plan; ``len(plan)`` = done, -1 before the first
sub-step), ``stage_progress``, ``remaining`` (plan steps from the current one on, ``[]`` when
done) and ``done``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from procvlm.data.episode import DONE, Subtask
from procvlm.data.lerobot_format import stage_shares
from procvlm.data.vocab import is_done
from procvlm.errors import ProcvlmError

PAPER_FLOOR = 0.5
"""The paper's increment floor: ``1.5 - S`` never drops below 0.5."""

NOT_DONE = "not done"

# segment kinds
_STEP, _DONE, _NOT_DONE, _UNKNOWN = "step", "done", "not done", "unknown"


@dataclass(frozen=True)
class LabelParams:
    """Parameters of the label schemes.

    Attributes:
        floor: increment of a frame without visual change; None = the scheme's default
            (0 for ``procvlm``, the paper's 0.5 for ``procvlm-paper``).
        uncompleted_fraction: share of its budget an uncompleted sub-step can earn (procvlm).
        clip: (low, high) bounds of the budget weights ``K * L_k / T``.
        noise: visual change ``1 - S`` (against the reference frame, ``anchored_change``) at
            or below which a frame counts as unchanged in the ``procvlm`` scheme. Default 0:
            the anchored change already ignores flicker (``ANCHOR_THRESHOLD``); a larger value
            also drops small hops of real motion.
    """

    floor: float | None = field(default=None, metadata={"help": "increment floor (None: scheme "
                                                                 "default)"})
    uncompleted_fraction: float = field(default=0.5, metadata={"help": "cap of uncompleted steps"})
    clip: tuple[float, float] = field(default=(0.75, 1.25), metadata={"help": "budget clip"})
    noise: float = field(default=0.0, metadata={"help": "change treated as none (procvlm)"})

    def __post_init__(self) -> None:
        if self.floor is not None and not (math.isfinite(self.floor) and self.floor >= 0):
            raise ProcvlmError(f"LabelParams.floor={self.floor}: need a finite value >= 0 "
                               "(0 = no credit without visual change, 0.5 = the paper's)")
        if not 0.0 <= self.uncompleted_fraction < 1.0:
            raise ProcvlmError(f"LabelParams.uncompleted_fraction={self.uncompleted_fraction}: "
                               "need 0 <= fraction < 1")
        if len(self.clip) != 2 or not 0 < self.clip[0] <= self.clip[1] < math.inf:
            raise ProcvlmError(f"LabelParams.clip={self.clip}: need (low, high) with "
                               "0 < low <= high")
        if not (math.isfinite(self.noise) and 0.0 <= self.noise < 1.0):
            raise ProcvlmError(f"LabelParams.noise={self.noise}: need 0 <= noise < 1 "
                               "(0 = every change counts)")
        object.__setattr__(self, "clip", (float(self.clip[0]), float(self.clip[1])))

    def floor_for(self, scheme: str) -> float:
        """The increment floor ``scheme`` uses."""
        if self.floor is not None:
            return float(self.floor)
        return PAPER_FLOOR if scheme == "procvlm-paper" else 0.0

    def to_dict(self, scheme: str) -> dict:
        """JSON-able parameters with the floor resolved for ``scheme``."""
        out = asdict(self)
        out["floor"] = self.floor_for(scheme)
        out["clip"] = list(self.clip)
        return out


@dataclass
class EpisodeLabels:
    """Per-frame labels of one episode under one scheme.

    Attributes:
        stage: (T,) int64 index into the plan; ``len(plan)`` = done, -1 = before any sub-step.
        subtask: (T,) str, the sub-step under way ("done" when done, "" when none).
        completed: (T,) bool, whether the sub-step under way is achieved by its end.
        stage_progress: (T,) float64 in [0, 1], progress within the stage.
        progress: (T,) float64 in [0, 1], task progress.
        remaining: T lists of the plan steps from the current one on ([] when done).
        done: (T,) bool, the task is finished.
        scheme: the scheme that made these labels.
        plan: the plan the stages index.
    """

    stage: np.ndarray
    subtask: np.ndarray
    completed: np.ndarray
    stage_progress: np.ndarray
    progress: np.ndarray
    remaining: list[list[str]]
    done: np.ndarray
    scheme: str = "procvlm"
    plan: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.progress)


@dataclass(frozen=True)
class _Segment:
    name: str
    start: int
    end: int
    completed: bool
    kind: str
    step: int  # plan index for _STEP segments, else -1


def _assign_steps(names: Sequence[str], plan: Sequence[str]) -> list[int]:
    """Plan index of each segment name (-1 if not in the plan).

    With repeated plan steps: stay on the current index, else the first match ahead of it, else
    the nearest one behind it (a regression).
    """
    out, pos = [], -1
    for name in names:
        cands = [j for j, p in enumerate(plan) if p == name]
        if not cands:
            out.append(-1)
            continue
        ahead = [j for j in cands if j > pos]
        pick = pos if pos in cands else (ahead[0] if ahead else max(j for j in cands if j < pos))
        out.append(pick)
        pos = pick
    return out


def _segments(subtasks: Sequence[Subtask], plan: Sequence[str], num_frames: int,
              success: bool | None) -> list[_Segment]:
    """Validated segments in frame order, plus the implicit tail after the last sub-step."""
    subs = sorted(subtasks, key=lambda s: s.start)
    for a, b in zip(subs, subs[1:]):
        if b.start < a.end:
            raise ProcvlmError(f"sub-steps {a.name!r} [{a.start}, {a.end}) and {b.name!r} "
                               f"[{b.start}, {b.end}) overlap: fix the annotation")
    if subs and subs[-1].end > num_frames:
        s = subs[-1]
        raise ProcvlmError(f"sub-step {s.name!r} [{s.start}, {s.end}) runs past the episode's "
                           f"{num_frames} frames: fix the annotation")
    work = [s for s in subs if not is_done(s.name)]
    steps = iter(_assign_steps([s.name for s in work], plan))
    out = []
    for s in subs:
        if is_done(s.name):
            kind, step = (_NOT_DONE if "not" in s.name.lower() else _DONE), -1
        else:
            step = next(steps)
            kind = _STEP if step >= 0 else _UNKNOWN
        out.append(_Segment(s.name, s.start, s.end, bool(s.completed), kind, step))
    tail = subs[-1].end if subs else 0
    if tail < num_frames and success is not None:
        kind = _DONE if success else _NOT_DONE
        out.append(_Segment(DONE if success else NOT_DONE, tail, num_frames, True, kind, -1))
    return out


def budgets(lengths: Sequence[float], clip: tuple[float, float] = (0.75, 1.25)) -> np.ndarray:
    """Budgets ``B_k = w_k / sum w`` with ``w_k = clip(K * L_k / T, low, high)``.

    Args:
        lengths: (K,) frames spent on each step (0 for a step never attempted).
        clip: (low, high).

    Returns:
        (K,) float64 summing to 1.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    total = lengths.sum()
    if total <= 0:
        return np.full(len(lengths), 1.0 / len(lengths))
    w = np.clip(len(lengths) * lengths / total, clip[0], clip[1])
    return w / w.sum()


def denoise(change: np.ndarray, noise: float) -> np.ndarray:
    """``change`` (``1.5 - S``) with changes ``1 - S <= noise`` set to none (``1.5 - 1``)."""
    change = np.asarray(change, dtype=np.float64)
    return np.where(change - PAPER_FLOOR <= noise + 1e-12, PAPER_FLOOR, change)


def _weights(change: np.ndarray, start: int, end: int, floor: float) -> np.ndarray:
    """Per-frame increments inside a segment: the first frame 0, then ``floor + 1 - S``."""
    d = change[start:end].astype(np.float64, copy=True)
    if floor != PAPER_FLOOR:
        d = d - PAPER_FLOOR + floor
    d[0] = 0.0
    return np.maximum(d, 0.0)


def _climb(change: np.ndarray, seg: _Segment, floor: float) -> np.ndarray:
    """Inclusive cumulative share of a segment's work at each of its frames, ending at 1; a
    segment without any visual change stays at 0, and a completed one jumps to 1 at its end
    (an uncompleted one where nothing moved earned nothing)."""
    w = _weights(change, seg.start, seg.end, floor)
    total = w.sum()
    c = np.cumsum(w) / total if total > 0 else np.zeros(len(w))
    if total > 0 or seg.completed:
        c[-1] = 1.0
    return c


def _step_lengths(segs: Sequence[_Segment], k: int) -> np.ndarray:
    lengths = np.zeros(k)
    for s in segs:
        if s.kind == _STEP:
            lengths[s.step] += s.end - s.start
    return lengths


def _hold(values: np.ndarray, filled: np.ndarray, initial: float) -> np.ndarray:
    """Forward-fill ``values`` where ``filled`` is False (``initial`` before the first fill)."""
    idx = np.where(filled, np.arange(len(values)), -1)
    idx = np.maximum.accumulate(idx)
    return np.where(idx >= 0, values[np.maximum(idx, 0)], initial)


@dataclass
class _Frames:
    """Scheme-independent per-frame fields from the timeline (gaps hold the previous frame)."""

    stage: np.ndarray
    subtask: np.ndarray
    completed: np.ndarray
    done: np.ndarray


def _timeline_fields(segs: Sequence[_Segment], k: int, num_frames: int,
                     success: bool | None) -> _Frames:
    stage = np.full(num_frames, -1, dtype=np.int64)
    names = np.full(num_frames, "", dtype=object)
    completed = np.zeros(num_frames, dtype=bool)
    labelled = np.zeros(num_frames, dtype=bool)
    for s in segs:
        if s.kind == _STEP:
            stage[s.start:s.end], names[s.start:s.end] = s.step, s.name
            completed[s.start:s.end] = s.completed
        elif s.kind == _DONE and success is not False:
            stage[s.start:s.end], names[s.start:s.end] = k, DONE
            completed[s.start:s.end] = True
        else:
            continue
        labelled[s.start:s.end] = True
    src = np.maximum.accumulate(np.where(labelled, np.arange(num_frames), -1))
    pick = np.maximum(src, 0)
    before = src < 0
    stage = np.where(before, -1, stage[pick])
    subtask = np.where(before, "", names[pick]).astype(str)
    completed = np.where(before, False, completed[pick])
    return _Frames(stage, subtask, completed, stage == k)


def _progress_procvlm(segs: Sequence[_Segment], change: np.ndarray, k: int,
                      success: bool | None, params: LabelParams
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(progress, stage_progress, assigned) of the failure-aware scheme (see module doc)."""
    n = len(change)
    floor, u = params.floor_for("procvlm"), params.uncompleted_fraction
    change = denoise(change, params.noise)
    b = budgets(_step_lengths(segs, k), params.clip)
    credit = np.zeros(k)
    progress, within = np.zeros(n), np.zeros(n)
    assigned = np.zeros(n, dtype=bool)
    pos = -1
    for s in segs:
        sl = slice(s.start, s.end)
        if s.kind == _STEP:
            j = s.step
            if j != pos:  # a new step, or an earlier one again: fall back to its start
                credit[j:] = 0.0
            target = 1.0 if s.completed else u
            if success is False and j == k - 1:
                target = min(target, u)
            a = credit[j] + (target - credit[j]) * _climb(change, s, floor)
            credit[j] = 0.0
            progress[sl] = float(b @ credit) + b[j] * a
            within[sl] = a
            credit[j], pos = a[-1], j
        elif s.kind == _DONE and success is not False:
            progress[sl], within[sl] = 1.0, 1.0
            credit[:], pos = 1.0, k
        else:
            continue
        assigned[sl] = True
    return np.clip(progress, 0.0, 1.0), within, assigned


def _paper_frame_labels(segs: Sequence[_Segment], num_frames: int) -> list[str]:
    labels = [""] * num_frames
    for s in segs:
        labels[s.start:s.end] = [s.name] * (s.end - s.start)
    return labels


def paper_progress(labels: Sequence[str], change: np.ndarray, floor: float = PAPER_FLOOR,
                   clip: tuple[float, float] = (0.75, 1.25)) -> tuple[np.ndarray, np.ndarray]:
    """The paper's reference progress from per-frame labels (quirks kept, see module doc).

    Args:
        labels: (T,) sub-step label of each frame ("done" / "not done" / "" earn nothing).
        change: (T,) visual change ``1.5 - S``.
        floor: increment floor (the paper's 0.5 uses ``change`` as is).
        clip: budget-weight bounds.

    Returns:
        (progress (T,), stage_progress (T,)): stage_progress is the inclusive within-run share.
    """
    n = len(labels)
    starts = [i for i in range(n) if i == 0 or labels[i] != labels[i - 1]]
    runs = [(a, b) for a, b in zip(starts, starts[1:] + [n])]
    work = [(a, b) for a, b in runs if labels[a] and not is_done(labels[a])]
    dp, within = np.zeros(n), np.zeros(n)
    if work:
        k, total = len(work), sum(b - a for a, b in work)
        for a, b in work:
            w_run = min(max(k * (b - a) / total, clip[0]), clip[1])
            d = _weights(change, a, b, floor)
            if d.sum() > 0:  # a one-frame run earns nothing
                dp[a:b] = w_run * (d / d.sum())
                within[a:b] = np.cumsum(d) / d.sum()
    for a, b in runs:
        if is_done(labels[a]):
            within[a:b] = 1.0
    cs = np.cumsum(dp)
    progress = np.zeros(n)
    if n and cs[-1] > 0:
        progress[1:] = cs[:-1] / cs[-1]
    return progress, within


SARM_LAST_TAU = 0.999
"""LeRobot's clamp: the last plan step's ``tau`` (and every frame after the last sub-step)."""


def _sarm_steps(subtasks: Sequence[Subtask]) -> list[Subtask]:
    """The sub-steps SARM sees, in frame order: every one but "done" / "not done"."""
    return sorted((s for s in subtasks if not is_done(s.name)), key=lambda s: s.start)


def sarm_proportions(timelines: Sequence[Sequence[Subtask]], plan: Sequence[str]) -> np.ndarray:
    """SARM's stage proportions (its Eq. 1) as LeRobot's ``compute_temporal_proportions``.

    ``a_k = mean_i(L_ik / T_i)`` over the episodes i whose timeline contains step k, where
    ``L_ik`` is the length of step k's *last* occurrence in episode i and ``T_i`` the summed
    length of all its sub-steps; normalised over every name seen, then read in plan order
    (names outside the plan are dropped) and normalised again if they no longer sum to 1.

    Args:
        timelines: one list of sub-steps per episode of the task.
        plan: the task's plan.

    Returns:
        (K,) float64 summing to 1 (uniform when no episode has a sub-step).
    """
    stages = [([s.name for s in subs], [s.start for s in subs], [s.end for s in subs])
              for subs in map(_sarm_steps, timelines)]
    shares = stage_shares(stages)
    props = np.array([shares.get(name, 0.0) for name in plan])
    total = float(props.sum())
    if total <= 0:
        return np.full(len(plan), 1.0 / len(plan))
    return props / total if abs(total - 1.0) > 1e-6 else props


def _sarm_breakpoints(props: np.ndarray) -> np.ndarray:
    """``[0, a_1, a_1 + a_2, ..., 1]`` (the last forced to exactly 1, as LeRobot)."""
    bp = np.concatenate([[0.0], np.cumsum(props)])
    bp[-1] = 1.0
    return bp


def _sarm_stage_tau(steps: Sequence[Subtask], plan: Sequence[str], n: int
                    ) -> tuple[np.ndarray, np.ndarray]:
    """LeRobot's ``find_stage_and_tau`` for every frame: (stage index, tau), see module doc."""
    stage, tau = np.zeros(n, dtype=np.int64), np.zeros(n)
    if not steps:
        return stage, tau
    k = len(plan)
    for a, b in zip(steps, steps[1:]):  # between sub-steps: the previous one, finished
        stage[a.end + 1:b.start] = plan.index(a.name) if a.name in plan else 0
        tau[a.end + 1:b.start] = 1.0
    for s in reversed(steps):  # [start, end], end included; the first match wins
        t = np.arange(s.start, min(s.end, n - 1) + 1)
        stage[t] = plan.index(s.name) if s.name in plan else 0
        tau[t] = np.clip((t - s.start) / (s.end - s.start), 0.0, 1.0)
    stage[steps[-1].end + 1:], tau[steps[-1].end + 1:] = k - 1, SARM_LAST_TAU
    return stage, tau


def _sarm_labels(steps: Sequence[Subtask], plan: Sequence[str], n: int,
                 proportions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(progress, stage_progress, stage) of LeRobot's SARM targets (``normalize_stage_tau``)."""
    k = len(plan)
    stage, tau = _sarm_stage_tau(steps, list(plan), n)
    x = stage + tau
    x = np.where((stage >= k - 1) & (tau >= 1.0), (k - 1) + SARM_LAST_TAU, x)
    bp = _sarm_breakpoints(proportions)
    whole = np.minimum(np.floor(x).astype(np.int64), k - 1)
    frac = x - whole
    progress = bp[whole] + frac * (bp[whole + 1] - bp[whole])
    return np.clip(progress, 0.0, 1.0), frac, whole


def _time_labels(plan: Sequence[str], n: int) -> EpisodeLabels:
    k = len(plan)
    t = np.arange(n, dtype=np.float64)
    progress = t / (n - 1) if n > 1 else np.ones(n)
    pos = t / n * k
    stage = np.minimum(np.floor(pos).astype(np.int64), k - 1)
    return EpisodeLabels(
        stage=stage, subtask=np.array([plan[s] for s in stage], dtype=str).reshape(n),
        completed=np.zeros(n, dtype=bool), stage_progress=np.clip(pos - stage, 0.0, 1.0),
        progress=progress, remaining=[list(plan[s:]) for s in stage],
        done=np.zeros(n, dtype=bool), scheme="time", plan=list(plan))


def _labelled(segs: Sequence[_Segment], n: int, success: bool | None) -> np.ndarray:
    """(T,) bool: frames of plan-step segments, and of done segments unless the episode failed."""
    out = np.zeros(n, dtype=bool)
    for s in segs:
        if s.kind == _STEP or (s.kind == _DONE and success is not False):
            out[s.start:s.end] = True
    return out


def _held(values: np.ndarray, assigned: np.ndarray) -> np.ndarray:
    return _hold(values, assigned, 0.0)


def _remaining(stage: np.ndarray, plan: Sequence[str]) -> list[list[str]]:
    k = len(plan)
    return [list(plan) if s < 0 else list(plan[s:]) if s < k else [] for s in stage.tolist()]


def _validate(plan: Sequence[str], num_frames: int, change: np.ndarray,
              what: str = "visual change") -> None:
    if not plan:
        raise ProcvlmError("the plan is empty: an annotator must give the task's atomic actions")
    if num_frames < 1:
        raise ProcvlmError(f"num_frames={num_frames}: an episode needs at least one frame")
    if change.shape != (num_frames,):
        raise ProcvlmError(f"{what} has shape {change.shape}, expected ({num_frames},): "
                           "compute it with procvlm.labels.visual_changes on the episode's frames")
    if not np.all(np.isfinite(change[1:])):
        raise ProcvlmError(f"{what} has NaN or infinite values: recompute it")


@dataclass(frozen=True)
class _Inputs:
    """What every scheme gets: the episode's timeline and visual change, validated."""

    subtasks: Sequence[Subtask]
    plan: list[str]
    num_frames: int
    change: np.ndarray
    success: bool | None
    params: LabelParams
    stage_proportions: np.ndarray | None
    anchored: np.ndarray | None


def _from_progress(inp: _Inputs, segs: Sequence[_Segment], scheme: str, progress: np.ndarray,
                   within: np.ndarray, stage: np.ndarray | None = None) -> EpisodeLabels:
    fields = _timeline_fields(segs, len(inp.plan), inp.num_frames, inp.success)
    stage = fields.stage if stage is None else stage
    return EpisodeLabels(stage=stage, subtask=fields.subtask, completed=fields.completed,
                         stage_progress=within, progress=progress,
                         remaining=_remaining(stage, inp.plan), done=stage == len(inp.plan),
                         scheme=scheme, plan=list(inp.plan))


def _label_procvlm(inp: _Inputs) -> EpisodeLabels:
    segs = _segments(inp.subtasks, inp.plan, inp.num_frames, inp.success)
    change = inp.change if inp.anchored is None else inp.anchored
    progress, within, assigned = _progress_procvlm(segs, change, len(inp.plan), inp.success,
                                                   inp.params)
    progress, within = _held(progress, assigned), _held(within, assigned)
    if inp.success:
        progress[-1] = 1.0
    return _from_progress(inp, segs, "procvlm", progress, within)


def _label_paper(inp: _Inputs) -> EpisodeLabels:
    segs = _segments(inp.subtasks, inp.plan, inp.num_frames, inp.success)
    progress, within = paper_progress(_paper_frame_labels(segs, inp.num_frames), inp.change,
                                      inp.params.floor_for("procvlm-paper"), inp.params.clip)
    within = _held(within, _labelled(segs, inp.num_frames, inp.success))
    return _from_progress(inp, segs, "procvlm-paper", progress, within)


def _label_time(inp: _Inputs) -> EpisodeLabels:
    return _time_labels(inp.plan, inp.num_frames)


def _label_sarm(inp: _Inputs) -> EpisodeLabels:
    segs = _segments(inp.subtasks, inp.plan, inp.num_frames, inp.success)  # validates
    steps = _sarm_steps(inp.subtasks)
    props = inp.stage_proportions
    if props is None:
        props = sarm_proportions([steps], inp.plan)
    progress, within, stage = _sarm_labels(steps, inp.plan, inp.num_frames, props)
    return _from_progress(inp, segs, "sarm", progress, within, stage)


@dataclass(frozen=True)
class Scheme:
    """A label scheme: its name, what it is, and the function that labels an episode."""

    name: str
    description: str
    label: Callable[[_Inputs], EpisodeLabels]


SCHEME_REGISTRY: dict[str, Scheme] = {s.name: s for s in (
    Scheme("procvlm", "failure-aware procedure progress: plan-wide budgets, visual change "
                      "against a reference frame, uncompleted steps capped, regressions fall "
                      "back", _label_procvlm),
    Scheme("procvlm-paper", "the ProcVLM paper's reference labels, quirks kept "
                            "(pHash change with floor 0.5, runs of equal labels)", _label_paper),
    Scheme("time", "elapsed time: frame index / (T - 1)", _label_time),
    Scheme("sarm", "SARM's stage + linear time within the stage, exactly as LeRobot 0.4.4 "
                   "computes its targets (Eq. 1 proportions)", _label_sarm),
)}
SCHEMES: tuple[str, ...] = tuple(SCHEME_REGISTRY)
"""The label scheme names, the one list every other module imports."""


def get_scheme(name: str) -> Scheme:
    """The registered scheme ``name`` (ProcvlmError listing the choices otherwise)."""
    if name not in SCHEME_REGISTRY:
        raise ProcvlmError(f"unknown label scheme {name!r}: choose one of {', '.join(SCHEMES)}")
    return SCHEME_REGISTRY[name]


def _proportions(values: Sequence[float] | None, k: int) -> np.ndarray | None:
    if values is None:
        return None
    props = np.asarray(values, dtype=np.float64)
    if props.shape != (k,) or not np.all(np.isfinite(props)) or np.any(props < 0) \
            or not abs(props.sum() - 1.0) <= 1e-6:
        raise ProcvlmError(f"stage_proportions {props.tolist()} must be {k} values >= 0 summing "
                           "to 1, one per plan step: compute them with sarm_proportions")
    return props


def compute_labels(subtasks: Sequence[Subtask], plan: Sequence[str], num_frames: int,
                   change: np.ndarray | None, success: bool | None, scheme: str = "procvlm",
                   params: LabelParams | None = None,
                   stage_proportions: Sequence[float] | None = None,
                   anchored_change: np.ndarray | None = None) -> EpisodeLabels:
    """Per-frame progress labels of one episode.

    Args:
        subtasks: the episode's timeline of sub-steps (may repeat a step after a regression;
            "done" / "not done" segments are allowed).
        plan: the ordered atomic actions that complete the task.
        num_frames: T.
        change: (T,) visual change ``1.5 - S`` (``visual_change``); unused by ``time`` and
            ``sarm`` (may be None for them).
        success: whether the task was achieved (None: unknown, trust the annotation).
        scheme: one of ``SCHEMES``.
        params: scheme parameters (default ``LabelParams()``).
        stage_proportions: ``sarm`` only: (K,) SARM proportions of the plan steps across the
            dataset's episodes of this task (``sarm_proportions``; default: this episode's own).
        anchored_change: ``procvlm`` only: (T,) change against the last frame that counted
            (``anchored_change``), so flicker in still stretches earns nothing; ``change`` is
            used when None.

    Returns:
        The labels.
    """
    spec = get_scheme(scheme)
    params = params or LabelParams()
    change = np.zeros(num_frames) if change is None else np.asarray(change, dtype=np.float64)
    _validate(plan, num_frames, change)
    anchored = None
    if anchored_change is not None:
        anchored = np.asarray(anchored_change, dtype=np.float64)
        _validate(plan, num_frames, anchored, "anchored change")
    inp = _Inputs(subtasks, list(plan), num_frames, change, success, params,
                  _proportions(stage_proportions, len(plan)), anchored)
    return spec.label(inp)
