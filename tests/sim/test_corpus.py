"""Corpus planning: which task, seed and failure mode each episode gets."""

import numpy as np
import pytest

from procvlm.sim import FAILURE_MODES, episode_plans, parse_tasks


def test_episode_plans_are_deterministic_round_robin_and_cycle_failures():
    tasks = parse_tasks("pick-place,assembly,hammer")
    plans = episode_plans(40, tasks, 0.5, 7)
    assert plans == episode_plans(40, tasks, 0.5, 7)
    assert [p[0].name for p in plans[:4]] == ["pick-place", "assembly", "hammer", "pick-place"]
    failures = [p[2] for p in plans if p[2]]
    assert 10 <= len(failures) <= 30
    assert failures[:5] == list(FAILURE_MODES)
    assert len({p[1] for p in plans}) == 40
    assert all(p[2] is None for p in episode_plans(10, tasks, 0.0, 7))
    assert all(p[2] for p in episode_plans(10, tasks, 1.0, 7))
    assert episode_plans(5, tasks, 0.5, 8) != plans[:5]


def test_touch_tasks_get_no_carried_object_failures():
    plans = episode_plans(40, parse_tasks("drawer-open,button-press"), 1.0, 3)
    assert {p[2] for p in plans} == {"noise", "stall", "truncate"}


@pytest.mark.sim
def test_parallel_workers_write_the_same_dataset(tmp_path):
    from procvlm.data import open_dataset
    from procvlm.sim import generate

    kw = dict(tasks="drawer-open,pick-place", episodes=2, failure_rate=0.0, seed=1, width=16,
              height=16, cameras=("corner",), max_steps=25, video=False, progress=False,
              randomize="train")
    one = open_dataset(generate(tmp_path / "one", **kw))
    two = open_dataset(generate(tmp_path / "two", **kw, workers=2))
    for i in one.episode_indices:
        a, b = one.episode(i), two.episode(i)
        np.testing.assert_array_equal(a.state, b.state)
        np.testing.assert_array_equal(a.main_frames()[:], b.main_frames()[:])
        assert a.meta["render"] == b.meta["render"]
