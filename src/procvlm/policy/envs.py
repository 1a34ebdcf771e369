"""MetaWorld tasks as plain gymnasium environments (state observations, seeded resets), the
way ``procvlm generate`` sets them up: goal observable, object and goal drawn from the seed."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from procvlm.errors import ProcvlmError
from procvlm.sim.tasks import get_task


class SeededReset(gym.Wrapper):
    """``reset(seed=s)`` places object and goal as ``procvlm generate``'s episode seed ``s``
    does (MetaWorld's own reset ignores gymnasium's seed argument for that)."""

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        base = self.env.unwrapped
        if seed is not None:
            base.seed(int(seed) % (2**32))
        base._did_see_sim_exception = False
        return self.env.reset(options=options)


def make_env(task: str, max_steps: int = 200, terminate_on_success: bool = False) -> gym.Env:
    """One MetaWorld v3 task as a gymnasium env with a ``max_steps`` time limit.

    Args:
        task: a ``procvlm.sim.TASKS`` name ("pick-place").
        max_steps: episode length limit (MetaWorld allows 500).
        terminate_on_success: end the episode on the first step with ``info["success"]``.
    """
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    from procvlm.sim.env import metaworld_env

    if not 1 <= max_steps <= 500:
        raise ProcvlmError(f"max_steps={max_steps}: need 1..500 (MetaWorld's horizon)")
    env = metaworld_env(get_task(task))
    env.max_path_length = 500
    wrapped: gym.Env = SeededReset(env)
    if terminate_on_success:
        wrapped = TerminateOnSuccess(wrapped)
    return gym.wrappers.TimeLimit(wrapped, max_episode_steps=max_steps)


class TerminateOnSuccess(gym.Wrapper):
    """Ends an episode on its first successful step."""

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, reward, term, trunc, info = self.env.step(np.asarray(action, np.float32))
        return obs, reward, bool(term or info.get("success", False)), trunc, info
