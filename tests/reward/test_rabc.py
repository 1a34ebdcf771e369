"""RA-BC weights (SARM eq. 8-9, as LeRobot's RABCWeights computes them)."""

import numpy as np
import pyarrow as pa
import pytest

from procvlm.errors import ProcvlmError
from procvlm.reward.rabc import (normalize_batch, progress_deltas, rabc_weights,
                                 rabc_weights_from_scores)


def test_deltas_stay_inside_episodes():
    p = [0.0, 0.1, 0.4, 0.0, 0.5]
    ep = [0, 0, 0, 1, 1]
    np.testing.assert_allclose(progress_deltas(p, ep, chunk_size=2), [0.4, 0.3, 0.0, 0.5, 0.0])
    with pytest.raises(ProcvlmError, match="chunk_size=0"):
        progress_deltas(p, ep, 0)


def test_weights_by_hand():
    d = np.array([0.5, 0.005, -0.1, np.nan, 0.0])
    w = rabc_weights(d, kappa=0.01)
    valid = d[~np.isnan(d)]
    mu, sigma = max(valid.mean(), 0), valid.std()
    soft = lambda x: np.clip((x - (mu - 2 * sigma)) / (4 * sigma + 1e-6), 0, 1)  # noqa: E731
    np.testing.assert_allclose(w, [1.0, soft(0.005), 0.0, 1.0, soft(0.0)], rtol=1e-5)


def test_normalize_batch_sums_to_batch_size():
    assert normalize_batch(np.array([1.0, 0.0, 0.5, 0.5])).sum() == pytest.approx(4, rel=1e-5)


def test_weights_from_scores_keep_row_order():
    t = pa.table({"index": [3, 0, 1, 2], "episode_index": [1, 0, 0, 1],
                  "frame_index": [1, 0, 1, 0], "progress_sparse": [0.2, 0.0, 0.9, 0.6]})
    w = rabc_weights_from_scores(t, chunk_size=1, kappa=0.01)
    # episode 0: 0.0 -> 0.9 (gain), episode 1: 0.6 -> 0.2 (regression)
    assert w[1] == 1.0 and w[3] == 0.0
    with pytest.raises(ProcvlmError, match="no 'x' column"):
        rabc_weights_from_scores(t, column="x")


def test_episode_weights_pool_statistics_and_zero_out_regressions():
    from procvlm.reward.rabc import episode_weights

    rising = np.linspace(0, 1, 20)
    falling = np.r_[np.linspace(0, 0.6, 10), np.full(10, 0.1)]  # object dropped at frame 10
    w = episode_weights({3: rising, 7: falling}, chunk_size=4)
    assert set(w) == {3, 7} and len(w[3]) == 20 and len(w[7]) == 20
    pooled = rabc_weights(progress_deltas(np.r_[rising, falling], np.r_[[0] * 20, [1] * 20], 4))
    np.testing.assert_allclose(np.r_[w[3], w[7]], pooled)
    assert w[7][6:10].max() == 0.0  # frames whose next chunk holds the drop
    assert w[3][:15].min() == 1.0


def test_progress_from_scores_and_bad_sources(tmp_path):
    from procvlm.reward.rabc import load_progress, progress_from_scores

    table = pa.table({"index": [2, 0, 1, 3], "episode_index": [0, 0, 0, 1],
                      "frame_index": [2, 0, 1, 0], "progress_sparse": [0.9, 0.1, 0.5, 0.3]})
    curves = progress_from_scores(table)
    np.testing.assert_allclose(curves[0], [0.1, 0.5, 0.9])
    np.testing.assert_allclose(curves[1], [0.3])
    with pytest.raises(ProcvlmError, match="progress source 'nope'"):
        load_progress(tmp_path, "nope")


def test_return_filter_keeps_the_top_fraction_by_final_progress():
    from procvlm.reward.rabc import return_filter

    curves = {0: [0.0, 1.0], 1: [0.0, 0.9, 0.3], 2: [0.2, 0.6], 3: [0.0, 0.95], 4: [0.1, 0.2],
              5: [0.0, 0.5], 6: [0.0, 0.4], 7: [0.0, 0.1]}
    # returns (progress reached at the end): 1.0, 0.3, 0.6, 0.95, 0.2, 0.5, 0.4, 0.1
    assert {k for k, v in return_filter(curves, 0.25).items() if v} == {0, 3}
    assert {k for k, v in return_filter(curves, 0.1).items() if v} == {0}  # at least one
    assert sum(return_filter(curves, 1.0).values()) == 8
    with pytest.raises(ProcvlmError, match="keep=0"):
        return_filter(curves, 0.0)


def test_return_filter_keeps_ties_so_time_labels_filter_nothing():
    from procvlm.reward.rabc import return_filter

    time = {k: np.linspace(0, 1, n) for k, n in enumerate([5, 9, 30, 12])}
    assert all(return_filter(time, 0.25).values())
    tied = {0: [0.0, 0.8], 1: [0.0, 0.8], 2: [0.0, 0.3], 3: [0.0, 0.2]}
    assert return_filter(tied, 0.25) == {0: True, 1: True, 2: False, 3: False}


def test_filtered_weights_zero_episodes_that_never_finish():
    from procvlm.reward.rabc import episode_weights, filtered_weights

    success = np.linspace(0, 1, 20)
    stalled = np.r_[np.linspace(0, 0.5, 10), np.full(10, 0.5)]  # climbs like a success, stops
    dropped = np.r_[np.linspace(0, 0.8, 15), np.full(5, 0.2)]
    curves = {0: success, 1: stalled, 2: dropped, 3: success * 0.98}
    w = filtered_weights(curves, keep=0.5, chunk_size=4)
    rabc = episode_weights(curves, chunk_size=4)
    np.testing.assert_array_equal(w[0], rabc[0])
    np.testing.assert_array_equal(w[3], rabc[3])
    assert w[1].max() == 0.0 and w[2].max() == 0.0
    assert rabc[1][:5].min() == 1.0  # the per-frame rule alone keeps the stalled climb


def test_success_filter_keeps_what_the_model_calls_done_not_a_fixed_share():
    from procvlm.reward.rabc import success_filter

    # mean P(done) over the last 3 frames: 0.9, 0.4, 0.6, 0.0 (a late glance away: 0.9, 0.2)
    done = {0: [0.0, 0.9, 0.9, 0.9], 1: [0.9, 0.9, 0.3, 0.0], 2: [0.0, 0.9, 0.9, 0.0],
            3: [0.0, 0.0], 4: [0.0, 1.0, 1.0, 0.7]}
    assert success_filter(done) == {0: True, 1: False, 2: True, 3: False, 4: True}
    assert success_filter(done, threshold=0.65) == {0: True, 1: False, 2: False, 3: False,
                                                    4: True}
    assert success_filter(done, last=1) == {0: True, 1: False, 2: False, 3: False, 4: True}
    with pytest.raises(ProcvlmError, match="threshold=1.0"):
        success_filter(done, threshold=1.0)


def test_success_filtered_weights_and_done_from_scores():
    from procvlm.reward.rabc import (done_from_scores, episode_weights, progress_from_scores,
                                     success_filtered_weights)

    n = 12
    table = pa.table({"episode_index": np.repeat([0, 1, 2], n), "frame_index": np.tile(
        np.arange(n), 3), "progress": np.r_[np.linspace(0, 1, n), np.linspace(0, 0.9, n),
                                            np.linspace(0, 0.6, n)],
        "done": np.r_[np.linspace(0, 1, n), np.zeros(n), np.linspace(0, 0.8, n)]})
    progress, done = progress_from_scores(table), done_from_scores(table)
    w = success_filtered_weights(progress, done, chunk_size=3)
    rabc = episode_weights(progress, chunk_size=3)
    np.testing.assert_array_equal(w[0], rabc[0])
    np.testing.assert_array_equal(w[2], rabc[2])  # ends lower but the model says done
    assert w[1].max() == 0.0 and rabc[1].max() > 0
    with pytest.raises(ProcvlmError, match="same score table"):
        success_filtered_weights(progress, {0: done[0]})
    with pytest.raises(ProcvlmError, match="no P\\(done\\)"):
        done_from_scores(table.drop_columns(["done"]))
    with pytest.raises(ProcvlmError, match="no P\\(done\\)"):
        done_from_scores(table.set_column(3, "done", pa.nulls(3 * n, pa.float64())))
