"""Injected failure modes: each one leaves its mark (failed task, stall, undone sub-step)."""

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.sim import FAILURE_MODES, rollout
from procvlm.sim.failures import Injector, check_failure

SIZE = 32


def run(task, mode, seed=0, max_steps=150):
    return rollout(task, seed, mode, width=SIZE, height=SIZE, cameras=("corner",),
                   max_steps=max_steps)


def test_check_failure():
    assert check_failure(None) is None
    assert check_failure("drop") == "drop"
    with pytest.raises(ProcvlmError, match="choose from noise, drop, stall, regression, truncate"):
        check_failure("wobble")


def test_injector_parameters_come_from_the_seed():
    a = Injector("stall", np.random.default_rng(3), 4)
    b = Injector("stall", np.random.default_rng(3), 4)
    assert (a.delay, a.duration, a.after_step) == (b.delay, b.duration, b.after_step)
    assert 15 <= a.duration <= 30 and 0 <= a.after_step <= 2


TASKS_UNDER_TEST = ["pick-place", "assembly"]


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("task", TASKS_UNDER_TEST)
@pytest.mark.parametrize("mode", ["noise", "drop", "truncate"])
def test_failing_modes_fail_the_task(task, mode):
    ep = run(task, mode, max_steps=120)
    assert ep.success is False
    assert ep.meta["failure"] == mode
    assert ep.meta["events"][0]["type"] == mode
    assert not all(s.completed for s in ep.subtasks)
    assert ep.subtasks[-1].end == len(ep), "no 'done' tail on a failed episode"
    if mode == "drop":
        drop = ep.meta["events"][0]["frame"]
        assert (ep.action[drop:, 3] == -1).all(), "the gripper stays open"
        assert any(e["type"] == "regression" for e in ep.meta["events"])
    if mode == "truncate":
        assert ep.meta["events"][0]["frame"] == len(ep) - 1


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("task", TASKS_UNDER_TEST)
def test_stall_holds_the_arm_still(task):
    ep = run(task, "stall")
    stall = ep.meta["events"][0]
    assert stall["type"] == "stall" and 5 <= stall["end"] - stall["start"] <= 30
    assert (ep.action[stall["start"]:stall["end"], :3] == 0).all()
    hand = ep.state[stall["start"]:stall["end"], :3]
    assert np.abs(np.diff(hand, axis=0)).max() < 1.5e-3, "the hand does not move"
    assert ep.success is True, "the expert continues after the stall"


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("task", TASKS_UNDER_TEST)
def test_regression_undoes_a_completed_step_then_recovers(task):
    ep = run(task, "regression")
    kinds = [e["type"] for e in ep.meta["events"]]
    assert kinds[:2] == ["release", "regression"]
    undone = ep.meta["events"][1]["step"]
    names = [s.name for s in ep.subtasks]
    first = names.index(undone)
    assert undone in names[first + 1:], "the undone step comes back later in the timeline"
    assert ep.subtasks[first].completed
    assert ep.success is True and ep.subtasks[-1].completed


def test_all_modes_listed():
    assert set(FAILURE_MODES) == {"noise", "drop", "stall", "regression", "truncate"}
