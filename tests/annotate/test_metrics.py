"""Boundary F1 and mean absolute boundary error on hand-made boundary lists."""

import pytest

from procvlm.annotate.metrics import boundary_f1, boundary_mae, subtask_boundaries
from procvlm.data.episode import Subtask
from procvlm.errors import ProcvlmError


def test_f1_exact_and_empty():
    assert boundary_f1([10, 50], [10, 50], 100) == 1.0
    assert boundary_f1([], [], 100) == 1.0
    assert boundary_f1([], [10], 100) == 0.0
    assert boundary_f1([10], [], 100) == 0.0


def test_f1_tolerance_window():
    # T=100, 5% -> 5 frames: 15 vs 10 is a hit, 16 vs 10 is not
    assert boundary_f1([15], [10], 100) == 1.0
    assert boundary_f1([16], [10], 100) == 0.0
    assert boundary_f1([16], [10], 100, tolerance=0.1) == 1.0


def test_f1_partial_one_to_one():
    # pred 3 boundaries, 1 hit of 2 true -> P=1/3, R=1/2, F1=0.4
    assert boundary_f1([10, 12, 80], [11, 50], 100) == pytest.approx(0.4)
    # two predictions near one true boundary only count once: P=1/2, R=1 -> 2/3
    assert boundary_f1([9, 11], [10], 100) == pytest.approx(2 / 3)


def test_mae_paired_and_nearest():
    assert boundary_mae([12, 48], [10, 50], 100) == pytest.approx(2.0)
    # unequal counts: each true boundary to the nearest prediction: |10-12|, |50-60| -> 6
    assert boundary_mae([12, 60, 90], [10, 50], 100) == pytest.approx(6.0)
    # no prediction: distance to the nearest episode end: 10 and 40 -> 25
    assert boundary_mae([], [10, 60], 100) == pytest.approx(25.0)
    assert boundary_mae([5], [], 100) == 0.0


def test_bad_input():
    with pytest.raises(ProcvlmError, match="outside"):
        boundary_f1([120], [10], 100)
    with pytest.raises(ProcvlmError, match="num_frames"):
        boundary_mae([1], [1], 0)
    with pytest.raises(ProcvlmError, match="tolerance"):
        boundary_f1([1], [1], 10, tolerance=2)


def test_subtask_boundaries():
    subs = [Subtask("a", 0, 10), Subtask("b", 10, 25), Subtask("c", 30, 40)]
    assert subtask_boundaries(subs, 40) == [10, 25, 30]
