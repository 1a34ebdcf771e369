"""The sub-step oracle on hand-made simulator states (no simulator needed)."""

import numpy as np
import pytest

from procvlm.sim.env import SimFacts
from procvlm.sim.oracle import LEAVE_REACH, LOST_FRAMES, SubstepOracle
from procvlm.sim.tasks import TASKS

SPEC = TASKS["pick-place"]
OBJ = np.array([0.0, 0.6, 0.02])


def facts(tcp_dist=0.2, grasped=False, lift=0.0, success=False):
    obj = OBJ + np.array([0.0, 0.0, lift])
    return SimFacts(tcp=obj + np.array([0.0, 0.0, tcp_dist]), obj=obj, gripper=1.0,
                    grasped=grasped, success=success)


def run(seq):
    oracle = SubstepOracle(SPEC, OBJ.copy())
    for t, f in enumerate(seq):
        oracle.update(t, f)
    return oracle


def test_expert_like_sequence_completes_every_step_in_order():
    seq = ([facts()] * 5 + [facts(0.01)] * 3 + [facts(0.0, True)] * 2
           + [facts(0.0, True, 0.05)] * 4 + [facts(0.0, True, 0.1, True)] * 3)
    oracle = run(seq)
    subs = oracle.subtasks()
    assert [s.name for s in subs] == SPEC.plan
    assert all(s.completed for s in subs)
    assert [(s.start, s.end) for s in subs] == [(0, 6), (6, 9), (9, 11), (11, 15)]
    assert oracle.done and oracle.labels[15:] == [4, 4]
    assert oracle.regressions == []


def test_one_step_per_frame_even_when_later_goals_already_hold():
    oracle = run([facts(0.0, True)] * 2 + [facts(0.0, True, 0.1, True)] * 4)
    assert [(s.start, s.end) for s in oracle.subtasks()] == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_dropped_object_is_a_regression_to_grasp_or_move():
    lifted = [facts(0.01)] + [facts(0.0, True)] + [facts(0.0, True, 0.05)] * 3
    dropped_near = [facts(0.0, False, 0.0)] * (LOST_FRAMES + 2)
    oracle = run(lifted + dropped_near)
    assert oracle.regressions == [{"type": "regression", "frame": 4 + LOST_FRAMES,
                                   "step": "Grasp the puck"}]
    subs = oracle.subtasks()
    assert [s.name.split()[0] for s in subs] == ["Move", "Grasp", "Lift", "Place", "Grasp"]
    assert [s.completed for s in subs] == [True, True, True, False, False]
    far = run(lifted + [facts(0.2, False, 0.0)] * (LOST_FRAMES + 1))
    assert far.regressions[0]["step"] == "Move to the puck"


def test_leaving_a_reached_object_before_the_grasp_undoes_the_move():
    far = LEAVE_REACH * SPEC.reach + 0.01
    seq = [facts()] * 3 + [facts(0.01)] * 2 + [facts(far)] * (LOST_FRAMES + 2) + [facts(0.01)]
    oracle = run(seq)
    # reached on frame 3; away from frame 5; the third frame away (7) is the last of the grasp
    assert oracle.regressions == [{"type": "regression", "frame": 4 + LOST_FRAMES,
                                   "step": "Move to the puck"}]
    subs = oracle.subtasks()
    assert [(s.name.split()[0], s.start, s.end, s.completed) for s in subs] == [
        ("Move", 0, 4, True), ("Grasp", 4, 8, False), ("Move", 8, 11, True)]


def test_hovering_within_the_leave_margin_or_a_short_excursion_keeps_the_move():
    edge = [facts(0.01)] + [facts(0.9 * LEAVE_REACH * SPEC.reach)] * 10
    assert run(edge).regressions == []
    far = LEAVE_REACH * SPEC.reach + 0.01
    short = [facts(0.01)] + [facts(far)] * (LOST_FRAMES - 1) + [facts(0.01)]
    assert run(short).regressions == []
    # a touch task's second step is its final one: leaving the object is not a regression there
    touch = SubstepOracle(TASKS["button-press"], OBJ.copy())
    for t, f in enumerate([facts(0.01)] + [facts(0.2)] * 10):
        touch.update(t, f)
    assert touch.regressions == []


def test_short_contact_loss_or_lifted_object_is_no_regression():
    lifted = [facts(0.01), facts(0.0, True), facts(0.0, True, 0.05)]
    flicker = [facts(0.0, False, 0.0)] * (LOST_FRAMES - 1) + [facts(0.0, True, 0.0)]
    assert run(lifted + flicker).regressions == []
    assert run(lifted + [facts(0.0, False, 0.05)] * 6).regressions == []


def test_success_while_held_completes_a_lift_below_lift_height():
    """A puck placed on a low goal: MetaWorld's success comes on while the held puck is only
    0.005 m up (below ``lift``); lift and place then complete, one per frame."""
    low = 0.5 * SPEC.lift
    seq = ([facts(0.01), facts(0.0, True)] + [facts(0.0, True, low)] * 3
           + [facts(0.0, True, low, True)] * 4)
    oracle = run(seq)
    subs = oracle.subtasks()
    assert [s.name for s in subs] == SPEC.plan and all(s.completed for s in subs)
    assert [(s.start, s.end) for s in subs] == [(0, 1), (1, 2), (2, 6), (6, 7)]
    assert oracle.done and oracle.labels[7:] == [4, 4]
    assert run(seq[:5] + [facts(0.0, True, low)] * 4).pointer == 2, "no success: still lifting"


def test_success_counts_for_lift_only_within_lost_frames_of_the_last_contact():
    grasped = [facts(0.01), facts(0.0, True)]
    just_let_go = [facts(0.0, False, 0.0)] * (LOST_FRAMES - 2) + [facts(0.0, False, 0.0, True)]
    assert run(grasped + just_let_go + [facts(0.0, False, 0.0, True)]).done
    # Let go LOST_FRAMES frames before the flag: not held, and (low) a regression to grasp.
    let_go = [facts(0.0, False, 0.0)] * (LOST_FRAMES - 1) + [facts(0.0, False, 0.0, True)] * 3
    oracle = run(grasped + let_go)
    assert not oracle.done and oracle.pointer == 1 and len(oracle.regressions) == 1


def test_success_flag_without_a_hold_completes_no_step():
    """A puck pushed through the goal region: the flag comes on with no grasp, or with the
    object in the air but out of the pads for LOST_FRAMES frames (no regression up there)."""
    pushed = run([facts(0.2)] * 2 + [facts(0.2, success=True)] * 3
                 + [facts(0.01, success=True)] * 3)
    assert pushed.pointer == 1 and pushed.max_completed == 0
    airborne = ([facts(0.01), facts(0.0, True)] + [facts(0.0, False, 0.05)] * LOST_FRAMES
                + [facts(0.0, False, 0.05, True)] * 3)
    oracle = run(airborne)
    assert oracle.pointer == 2 and oracle.regressions == [] and not oracle.done


def test_frames_must_come_in_order():
    oracle = SubstepOracle(SPEC, OBJ.copy())
    with pytest.raises(ValueError, match="expected 0"):
        oracle.update(1, facts())
