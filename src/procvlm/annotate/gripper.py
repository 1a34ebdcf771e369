"""The ``gripper`` annotator: sub-steps from proprioception alone, no model.

Events are read from the state (``procvlm.annotate._proprio``): the gripper closing and opening,
minima of the hand's speed, and, when object positions are in the state (MetaWorld's 39-d
observation), objects starting and stopping to move and moving with the hand (contact).
The plan's steps are then laid on the timeline: each boundary between two steps prefers the
event that ends the first one (a "Move to" ends when the gripper starts closing, a "Grasp" when
it has closed, a "Place" when it opens, a "Push" when the object stops), and a small dynamic
programme picks one event per boundary, in time order, close to an even split when events are
missing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from procvlm.annotate import _proprio as pp
from procvlm.annotate.base import Annotation, Annotator
from procvlm.data import vocab
from procvlm.data.episode import Episode, Subtask
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

# MetaWorld task name -> (manipulated object, target or None, verb of the last step).
METAWORLD_OBJECTS: dict[str, tuple[str, str | None, str]] = {
    "pick-place": ("puck", "goal", "Place"),
    "assembly": ("nut", "peg", "Insert"),
    "disassemble": ("nut", None, "Lift"),
    "hammer": ("hammer", "nail", "Push"),
    "shelf-place": ("block", "shelf", "Place"),
    "bin-picking": ("cube", "bin", "Place"),
    "stick-pull": ("stick", "thermos", "Pull"),
    "basketball": ("ball", "hoop", "Place"),
    "door-open": ("door", None, "Open"),
    "drawer-open": ("drawer", None, "Open"),
    "button-press": ("button", None, "Press"),
    "push": ("puck", "goal", "Push"),
}
_KNOWN_OBJECTS = ("puck", "block", "cube", "nut", "peg", "hammer", "nail", "stick", "thermos",
                  "ball", "hoop", "door", "drawer", "button", "shelf", "bin", "mug", "cup",
                  "bowl", "plate", "box", "lid", "handle", "lever", "window", "faucet", "dial")
# Boundary after a step with this verb: which events end it, best first.
_ENDS: dict[str, tuple[str, ...]] = {
    "Grasp": ("close_end", "obj_onset", "speed_min"),
    "Lift": ("lifted", "speed_min", "obj_stop"),
    "Place": ("open_onset", "obj_stop", "speed_min"),
    "Insert": ("open_onset", "obj_stop", "speed_min"),
    "Hang": ("open_onset", "obj_stop", "speed_min"),
}
_NONPREHENSILE_END = ("obj_stop", "speed_min", "open_onset")
_TO_GRASP = ("reach", "close_onset", "speed_min")
_TO_CONTACT = ("obj_onset", "speed_min", "close_onset")


@dataclass(frozen=True)
class GripperConfig:
    """Thresholds of the event detectors.

    Attributes:
        smooth: moving-average window (frames) on the gripper opening and speeds.
        min_change: smallest gripper motion, as a fraction of the episode's opening range.
        min_range: smallest opening range (state units) for the gripper to count as used.
        grasp_margin: a closed gripper whose opening stays above the empty level by this
            fraction of (widest opening - empty level) closed on something.
        prior_weight: how strongly boundaries are pulled to an even split (per episode length).
        lift_height: rise of the object (state units) that counts as lifted.
        goal_distance: object-to-goal distance (state units) that counts as arrived, when the
            goal is in the state (MetaWorld); a successful episode's last step ends there.
        goal_fraction: or within this fraction of the approach (distance when lifted minus
            the smallest distance) from the smallest distance to the goal.
        reach_distance: the hand has reached the object when their distance is within this
            much (state units) of the closest it gets before the gripper closes.
    """

    smooth: int = 3
    min_change: float = 0.3
    min_range: float = 0.02
    grasp_margin: float = 0.1
    prior_weight: float = 1.0
    lift_height: float = 0.01
    goal_distance: float = 0.05
    reach_distance: float = 0.03
    goal_fraction: float = 0.15

    def __post_init__(self) -> None:
        if self.smooth < 1:
            raise ProcvlmError(f"smooth={self.smooth}: need a window of at least 1 frame")
        if not 0 < self.min_change <= 1:
            raise ProcvlmError(f"min_change={self.min_change}: need a fraction in (0, 1]")
        if self.min_range <= 0 or self.grasp_margin < 0 or self.prior_weight < 0:
            raise ProcvlmError("min_range must be > 0, grasp_margin and prior_weight >= 0")


@dataclass
class _Events:
    times: dict[str, list[int]]
    closes: list[tuple[int, int]]
    opens: list[tuple[int, int]]
    signals: pp.Signals
    layout: pp.StateLayout


class GripperAnnotator(Annotator):
    """Segments an episode from its proprioception.

    Args:
        plan: the atomic actions to lay on the timeline; default: the episode's plan, else one
            built from the task's objects and the detected events.
        objects: manipulated object and target (e.g. ``["puck", "goal"]``); default: read from
            the task text, else the MetaWorld task table.
        use_episode_plan: take ``episode.plan`` when it is set and ``plan`` is not.
        hand_dims, gripper_dims, object_dims: state columns (hand xyz; 1 opening column or 2
            finger columns; one xyz triple per object); default: detected from
            ``episode.meta["state_names"]`` (MetaWorld, robomimic names) or the 39-d MetaWorld
            observation.
        gripper_open_high: larger gripper values mean more open (MetaWorld, robomimic).
        empty_level: opening when fully closed on nothing (default per layout).
        config: detector thresholds.
    """

    name = "gripper"
    config_class = GripperConfig

    def __init__(self, plan: Sequence[str] | None = None, objects: Sequence[str] | None = None,
                 *, use_episode_plan: bool = True, hand_dims: Sequence[int] | None = None,
                 gripper_dims: Sequence[int] | None = None,
                 object_dims: Sequence[Sequence[int]] | None = None,
                 gripper_open_high: bool = True, empty_level: float | None = None,
                 config: GripperConfig | None = None) -> None:
        if plan is not None and not plan:
            raise ProcvlmError("plan=[] is empty: pass the task's atomic actions or None")
        self.plan = list(plan) if plan is not None else None
        self.objects = list(objects) if objects else None
        self.use_episode_plan = use_episode_plan
        self._explicit = (hand_dims, gripper_dims, object_dims)
        self.gripper_open_high = gripper_open_high
        self.empty_level = empty_level
        self.config = config or GripperConfig()

    def annotate(self, episode: Episode) -> Annotation:
        num_frames = len(episode)
        events = self._events(episode)
        plan = self._plan(episode, events)
        if num_frames < len(plan):
            raise ProcvlmError(f"episode {episode.episode_index} has {num_frames} frames, fewer "
                               f"than its {len(plan)} plan steps: it cannot be segmented")
        bounds = align(plan, events.times, num_frames, self.config.prior_weight)
        edges = [0, *bounds, num_frames]
        arrived = [t for t in events.times["at_goal"] if t >= edges[-2] + 1]
        if episode.success and arrived:
            edges[-1] = arrived[0] + 1  # the frames after the goal is reached are "done"
        subtasks = [Subtask(step, edges[k], edges[k + 1],
                            self._completed(step, k, plan, edges, events, episode))
                    for k, step in enumerate(plan)]
        return Annotation(subtasks=subtasks, plan=list(plan))

    # ---- signals and events -------------------------------------------------------------
    def _layout(self, episode: Episode) -> pp.StateLayout:
        hand, grip, objs = self._explicit
        names = episode.meta.get("state_names") if episode.meta else None
        auto = pp.detect_layout(names, int(np.asarray(episode.state).shape[-1]))
        if grip is None and auto is None:
            raise ProcvlmError(
                f"cannot find the gripper in the state of episode {episode.episode_index} "
                f"(state_names={list(names)[:8] if names else None}...): pass gripper_dims= "
                "(and hand_dims=, object_dims=), or use --annotator vlm")
        auto = auto or pp.StateLayout(gripper=tuple(grip))
        empty = self.empty_level if self.empty_level is not None else auto.empty_level
        return pp.StateLayout(
            hand=tuple(hand) if hand is not None else auto.hand,
            gripper=tuple(grip) if grip is not None else auto.gripper,
            objects=tuple(tuple(o) for o in objs) if objs is not None else auto.objects,
            empty_level=empty, goal=auto.goal)

    def _events(self, episode: Episode) -> _Events:
        layout = self._layout(episode)
        sig = pp.extract_signals(episode.state, layout, self.gripper_open_high)
        cfg = self.config
        opening = pp.smooth(sig.opening, cfg.smooth)
        span = float(np.ptp(opening)) if len(opening) else 0.0
        motions = (pp.gripper_motions(opening, cfg.min_change * span)
                   if span >= cfg.min_range else [])
        closes = [(a, b) for s, a, b in motions if s < 0]
        opens = [(a, b) for s, a, b in motions if s > 0]
        objm = pp.object_motions(sig.objects, cfg.smooth) if len(sig.objects) else []
        times = {
            "close_onset": [a for a, _ in closes],
            "close_done": [_grasp_done(opening, a, b) for a, b in closes],
            "close_end": [b - 1 for _, b in closes],
            "open_onset": [a for a, _ in opens],
            "obj_onset": sorted({a for _, a, _ in objm}),
            "obj_stop": sorted({b for _, _, b in objm}),
            "speed_min": pp.speed_minima(sig.hand, cfg.smooth) if sig.hand is not None else [],
            **_object_events(sig, closes, cfg),
        }
        return _Events(times, closes, opens, sig, layout)

    # ---- plan ---------------------------------------------------------------------------
    def _plan(self, episode: Episode, events: _Events) -> list[str]:
        if self.plan is not None:
            return list(self.plan)
        if self.use_episode_plan and episode.plan:
            return list(episode.plan)
        obj, target, verb = self._objects(episode)
        if events.closes:
            final = _final_step(verb if verb != "Push" else "Place", obj, target or "goal")
            return [vocab.move_to(obj), vocab.grasp(obj), final]
        return [vocab.move_to(obj), _final_step(verb if verb != "Place" else "Push", obj, target)]

    def _objects(self, episode: Episode) -> tuple[str, str | None, str]:
        key = str(episode.meta.get("task_name", "") if episode.meta else "") or episode.task
        table = METAWORLD_OBJECTS.get(key.lower().removesuffix("-v3").removesuffix("-v2"))
        if self.objects:
            verb = table[2] if table else "Place"
            return self.objects[0], (self.objects[1] if len(self.objects) > 1 else None), verb
        if table:
            return table
        found = _objects_in_text(episode.task)
        if not found:
            raise ProcvlmError(
                f"cannot tell the objects of task {episode.task!r}: pass objects=[object, "
                "target] (or plan=[...]) to the gripper annotator")
        return found[0], (found[1] if len(found) > 1 else None), "Place"

    # ---- completion ---------------------------------------------------------------------
    def _completed(self, step: str, k: int, plan: list[str], edges: list[int],
                   events: _Events, episode: Episode) -> bool:
        if k == len(plan) - 1 and episode.success is not None:
            return bool(episode.success)
        start, end = edges[k], edges[k + 1]
        verb = vocab.verb_of(step)
        if verb == "Grasp":
            return _grasped(events, start, end, self.config.grasp_margin)
        if verb in ("Place", "Insert", "Hang"):
            released = any(start <= a < end + 2 for a, _ in events.opens)
            return released or (k < len(plan) - 1)
        if verb == "Move":
            return k < len(plan) - 1
        moved = any(start <= a < end for a in events.times["obj_onset"])
        return moved or len(events.signals.objects) == 0


def _object_events(sig: pp.Signals, closes: list[tuple[int, int]],
                   cfg: GripperConfig) -> dict[str, list[int]]:
    """Events of the most moved object after the gripper first closes: lifted (risen by
    ``lift_height``) and at_goal (within ``goal_distance`` of the goal)."""
    out: dict[str, list[int]] = {"lifted": [], "at_goal": [], "reach": []}
    if not len(sig.objects) or not closes:
        return out
    obj, (onset, closed) = sig.objects[0], closes[0]
    if sig.hand is not None:
        dist = np.linalg.norm(sig.hand - obj, axis=1)
        near = dist[:closed + 1] < dist[:closed + 1].min() + cfg.reach_distance
        out["reach"] = [int(np.argmax(near))]
    lifted = pp.first_after(obj[:, 2] > obj[onset, 2] + cfg.lift_height, onset)
    if lifted is not None:
        out["lifted"] = [lifted]
    if sig.goal is not None:
        # the object point in the state may sit off the goal point: arrived is also "within
        # goal_fraction of the approach from the closest the object ever gets"
        dist = np.linalg.norm(obj - sig.goal, axis=1)
        begin = lifted if lifted is not None else onset
        closest = float(dist[begin:].min())
        near = (dist < cfg.goal_distance) | \
            (dist - closest <= cfg.goal_fraction * (dist[begin] - closest))
        arrived = pp.first_after(near, begin)
        if arrived is not None:
            out["at_goal"] = [arrived]
    return out


def _grasp_done(opening: np.ndarray, onset: int, done: int) -> int:
    """Frame where a closing motion has covered half of its travel (the hand starts carrying)."""
    seg = opening[onset:done + 1]
    if len(seg) < 2:
        return done
    half = seg[0] - 0.5 * (seg[0] - seg.min())
    return onset + int(np.argmax(seg <= half))


def _grasped(events: _Events, start: int, end: int, margin: float) -> bool:
    """A closing motion ended in the step (or just after) on something: the object then moved
    with the hand, or the gripper stayed above its empty level."""
    closes = [(a, b) for a, b in events.closes if start <= a < end + 2]
    if not closes:
        return False
    a, b = closes[-1]
    sig = events.signals
    if len(sig.objects) and sig.hand is not None:
        after = min(len(sig.opening), b + 3 * (b - a) + 10)
        if any(pp.carried(sig.hand, o, b, after) for o in sig.objects):
            return True
    level = events.layout.empty_level
    if level is None:
        return not len(sig.objects)
    held = sig.opening[b:min(len(sig.opening), b + 5)]
    threshold = level + margin * (float(sig.opening.max()) - level)
    return bool(len(held) and np.median(held) > threshold)


def align(plan: Sequence[str], times: dict[str, list[int]], num_frames: int,
          prior_weight: float = 1.0) -> list[int]:
    """Place the K-1 boundaries of a K-step plan on detected events.

    Each boundary k has candidate frames: the events that end step k, scored by preference
    (3, 2, 1 for the first, second, third kind) minus ``prior_weight`` times the distance to
    the even split k/K (as a fraction of the episode), plus the even split itself with score 0.
    A dynamic programme picks strictly increasing boundaries with the highest total score.

    Args:
        plan: the atomic actions, in order.
        times: event kind -> frames (close_onset, close_done, open_onset, obj_onset, obj_stop,
            speed_min).
        num_frames: episode length T (>= K).
        prior_weight: pull towards the even split.

    Returns:
        K-1 increasing frames in [1, T-1].
    """
    k_steps = len(plan)
    cands: list[list[tuple[int, float]]] = []
    for k in range(1, k_steps):
        prior = k / k_steps
        options = {int(round(prior * num_frames)): 0.0}
        for rank, kind in enumerate(_boundary_kinds(plan[k - 1], plan[k])):
            for t in times.get(kind, []):
                if 0 < t < num_frames:
                    score = 3.0 - rank - prior_weight * abs(t / num_frames - prior)
                    options[t] = max(options.get(t, -np.inf), score)
        cands.append(sorted(options.items()))
    return _best_increasing(cands, num_frames, k_steps)


def _boundary_kinds(step: str, next_step: str) -> tuple[str, ...]:
    verb, nxt = vocab.verb_of(step), vocab.verb_of(next_step)
    if verb == "Move":
        return _TO_GRASP if nxt == "Grasp" else _TO_CONTACT
    return _ENDS.get(verb, _NONPREHENSILE_END)


def _best_increasing(cands: list[list[tuple[int, float]]], num_frames: int,
                     k_steps: int) -> list[int]:
    """Highest-scoring choice of one candidate per boundary with strictly increasing frames,
    leaving room for the steps before and after (boundary k in [k, T-K+k])."""
    if not cands:
        return []
    layers = []
    for k, opts in enumerate(cands, start=1):
        opts = [(t, s) for t, s in opts if k <= t <= num_frames - k_steps + k]
        layers.append(opts or [(k + (num_frames - k_steps) * k // k_steps, -10.0)])
    best = [(s, [t]) for t, s in layers[0]]
    for opts in layers[1:]:
        nxt = []
        for t, s in opts:
            prev = [(bs, path) for bs, path in best if path[-1] < t]
            if prev:
                bs, path = max(prev, key=lambda p: p[0])
                nxt.append((bs + s, path + [t]))
        if not nxt:  # no increasing choice: fall back to the even split
            return [round(k * num_frames / k_steps) for k in range(1, k_steps)]
        best = nxt
    return max(best, key=lambda p: p[0])[1]


def _final_step(verb: str, obj: str, target: str | None) -> str:
    if verb == "Place":
        return vocab.place(obj, target or "goal")
    if verb == "Insert":
        return vocab.insert(obj, target or "goal")
    if verb in ("Push", "Pull"):
        return (vocab.push if verb == "Push" else vocab.pull)(obj, target)
    fn = {"Open": vocab.open_, "Close": vocab.close, "Press": vocab.press, "Lift": vocab.lift,
          "Rotate": vocab.rotate, "Tilt": vocab.tilt}.get(verb, vocab.push)
    return fn(obj)


def _objects_in_text(text: str) -> list[str]:
    """Known object nouns in the order they appear in the task text."""
    words = re.findall(r"[a-z]+", text.lower())
    seen: list[str] = []
    for w in words:
        w = w[:-1] if w.endswith("s") and w[:-1] in _KNOWN_OBJECTS else w
        if w in _KNOWN_OBJECTS and w not in seen:
            seen.append(w)
    return seen
