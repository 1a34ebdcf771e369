"""Human-like pacing of the scripted experts: what teleoperated demonstrations look like.

Scripted experts move at one constant pace, so on their successful episodes elapsed time *is*
progress. People do not: ``human`` pacing changes the expert's action, frame by frame, with

- a pace per plan step: the arm's motion is scaled by a factor drawn log-uniformly in
  ``PACE_RANGE`` for each step (so one step can take several times longer than another),
  except while the expert closes the gripper on the object (the experts time their grip to
  their own descent);
- small jitter: white noise of ``JITTER`` on the motion;
- hesitations: 1 or 2 pauses of ``HESITATION_FRAMES`` frames (the arm stops, the gripper keeps
  its command) while moving to the object, lifting it or doing the final action;
- an overshoot-and-correct approach (with probability ``P_OVERSHOOT``): near the object the hand
  keeps going past it for a few frames, then the expert corrects back;
- a re-grasp (with probability ``P_REGRASP``): on the frame the first grasp holds, the gripper
  opens (the object stays on the table) and the hand backs off, then the expert grasps again.

Tasks done without a grasp (``touch`` tasks) get the pace, jitter and hesitations only.
Everything is drawn from the episode's seed, so an episode is the same every time. Each pause,
overshoot and re-grasp is recorded as a ``PacingEvent`` (``meta["events"]``, end exclusive:
``hesitation`` from the first still frame (the arm coasts for a few frames after it stops; see
``procvlm.sim.env.still``) to the first frame moving again, ``overshoot`` from the
first frame pushed past the object until the hand, once past, is back as close to it as when
it started,
``regrasp`` from the first released frame until both pads hold the object again). ``scripted``
pacing returns the expert's action unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from procvlm.errors import ProcvlmError
from procvlm.sim.env import SimFacts, still
from procvlm.sim.oracle import GRASP, LIFT, MOVE, SubstepOracle

PACINGS: tuple[str, ...] = ("human", "scripted")
"""Pacing styles: ``human`` (the default of ``procvlm generate``) or ``scripted``."""

PACE_RANGE = (0.3, 1.0)
"""Range of the per-step motion scale (log-uniform)."""

JITTER = 0.03
"""Standard deviation of the white noise on the motion (action units; 1 = 1 cm per frame)."""

HESITATION_FRAMES = (14, 31)
"""Length range (low inclusive, high exclusive) of a hesitation pause."""

HESITATION_GAP = 15
"""Fewest frames of motion between two hesitations."""

P_OVERSHOOT = 0.5
P_REGRASP = 0.2

OVERSHOOT_FRAMES = (6, 11)
"""Frames the hand is pushed towards and past the object (1 cm per frame at full speed)."""

OVERSHOOT_NEAR = (0.04, 0.08)
"""An overshoot starts when the hand is within this horizontal and this 3-d distance (m) of the
object (on its way down to it, not yet within reach)."""

RELEASE_FRAMES = (5, 9)
"""Frames the gripper opens and backs off in a re-grasp."""

MAX_CORRECTION = 60
"""Most frames an overshoot or re-grasp event lasts after its push or release."""


def check_pacing(pacing: str) -> str:
    """``pacing`` itself when it is a known pacing style.

    Raises:
        ProcvlmError: unknown style.
    """
    if pacing not in PACINGS:
        raise ProcvlmError(f"unknown pacing {pacing!r}: choose from {', '.join(PACINGS)}")
    return pacing


@dataclass(frozen=True)
class PacingEvent:
    """One pacing event of an episode (frames ``start`` to ``end``, end exclusive).

    Attributes:
        type: ``"hesitation"``, ``"overshoot"`` or ``"regrasp"``.
        start: first frame of the event.
        end: frame one past the event's last frame.
    """

    type: str
    start: int
    end: int

    def __post_init__(self) -> None:
        if self.type not in ("hesitation", "overshoot", "regrasp"):
            raise ValueError(f"PacingEvent type {self.type!r}: use hesitation, overshoot or regrasp")
        if not 0 <= self.start < self.end:
            raise ValueError(f"PacingEvent {self.type} has start={self.start}, end={self.end}: "
                             "need 0 <= start < end")

    def as_dict(self) -> dict[str, int | str]:
        """The ``meta["events"]`` form: ``{"type", "start", "end"}``."""
        return {"type": self.type, "start": self.start, "end": self.end}


@dataclass
class _Hesitation:
    step: int           # plan step during which the pause starts
    delay: int          # frames into that step
    duration: int
    start: int | None = None   # first paused frame
    recorded: bool = False     # its event (from the first still frame) is recorded


@dataclass
class Pacer:
    """Changes the expert's action frame by frame for one pacing style.

    Parameters are drawn once from ``rng``; triggers follow the oracle's sub-step, so a pause or
    a re-grasp hits the same phase in every task.
    """

    pacing: str
    rng: np.random.Generator
    plan_len: int
    grasps: bool = True       # the task grasps its object (False for touch tasks)
    events: list[PacingEvent] = field(default_factory=list)
    _entered: dict[int, int] = field(default_factory=dict)   # step -> frame it was entered
    _overshoot: dict | None = None
    _regrasp: dict | None = None
    _prev: SimFacts | None = None

    def __post_init__(self) -> None:
        check_pacing(self.pacing)
        r = self.rng
        lo, hi = np.log(PACE_RANGE[0]), np.log(PACE_RANGE[1])
        self.pace = np.exp(r.uniform(lo, hi, self.plan_len + 1))   # + the done tail
        steps = sorted({s for s in (MOVE, LIFT, self.plan_len - 1)
                        if s != GRASP and s < self.plan_len} if self.grasps
                       else {MOVE, self.plan_len - 1})
        n = 1 + int(r.random() < 0.4)
        self.hesitations = [_Hesitation(int(r.choice(steps)), int(r.integers(2, 16)),
                                        int(r.integers(*HESITATION_FRAMES))) for _ in range(n)]
        self.overshoot_frames = int(r.integers(*OVERSHOOT_FRAMES)) \
            if r.random() < P_OVERSHOOT and self.grasps else 0
        self.release_frames = int(r.integers(*RELEASE_FRAMES)) \
            if r.random() < P_REGRASP and self.grasps else 0

    @property
    def human(self) -> bool:
        return self.pacing == "human"

    def action(self, frame: int, expert: np.ndarray, oracle: SubstepOracle,
               last: np.ndarray) -> np.ndarray:
        """The action to apply at ``frame`` instead of the expert's: the expert's own with
        ``scripted`` pacing, else the paced one clipped to [-1, 1]."""
        if not self.human:
            return np.array(expert, dtype=np.float64)
        a = np.clip(np.array(expert, dtype=np.float64), -1.0, 1.0)
        step = min(oracle.pointer, self.plan_len)
        self._entered.setdefault(step, frame)
        paused = self._hesitate(frame, step, a, last, oracle.facts)
        self._prev = oracle.facts
        if paused:
            return a
        # The experts time their grip to their own descent: once one closes the gripper on
        # the object, it moves at its own pace until the grasp holds.
        closing = self.grasps and step <= GRASP and a[3] > 0
        a[:3] = a[:3] * (1.0 if closing else self.pace[step]) \
            + JITTER * self.rng.standard_normal(3)
        self._overshoot_step(frame, step, a, oracle)
        self._regrasp_step(frame, step, a, oracle)
        return np.clip(a, -1.0, 1.0)

    def _hesitate(self, frame: int, step: int, a: np.ndarray, last: np.ndarray,
                  facts: SimFacts | None) -> bool:
        """Stop the arm when a hesitation is under way; True while paused."""
        busy = any(o is not None and o["end"] is None for o in (self._overshoot, self._regrasp))
        busy = busy or any(h.start is not None and frame < h.start + h.duration + HESITATION_GAP
                           for h in self.hesitations)
        for h in self.hesitations:
            if h.start is None and not busy and step < self.plan_len and (
                    (step == h.step and frame - self._entered[step] >= h.delay)
                    or (step > h.step and (step != GRASP or not self.grasps))):
                h.start = frame
            end = -1 if h.start is None else h.start + h.duration
            if h.start is not None and h.start <= frame < end:
                if not h.recorded and (still(self._prev, facts) or frame == end - 1):
                    h.recorded = True
                    self.events.append(PacingEvent("hesitation", frame, end))
                a[:3] = 0.0
                a[3] = last[3]
                return True
        return False

    def _overshoot_step(self, frame: int, step: int, a: np.ndarray,
                        oracle: SubstepOracle) -> None:
        """Push the hand past the object once, near the end of the approach."""
        f = oracle.facts
        if not self.overshoot_frames or f is None:
            return
        gap = float(np.linalg.norm(f.tcp[:2] - f.obj[:2]))
        dist = float(np.linalg.norm(f.tcp - f.obj))
        o = self._overshoot
        if o is None and step == MOVE and gap < OVERSHOOT_NEAR[0] \
                and oracle.spec.reach + 0.02 < dist < OVERSHOOT_NEAR[1] and a[3] <= 0:
            direction = f.obj[:2] - f.tcp[:2]
            norm = float(np.linalg.norm(direction))
            if norm < 1e-3:
                return
            o = self._overshoot = {"start": frame, "dir": direction / norm, "gap": gap,
                                   "end": None, "past": False}
        if o is None or o["end"] is not None:
            return
        pushed = frame - o["start"]
        o["past"] = o["past"] or gap > o["gap"] + 0.01
        if pushed < self.overshoot_frames:
            a[:2] = o["dir"]
            a[2] = 0.2
        elif (o["past"] and gap <= o["gap"] + 0.005) or step != MOVE \
                or pushed >= self.overshoot_frames + MAX_CORRECTION:
            o["end"] = frame
            self.events.append(PacingEvent("overshoot", o["start"], frame))

    def _regrasp_step(self, frame: int, step: int, a: np.ndarray,
                      oracle: SubstepOracle) -> None:
        """Open and back off once just after the first grasp; the expert grasps again."""
        f = oracle.facts
        if not self.release_frames or f is None:
            return
        r = self._regrasp
        if r is None:
            grasped_at = oracle.completed_at.index(GRASP) if GRASP in oracle.completed_at \
                else None
            if grasped_at is None:
                return
            if step != LIFT:
                self.release_frames = 0   # already lifted: too late for a re-grasp
                return
            r = self._regrasp = {"start": frame, "end": None}
        if r["end"] is not None:
            return
        released = frame - r["start"]
        if released < self.release_frames:
            # Open first (the object must not leave with the hand), then back off upwards.
            a[:3] = (0.0, 0.0, 0.5 if released >= 3 else 0.0)
            a[3] = -1.0
        elif f.grasped or released >= self.release_frames + MAX_CORRECTION:
            r["end"] = frame
            self.events.append(PacingEvent("regrasp", r["start"], frame))

    def finish(self, length: int) -> list[dict[str, int | str]]:
        """The events as ``meta`` dicts, clipped to an episode of ``length`` frames.

        An event still under way at the end closes there; one that never started is dropped.
        """
        open_events = []
        for o, kind in ((self._overshoot, "overshoot"), (self._regrasp, "regrasp")):
            if o is not None and o["end"] is None and o["start"] < length:
                open_events.append(PacingEvent(kind, o["start"], length))
        out = []
        for e in self.events + open_events:
            if e.start < length:
                out.append(PacingEvent(e.type, e.start, min(e.end, length)).as_dict())
        return sorted(out, key=lambda e: e["start"])
