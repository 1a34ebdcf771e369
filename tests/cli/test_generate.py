"""``procvlm generate``: a tiny corpus, resuming without redoing episodes, helpful errors."""

import pytest

import procvlm.sim.corpus as gen
from procvlm.cli.main import main
from procvlm.data import open_dataset
from procvlm.errors import ProcvlmError
from procvlm.sim import TASKS, episode_plans, parse_tasks

pytestmark = [pytest.mark.sim]


def args(out, episodes):
    return ["generate", "--env", "metaworld", "--tasks", "pick-place,assembly", "--episodes",
            str(episodes), "--failure-rate", "0.5", "--seed", "0", "--width", "64", "--height",
            "64", "--max-steps", "60", "--out", str(out)]


@pytest.mark.slow
def test_generate_writes_a_dataset_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    assert main(args(out, 2)) == 0
    assert str(out) in capsys.readouterr().out
    ds = open_dataset(out)
    assert ds.num_episodes == 2 and ds.cameras == ["corner", "gripper"]
    plans = episode_plans(2, parse_tasks("pick-place,assembly"), 0.5, 0)
    for i, (spec, seed, failure) in enumerate(plans):
        ep = ds.episode(i)
        assert ep.task == spec.instruction and ep.plan == spec.plan
        assert ep.meta["seed"] == seed and ep.meta["failure"] == failure
        assert ep.meta["env"] == "metaworld" and ep.subtasks[0].start == 0
        assert ep.frames["corner"][0].shape == (64, 64, 3)

    calls = []
    real = gen.rollout
    monkeypatch.setattr(gen, "rollout", lambda *a, **k: calls.append(k["episode_index"])
                        or real(*a, **k))
    assert main(args(out, 3)) == 0
    assert calls == [2], "episodes 0 and 1 are not redone"
    assert open_dataset(out).num_episodes == 3


def test_unknown_task_lists_the_known_ones(tmp_path, capsys):
    assert main(args(tmp_path / "x", 1)[:4] + ["pick-place,flying"]
                + args(tmp_path / "x", 1)[5:]) == 2
    err = capsys.readouterr().err
    assert "unknown MetaWorld task 'flying'" in err and "pick-place" in err
    with pytest.raises(ProcvlmError, match="choose from " + ", ".join(list(TASKS)[:3])):
        gen.generate(tmp_path / "y", "nope", 1, 0.0, 0)


def test_bad_counts_and_env(tmp_path, capsys):
    with pytest.raises(ProcvlmError, match="episodes=0"):
        gen.generate(tmp_path / "y", "pick-place", 0, 0.0, 0)
    with pytest.raises(ProcvlmError, match=r"failure_rate=1.5 is outside \[0, 1\]"):
        gen.generate(tmp_path / "y", "pick-place", 1, 1.5, 0)
    assert main(["generate", "--env", "robosuite", "--out", str(tmp_path / "z")]) == 2
    assert "--env metaworld" in capsys.readouterr().err
