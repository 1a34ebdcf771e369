"""Policy rollouts on MetaWorld, state only (no rendering) for speed, with the sub-step oracle
watching, so a failed rollout says where it failed; and a rendered replay of one rollout for a
frame strip."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from procvlm.data.episode import ArrayFrames, Episode
from procvlm.policy.bc import MLPPolicy
from procvlm.sim.env import SimEnv
from procvlm.sim.oracle import SubstepOracle
from procvlm.sim.tasks import TaskSpec

logger = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 1_000_000
"""Rollout k starts from seed ``EVAL_SEED_OFFSET + k``: start states no training episode saw
(training seeds are drawn below 2**31 from the corpus seed; a clash is possible in principle
and harmless, since the same start does not mean the same actions)."""


@dataclass(frozen=True)
class Rollout:
    """One evaluated rollout.

    Attributes:
        seed: the start state's seed.
        success: MetaWorld's success flag came on (the rollout stops there).
        steps: steps taken.
        reached: plan steps completed by the end (the oracle's furthest pointer).
        dropped: the oracle saw a completed step undone (object lost).
        outcome: "success", "dropped" or ``stuck: <first step not completed>``.
    """

    seed: int
    success: bool
    steps: int
    reached: int
    dropped: bool
    outcome: str


def _outcome(success: bool, oracle: SubstepOracle) -> tuple[int, bool, str]:
    reached = oracle.max_completed + 1
    dropped = bool(oracle.regressions)
    if success:
        return reached, dropped, "success"
    if dropped:
        return reached, dropped, "dropped"
    step = oracle.plan[min(reached, len(oracle.plan) - 1)]
    return reached, dropped, f"stuck: {step}"


def run_policy(sim: SimEnv, policy: MLPPolicy, seed: int, horizon: int,
               record: bool = False) -> tuple[Rollout, dict | None]:
    """Roll ``policy`` out from ``seed`` for at most ``horizon`` steps.

    Args:
        sim: the task's environment (its cameras are used only when ``record``).
        policy: the policy.
        seed: start state.
        horizon: most steps.
        record: also render the main camera and keep states, actions and the oracle.

    Returns:
        The rollout and, when ``record``, its frames, states, actions and oracle.
    """
    obs = sim.reset(seed)
    oracle = SubstepOracle(sim.spec, obs[4:7].copy())
    frames, states, actions = [], [], []
    success, t = False, 0
    for t in range(horizon):
        oracle.update(t, sim.facts(obs, success))
        action = policy.act(obs)
        if record:
            frames.append(sim.render()[sim.cameras.names[0]])
            states.append(obs.copy())
            actions.append(action)
        obs, success = sim.step(action)
        if success:
            break
    reached, dropped, outcome = _outcome(success, oracle)
    result = Rollout(int(seed), bool(success), t + 1, reached, dropped, outcome)
    trace = {"frames": frames, "states": states, "actions": actions,
             "oracle": oracle} if record else None
    return result, trace


def evaluate(sim: SimEnv, policy: MLPPolicy, rollouts: int, horizon: int) -> list[Rollout]:
    """``rollouts`` rollouts from seeds ``EVAL_SEED_OFFSET + k`` (the same for every policy)."""
    return [run_policy(sim, policy, EVAL_SEED_OFFSET + k, horizon)[0] for k in range(rollouts)]


def replay_strip(sim: SimEnv, spec: TaskSpec, policy: MLPPolicy, rollout: Rollout, horizon: int,
                 out: str | Path, title: str, model=None) -> Path:
    """Render a rollout again (same seed, deterministic) and draw its frame strip, with the
    progress model's curve under it when ``model`` is given."""
    from procvlm.viz.strip import draw_strip

    _, trace = run_policy(sim, policy, rollout.seed, min(horizon, rollout.steps), record=True)
    ep = Episode(episode_index=0, task=spec.instruction, fps=20.0,
                 frames={sim.cameras.names[0]: ArrayFrames(np.stack(trace["frames"]))},
                 state=np.asarray(trace["states"], np.float32),
                 action=np.asarray(trace["actions"], np.float32), success=rollout.success,
                 subtasks=trace["oracle"].subtasks(), plan=spec.plan)
    curves = None
    if model is not None:
        curves = {"compact model": model.predict(ep).progress}
    return draw_strip(ep, out, curves=curves, title=title)
