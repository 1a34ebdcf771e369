"""Signal helpers of the gripper annotator: layouts, runs, gripper motions."""

import numpy as np
import pytest

from procvlm.annotate import _proprio as pp
from procvlm.errors import ProcvlmError


def test_detect_layouts():
    mw = pp.detect_layout(None, 39)
    assert mw.hand == (0, 1, 2) and mw.gripper == (3,) and mw.goal == (36, 37, 38)
    names = ["robot0_eef_pos_0", "robot0_eef_pos_1", "robot0_eef_pos_2",
             "robot0_gripper_qpos_0", "robot0_gripper_qpos_1", "object_0", "object_1", "object_2"]
    rm = pp.detect_layout(names, len(names))
    assert rm.hand == (0, 1, 2) and rm.gripper == (3, 4) and rm.objects == ((5, 6, 7),)
    assert pp.detect_layout(["a", "b"], 2) is None
    with pytest.raises(ProcvlmError, match="gripper_dims"):
        pp.StateLayout(gripper=(1, 2, 3))


def test_runs_merge_gaps():
    mask = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1, 1], dtype=bool)
    assert pp.runs(mask) == [(1, 3), (4, 5), (8, 10)]
    assert pp.runs(mask, max_gap=1) == [(1, 5), (8, 10)]
    assert pp.runs(mask, min_len=2) == [(1, 3), (8, 10)]


def test_gripper_motions_close_then_open():
    g = np.r_[np.ones(10), np.linspace(1, 0.4, 6)[1:], np.full(10, 0.4), np.linspace(0.4, 1, 4)[1:],
              np.ones(5)]
    motions = pp.gripper_motions(g, min_change=0.3)
    assert [(s, a) for s, a, _ in motions] == [(-1, 10), (1, 25)]
