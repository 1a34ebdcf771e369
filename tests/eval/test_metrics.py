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


def test_regression_detections_by_hand():
    pred = [0, .2, .4, .6, .6, .6, .6, .3, .3, .3, .3, .3, .3, .3, .3]
    # no smoothing, hold 3: .3 <= .6 - .1 from frame 7 on, three frames -> one drop at 7, then
    # the running max restarts at .3 and the flat rest is not a second drop
    assert m.regression_detections(pred, margin=0.1, hold=3, smooth=1) == [7]
    # defaults (5-frame trailing median, hold 5): the median falls to .3 at frame 9
    assert m.regression_detections(pred) == [9]
    # a drop smaller than the margin is none
    assert m.regression_detections(pred, margin=0.35) == []
    # two drops, each counted: .6 -> .3, climb to .5, -> .2
    two = [.6] * 3 + [.3] * 4 + [.5] * 4 + [.2] * 4
    assert m.regression_detections(two, hold=3, smooth=1) == [3, 11]
    with pytest.raises(ProcvlmError, match="margin"):
        m.regression_detections(pred, margin=0)


def test_regression_recall_needs_a_sustained_drop():
    pred = [0, .2, .4, .6, .6, .6, .6, .3, .3, .3, .3, .3, .3, .3, .3]
    assert m.regression_hits(pred, [7]).tolist() == [True]  # drop found at 9, 2 frames late
    assert m.regression_hits(pred, [7], tolerance=1).tolist() == [False]
    assert m.regression_recall(pred, [7, 30 - 16]) == pytest.approx(0.5)  # one drop, 2 events
    # a one-frame dip of .3 in a rising curve is jitter, not a regression
    dip = np.linspace(0, 1, 30)
    dip[15] -= 0.3
    assert m.regression_recall(dip, [15]) == 0.0
    assert m.regression_recall(np.linspace(0, 1, 20), [10]) == 0.0
    with pytest.raises(ProcvlmError, match="outside"):
        m.regression_hits(pred, [15])
    with pytest.raises(ProcvlmError, match="no event"):
        m.regression_recall(pred, [])


def test_noisy_curve_that_never_regresses_scores_low():
    # truth climbs to .6, a regression at frame 60 drops it to .3; the noisy model ignores it
    rng = np.random.default_rng(0)
    truth = np.r_[np.linspace(0, .6, 60), np.linspace(.3, .6, 60)]
    blind = np.r_[np.linspace(0, .6, 60), np.full(60, .6)]
    old_hits, results = [], []
    for k in range(20):
        noisy = np.clip(blind + rng.normal(0, 0.05, blind.size), 0, 1)
        w = noisy[50:71]  # the old rule: any 0.05 dip within 10 frames of the event
        old_hits.append(np.max(np.maximum.accumulate(w) - w) >= 0.05)
        results.append(m.EpisodeResult(k, noisy, False, truth=truth, regressions=[60]))
    assert np.mean(old_hits) == 1.0  # what the old metric rewarded
    s = m.summarize(results)
    assert s["regression_recall"] <= 0.1
    # a model that follows the truth's drop, with the same noise, is caught every time
    follow = [m.EpisodeResult(k, np.clip(truth + rng.normal(0, 0.05, truth.size), 0, 1), False,
                              truth=truth, regressions=[60]) for k in range(20)]
    s = m.summarize(follow)
    assert s["regression_recall"] == 1.0 and s["regression_precision"] >= 0.9


def test_match_regressions_pairs_each_once():
    hit, matched = m.match_regressions([10, 12, 40], [11, 30], tolerance=5)
    assert hit.tolist() == [True, False] and matched == 1


def test_mae_and_plan_metrics_by_hand():
    assert m.mae([0, .5, 1], [.1, .5, .7]) == pytest.approx(0.4 / 3)
    A, B = "Grasp", "Place"
    assert m.plan_exact([[A, B], [A, B], [B], [B]], [[A, B], [B], [B], []]) == 0.5
    assert m.step_accuracy([0, 0, 1, 1], [0, 1, 1, 2]) == 0.5
    with pytest.raises(ProcvlmError, match="remaining-action"):
        m.plan_exact([[A]], [[A], [B]])


def test_summarize_against_truth_by_hand():
    A, B = "Grasp", "Place"
    reason = m.EpisodeResult(0, [0, .5, 1], True, truth=[0, .5, 1],
                             pred_stage=[0, 1, 2], true_stage=[0, 1, 1],
                             pred_remaining=[[A, B], [B], []], true_remaining=[[A, B], [B], [B]])
    failed = m.EpisodeResult(1, [0, 0], False, truth=[.2, .2])
    s = m.summarize([reason, failed])
    pooled_p, pooled_t = np.array([0, .5, 1, 0, 0]), np.array([0, .5, 1, .2, .2])
    assert s["ccc_truth"] == pytest.approx(m.ccc(pooled_p, pooled_t))
    assert s["ccc_truth_success"] == pytest.approx(1.0)
    assert s["mae_truth"] == pytest.approx(0.4 / 5)
    assert s["plan_exact"] == pytest.approx(2 / 3) and s["step_acc"] == pytest.approx(2 / 3)
    # a model that names no step (stage -1 everywhere) does not reason: n/a
    direct = m.EpisodeResult(0, [0, .5, 1], True, pred_stage=[-1, -1, -1], true_stage=[0, 1, 1],
                             pred_remaining=[[], [], []], true_remaining=[[A, B], [B], [B]])
    assert math.isnan(m.summarize([direct])["plan_exact"])


def test_metric_definitions_name_reference_and_direction():
    s = m.summarize([m.EpisodeResult(0, [0, .5, 1], True, truth=[0, .5, 1])])
    measured = [k for k in s if not k.startswith("n_")]
    assert set(measured) <= set(m.METRICS)
    assert m.METRICS["mae_truth"].arrow == "↓" and m.METRICS["ccc_truth"].arrow == "↑"
    assert m.METRICS["ccc_truth"].reference == "simulator truth"


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
    assert s["ccc_labels"] == pytest.approx(1.0) and math.isnan(s["ccc_truth"])
    # finals 1.0 (success), .5, .8 (failures): AUROC 1, MCC@95 1
    assert s["auroc"] == pytest.approx(1.0) and s["mcc@95"] == pytest.approx(1.0)
    assert s["stall_drift"] == pytest.approx(0.4 - 0.3)
    # the drop at 4 (.6 -> .3) stays down only 2 frames before climbing back: no sustained drop
    assert s["regression_recall"] == 0.0 and math.isnan(s["regression_precision"])
    assert s["bf1@5"] == 1.0 and s["mmae"] == 0.0
    epr_expected = np.mean([m.epr(up), m.epr(stall), m.epr(regress)])
    assert s["epr@50"] == pytest.approx(epr_expected)
    assert (s["n_episodes"], s["n_success"], s["n_still"], s["n_regression"]) == (3, 1, 1, 1)


def test_summarize_undefined_is_nan():
    s = m.summarize([m.EpisodeResult(0, [0.0, 0.5, 0.9], False)])
    assert math.isnan(s["voc"]) and math.isnan(s["auroc"]) and math.isnan(s["stall_drift"])
    assert math.isnan(s["regression_recall"]) and math.isnan(s["ccc_truth"])
    with pytest.raises(ProcvlmError, match="no episode result"):
        m.summarize([])
    with pytest.raises(ProcvlmError, match="reference values"):
        m.EpisodeResult(0, [0.1, 0.2], True, reference=[0.1])


def test_success_score_averages_the_last_frames():
    done = [0.0, 0.1, 0.9, 0.8, 0.4]
    assert m.success_score(done, last=2) == pytest.approx(0.6)  # (0.8 + 0.4) / 2
    assert m.success_score(done, last=100) == pytest.approx(np.mean(done))  # shorter episode
    assert m.success_score(done, last=1) == pytest.approx(0.4)
    with pytest.raises(ProcvlmError, match="at least 1"):
        m.success_score(done, last=0)
    with pytest.raises(ProcvlmError, match=r"outside \[0, 1\]"):
        m.success_score([0.5, 1.5])


def test_auroc_done_ranks_by_the_done_probability_not_the_final_progress():
    # the success looks away at its last frame (progress falls to .2) but stays sure it is done;
    # the failure ends at .9 progress, never sure it is done
    ok = m.EpisodeResult(0, [0, .9, .2], True, done=[0, .9, .8])
    bad = m.EpisodeResult(1, [0, .5, .9], False, done=[0, .1, .3])
    s = m.summarize([ok, bad], done_frames=2)
    assert s["auroc"] == 0.0 and s["auroc_done"] == 1.0
    # any episode without P(done) (a model that gives none): n/a
    assert math.isnan(m.summarize([ok, m.EpisodeResult(1, [0, .9], False)])["auroc_done"])
    with pytest.raises(ProcvlmError, match="2 predictions but 1 done"):
        m.EpisodeResult(2, [0, .5], True, done=[0.1])
