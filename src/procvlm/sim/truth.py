"""Simulator-truth progress: the referee that no label scheme sees.

Truth progress is computed frame by frame from the simulator state alone (gripper centre,
object position, pad contacts, gripper opening, the task's goal gap and MetaWorld's success
flag). It reads neither the oracle's sub-step labels nor any label scheme, so label schemes and
progress models can be judged by their agreement with it.

Definition. A task's plan has K steps (move to the object, grasp it, lift it, and for most
tasks a final action). Each step has an equal share 1/K, and

    truth_t = (k_t + g_t) / K,

where k_t is the number of plan steps the current state has achieved and g_t in [0, 1] the
geometric progress inside the step under way:

- move (k = 0): distance closed from the gripper centre to the object,
  ``g = (D_0 - d_t) / (D_0 - reach)`` with D_0 the distance on the first frame and ``reach`` the
  task's reach radius (clipped to [0, 1]);
- grasp (k = 1, the gripper within reach of the object): closure and contact,
  ``g = 0.5 * closure + 0.25 * pads`` with closure the gripper's closing from fully open (a
  closing of 0.4 counts as closed) and pads the number of pads (0 or 1) touching the object;
- lift and final step (both pads touching the object, or did so within the last
  ``HOLD_FRAMES`` frames, as contacts flicker): ``k = 2`` and ``g = g_lift + g_final`` (each in
  [0, 1], so these two steps share 2/K), where ``g_lift = (h - z_0) / LIFT_HEIGHT`` is the height
  the object has reached since it was grasped (h, the highest point of this hold, so lowering it
  onto a low goal takes nothing back) over its resting height before it was first grasped
  (z_0), and ``g_final = (G_0 - G_t) / (G_0 - tol)`` is the goal gap closed, with G the task's
  goal measure (object to goal, peg head to hole, nut onto the peg, hammer head to nail plus the
  nail's depth, thermos to target; ``SimEnv.goal_gap``), G_0 its value on the first frame and tol
  MetaWorld's success radius, capped at ``FINAL_CAP`` so that truth stays below 1. For a task
  whose goal is the lift itself (K = 3), ``g = g_final`` with the goal height as the measure.

Touch tasks (K = 2: move to the object, then press, pull, open, turn or slide it without a
grasp) take ``truth_t = (g_move + g_final) / 2`` with the same two measures, the goal gap being
the object point's distance to its target.

Truth is 1 exactly from the frame on which MetaWorld's success holds while the object is carried
(held, or lifted and not yet back at rest since it was last held), and stays 1 afterwards (the
task is done). So: it is flat while the scene does not change (a function of the state); it falls
when a completed step is undone (a dropped or released object is no longer held, the hand away
from it); it is 1 only on episodes that MetaWorld counts as achieved after a real carry, never
on a failed one; and on clean expert episodes it rises with the expert's motion.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from procvlm.sim.env import SimFacts
from procvlm.sim.oracle import GRASP, LIFT, MOVE
from procvlm.sim.tasks import TaskSpec

HOLD_FRAMES = 3
"""Frames a grasp counts as held after the pads last touched the object together."""

LIFT_HEIGHT = 0.05
"""Height (m) above its resting height at which the object counts as fully lifted."""

FINAL_CAP = 0.99
"""Most geometric progress inside the final step before MetaWorld's success holds."""

CLOSED = 0.4
"""Gripper closing (1 - opening) that counts as fully closed in the grasp step."""


@dataclass
class TruthTracker:
    """Simulator-truth progress of one episode, one frame at a time.

    Attributes:
        spec: the task.
        values: truth progress of every frame seen so far.
        done: MetaWorld's success held while the object was carried (truth is 1 from then on).
    """

    spec: TaskSpec
    values: list[float] = field(default_factory=list)
    done: bool = False
    _d0: float | None = None
    _gap0: float | None = None
    _z0: float = 0.0
    _ever_grasped: bool = False
    _since_grasp: int = HOLD_FRAMES + 1
    _carrying: bool = False
    _peak: float = 0.0            # highest object height during the current hold
    _reached: bool = False        # the gripper came within reach of the object (touch tasks)

    @property
    def touch(self) -> bool:
        return self.spec.kind == "touch"

    @staticmethod
    def _distance(f: SimFacts) -> float:
        return float(np.linalg.norm(f.tcp - f.obj))

    @property
    def plan_len(self) -> int:
        return len(self.spec.plan)

    def update(self, f: SimFacts) -> float:
        """Truth progress at the next frame, in state ``f``; appended to ``values``."""
        if self._d0 is None:
            self._d0 = max(self._distance(f), self.spec.reach + 1e-3)
            self._gap0 = max(f.goal_gap, self.spec.goal_tol + 1e-3)
        self._since_grasp = 0 if f.grasped else self._since_grasp + 1
        self._ever_grasped = self._ever_grasped or f.grasped
        if not self._ever_grasped:
            self._z0 = float(f.obj[2])  # the object settles before it is first grasped
        held = self._since_grasp <= HOLD_FRAMES and self._ever_grasped
        self._peak = max(self._peak, float(f.obj[2])) if held else float(f.obj[2])
        lifted = float(f.obj[2]) > self._z0 + self.spec.lift
        if held and lifted:
            self._carrying = True
        elif not held and not lifted:
            self._carrying = False
        self._reached = self._reached or self._distance(f) < self.spec.reach
        if f.success and (held or self._carrying or (self.touch and self._reached)):
            self.done = True
        value = 1.0 if self.done else self._partial(f, held)
        self.values.append(value)
        return value

    def _partial(self, f: SimFacts, held: bool) -> float:
        """(k + g) / K below 1: the steps achieved by the state plus progress in the next."""
        final = min(FINAL_CAP, max(0.0, self._goal_closed(f.goal_gap)))
        move = min(1.0, max(0.0, (self._d0 - self._distance(f)) / (self._d0 - self.spec.reach)))
        if self.touch:
            return (move + final) / 2
        if held:
            if self.plan_len - 1 == LIFT:
                return (LIFT + final) / self.plan_len
            lift = min(1.0, max(0.0, (self._peak - self._z0) / LIFT_HEIGHT))
            return (LIFT + lift + final) / self.plan_len
        if self._distance(f) < self.spec.reach:
            closure = min(1.0, max(0.0, (1.0 - f.gripper) / CLOSED))
            return (GRASP + 0.5 * closure + 0.25 * min(f.pads, 1)) / self.plan_len
        return (MOVE + move) / self.plan_len

    def _goal_closed(self, gap: float) -> float:
        tol = self.spec.goal_tol
        return (self._gap0 - gap) / (self._gap0 - tol)

    def array(self) -> np.ndarray:
        """(T,) float32 truth progress of the frames seen so far."""
        return np.asarray(self.values, dtype=np.float32)


def true_progress(spec: TaskSpec, facts: list[SimFacts]) -> np.ndarray:
    """(T,) float32 simulator-truth progress of an episode whose frames had states ``facts``.

    Args:
        spec: the task.
        facts: the simulator state of every frame, in order.

    Returns:
        Truth progress per frame, in [0, 1]; 1 only once MetaWorld's success held while the object
        was carried.
    """
    tracker = TruthTracker(spec)
    for f in facts:
        tracker.update(f)
    return tracker.array()
