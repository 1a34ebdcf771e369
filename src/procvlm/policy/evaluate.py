"""Policy rollouts on MetaWorld, state only (no renderer) and several environments in lockstep
with one batched policy call per step, for speed, with the sub-step oracle watching, so a
failed rollout says where it failed; and a rendered replay of one rollout for a frame strip."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from procvlm.data.episode import ArrayFrames, Episode
from procvlm.errors import ProcvlmError
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


def state_envs(spec: TaskSpec, n: int) -> list[SimEnv]:
    """``n`` environments of one task without cameras (no renderer: a state policy's rollouts
    need none), for ``run_batch``."""
    return [SimEnv(spec, cameras=()) for _ in range(n)]


class _Live:
    """One rollout in progress inside ``run_batch``."""

    def __init__(self, sim: SimEnv, seed: int) -> None:
        self.sim, self.seed = sim, int(seed)
        self.obs = sim.reset(seed)
        self.oracle = SubstepOracle(sim.spec, self.obs[4:7].copy())
        self.success, self.steps = False, 0

    def result(self) -> Rollout:
        reached, dropped, outcome = _outcome(self.success, self.oracle)
        return Rollout(self.seed, bool(self.success), self.steps, reached, dropped, outcome)


def run_batch(sims: list[SimEnv], policy: MLPPolicy, seeds: list[int], horizon: int,
              record: int | None = None) -> tuple[list[Rollout], dict | None]:
    """Roll ``policy`` out from ``seeds`` in lockstep, one environment each, with one batched
    policy call per step (rollouts that succeed stop; the others go on to ``horizon``).

    Args:
        sims: at least ``len(seeds)`` environments of the task.
        policy: the policy.
        seeds: start states.
        horizon: most steps.
        record: index of the rollout to record: its environment renders its first camera,
            and its states, actions and oracle are kept. The batch runs exactly as without.

    Returns:
        One rollout per seed and, when ``record`` is given, that rollout's trace.
    """
    if len(sims) < len(seeds):
        raise ProcvlmError(f"{len(seeds)} seeds for {len(sims)} environments: pass one each")
    live = [_Live(sim, s) for sim, s in zip(sims, seeds)]
    trace: dict = {"frames": [], "states": [], "actions": []}
    for t in range(horizon):
        active = [r for r in live if not r.success and r.steps == t]
        if not active:
            break
        for r in active:
            r.oracle.update(t, r.sim.facts(r.obs, False))
        actions = policy.act(np.stack([r.obs for r in active]))  # (B, A)
        for r, action in zip(active, actions):
            if record is not None and r is live[record]:
                trace["frames"].append(r.sim.render()[r.sim.cameras.names[0]])
                trace["states"].append(r.obs.copy())
                trace["actions"].append(action)
            r.obs, r.success = r.sim.step(action)
            r.steps = t + 1
    if record is not None:
        trace["oracle"] = live[record].oracle
    return [r.result() for r in live], (trace if record is not None else None)


def evaluate(sims: list[SimEnv], policy: MLPPolicy, rollouts: int,
             horizon: int) -> list[Rollout]:
    """``rollouts`` rollouts from seeds ``EVAL_SEED_OFFSET + k`` (the same for every policy),
    ``len(sims)`` at a time in lockstep (``run_batch``)."""
    seeds = [EVAL_SEED_OFFSET + k for k in range(rollouts)]
    out: list[Rollout] = []
    for a in range(0, rollouts, len(sims)):
        out += run_batch(sims, policy, seeds[a:a + len(sims)], horizon)[0]
    return out


def replay_strip(sims: list[SimEnv], camera_sim: SimEnv, policy: MLPPolicy, rollout: Rollout,
                 rollouts: int, horizon: int, out: str | Path, title: str,
                 model=None) -> Path:
    """Render a rollout of ``evaluate`` again and draw its frame strip, with the progress
    model's curve under it when ``model`` is given.

    The rollout's lockstep batch runs again exactly as ``evaluate(sims, policy, rollouts, ...)``
    ran it (same seeds, same batched policy calls), with ``camera_sim`` in the recorded
    rollout's place.
    """
    from procvlm.viz.strip import draw_strip

    k = rollout.seed - EVAL_SEED_OFFSET
    a = k - k % len(sims)
    batch = list(sims)
    batch[k - a] = camera_sim
    seeds = [EVAL_SEED_OFFSET + j for j in range(a, min(a + len(sims), rollouts))]
    _, trace = run_batch(batch, policy, seeds, horizon, record=k - a)
    spec = camera_sim.spec
    ep = Episode(episode_index=0, task=spec.instruction, fps=20.0,
                 frames={camera_sim.cameras.names[0]: ArrayFrames(np.stack(trace["frames"]))},
                 state=np.asarray(trace["states"], np.float32),
                 action=np.asarray(trace["actions"], np.float32), success=rollout.success,
                 subtasks=trace["oracle"].subtasks(), plan=spec.plan)
    curves = None
    if model is not None:
        curves = {"compact model": model.predict(ep).progress}
    return draw_strip(ep, out, curves=curves, title=title)
