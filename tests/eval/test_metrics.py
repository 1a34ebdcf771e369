"""Every metric on hand-made sequences whose answers are worked out in the comments."""

import math

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.eval import metrics as m


def test_rankdata_average_ties():
    np.testing.assert_allclose(m.rankdata([3, 1, 4, 1, 5]), [3, 1.5, 4, 1.5, 5])
    np.testing.assert_allclose(m.rankdata([2, 2, 2]), [2, 2, 2])


def test_rankdata_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = np.random.default_rng(0).integers(0, 5, size=40)
    np.testing.assert_allclose(m.rankdata(x), stats.rankdata(x))


def test_voc_hand_values():
    assert m.value_order_correlation([0.0, 0.1, 0.5, 1.0]) == pytest.approx(1.0)
    assert m.value_order_correlation([1.0, 0.5, 0.2]) == pytest.approx(-1.0)
    # ranks [1.5, 1.5, 3.5, 3.5] vs [1, 2, 3, 4]: 4 / sqrt(4 * 5)
    assert m.value_order_correlation([0, 0, 1, 1]) == pytest.approx(4 / math.sqrt(20))
    assert m.value_order_correlation([0.3, 0.3, 0.3]) == 0.0
    assert m.voc([[0, 0.1, 0.5, 1], [0, 0, 1, 1]]) == pytest.approx((1 + 4 / math.sqrt(20)) / 2)


def test_spearman_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 4, 30), rng.normal(size=30)
    assert m.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)


def test_kendall_tau_a_hand_values():
    # 6 pairs: 4 concordant, 2 tied -> 4/6 (tau-a does not drop tied pairs from the denominator)
    assert m.kendall_tau_a([0, 0, 1, 1]) == pytest.approx(4 / 6)
    # [1, 3, 2]: (0,1) +, (0,2) +, (1,2) - -> 1/3
    assert m.kendall_tau_a([1, 3, 2]) == pytest.approx(1 / 3)
    assert m.kendall_tau_a([3, 2, 1], [1, 2, 3]) == pytest.approx(-1.0)


def test_ccc_hand_values():
    ref = np.array([0.0, 0.5, 1.0])
    assert m.ccc(ref, ref) == pytest.approx(1.0)
    # var 1/6 each, cov 1/6, mean shift 0.1: (1/3) / (1/3 + 0.01)
    assert m.ccc(ref + 0.1, ref) == pytest.approx((1 / 3) / (1 / 3 + 0.01))
    assert m.ccc([0.0, 0.0, 0.0], ref) == 0.0
    assert m.ccc([0.4, 0.4], [0.4, 0.4]) == 1.0


def test_epr_bins():
    # bins 0, 0, 25, 49 -> 3 distinct of 50
    assert m.epr([0.0, 0.01, 0.5, 1.0]) == pytest.approx(3 / 50)
    assert m.epr(np.linspace(0, 1, 1000)) == 1.0
    assert m.epr([-0.2, 1.7], bins=10) == pytest.approx(2 / 10)
    with pytest.raises(ProcvlmError, match="bins"):
        m.epr([0.1], bins=0)


def test_mcc_at_95():
    # predicted [T, T, F, T] vs true [T, T, F, F]: tp 2, fn 0, fp 1, tn 1 -> 2 / sqrt(12)
    assert m.mcc_at([0.99, 0.96, 0.5, 0.97], [1, 1, 0, 0]) == pytest.approx(2 / math.sqrt(12))
    assert m.mcc_at([1.0, 0.2], [True, False]) == pytest.approx(1.0)
    assert m.mcc_at([1.0, 1.0], [True, False]) == 0.0  # one predicted class: defined as 0
    with pytest.raises(ProcvlmError, match="success flags"):
        m.mcc_at([1.0], [True, False])


def test_auroc_ties_half():
    # pairs: .9>.8, .9>.3, .8=.8 (1/2), .8>.3 -> 3.5 / 4
    assert m.auroc([0.9, 0.8, 0.8, 0.3], [1, 1, 0, 0]) == pytest.approx(0.875)
    assert m.auroc([0.1, 0.9], [True, False]) == 0.0
    with pytest.raises(ProcvlmError, match="both classes"):
        m.auroc([0.5, 0.6], [True, True])


def test_stall_drift():
    pred = [0.0, 0.2, 0.25, 0.3, 0.3, 0.5]
    assert m.stall_drift(pred, [(1, 4)]) == pytest.approx(0.1)
    assert m.stall_drift(pred, [(1, 4), (4, 6)]) == pytest.approx(0.15)
    with pytest.raises(ProcvlmError, match="stall range"):
        m.stall_drift(pred, [(4, 9)])
    with pytest.raises(ProcvlmError, match="no stall range"):
        m.stall_drift(pred, [])


def test_regression_recall():
    pred = [0.0, 0.2, 0.4, 0.4, 0.1, 0.2, 0.3]
    # event 4, window [3, 5] = [.4, .1, .2]: drop .3 -> caught
    assert m.regression_hits(pred, [4], tolerance=1).tolist() == [True]
    # event 1 with no tolerance sees a single frame: nothing to drop from
    assert m.regression_hits(pred, [1], tolerance=0).tolist() == [False]
    assert m.regression_recall(pred, [4, 1], tolerance=1) == pytest.approx(0.5)
    # a drop smaller than the threshold is missed
    assert m.regression_recall(pred, [4], threshold=0.5, tolerance=1) == 0.0
    assert m.regression_recall(np.linspace(0, 1, 20), [10]) == 0.0
    with pytest.raises(ProcvlmError, match="outside"):
        m.regression_hits(pred, [7])


def test_boundary_metrics_are_reexported():
    from procvlm.annotate import metrics as annotate_metrics

    assert m.boundary_f1 is annotate_metrics.boundary_f1
    assert m.boundary_mae is annotate_metrics.boundary_mae


def test_bad_inputs():
    with pytest.raises(ProcvlmError, match="differ in length"):
        m.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ProcvlmError, match="NaN"):
        m.value_order_correlation([0.1, float("nan")])
    with pytest.raises(ProcvlmError, match="at least 2"):
        m.value_order_correlation([0.5])
    with pytest.raises(ProcvlmError, match="no episode"):
        m.voc([])


def test_summarize_hand_corpus():
    up = np.linspace(0, 1, 11)  # success, perfect order
    stall = np.array([0, .1, .2, .3, .3, .35, .4, .5, .5, .5, .5])  # failure with a stall
    regress = np.array([0, .2, .4, .6, .3, .3, .4, .5, .6, .7, .8])  # failure, drop at 4
    results = [
        m.EpisodeResult(0, up, True, reference=up, pred_boundaries=[5], true_boundaries=[5]),
        {"episode": 1, "progress": stall, "success": False, "stalls": [(3, 7)]},
        m.EpisodeResult(2, regress, False, regressions=[4]),
    ]
    s = m.summarize(results)
    assert s["voc"] == pytest.approx(1.0) and s["kendall_tau_a"] == pytest.approx(1.0)
    assert s["ccc"] == pytest.approx(1.0)
    # finals 1.0 (success), .5, .8 (failures): AUROC 1, MCC@95 1
    assert s["auroc"] == pytest.approx(1.0) and s["mcc@95"] == pytest.approx(1.0)
    assert s["stall_drift"] == pytest.approx(0.4 - 0.3)
    assert s["regression_recall"] == 1.0
    assert s["bf1@5"] == 1.0 and s["mmae"] == 0.0
    epr_expected = np.mean([m.epr(up), m.epr(stall), m.epr(regress)])
    assert s["epr@50"] == pytest.approx(epr_expected)
    assert (s["n_episodes"], s["n_success"], s["n_stall"], s["n_regression"]) == (3, 1, 1, 1)


def test_summarize_undefined_is_nan():
    s = m.summarize([m.EpisodeResult(0, [0.0, 0.5, 0.9], False)])
    assert math.isnan(s["voc"]) and math.isnan(s["auroc"]) and math.isnan(s["stall_drift"])
    assert math.isnan(s["regression_recall"]) and math.isnan(s["ccc"])
    with pytest.raises(ProcvlmError, match="no episode result"):
        m.summarize([])
    with pytest.raises(ProcvlmError, match="reference values"):
        m.EpisodeResult(0, [0.1, 0.2], True, reference=[0.1])
