"""ProgressReward: batched scoring of vector envs, reward modes, async lag, a remote server."""

import time

import gymnasium as gym
import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.models.base import ProgressModel, ProgressPrediction
from procvlm.reward.wrapper import (FRAME_KEY, ModelScorer, ProgressReward, RemoteScorer,
                                    RenderFrame, RewardConfig, VectorProgressReward)


class LineEnv(gym.Env):
    """A point on [0, 1] pushed by the action; the camera shows it as the red level.
    Terminates (success) at x >= 0.9."""

    observation_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, horizon=50):
        self.x, self.t, self.horizon = 0.0, 0, horizon

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = float(self.np_random.uniform(0.0, 0.3)), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + float(np.asarray(action).reshape(-1)[0]), 0.0, 1.0))
        self.t += 1
        success = self.x >= 0.9
        return (np.array([self.x], np.float32), float(success), success,
                self.t >= self.horizon, {"success": success})


def draw(env):
    return np.full((8, 8, 3), round(env.unwrapped.x * 255), np.uint8)


class RedModel(ProgressModel):
    """Progress = mean red level of the last ``span`` frames / 255; counts batched calls."""

    model_type = "test"

    def __init__(self, span=1):
        self.span, self.calls, self.sizes = span, 0, []

    @property
    def history(self):
        return self.span

    def predict(self, episode, task=None, plan=None, *, window=8):
        frames = np.asarray(episode[np.arange(len(episode))], np.float64)[..., 0]
        red = frames.reshape(len(frames), -1).mean(1) / 255.0
        p = np.array([red[max(0, t - self.span + 1):t + 1].mean() for t in range(len(red))])
        return ProgressPrediction(p, np.zeros(len(p)), [[task]] * len(p))

    def score_last(self, clips):
        self.calls += 1
        self.sizes.append(len(clips))
        return super().score_last(clips)

    def save_pretrained(self, directory):
        raise NotImplementedError


class DoneModel(RedModel):
    """RedModel that also gives P(done) = its progress squared."""

    def predict(self, episode, task=None, plan=None, *, window=8):
        pred = super().predict(episode, task, plan, window=window)
        pred.done = pred.progress ** 2
        return pred


def vector_env(n=3, horizon=50):
    return gym.vector.SyncVectorEnv([lambda: RenderFrame(LineEnv(horizon), draw)] * n)


def quantized(x):
    return round(x * 255) / 255.0


def test_single_env_reward_is_the_clipped_progress_delta():
    env = ProgressReward(LineEnv(), RedModel(), "push", render=draw)
    obs, info = env.reset(seed=3)
    assert info["progress"] == pytest.approx(quantized(obs[0]), abs=1e-6)
    prev = info["progress"]
    for a in (0.05, 0.5, -0.1):
        obs, r, term, trunc, info = env.step(np.array([a], np.float32))
        assert info["progress"] == pytest.approx(quantized(obs[0]), abs=1e-6)
        assert r == pytest.approx(np.clip(info["progress"] - prev, -0.2, 0.2), abs=1e-6)
        prev = info["progress"]
    assert r < 0  # moving back is punished
    env.close()


def test_vector_env_is_scored_in_one_batch_per_step_and_autoresets():
    model = RedModel()
    env = VectorProgressReward(vector_env(3), model, "push")
    _, info = env.reset(seed=[0, 1, 2])
    prev = info["progress"].copy()
    ended = np.zeros(3, bool)
    for t in range(12):
        actions = np.array([[0.3], [0.01], [-0.02]], np.float32)
        obs, r, term, trunc, info = env.step(actions)
        phi = info["progress"]
        np.testing.assert_allclose(phi, [quantized(x) for x in obs[:, 0]], atol=1e-6)
        want = np.where(ended, 0.0, np.clip(phi - prev, -0.2, 0.2))
        np.testing.assert_allclose(r, want, atol=1e-6)
        prev, ended = phi.copy(), term | trunc
    assert model.calls == 13 and set(model.sizes) == {3}  # reset + one batch per step
    env.close()


class StartModel(RedModel):
    """An anchored model: progress = red level of the newest frame minus the clip's first."""

    @property
    def anchored(self):
        return True

    def predict(self, episode, task=None, plan=None, *, window=8):
        red = np.asarray(episode[np.arange(len(episode))], np.float64)[..., 0].mean((1, 2))
        p = (red - red[0]) / 255.0
        return ProgressPrediction(p, np.zeros(len(p)), [[task]] * len(p))


def test_anchored_scorer_gets_the_episode_start_in_front_of_every_clip():
    model = StartModel(span=3)
    env = ProgressReward(LineEnv(), model, "push", render=draw)
    obs, info = env.reset(seed=0)
    start = quantized(obs[0])
    assert info["progress"] == 0.0
    for _ in range(6):  # the start has long left the last 3 frames
        obs, r, term, trunc, info = env.step(np.array([0.1], np.float32))
        assert info["progress"] == pytest.approx(quantized(obs[0]) - start, abs=1e-6)
    tracker = env.tracker
    assert [len(c) for c in tracker.clips()] == [4]  # the start, then the last 3 frames
    assert ModelScorer(model).anchored and not ModelScorer(RedModel()).anchored
    env.close()


def test_potential_mode_and_success_bonus():
    cfg = RewardConfig(mode="potential", gamma=0.9, success_bonus=10.0, env_weight=0.5)
    env = VectorProgressReward(vector_env(2), RedModel(), "push", config=cfg)
    _, info = env.reset(seed=[0, 1])
    prev = info["progress"].copy()
    _, r, term, _, info = env.step(np.array([[1.0], [0.1]], np.float32))
    phi = info["progress"]
    assert term.tolist() == [True, False]
    want = 0.9 * phi - prev + np.array([10.0 + 0.5, 0.0])
    np.testing.assert_allclose(r, want, atol=1e-5)


def test_done_bonus_adds_the_models_p_done_and_info_carries_it():
    cfg = RewardConfig(done_bonus=0.5)
    env = VectorProgressReward(vector_env(2), DoneModel(), "push", config=cfg)
    _, info = env.reset(seed=[0, 1])
    np.testing.assert_allclose(info["p_done"], info["progress"] ** 2, atol=1e-6)
    prev = info["progress"].copy()
    for _ in range(3):
        _, r, term, _, info = env.step(np.array([[0.2], [0.05]], np.float32))
        phi = info["progress"]
        np.testing.assert_allclose(info["p_done"], phi ** 2, atol=1e-6)
        assert info["_p_done"].all()
        want = np.clip(phi - prev, -0.2, 0.2) + 0.5 * phi ** 2
        np.testing.assert_allclose(r, np.where(prev < 0.9, want, 0.0), atol=1e-5)
        np.testing.assert_allclose(info["progress_reward"], r, atol=1e-6)
        prev = phi.copy()
    env.close()
    single = ProgressReward(LineEnv(), DoneModel(), "push", render=draw)
    _, info = single.reset(seed=0)
    assert info["p_done"] == pytest.approx(info["progress"] ** 2, abs=1e-6)
    _, r, _, _, info = single.step(np.array([0.1], np.float32))
    assert info["p_done"] == pytest.approx(info["progress"] ** 2, abs=1e-6)


def test_no_p_done_no_info_key_and_done_bonus_names_the_fix():
    env = ProgressReward(LineEnv(), RedModel(), "push", render=draw)
    _, info = env.reset(seed=0)
    assert "p_done" not in info
    assert "p_done" not in env.step(np.array([0.1], np.float32))[4]
    env = ProgressReward(LineEnv(), RedModel(), "push", render=draw,
                         config=RewardConfig(done_bonus=1.0))
    with pytest.raises(ProcvlmError, match="done_bonus=1.0 needs the model's P\\(done\\)"):
        env.reset(seed=0)


def run_episodes(config, seed=0, steps=40, model=RedModel):
    env = VectorProgressReward(vector_env(2, horizon=9), model(span=3), "push", config=config)
    env.reset(seed=[seed, seed + 1])
    rng = np.random.default_rng(seed)
    rewards, dones, phis = [], [], []
    for _ in range(steps):
        _, r, term, trunc, info = env.step(rng.uniform(-0.05, 0.15, (2, 1)).astype(np.float32))
        rewards.append(r)
        dones.append(term | trunc)
        phis.append(info["progress"].copy())
    env.close()
    return np.array(rewards), np.array(dones), np.array(phis)


def episode_sums(rewards, dones):
    sums = []
    for i in range(rewards.shape[1]):
        ends = np.flatnonzero(dones[:, i])
        starts = np.r_[0, ends[:-1] + 1]
        sums += [rewards[a:b + 1, i].sum() for a, b in zip(starts, ends)]
    return np.array(sums)


@pytest.mark.parametrize("model, bonus", [(RedModel, 0.0), (DoneModel, 0.3)])
def test_async_rewards_lag_one_step_and_keep_episode_totals(model, bonus):
    sync_r, dones, sync_phi = run_episodes(RewardConfig(done_bonus=bonus), model=model)
    async_r, async_dones, async_phi = run_episodes(
        RewardConfig(asynchronous=True, done_bonus=bonus), model=model)
    np.testing.assert_array_equal(dones, async_dones)
    assert dones.sum() >= 4
    np.testing.assert_allclose(episode_sums(async_r, dones), episode_sums(sync_r, dones),
                               atol=1e-5)
    # inside an episode the asynchronous reward is the synchronous one a step late
    for t in range(1, len(sync_r)):
        inside = ~dones[t] & ~dones[t - 1] & (t < 2 or ~dones[t - 2])
        np.testing.assert_allclose(async_r[t][inside], sync_r[t - 1][inside], atol=1e-6)
        np.testing.assert_allclose(async_phi[t][inside], sync_phi[t - 1][inside], atol=1e-6)


def test_async_worker_overlaps_with_the_simulator():
    class Slow(RedModel):
        def score_last(self, clips):
            time.sleep(0.05)
            return super().score_last(clips)

    class SlowEnv(LineEnv):
        def step(self, action):
            time.sleep(0.05)
            return super().step(action)

    timings = {}
    for flag in (False, True):
        env = VectorProgressReward(
            gym.vector.SyncVectorEnv([lambda: RenderFrame(SlowEnv(100), draw)]), Slow(),
            "push", config=RewardConfig(asynchronous=flag))
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(10):
            env.step(np.array([[0.0]], np.float32))
        timings[flag] = time.perf_counter() - start
        env.close()
    assert timings[True] < 0.8 * timings[False]


def test_bad_settings_name_the_fix():
    with pytest.raises(ProcvlmError, match="mode='sparse'"):
        RewardConfig(mode="sparse")
    with pytest.raises(ProcvlmError, match="RenderFrame"):
        env = VectorProgressReward(gym.vector.SyncVectorEnv([LineEnv]), RedModel(), "push")
        env.reset(seed=0)
    with pytest.raises(ProcvlmError, match="2 tasks for 3"):
        VectorProgressReward(vector_env(3), RedModel(), ["a", "b"])


@pytest.fixture(scope="module")
def server(serve_app):
    from procvlm.serve.app import create_app

    return serve_app(create_app(DoneModel(span=3), max_batch=16))


def test_remote_server_gives_the_in_process_rewards(server):
    rewards, p_done = {}, {}
    for name, scorer in (("local", ModelScorer(DoneModel(span=3))),
                         ("remote", RemoteScorer(server, history=3))):
        cfg = RewardConfig(asynchronous=name == "remote", done_bonus=0.25)
        env = VectorProgressReward(vector_env(3), scorer, "push", config=cfg)
        env.reset(seed=[4, 5, 6])
        steps = [env.step(np.full((3, 1), 0.04, np.float32)) for _ in range(6)]
        env.close()
        rewards[name] = np.array([s[1] for s in steps])
        p_done[name] = np.array([s[4]["p_done"] for s in steps])
    np.testing.assert_allclose(rewards["remote"][1:], rewards["local"][:-1], atol=1e-5)
    np.testing.assert_allclose(p_done["remote"][1:], p_done["local"][:-1], atol=1e-5)
    assert p_done["local"].max() > 0


def test_remote_errors_name_the_server():
    scorer = RemoteScorer("http://127.0.0.1:9", history=1, timeout=2)
    with pytest.raises(Exception):
        scorer.score([np.zeros((1, 8, 8, 3), np.uint8)], ["push"], [None])
    scorer.close()


@pytest.mark.sim
def test_metaworld_vector_env_with_the_shipped_compact_model():
    from procvlm.models import load_model
    from procvlm.policy.envs import make_env
    from procvlm.reward.wrapper import model_camera

    model = load_model("metaworld")
    render = model_camera(model)
    envs = gym.vector.SyncVectorEnv(
        [lambda: RenderFrame(make_env("pick-place", max_steps=20), render)] * 2)
    env = VectorProgressReward(envs, model, "Pick up the puck and place it onto the goal")
    _, info = env.reset(seed=[0, 1])
    assert info[FRAME_KEY].shape == (2, 64, 64, 3)
    for _ in range(3):
        _, r, term, trunc, info = env.step(envs.action_space.sample())
        assert r.shape == (2,) and np.all(np.abs(r) <= 0.2 + 1e-6)
        assert np.all((info["progress"] >= 0) & (info["progress"] <= 1))
    env.close()
