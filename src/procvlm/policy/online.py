"""The online check: SAC (stable-baselines3) on one MetaWorld task with three rewards and the
same number of environment steps:

- ``sparse``: the environment's success (1 on a successful step; episodes end there);
- ``time``: time-based progress, Φ = step / horizon, through the same delta-and-clip shaping
  and success bonus as the model (it says nothing about the scene: a control);
- ``compact``: ``ProgressReward`` with the compact model on the rendered camera, plus the same
  success bonus.

Every training episode's success and closest hand-object distance (a neutral measure of
reaching, read from the state) are logged; the curves are success rate and reach rate against
environment steps. Needs the ``policy`` extra (stable-baselines3).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from procvlm._io import atomic_path, write_json, write_text
from procvlm.errors import ProcvlmError
from procvlm.reward.wrapper import RewardConfig

logger = logging.getLogger(__name__)

REWARDS = ("sparse", "time", "compact")


@dataclass(frozen=True)
class OnlineConfig:
    """Task, budget and learner of the online check."""

    task: str = field(default="pick-place", metadata={"help": "MetaWorld task"})
    steps: int = field(default=3000, metadata={"help": "environment steps per reward"})
    horizon: int = field(default=100, metadata={"help": "steps per episode"})
    model: str = field(default="metaworld", metadata={"help": "compact model"})
    camera: str = field(default="corner", metadata={
        "help": "camera the model sees when its checkpoint records none"})
    success_bonus: float = field(default=1.0, metadata={"help": "progress rewards' bonus"})
    learning_starts: int = field(default=500, metadata={"help": "random steps before SAC"})
    window: int = field(default=10, metadata={"help": "episodes per curve point"})
    seed: int = field(default=0, metadata={"help": "SAC and env seed"})

    def __post_init__(self) -> None:
        for name in ("steps", "horizon", "window"):
            if getattr(self, name) < 1:
                raise ProcvlmError(f"OnlineConfig.{name}={getattr(self, name)}: need >= 1")
        if self.learning_starts >= self.steps:
            raise ProcvlmError(f"OnlineConfig.learning_starts={self.learning_starts} is not "
                               f"below steps={self.steps}: SAC would never learn")


QUICK_ONLINE = OnlineConfig(steps=120, horizon=30, learning_starts=40, window=2)
"""A test-sized run: checks the plumbing, learns nothing."""


class SparseSuccess(gym.Wrapper):
    """Reward 1 on a successful step, 0 otherwise."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, _, term, trunc, info = self.env.step(action)
        return obs, float(bool(info.get("success", False))), term, trunc, info


class TimeProgress(gym.Wrapper):
    """Reward from time-based progress Φ_t = t / horizon, shaped like ``ProgressReward``."""

    def __init__(self, env: gym.Env, horizon: int, config: RewardConfig) -> None:
        super().__init__(env)
        self.horizon, self.config, self.t = horizon, config, 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        self.t = 0
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "progress": 0.0}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, _, term, trunc, info = self.env.step(action)
        old, self.t = self.t / self.horizon, self.t + 1
        new = min(self.t / self.horizon, 1.0)
        r = float(self.config.term(np.float32([new]), np.float32([old]))[0])
        r += self.config.success_bonus * float(bool(info.get("success", False)))
        return obs, r, term, trunc, {**info, "progress": new}


class EpisodeLog(gym.Wrapper):
    """Records every episode's end step, success, closest hand-object distance and return."""

    def __init__(self, env: gym.Env, reach: float) -> None:
        super().__init__(env)
        self.reach, self.episodes, self.total = reach, [], 0
        self._closest, self._return = np.inf, 0.0

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        self._closest, self._return = float(np.linalg.norm(obs[:3] - obs[4:7])), 0.0
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, r, term, trunc, info = self.env.step(action)
        self.total += 1
        self._return += float(r)
        self._closest = min(self._closest, float(np.linalg.norm(obs[:3] - obs[4:7])))
        if term or trunc:
            self.episodes.append({"step": self.total, "success": bool(info.get("success")),
                                  "closest": self._closest, "reached": self._closest < self.reach,
                                  "return": self._return})
        return obs, r, term, trunc, info


def make_online_env(reward: str, cfg: OnlineConfig) -> EpisodeLog:
    """The task's env with one of ``REWARDS``, inside an ``EpisodeLog``."""
    from procvlm.policy.envs import make_env
    from procvlm.reward.wrapper import ProgressReward, model_camera
    from procvlm.sim.tasks import get_task

    if reward not in REWARDS:
        raise ProcvlmError(f"unknown online reward {reward!r}: choose one of {REWARDS}")
    spec = get_task(cfg.task)
    env = make_env(cfg.task, max_steps=cfg.horizon, terminate_on_success=True)
    shaping = RewardConfig(success_bonus=cfg.success_bonus)
    if reward == "sparse":
        env = SparseSuccess(env)
    elif reward == "time":
        env = TimeProgress(env, cfg.horizon, shaping)
    else:
        from procvlm.models import load_model

        model = load_model(cfg.model)
        render = model_camera(model, cfg.camera)
        env = ProgressReward(env, model, spec.instruction, spec.plan, shaping, render=render)
    return EpisodeLog(env, spec.reach)


def train_online(reward: str, cfg: OnlineConfig) -> list[dict]:
    """SAC for ``cfg.steps`` environment steps with ``reward``; returns the episode log."""
    try:
        from stable_baselines3 import SAC
    except ImportError as e:
        raise ProcvlmError("the online check needs stable-baselines3: pip install "
                           "'procvlm[policy]'") from e
    env = make_online_env(reward, cfg)
    env.reset(seed=cfg.seed)
    agent = SAC("MlpPolicy", env, learning_starts=cfg.learning_starts, batch_size=128,
                policy_kwargs={"net_arch": [128, 128]}, seed=cfg.seed, device="cpu", verbose=0)
    agent.learn(total_timesteps=cfg.steps)
    env.close()
    return env.episodes


def curve(episodes: list[dict], key: str, window: int) -> tuple[list[int], list[float]]:
    """(steps, rate): the mean of ``key`` over each episode's last ``window`` episodes."""
    steps = [e["step"] for e in episodes]
    vals = np.array([float(e[key]) for e in episodes])
    rates = [float(vals[max(0, i - window + 1):i + 1].mean()) for i in range(len(vals))]
    return steps, rates


def steps_to_reach(steps: list[int], rates: list[float], target: float) -> int | None:
    """First step at which a curve reaches ``target`` (None if never, or target 0)."""
    if target <= 0:
        return None
    return next((s for s, r in zip(steps, rates) if r >= target), None)


@dataclass
class OnlineResult:
    out: Path
    table: str
    json: Path
    chart: Path
    summary: dict


def _chart(logs: dict[str, list[dict]], cfg: OnlineConfig, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, name in ((axes[0], "success", "success rate"),
                          (axes[1], "reached", "reach rate (hand within reach of object)")):
        for reward, eps in logs.items():
            ax.plot(*curve(eps, key, cfg.window), label=reward)
        ax.set_xlabel("environment steps")
        ax.set_ylabel(f"{name}\n(last {cfg.window} episodes)", fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=7)
    fig.suptitle(f"SAC on {cfg.task}, {cfg.steps} steps per reward", fontsize=9)
    fig.tight_layout()
    path = out / "online.png"
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def run_online(out: str | Path, config: OnlineConfig | None = None) -> OnlineResult:
    """Train SAC with every reward and write ``online.json``, ``online.md``, ``online.png``."""
    cfg = config or OnlineConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    logs: dict[str, list[dict]] = {}
    for reward in REWARDS:
        path = out / f"online_{reward}.json"
        if path.is_file() and _read(path)["config"] == asdict(cfg):
            logs[reward] = _read(path)["episodes"]
            continue
        logs[reward] = train_online(reward, cfg)
        write_json(path, {"config": asdict(cfg), "episodes": logs[reward]})
    summary = _summary(logs, cfg)
    table = _table(summary)
    write_json(out / "online.json", {"config": asdict(cfg), "rewards": summary})
    write_text(out / "online.md", f"# Online check: SAC on {cfg.task}\n\n{table}")
    return OnlineResult(out, table, out / "online.json", _chart(logs, cfg, out), summary)


def _read(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def _summary(logs: dict[str, list[dict]], cfg: OnlineConfig) -> dict:
    out = {}
    target = None
    for reward in REWARDS:
        eps = logs[reward]
        steps, rates = curve(eps, "success", cfg.window)
        final = rates[-1] if rates else 0.0
        if reward == "sparse":
            target = final
        last = eps[-cfg.window:]
        out[reward] = {"episodes": len(eps), "final_success": final,
                       "final_reach": float(np.mean([e["reached"] for e in last])) if last else 0.0,
                       "successes": int(sum(e["success"] for e in eps)),
                       "steps_to_sparse_final": steps_to_reach(steps, rates, target or 0.0)}
    return out


def _table(summary: dict) -> str:
    rows = ["| reward | episodes | successes | final success | final reach | steps to sparse's "
            "final success |", "|---|---|---|---|---|---|"]
    for reward, d in summary.items():
        hit = d["steps_to_sparse_final"]
        rows.append(f"| {reward} | {d['episodes']} | {d['successes']} | "
                    f"{100 * d['final_success']:.0f}% | {100 * d['final_reach']:.0f}% | "
                    f"{hit if hit is not None else 'never (or target 0)'} |")
    return "\n".join(rows) + "\n"
