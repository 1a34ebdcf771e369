"""The online check's rewards, curves and a quick SAC run through ProgressReward."""

import json

import gymnasium as gym
import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.policy.online import (EpisodeLog, OnlineConfig, SparseSuccess, TimeProgress,
                                   curve, steps_to_reach)
from procvlm.reward.wrapper import RewardConfig


class Walk(gym.Env):
    """obs = (hand xyz, 0, object xyz); the hand walks towards the object; success at t = 3."""

    observation_space = gym.spaces.Box(-10, 10, (7,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([1.0 - 0.3 * self.t, 0, 0, 0, 0, 0, 0], np.float32)

    def step(self, action):
        self.t += 1
        ok = self.t == 3
        return self._obs(), 0.0, ok, False, {"success": ok}


def test_sparse_and_time_rewards_and_the_episode_log():
    env = EpisodeLog(SparseSuccess(Walk()), reach=0.2)
    env.reset()
    assert [env.step(0)[1] for _ in range(3)] == [0.0, 0.0, 1.0]
    assert env.episodes == [{"step": 3, "success": True, "closest": pytest.approx(0.1),
                             "reached": True, "return": 1.0}]
    timed = TimeProgress(Walk(), horizon=10, config=RewardConfig(success_bonus=2.0))
    timed.reset()
    rewards = [timed.step(0)[1] for _ in range(3)]
    np.testing.assert_allclose(rewards, [0.1, 0.1, 2.1], atol=1e-6)


def test_curves_and_steps_to_a_target():
    eps = [{"step": s, "success": v} for s, v in [(10, 0), (20, 1), (30, 1), (40, 1)]]
    steps, rates = curve(eps, "success", window=2)
    assert steps == [10, 20, 30, 40] and rates == [0.0, 0.5, 1.0, 1.0]
    assert steps_to_reach(steps, rates, 1.0) == 30
    assert steps_to_reach(steps, rates, 0.0) is None
    with pytest.raises(ProcvlmError, match="learning_starts=50"):
        OnlineConfig(steps=50, learning_starts=50)


@pytest.mark.sim
@pytest.mark.slow
def test_online_quick_runs_sac_with_every_reward(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    from procvlm.cli.main import main

    assert main(["policy", "--online", "--quick", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "online.json").read_text())["rewards"]
    assert set(summary) == {"sparse", "time", "compact"}
    for reward in summary:
        log = json.loads((tmp_path / f"online_{reward}.json").read_text())["episodes"]
        assert log and log[-1]["step"] <= 120
    assert (tmp_path / "online.png").stat().st_size > 5000
    assert "| compact |" in capsys.readouterr().out
