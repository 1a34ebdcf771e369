"""The ``sarm`` scheme reproduces LeRobot 0.4.4's SARM targets exactly: the six episodes of
``sarm_lerobot_examples.json`` (LeRobot's own proportions and per-frame targets), and
hand-worked numbers for each rule (end frame included, the last step's 0.999 clamp, repeated
steps, frames after the last sub-step)."""

import json
from pathlib import Path

import numpy as np
import pytest

from procvlm.data.episode import Subtask
from procvlm.errors import ProcvlmError
from procvlm.labels import compute_labels, sarm_proportions

SPEC = json.loads((Path(__file__).parent / "sarm_lerobot_examples.json").read_text())
A, B, C = "Grasp the puck", "Lift the puck", "Place the puck onto the goal"


def _timeline(ep):
    return [Subtask(n, s, e) for n, s, e in zip(ep["subtask_names"], ep["subtask_start_frames"],
                                                 ep["subtask_end_frames"])]


def _by_task():
    out = {}
    for ep in SPEC["episodes"]:
        out.setdefault(ep["task"], []).append(ep)
    return out


@pytest.mark.parametrize("task", sorted(_by_task()))
def test_proportions_match_lerobot(task):
    eps = _by_task()[task]
    props = sarm_proportions([_timeline(ep) for ep in eps], eps[0]["plan"])
    for ep in eps:
        np.testing.assert_allclose(props, ep["temporal_proportions"], rtol=0, atol=1e-15)


@pytest.mark.parametrize("ep", SPEC["episodes"], ids=lambda e: f"episode{e['episode_index']}")
def test_targets_match_lerobot_frame_by_frame(ep):
    eps = _by_task()[ep["task"]]
    props = sarm_proportions([_timeline(e) for e in eps], ep["plan"])
    out = compute_labels(_timeline(ep), ep["plan"], ep["num_frames"], None, ep["success"],
                         "sarm", stage_proportions=props)
    # the file holds LeRobot's targets rounded to 9 decimals
    np.testing.assert_allclose(out.progress, ep["progress"], rtol=0, atol=5e-10 + 1e-15)
    np.testing.assert_array_equal(out.stage, ep["stage"])


def test_spec_covers_repeats_tails_and_both_outcomes():
    eps = SPEC["episodes"]
    assert len(eps) == 6
    assert any(len(set(e["subtask_names"])) < len(e["subtask_names"]) for e in eps)
    assert any(e["success"] and e["subtask_end_frames"][-1] < e["num_frames"] for e in eps)
    assert {e["success"] for e in eps} == {True, False}


def test_one_episode_by_hand():
    # plan A, B; sub-steps A [0, 2], B [2, 6] (end frames included); 8 frames, success
    # own proportions: A 2/6, B 4/6; breakpoints 0, 1/3, 1
    subs = [Subtask(A, 0, 2), Subtask(B, 2, 6)]
    out = compute_labels(subs, [A, B], 8, None, True, "sarm")
    third = 1 / 3
    last = third + 0.999 * 2 * third  # B at tau = 1 and after the last sub-step: 0.999
    expected = [0, third / 2, third, third + 2 * third / 4, third + 2 * third / 2,
                third + 2 * third * 3 / 4, last, last]
    np.testing.assert_allclose(out.progress, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out.stage, [0, 0, 1, 1, 1, 1, 1, 1])  # floor(stage + tau)
    np.testing.assert_allclose(out.stage_progress, [0, .5, 0, .25, .5, .75, .999, .999])
    assert not out.done.any()


def test_repeated_step_counts_its_last_length_and_restarts():
    # A [0,2), B [2,4), A again [4,10): A's length is its last occurrence's, 6 of T = 10
    subs = [Subtask(A, 0, 2), Subtask(B, 2, 4), Subtask(A, 4, 10)]
    props = sarm_proportions([subs], [A, B])
    np.testing.assert_allclose(props, np.array([0.6, 0.2]) / 0.8)
    out = compute_labels(subs, [A, B], 10, None, False, "sarm")
    # frame 4 ends B (the last plan step at tau = 1: clamped to 0.999), then A restarts at 0
    a = 0.75
    np.testing.assert_allclose(out.progress[4:7], [a + 0.999 * 0.25, a / 6, 2 * a / 6],
                               atol=1e-12)
    np.testing.assert_array_equal(out.stage[3:7], [1, 1, 0, 0])


def test_proportions_average_per_episode_ratios_not_durations():
    # episode 1: A 1, B 3 (ratios .25, .75); episode 2: A 6, B 2 (.75, .25): Eq. 1 -> .5, .5
    # (mean durations would give 3.5 and 2.5, i.e. 7/12 and 5/12)
    e1 = [Subtask(A, 0, 1), Subtask(B, 1, 4)]
    e2 = [Subtask(A, 0, 6), Subtask(B, 6, 8)]
    np.testing.assert_allclose(sarm_proportions([e1, e2], [A, B]), [0.5, 0.5])
    # a step seen in one episode only is averaged over that episode alone: e3 has A .25,
    # B .25, C .5; means A .25, B (.75 + .25) / 2 = .5, C .5; normalised by 1.25
    e3 = [Subtask(A, 0, 2), Subtask(B, 2, 4), Subtask(C, 4, 8)]
    np.testing.assert_allclose(sarm_proportions([e1, e3], [A, B, C]), [0.2, 0.4, 0.4])


def test_done_segments_and_gaps():
    # "done" is not a SARM sub-step; the gap [3, 5) holds A finished
    subs = [Subtask(A, 0, 2), Subtask(B, 5, 7), Subtask("done", 7, 9)]
    out = compute_labels(subs, [A, B], 9, None, True, "sarm")
    pa = 2 / 4
    np.testing.assert_allclose(out.progress[:6], [0, pa / 2, pa, pa, pa, pa], atol=1e-12)
    np.testing.assert_allclose(out.progress[8], pa + 0.999 * 0.5, atol=1e-12)


def test_bad_proportions_rejected():
    with pytest.raises(ProcvlmError, match="stage_proportions"):
        compute_labels([Subtask(A, 0, 3)], [A, B], 3, None, True, "sarm",
                       stage_proportions=[1.0])
    with pytest.raises(ProcvlmError, match="summing"):
        compute_labels([Subtask(A, 0, 3)], [A, B], 3, None, True, "sarm",
                       stage_proportions=[0.2, 0.2])
