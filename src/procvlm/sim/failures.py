"""Failure modes injected into expert rollouts, drawn deterministically from a seed.

- ``noise``: strong action noise (a slowly varying random drift on top of white noise) from
  a few frames after the hand reached the object, so the arm loses it or never gets it there.
- ``drop``: the gripper opens while the object is carried and stays open (40 more frames).
- ``stall``: the arm holds still for a while mid-task, then the expert continues. The event's
  ``start`` is the first frame at which the scene is still (the arm coasts for a few frames after
  its last motion command), its ``end`` the first frame of the expert's motion again.
- ``regression``: while the object is carried, the gripper opens and the hand backs off upwards
  for a moment; the object falls back onto the table and the expert grasps it again.
- ``truncate``: the episode is cut early, a few frames after some sub-step before the last.

Tasks done without a grasp (``touch`` tasks) never carry their object, so ``drop`` and
``regression`` do not apply to them: ``task_failure_modes`` lists the modes each task gets.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from procvlm.errors import ProcvlmError
from procvlm.sim.env import SimFacts, still
from procvlm.sim.oracle import GRASP, SubstepOracle
from procvlm.sim.tasks import TaskSpec

FAILURE_MODES: tuple[str, ...] = ("noise", "drop", "stall", "regression", "truncate")

CARRY_MODES = ("drop", "regression")
"""Failure modes that act on a carried object."""

RELEASE_FRAMES = 12
"""Frames the gripper stays open in a ``regression`` (the object falls back)."""


def check_failure(mode: str | None) -> str | None:
    """``mode`` itself when it is None or a known failure mode.

    Raises:
        ProcvlmError: unknown mode.
    """
    if mode is not None and mode not in FAILURE_MODES:
        raise ProcvlmError(f"unknown failure mode {mode!r}: choose from {', '.join(FAILURE_MODES)}"
                           " or none")
    return mode


def task_failure_modes(spec: TaskSpec) -> tuple[str, ...]:
    """The failure modes that can happen in ``spec`` (no carried-object modes for touch tasks)."""
    if spec.kind == "touch":
        return tuple(m for m in FAILURE_MODES if m not in CARRY_MODES)
    return FAILURE_MODES


@dataclass
class Injector:
    """Changes the expert's action frame by frame for one failure mode.

    Parameters are drawn once from ``rng``; the trigger frames depend on the oracle (e.g. "a few
    frames after the object was lifted"), so the failure hits the same phase in every task.
    """

    mode: str | None
    rng: np.random.Generator
    plan_len: int
    events: list[dict] = field(default_factory=list)
    stop_at: int | None = None           # last frame to record, once known
    _trigger: int | None = None          # frame the injection starts
    _drift: np.ndarray = field(default_factory=lambda: np.zeros(4))
    _prev: SimFacts | None = None        # the state of the previous frame

    def __post_init__(self) -> None:
        check_failure(self.mode)
        r = self.rng
        self.delay = int(r.integers(2, 8))
        self.duration = int(r.integers(15, 31))                       # stall / regression
        self.after_step = int(r.integers(0, max(1, self.plan_len - 1)))  # truncate

    def _arm(self, frame: int, oracle: SubstepOracle, step: int) -> None:
        """Set the trigger frame once the oracle has completed plan step ``step``."""
        if self._trigger is None and oracle.max_completed >= step:
            self._trigger = frame + self.delay

    def _arm_carried(self, frame: int, oracle: SubstepOracle) -> None:
        """Set the trigger frame once the object is carried (grasped and moved)."""
        if self._trigger is None and not oracle.done and oracle.carried():
            self._trigger = frame + self.delay // 2

    def action(self, frame: int, expert: np.ndarray, oracle: SubstepOracle,
               last: np.ndarray) -> np.ndarray:
        """The action to apply at ``frame`` instead of the expert's."""
        a = np.array(expert, dtype=np.float64)
        if self.mode is not None:
            getattr(self, f"_{self.mode}")(frame, a, oracle, last)
        self._prev = oracle.facts
        return np.clip(a, -1.0, 1.0)     # what MetaWorld applies (it clips too)

    def _noise(self, frame: int, a: np.ndarray, oracle: SubstepOracle, last: np.ndarray) -> None:
        self._arm(frame, oracle, 0)
        if self._trigger is None or frame < self._trigger:
            return
        if not self.events:
            self.events.append({"type": "noise", "start": frame})
        self._drift = 0.97 * self._drift + 0.6 * self.rng.standard_normal(4)
        a += self._drift + 0.8 * self.rng.standard_normal(4)

    def _drop(self, frame: int, a: np.ndarray, oracle: SubstepOracle, last: np.ndarray) -> None:
        self._arm_carried(frame, oracle)
        if self._trigger is not None and frame >= self._trigger:
            if not self.events:
                self.events.append({"type": "drop", "frame": frame})
                self.stop_at = frame + 40
            a[3] = -1.0

    def _stall(self, frame: int, a: np.ndarray, oracle: SubstepOracle, last: np.ndarray) -> None:
        # After the grasp, or after the move of a two-step (touch) plan: always mid-task.
        self._arm(frame, oracle, min(GRASP, self.plan_len - 2))
        end = None if self._trigger is None else self._trigger + self.duration
        if end is None or not self._trigger <= frame < end:
            return
        if not self.events and (still(self._prev, oracle.facts) or frame == end - 1):
            self.events.append({"type": "stall", "start": frame, "end": end})
        a[:3] = 0.0
        a[3] = last[3]

    def _regression(self, frame: int, a: np.ndarray, oracle: SubstepOracle,
                    last: np.ndarray) -> None:
        self._arm_carried(frame, oracle)
        if self._trigger is not None and self._trigger <= frame < self._trigger + RELEASE_FRAMES:
            if not self.events:
                self.events.append({"type": "release", "frame": frame})
            # Open and back off upwards: the object falls back onto the table, and the expert,
            # far from it with an open gripper, starts over as at the beginning.
            a[:3] = (0.0, 0.0, 1.0)
            a[3] = -1.0

    def _truncate(self, frame: int, a: np.ndarray, oracle: SubstepOracle,
                  last: np.ndarray) -> None:
        self._arm(frame, oracle, self.after_step)
        if self._trigger is not None and self.stop_at is None:
            self.truncate_at(self._trigger)

    def truncate_at(self, frame: int) -> None:
        """End the episode at ``frame`` (the last frame kept), recording a truncate event."""
        self.stop_at = frame
        self.events = [e for e in self.events if e["type"] != "truncate"]
        self.events.append({"type": "truncate", "frame": frame})
