"""benchmarks/reasoning_errors.py: frames grouped by the reasoning model's step error."""

import math

import numpy as np
import pytest


def test_error_groups_split_frames_and_squared_errors(load_benchmark):
    errors = load_benchmark("reasoning_errors")
    true_stage = [np.array([0, 0, 1, 1]), np.array([0, 2])]
    pred_stage = [np.array([0, 1, 1, 3]), np.array([0, 2])]  # offsets 0 1 0 2 | 0 0
    truth = [np.array([0.0, 0.1, 0.5, 0.6]), np.array([0.0, 1.0])]
    reason = [np.array([0.0, 0.2, 0.5, 1.0]), np.array([0.1, 1.0])]
    direct = [np.array([0.1, 0.1, 0.4, 0.7]), np.array([0.0, 0.8])]
    rows = {r["group"]: r for r in errors.error_groups(true_stage, pred_stage, truth, reason,
                                                        direct)}
    right, one, far = rows["right step"], rows["1 step off"], rows[">= 2 steps off"]
    assert (right["frames"], one["frames"], far["frames"]) == (4, 1, 1)
    assert far["share"] == pytest.approx(1 / 6)
    # reason: right-step errors 0, 0, 0.01, 0 ; one off 0.01 ; far 0.16
    assert right["mse_reason"] == pytest.approx(0.01 / 4)
    assert far["mse_reason"] == pytest.approx(0.16)
    assert far["sse_share_reason"] == pytest.approx(0.16 / 0.18)
    # direct on the same frames: right 0.01, 0.01, 0, 0.04 ; one off 0 ; far 0.01
    assert right["mse_direct"] == pytest.approx(0.06 / 4)
    assert far["mse_direct"] == pytest.approx(0.01)
    assert sum(r["sse_share_direct"] for r in rows.values()) == pytest.approx(1.0)


def test_error_groups_reports_an_empty_group_as_nan(load_benchmark):
    errors = load_benchmark("reasoning_errors")
    rows = errors.error_groups([np.array([0, 1])], [np.array([0, 1])],
                               [np.array([0.0, 0.5])], [np.array([0.0, 0.5])],
                               [np.array([0.1, 0.5])])
    assert rows[2]["frames"] == 0 and math.isnan(rows[2]["mse_reason"])
    assert rows[0]["sse_share_reason"] == 0.0  # a perfect model has no error to share


def test_error_groups_rejects_mismatched_lengths(load_benchmark):
    errors = load_benchmark("reasoning_errors")
    with pytest.raises(ValueError, match="one stage, truth and prediction per frame"):
        errors.error_groups([np.array([0, 1])], [np.array([0])], [np.array([0.0, 0.5])],
                            [np.array([0.0, 0.5])], [np.array([0.1, 0.5])])
