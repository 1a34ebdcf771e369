"""Label schemes against hand-worked numbers, the paper's worked examples, and properties of
randomly generated episodes (seeded; stalls, regressions, failures injected)."""

import json
from pathlib import Path

import numpy as np
import pytest

from procvlm.data.episode import Subtask
from procvlm.errors import ProcvlmError
from procvlm.labels import SCHEMES, LabelParams, budgets, compute_labels

EXAMPLES = Path(__file__).parent / "paper_labels_examples.json"
A, B, C = "Grasp the puck", "Place the puck onto the goal", "Push the button"


def change_of(sims):
    """The paper's d = 1.5 - S (sims[0] is unused)."""
    return 1.5 - np.array([1.0 if s is None else s for s in sims], dtype=np.float64)


def subtasks_from_labels(labels):
    out, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start]:
            out.append(Subtask(labels[start], start, i))
            start = i
    return out


# ---------------------------------------------------------------- procvlm-paper: the spec file

def _examples():
    return json.loads(EXAMPLES.read_text())["examples"]


@pytest.mark.parametrize("example", _examples(), ids=lambda e: e["name"])
def test_paper_scheme_reproduces_worked_examples(example):
    labels = example["labels"]
    plan = list(dict.fromkeys(x for x in labels if x not in ("done", "not done")))
    out = compute_labels(subtasks_from_labels(labels), plan, len(labels),
                         change_of(example["sims"]), success=None, scheme="procvlm-paper")
    np.testing.assert_allclose(out.progress, example["progress"], rtol=0, atol=1e-9)


def test_spec_file_has_the_five_examples():
    assert len(_examples()) == 5


# ---------------------------------------------------------------- procvlm by hand

def _two_step(floor=None):
    subs = [Subtask(A, 0, 3), Subtask(B, 3, 5)]
    sims = [None, 1.0, 0.5, 0.75, 0.875, 0.9, 1.0]
    return compute_labels(subs, [A, B], 7, change_of(sims), True, "procvlm",
                          LabelParams(floor=floor))


def test_procvlm_two_steps_floor_zero_by_hand():
    out = _two_step()
    # budgets: w = clip(2*3/5, 2*2/5) = (1.2, 0.8) -> B = (0.6, 0.4); frame 1 is identical
    # to frame 0, so with floor 0 it adds nothing
    np.testing.assert_allclose(out.progress, [0, 0, 0.6, 0.6, 1.0, 1.0, 1.0], atol=1e-12)
    assert out.progress[-1] == 1.0
    np.testing.assert_array_equal(out.stage, [0, 0, 0, 1, 1, 2, 2])
    np.testing.assert_allclose(out.stage_progress, [0, 0, 1, 0, 1, 1, 1])
    np.testing.assert_array_equal(out.done, [False] * 5 + [True] * 2)
    assert out.remaining == [[A, B]] * 3 + [[B]] * 2 + [[]] * 2
    assert list(out.subtask) == [A] * 3 + [B] * 2 + ["done"] * 2
    assert out.completed.all()


def test_procvlm_ignores_flicker_below_the_noise_level_by_hand():
    # a stall whose frames flicker by one pHash bit (video compression), then real motion
    subs = [Subtask(A, 0, 5)]
    sims = [None, 63 / 64, 63 / 64, 63 / 64, 0.5]
    out = compute_labels(subs, [A], 5, change_of(sims), True, "procvlm",
                         LabelParams(noise=2 / 64))
    np.testing.assert_allclose(out.progress, [0, 0, 0, 0, 1.0], atol=1e-12)
    noisy = compute_labels(subs, [A], 5, change_of(sims), True, "procvlm")
    # 1 - S = 1/64 per flicker frame, 0.5 for the last: each flicker earns (1/64) / (3/64 + 0.5)
    np.testing.assert_allclose(noisy.progress[1], (1 / 64) / (3 / 64 + 0.5), atol=1e-12)


def test_procvlm_floor_half_by_hand():
    out = _two_step(floor=0.5)
    # grasp: increments (0, 0.5, 1.0) / 1.5
    np.testing.assert_allclose(out.progress, [0, 0.2, 0.6, 0.6, 1.0, 1.0, 1.0], atol=1e-12)


def test_procvlm_failure_by_hand():
    subs = [Subtask(A, 0, 3), Subtask(B, 3, 6, completed=False)]
    out = compute_labels(subs, [A, B, C], 8, np.full(8, 1.0), False, "procvlm")
    b = np.array([1.25, 1.25, 0.75]) / 3.25  # L = (3, 3, 0): C never attempted
    expected = [0, b[0] / 2, b[0], b[0], b[0] + b[1] / 4, b[0] + b[1] / 2]
    expected += [expected[-1]] * 2  # the tail holds
    np.testing.assert_allclose(out.progress, expected, atol=1e-12)
    np.testing.assert_array_equal(out.stage, [0, 0, 0, 1, 1, 1, 1, 1])
    assert not out.done.any()
    assert out.remaining[-1] == [B, C]
    assert list(out.completed) == [True] * 3 + [False] * 5


def test_procvlm_regression_by_hand():
    subs = [Subtask(A, 0, 2), Subtask(B, 2, 4), Subtask(C, 4, 5, completed=False),
            Subtask(B, 5, 7), Subtask(C, 7, 9)]
    out = compute_labels(subs, [A, B, C], 10, np.full(10, 1.0), True, "procvlm")
    b = np.array([0.75, 1.25, 1.0]) / 3.0  # L = (2, 4, 3), T = 9
    expected = [0, b[0], b[0], b[0] + b[1], b[0] + b[1],  # C cut short after one frame: no
                # change measured inside it, so nothing earned
                b[0], b[0] + b[1],  # B redone: falls back to B's start, climbs again
                b[0] + b[1], 1.0, 1.0]
    np.testing.assert_allclose(out.progress, expected, atol=1e-12)
    np.testing.assert_array_equal(out.stage, [0, 0, 1, 1, 2, 1, 1, 2, 2, 3])


def test_procvlm_uncompleted_fraction_and_budget_clip_are_parameters():
    subs = [Subtask(A, 0, 3, completed=False)]
    out = compute_labels(subs, [A, B], 3, np.full(3, 1.0), False, "procvlm",
                         LabelParams(uncompleted_fraction=0.2, clip=(1.0, 1.0)))
    np.testing.assert_allclose(out.progress, [0, 0.05, 0.1])


def test_budgets_clip_and_normalise():
    np.testing.assert_allclose(budgets([8, 1, 3]), np.array([1.25, 0.75, 0.75]) / 2.75)
    np.testing.assert_allclose(budgets([0, 0]), [0.5, 0.5])
    assert budgets([5, 7, 1, 0]).sum() == pytest.approx(1.0)


# ---------------------------------------------------------------- baselines by hand

def test_time_scheme_by_hand():
    out = compute_labels([], [A, B], 5, None, None, "time")
    np.testing.assert_allclose(out.progress, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_array_equal(out.stage, [0, 0, 0, 1, 1])  # floor(t / 5 * 2)
    np.testing.assert_allclose(out.stage_progress, [0, 0.4, 0.8, 0.2, 0.6])
    assert out.remaining == [[A, B]] * 3 + [[B]] * 2
    assert not out.done.any()


def test_paper_scheme_keeps_failures_reaching_one_but_procvlm_does_not():
    subs = [Subtask(A, 0, 3), Subtask(B, 3, 6, completed=False)]
    change = np.full(8, 1.0)
    paper = compute_labels(subs, [A, B], 8, change, False, "procvlm-paper")
    ours = compute_labels(subs, [A, B], 8, change, False, "procvlm")
    assert paper.progress[-1] == pytest.approx(1.0)  # tail labelled "not done"
    assert ours.progress.max() < 1.0


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, match", [
    (dict(floor=-1.0), "floor"), (dict(floor=float("nan")), "floor"),
    (dict(uncompleted_fraction=1.0), "uncompleted_fraction"), (dict(clip=(1.3, 1.2)), "clip"),
    (dict(clip=(0.0, 1.0)), "clip"), (dict(noise=1.0), "noise"), (dict(noise=-0.1), "noise")])
def test_label_params_validate(kwargs, match):
    with pytest.raises(ProcvlmError, match=match):
        LabelParams(**kwargs)


def test_label_params_floor_defaults_per_scheme():
    p = LabelParams()
    assert p.floor_for("procvlm") == 0.0 and p.floor_for("procvlm-paper") == 0.5
    assert LabelParams(floor=0.2).to_dict("procvlm-paper")["floor"] == 0.2


@pytest.mark.parametrize("call, match", [
    (lambda: compute_labels([], [A], 3, np.ones(3), True, "nope"), "unknown label scheme"),
    (lambda: compute_labels([], [], 3, np.ones(3), True), "plan is empty"),
    (lambda: compute_labels([], [A], 3, np.ones(2), True), "shape"),
    (lambda: compute_labels([Subtask(A, 0, 4)], [A], 3, np.ones(3), True), "runs past"),
    (lambda: compute_labels([Subtask(A, 0, 2), Subtask(B, 1, 3)], [A, B], 3, np.ones(3), True),
     "overlap"),
    (lambda: compute_labels([], [A], 3, np.array([1, np.nan, 1]), True), "NaN"),
    (lambda: compute_labels([Subtask(A, 0, 3)], [A, B], 3, None, True, "sarm",
                            stage_proportions=[1.0]), "stage_proportions")])
def test_compute_labels_rejects_bad_input(call, match):
    with pytest.raises(ProcvlmError, match=match):
        call()


# ---------------------------------------------------------------- properties (seeded generator)

N_RANDOM = 150


def _episode(rng, kind):
    """A random episode: ("success" | "failure" | "regression" | "stall") -> (subs, plan, T,
    change, success, extra)."""
    k = int(rng.integers(1, 5))
    plan = [f"Step {i}" for i in range(k)]
    lengths = rng.integers(1, 7, size=k)
    order = list(range(k))
    completed = [True] * k
    success = True
    extra = {}
    if kind == "failure":
        stop = int(rng.integers(1, k + 1))
        order = order[:stop]
        completed = [True] * (stop - 1) + [bool(rng.integers(0, 2)) and stop < k]
        success = False
    elif kind == "regression" and k >= 2:
        j = int(rng.integers(1, k))  # after step j is under way, an earlier step is undone
        back = int(rng.integers(0, j))
        order = list(range(j + 1)) + list(range(back, k))
        completed = [True] * j + [False] + [True] * (k - back)
        lengths = np.concatenate([lengths[:j + 1], rng.integers(2, 7, size=k - back)])
        extra["redo"] = j + 1
    lengths = [int(x) for x in (lengths[:len(order)] if kind != "regression" else lengths)]
    subs, t = [], 0
    for idx, (step, n) in enumerate(zip(order, lengths)):
        subs.append(Subtask(plan[step], t, t + n, completed[idx]))
        if "redo" in extra and idx == extra["redo"]:
            extra["redo_frame"] = t
        t += n
    tail = int(rng.integers(0, 4))
    num = t + tail
    change = 1.5 - rng.uniform(0, 1, size=num)
    if kind == "stall":  # identical frames inside the longest segment, not at its end
        seg = max(subs, key=lambda s: s.length)
        if seg.length >= 3:
            a = seg.start + 1
            b = seg.end - 1
            change[a:b] = 0.5  # S = 1
            change[seg.end - 1] = 1.4  # the segment still moves at its end
            extra["stall"] = (a, b)
    return subs, plan, num, change, success, extra


@pytest.mark.parametrize("kind", ["success", "failure", "regression", "stall"])
def test_every_scheme_stays_in_unit_interval(kind):
    rng = np.random.default_rng(10)
    for _ in range(N_RANDOM):
        subs, plan, num, change, success, _ = _episode(rng, kind)
        for scheme in SCHEMES:
            out = compute_labels(subs, plan, num, change, success, scheme)
            assert out.progress.shape == (num,)
            assert np.all((out.progress >= 0) & (out.progress <= 1)), scheme
            assert np.all((out.stage_progress >= 0) & (out.stage_progress <= 1)), scheme
            for s, rem, d in zip(out.stage.tolist(), out.remaining, out.done.tolist()):
                assert rem == ([] if s == len(plan) else plan[max(s, 0):])
                assert d == (s == len(plan))


def test_procvlm_successes_are_monotone_and_end_at_exactly_one():
    rng = np.random.default_rng(11)
    for _ in range(N_RANDOM):
        subs, plan, num, change, success, _ = _episode(rng, "success")
        for scheme in ("procvlm", "sarm"):
            p = compute_labels(subs, plan, num, change, success, scheme).progress
            assert np.all(np.diff(p) >= -1e-12), scheme
        assert compute_labels(subs, plan, num, change, success).progress[-1] == 1.0
        done = compute_labels(subs, plan, num, change, success).done
        assert np.all(compute_labels(subs, plan, num, change, success).progress[done] == 1.0)


def test_procvlm_failures_stay_below_one():
    rng = np.random.default_rng(12)
    for _ in range(N_RANDOM):
        subs, plan, num, change, success, _ = _episode(rng, "failure")
        out = compute_labels(subs, plan, num, change, success, "procvlm")
        assert out.progress.max() < 1.0
        assert not out.done.any()


def test_procvlm_is_flat_during_a_stall_with_floor_zero():
    rng = np.random.default_rng(13)
    checked = 0
    for _ in range(N_RANDOM):
        subs, plan, num, change, success, extra = _episode(rng, "stall")
        if "stall" not in extra:
            continue
        a, b = extra["stall"]
        p = compute_labels(subs, plan, num, change, success, "procvlm").progress
        assert np.all(p[a:b] == p[a - 1]), (a, b, p)
        # the paper's floor keeps climbing through the same stall
        paper = compute_labels(subs, plan, num, change, success, "procvlm",
                               LabelParams(floor=0.5)).progress
        assert paper[b - 1] > paper[a - 1]
        checked += 1
    assert checked > 20


def test_procvlm_drops_on_a_regression():
    rng = np.random.default_rng(14)
    checked = 0
    for _ in range(N_RANDOM):
        subs, plan, num, change, success, extra = _episode(rng, "regression")
        if "redo_frame" not in extra:
            continue
        t = extra["redo_frame"]
        p = compute_labels(subs, plan, num, change, success, "procvlm").progress
        assert p[t] < p[t - 1]
        assert p[-1] == 1.0
        checked += 1
    assert checked > 50


def test_procvlm_uncompleted_step_without_change_earns_nothing():
    # A moves then B never changes (a stalled failure): B earns nothing, not half at its end
    subs = [Subtask(A, 0, 3), Subtask(B, 3, 6, completed=False)]
    change = np.array([0.5, 1.0, 1.0, 0.5, 0.5, 0.5])
    out = compute_labels(subs, [A, B], 6, change, False, "procvlm")
    b = np.array([1.0, 1.0]) / 2.0  # L = (3, 3)
    np.testing.assert_allclose(out.progress, [0, b[0] / 2, b[0], b[0], b[0], b[0]])
    # completed, the same step jumps to its full credit at its last frame
    done = compute_labels([Subtask(A, 0, 3), Subtask(B, 3, 6)], [A, B], 6, change, None)
    np.testing.assert_allclose(done.progress[-2:], [b[0], 1.0])
