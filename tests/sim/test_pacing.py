"""Human-like pacing: drawn from the seed, recorded as events, episodes still succeed, truth
progress flat over hesitations; scripted pacing is the expert's own action."""

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.sim import rollout
from procvlm.sim.pacing import (HESITATION_FRAMES, PACE_RANGE, PACINGS, Pacer, PacingEvent,
                                check_pacing)


def test_check_pacing_and_events():
    assert PACINGS == ("human", "scripted") and check_pacing("human") == "human"
    with pytest.raises(ProcvlmError, match="choose from human, scripted"):
        check_pacing("robotic")
    assert PacingEvent("regrasp", 3, 9).as_dict() == {"type": "regrasp", "start": 3, "end": 9}
    with pytest.raises(ValueError, match="start"):
        PacingEvent("hesitation", 5, 5)
    with pytest.raises(ValueError, match="hesitation, overshoot or regrasp"):
        PacingEvent("stall", 1, 5)


def test_pacer_parameters_come_from_the_seed():
    a = Pacer("human", np.random.default_rng(4), 4)
    b = Pacer("human", np.random.default_rng(4), 4)
    c = Pacer("human", np.random.default_rng(5), 4)
    np.testing.assert_array_equal(a.pace, b.pace)
    assert a.hesitations == b.hesitations
    assert (a.overshoot_frames, a.release_frames) == (b.overshoot_frames, b.release_frames)
    assert not np.array_equal(a.pace, c.pace)
    assert a.pace.shape == (5,) and PACE_RANGE[0] <= a.pace.min() <= a.pace.max() <= 1.0
    assert 1 <= len(a.hesitations) <= 2
    assert all(HESITATION_FRAMES[0] <= h.duration < HESITATION_FRAMES[1] for h in a.hesitations)


def test_pace_varies_several_fold_across_episodes():
    paces = np.concatenate([Pacer("human", np.random.default_rng(s), 4).pace for s in range(50)])
    assert paces.max() / paces.min() > 3.0


SIZE = 32


def run(seed, task="pick-place", failure=None, pacing="human", max_steps=400):
    return rollout(task, seed, failure, width=SIZE, height=SIZE, cameras=("corner",),
                   max_steps=max_steps, pacing=pacing)


def events(ep, kind):
    return [e for e in ep.meta["events"] if e["type"] == kind]


@pytest.mark.sim
def test_scripted_pacing_is_the_default_rollout():
    a = rollout("pick-place", 2, width=SIZE, height=SIZE, cameras=("corner",))
    b = run(2, pacing="scripted")
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.state, b.state)
    assert a.meta["pacing"] == "scripted" and a.meta["events"] == []


@pytest.mark.sim
def test_human_pacing_is_deterministic_recorded_and_succeeds():
    a, b = run(2), run(2)
    scripted = run(2, pacing="scripted")
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.true_progress, b.true_progress)
    assert a.meta["events"] == b.meta["events"] and a.meta["pacing"] == "human"
    assert a.success and a.true_progress[-1] == 1.0
    assert len(a) > len(scripted), "slower than the scripted expert"
    assert events(a, "hesitation"), "every human episode hesitates"
    for e in a.meta["events"]:
        if e["type"] in ("hesitation", "overshoot", "regrasp"):
            assert 0 <= e["start"] < e["end"] <= len(a)


@pytest.mark.slow
@pytest.mark.sim
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hesitations_hold_the_arm_and_truth_still(seed):
    ep = run(seed)
    assert ep.success
    for e in events(ep, "hesitation"):
        assert (ep.action[e["start"]:e["end"], :3] == 0).all()
        seg = ep.true_progress[e["start"]:e["end"]]
        assert seg.max() - seg.min() <= 0.01


def first_with(kind, seeds=range(12)):
    for seed in seeds:
        ep = run(seed)
        if events(ep, kind):
            return ep
    raise AssertionError(f"no {kind} event in seeds {list(seeds)}")


@pytest.mark.slow
@pytest.mark.sim
def test_overshoot_goes_past_the_object_and_corrects():
    ep = first_with("overshoot")
    e = events(ep, "overshoot")[0]
    gap = np.linalg.norm(ep.state[:, 0:2] - ep.state[:, 4:6], axis=1)
    assert gap[e["start"]:e["end"]].max() > gap[e["start"]] + 0.01, "hand moves past the object"
    assert ep.true_progress[e["start"]:e["end"]].min() < ep.true_progress[e["start"]]
    assert ep.success and ep.true_progress[-1] == 1.0


@pytest.mark.slow
@pytest.mark.sim
def test_regrasp_releases_then_grasps_again():
    ep = first_with("regrasp")
    e = events(ep, "regrasp")[0]
    assert (ep.action[e["start"]:e["start"] + 3, 3] == -1).all(), "the gripper opens"
    tp = ep.true_progress
    assert tp[e["start"]:e["end"]].min() < tp[e["start"]] - 0.05, "the grasp is undone"
    assert tp[e["end"]] >= tp[e["start"]] - 0.05, "and done again"
    assert ep.success and tp[-1] == 1.0


@pytest.mark.slow
@pytest.mark.sim
def test_pacing_composes_with_failures():
    stall = run(1, failure="stall")
    assert stall.meta["pacing"] == "human" and events(stall, "stall") and stall.success
    s = events(stall, "stall")[0]
    seg = stall.true_progress[s["start"]:s["end"]]
    assert seg.max() - seg.min() <= 0.01
    drop = run(1, failure="drop")
    assert drop.success is False and drop.true_progress.max() < 1.0
