"""The gripper annotator on synthetic trajectories with known boundaries."""

import numpy as np
import pytest

from procvlm.annotate import get_annotator
from procvlm.annotate.gripper import GripperAnnotator, GripperConfig, align
from procvlm.errors import ProcvlmError

PLAN = ["Move to the puck", "Grasp the puck", "Place the puck onto the goal"]


def _bounds(annotation):
    return [s.start for s in annotation.subtasks[1:]]


def test_pick_place_boundaries_and_names(pick_place_episode):
    ann = get_annotator("gripper").annotate(pick_place_episode)
    assert ann.plan == PLAN
    assert [s.name for s in ann.subtasks] == PLAN
    onset, done = _bounds(ann)
    assert 9 <= onset <= 10  # the hand is at the puck (within 3 cm) and the gripper closes at 10
    assert 14 <= done <= 16  # and has closed on the puck at frame 15
    # the puck is within 5 cm of the goal from frame 28 on: the later frames are "done"
    assert 28 <= ann.subtasks[-1].end <= 31
    assert all(s.completed for s in ann.subtasks)


def test_place_ends_when_gripper_opens(synth):
    plan = ["Move to the puck", "Grasp the puck", "Place the puck onto the goal", "Move to the home"]
    ep = synth.make_episode(synth.pick_place_state(60, close_at=10, open_at=40), state_names=synth.MW_NAMES,
                      plan=plan)
    ann = GripperAnnotator().annotate(ep)
    assert [s.name for s in ann.subtasks] == plan
    assert ann.subtasks[2].end == 40
    assert ann.subtasks[2].completed


def test_unnamed_39d_state_uses_metaworld_layout_and_objects_argument(synth):
    ep = synth.make_episode(synth.pick_place_state(with_object=False), task="do the thing")
    ann = GripperAnnotator(objects=["block", "shelf"]).annotate(ep)
    assert ann.plan == ["Move to the block", "Grasp the block", "Place the block onto the shelf"]
    assert _bounds(ann)[0] == 10


def test_empty_grasp_is_not_completed_and_failure_marks_last_step(synth):
    state = synth.pick_place_state(with_object=False, grip_on_object=0.1)  # closes fully: nothing held
    ep = synth.make_episode(state, state_names=synth.MW_NAMES, success=False)
    ann = GripperAnnotator().annotate(ep)
    assert ann.subtasks[1].name == "Grasp the puck"
    assert not ann.subtasks[1].completed
    assert not ann.subtasks[-1].completed


def test_robomimic_names(synth):
    n = 50
    t = np.arange(n)
    q = np.where(t < 20, 0.04, np.where(t < 25, 0.04 - 0.006 * (t - 20), 0.01))
    state = np.zeros((n, 9))
    state[:, 0] = np.linspace(0, 0.3, n)
    state[:, 7], state[:, 8] = q, -q
    names = [f"robot0_eef_pos_{i}" for i in range(3)] + [f"robot0_eef_quat_{i}" for i in range(4)] \
        + ["robot0_gripper_qpos_0", "robot0_gripper_qpos_1"]
    ep = synth.make_episode(state, task="lift the cube", state_names=names,
                      plan=["Move to the cube", "Grasp the cube", "Lift the cube"])
    ann = GripperAnnotator().annotate(ep)
    assert _bounds(ann)[0] == 20
    assert ann.subtasks[1].completed  # stays at 0.02 opening, above the empty level 0


def test_explicit_dims_and_no_gripper_error(synth):
    state = np.zeros((30, 5))
    state[10:, 4] = -1.0  # closes at frame 10 (smaller = more closed after flipping)
    ep = synth.make_episode(state, task="pick the cube", state_names=[f"s{i}" for i in range(5)])
    with pytest.raises(ProcvlmError, match="gripper_dims"):
        GripperAnnotator().annotate(ep)
    ann = GripperAnnotator(gripper_dims=[4], objects=["cube"]).annotate(ep)
    assert ann.plan[1] == "Grasp the cube"
    assert _bounds(ann)[0] in (9, 10)


def test_unknown_objects_error(synth):
    ep = synth.make_episode(synth.pick_place_state(with_object=False), task="do the thing")
    with pytest.raises(ProcvlmError, match="objects="):
        GripperAnnotator().annotate(ep)


def test_align_prefers_events_and_stays_increasing(synth):
    plan = ["Move to the puck", "Grasp the puck", "Place the puck onto the goal"]
    times = {"close_onset": [12], "close_end": [10, 18], "speed_min": [5]}
    assert align(plan, times, 60) == [12, 18]
    assert align(plan, {}, 60) == [20, 40]  # no events: even split


def test_config_validation(synth):
    with pytest.raises(ProcvlmError, match="smooth"):
        GripperConfig(smooth=0)
    with pytest.raises(ProcvlmError, match="plan"):
        GripperAnnotator(plan=[])


@pytest.mark.slow
@pytest.mark.sim
def test_metaworld_pick_place_matches_oracle():
    sim = pytest.importorskip("procvlm.sim")
    from procvlm.annotate.metrics import boundary_f1, subtask_boundaries

    ep = sim.rollout("pick-place", 1, None, width=32, height=32, cameras=("corner",))
    ann = GripperAnnotator().annotate(ep)
    assert [s.name for s in ann.subtasks] == ep.plan
    n = len(ep)
    pred, true = subtask_boundaries(ann.subtasks, n), subtask_boundaries(ep.subtasks, n)
    assert boundary_f1(pred, true, n) >= 0.75
