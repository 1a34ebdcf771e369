"""The sub-step oracle: which plan step is under way at each frame, read from the simulator.

The oracle walks the plan with a pointer. At each frame it checks the current step's goal
condition on the simulator state (gripper centre near the object, both pads touching it, object
above its start height, MetaWorld's success); when it holds, the step is completed on that frame
and the pointer moves on (one step per frame, so every segment has at least one frame). When a
completed grasp is lost and the object is back below lifting height before the task is finished, the
pointer falls back (a regression): the timeline then repeats an earlier plan step. The same holds
for a reach: when the gripper centre, having reached the object of a grasp task, is more than
``LEAVE_REACH`` reaches away from it for ``LOST_FRAMES`` frames in a row before the grasp, the
move step is undone and the pointer falls back to it (an arm that wanders off under noise, or
backs away to try again). Simulator truth falls there too: it counts the distance still to close.

MetaWorld's success while the object is held (a grasp was completed and the pads touched the
object within the last ``LOST_FRAMES`` frames) achieves the lift step as well as the final one,
so the remaining steps of a pick task complete one per frame: a puck placed on a low goal counts
as lifted and placed although it never rose ``lift`` above its start (the rule
``procvlm.sim.truth`` uses to declare a task done). A success flag that comes on
without a hold (a puck pushed through the goal region) achieves only the final step, and only
when the pointer is already there. Touch tasks keep their own rule (the final step completes on
success).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from procvlm.data.episode import Subtask
from procvlm.sim.env import SimFacts
from procvlm.sim.tasks import TaskSpec

MOVE, GRASP, LIFT = 0, 1, 2

LOST_FRAMES = 3
"""Frames without pad contact before a grasp counts as lost (contacts flicker)."""

LEAVE_REACH = 2.0
"""A reached object counts as left when the gripper centre is this many reaches away from it
(``LOST_FRAMES`` frames in a row, before the grasp); the margin keeps a hand hovering at the edge
of its reach from flickering between the two steps."""



@dataclass
class SubstepOracle:
    """Tracks the plan step under way, frame by frame.

    Attributes:
        spec: the task.
        start_obj: (3,) object position before the first grasp (updated until then).
        pointer: index of the step under way; ``len(plan)`` once the task is done.
        labels: per frame, the step under way at that frame (``len(plan)`` = done).
        completed_at: per frame, the step completed on that frame or -1.
        regressions: ``{"type": "regression", "frame", "step"}`` for each undone step.
        facts: the state seen at the latest frame.
    """

    spec: TaskSpec
    start_obj: np.ndarray
    pointer: int = 0
    labels: list[int] = field(default_factory=list)
    completed_at: list[int] = field(default_factory=list)
    regressions: list[dict] = field(default_factory=list)
    facts: SimFacts | None = None
    _lost: int = 0
    _away: int = 0

    @property
    def plan(self) -> list[str]:
        return self.spec.plan

    @property
    def done(self) -> bool:
        return self.pointer >= len(self.plan)

    @property
    def max_completed(self) -> int:
        """Highest plan step ever completed (-1 if none)."""
        return max(self.completed_at, default=-1)

    def carried(self, distance: float = 0.02) -> bool:
        """The object has been grasped and is held ``distance`` (m) away from its start."""
        f = self.facts
        return (f is not None and self.max_completed >= GRASP and f.grasped
                and float(np.linalg.norm(f.obj - self.start_obj)) > distance)

    def held(self) -> bool:
        """A completed grasp still holds: the pads touched the object within the last
        ``LOST_FRAMES`` frames (the latest frame included)."""
        return self.max_completed >= GRASP and self._lost < LOST_FRAMES

    def near_object(self) -> bool:
        """The gripper centre is within the task's reach of the object."""
        f = self.facts
        return f is not None and float(np.linalg.norm(f.tcp - f.obj)) < self.spec.reach

    def achieved(self, step: int, f: SimFacts) -> bool:
        """Whether plan step ``step``'s goal condition holds in state ``f``."""
        last = len(self.plan) - 1
        if step == last:
            return f.success
        if step == MOVE:
            return float(np.linalg.norm(f.tcp - f.obj)) < self.spec.reach
        if step == GRASP:
            return f.grasped
        if step == LIFT:
            lifted = f.grasped and f.obj[2] > self.start_obj[2] + self.spec.lift
            return lifted or (f.success and self.held())
        raise IndexError(f"step {step} is outside the plan of {len(self.plan)} steps")

    def update(self, frame: int, f: SimFacts) -> int:
        """Record frame ``frame`` (frames come in order); returns the step under way there."""
        if frame != len(self.labels):
            raise ValueError(f"oracle got frame {frame}, expected {len(self.labels)}")
        current = self.pointer
        self.facts = f
        if self.max_completed < GRASP:
            # Objects settle during the first frames (MetaWorld's reset observation can be
            # stale): the start height is the object's height just before it is first grasped.
            self.start_obj = np.array(f.obj, dtype=np.float64)
        self.labels.append(current)
        self.completed_at.append(-1)
        self._lost = 0 if f.grasped else self._lost + 1
        left = float(np.linalg.norm(f.tcp - f.obj)) > LEAVE_REACH * self.spec.reach
        self._away = self._away + 1 if left else 0
        if self.done:
            return current
        if self.achieved(current, f):
            self.completed_at[-1] = current
            self.pointer += 1
        elif current > GRASP and self._lost >= LOST_FRAMES \
                and f.obj[2] < self.start_obj[2] + self.spec.lift:
            back = GRASP if np.linalg.norm(f.tcp - f.obj) < self.spec.reach else MOVE
            self.regressions.append({"type": "regression", "frame": frame,
                                     "step": self.plan[back]})
            self.pointer = back
        elif current == GRASP and self.spec.kind != "touch" and self._away >= LOST_FRAMES:
            self.regressions.append({"type": "regression", "frame": frame,
                                     "step": self.plan[MOVE]})
            self.pointer = MOVE
        return current

    def subtasks(self) -> list[Subtask]:
        """The timeline: contiguous segments over the frames before the task was done.

        A segment is completed when the step was achieved on its last frame; a segment cut by a
        regression or by the end of the episode is not.
        """
        labels = np.asarray(self.labels, dtype=np.int64)
        out: list[Subtask] = []
        start = 0
        for t in range(1, len(labels) + 1):
            if t < len(labels) and labels[t] == labels[start]:
                continue
            step = int(labels[start])
            if step < len(self.plan):
                out.append(Subtask(self.plan[step], start, t,
                                   completed=self.completed_at[t - 1] == step))
            start = t
        return out
