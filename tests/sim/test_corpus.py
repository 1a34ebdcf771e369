"""Corpus planning: which task, seed and failure mode each episode gets."""

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
