"""A MetaWorld corpus written as a LeRobot v3 dataset, resumable episode by episode."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from procvlm.errors import ProcvlmError
from procvlm.sim.env import ACTION_NAMES, STATE_NAMES
from procvlm.sim.failures import FAILURE_MODES
from procvlm.sim.rollout import FPS, rollout
from procvlm.sim.tasks import TaskSpec, parse_tasks

log = logging.getLogger(__name__)


def episode_plans(episodes: int, tasks: Sequence[TaskSpec], failure_rate: float,
                  seed: int) -> list[tuple[TaskSpec, int, str | None]]:
    """Task, seed and failure mode of each episode, a pure function of the arguments.

    Tasks go round-robin; episode i's seed is drawn from (seed, i); an episode fails with
    probability ``failure_rate`` (drawn from (seed, i) too), and the failing episodes cycle
    through ``FAILURE_MODES`` in order.
    """
    plans, failing = [], 0
    for i in range(episodes):
        rng = np.random.default_rng([int(seed), int(i)])
        ep_seed = int(rng.integers(0, 2**31 - 1))
        failure = None
        if rng.random() < failure_rate:
            failure = FAILURE_MODES[failing % len(FAILURE_MODES)]
            failing += 1
        plans.append((tasks[i % len(tasks)], ep_seed, failure))
    return plans


def generate(out: str | Path, tasks: str | Sequence[str], episodes: int, failure_rate: float,
             seed: int, width: int = 128, height: int = 128, *,
             cameras: Sequence[str] = ("corner", "gripper"), max_steps: int = 300,
             video: bool = True, progress: bool = True) -> Path:
    """Write ``episodes`` MetaWorld episodes to a LeRobot v3 dataset at ``out``.

    Running it again on the same folder resumes: episodes already written are not redone.

    Args:
        out: dataset folder.
        tasks: task names (list or comma-separated), used round-robin.
        episodes: number of episodes in the finished dataset.
        failure_rate: probability that an episode gets a failure mode injected.
        seed: seed of the whole corpus.
        width: image width.
        height: image height.
        cameras: short camera names, the first is the main one.
        max_steps: most frames per episode.
        video: store mp4 videos (True) or PNG images.
        progress: show a tqdm progress bar.

    Returns:
        The dataset folder.

    Raises:
        ProcvlmError: bad task names, counts or rates.
    """
    from procvlm.data.lerobot import LeRobotWriter

    specs = parse_tasks(tasks)
    if episodes < 1:
        raise ProcvlmError(f"episodes={episodes}: pass at least 1")
    if not 0.0 <= failure_rate <= 1.0:
        raise ProcvlmError(f"failure_rate={failure_rate} is outside [0, 1]: pass e.g. 0.5")
    cams = tuple(cameras)
    writer = LeRobotWriter(out, fps=FPS, cameras={c: (int(height), int(width)) for c in cams},
                           state_dim=len(STATE_NAMES), action_dim=len(ACTION_NAMES),
                           robot_type="sawyer", video=video, state_names=STATE_NAMES,
                           action_names=ACTION_NAMES)
    done = writer.done_episodes
    plans = episode_plans(episodes, specs, failure_rate, seed)
    todo = [i for i in range(episodes) if i not in done]
    if done:
        log.info("%s already holds %d episodes; generating %d more", out, len(done), len(todo))
    for i in tqdm(todo, desc="generate", unit="ep", disable=not progress):
        spec, ep_seed, failure = plans[i]
        ep = rollout(spec, ep_seed, failure, width=width, height=height, cameras=cams,
                     max_steps=max_steps, episode_index=i)
        writer.add_episode(ep)
    writer.finalize()
    return Path(out)
