"""MetaWorld v3 demonstrations: scripted experts rendered from two cameras, an oracle that names
the sub-step under way at every frame, and deterministic failure injection.

Needs the ``sim`` extra (mujoco, metaworld, gymnasium); set ``MUJOCO_GL=egl`` when headless.
"""

from procvlm.sim.env import ACTION_NAMES, CAMERAS, STATE_NAMES
from procvlm.sim.failures import FAILURE_MODES
from procvlm.sim.corpus import episode_plans, generate
from procvlm.sim.rollout import DONE_TAIL, FPS, close_envs, rollout
from procvlm.sim.tasks import TASKS, TaskSpec, get_task, parse_tasks

__all__ = ["ACTION_NAMES", "CAMERAS", "DONE_TAIL", "FAILURE_MODES", "FPS", "STATE_NAMES", "TASKS",
           "TaskSpec", "close_envs", "episode_plans", "generate", "get_task", "parse_tasks",
           "rollout"]
