"""One MetaWorld episode: the scripted expert (possibly with an injected failure), rendered
from two cameras, with the oracle's sub-step timeline."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from procvlm.data.episode import ArrayFrames, Episode
from procvlm.errors import ProcvlmError
from procvlm.sim.env import SimEnv
from procvlm.sim.failures import FAILURE_MODES, Injector, check_failure
from procvlm.sim.oracle import SubstepOracle
from procvlm.sim.randomize import episode_draw
from procvlm.sim.pacing import Pacer, check_pacing
from procvlm.sim.tasks import TaskSpec, get_task
from procvlm.sim.truth import TruthTracker

log = logging.getLogger(__name__)

FPS = 20.0
"""Playback rate stored with the episodes (one frame per environment step)."""

DONE_TAIL = 10
"""Frames recorded after the task is done (the "done" tail)."""

MAX_PATH_LENGTH = 500
"""MetaWorld's horizon: an environment cannot step more often than this."""

_SIMS: dict[tuple, SimEnv] = {}


def _sim(spec: TaskSpec, width: int, height: int, cameras: tuple[str, ...],
         antialias: bool) -> SimEnv:
    """A cached environment (building one parses XML and opens a GL context)."""
    key = (spec.name, width, height, cameras, antialias)
    if key not in _SIMS:
        if len(_SIMS) >= 12:
            close_envs()
        _SIMS[key] = SimEnv(spec, width=width, height=height, cameras=cameras,
                            antialias=antialias)
    return _SIMS[key]


def close_envs() -> None:
    """Close every cached environment and renderer."""
    while _SIMS:
        _SIMS.popitem()[1].close()


def _failure_rng(seed: int, failure: str | None) -> np.random.Generator:
    mode = FAILURE_MODES.index(failure) + 1 if failure else 0
    return np.random.default_rng([int(seed) % (2**63), mode])


def _pacing_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) % (2**63), 1000])


def rollout(task: str | TaskSpec, seed: int, failure: str | None = None, *, width: int = 128,
            height: int = 128, cameras: Sequence[str] = ("corner", "gripper"),
            max_steps: int = 300, episode_index: int = 0, randomize: str = "none",
            pacing: str = "scripted", antialias: bool = False) -> Episode:
    """Run the scripted expert on ``task`` and record an episode.

    Args:
        task: task name (see ``procvlm.sim.TASKS``) or spec.
        seed: draws the object and goal positions and the failure's parameters.
        failure: None for an expert episode, or one of ``FAILURE_MODES``.
        width: image width of every camera.
        height: image height of every camera.
        cameras: short camera names (``procvlm.sim.CAMERAS``); the first is the main one.
        max_steps: most frames recorded (MetaWorld's horizon is 500).
        episode_index: index stored in the episode.
        randomize: rendering conditions (``procvlm.sim.randomize``): "none" renders MetaWorld's
            own scene; "train", "train-views" or "heldout" draw camera, lighting, colours, orientation and
            resolution from ``seed`` (visual only: the states are the same).
        pacing: ``"scripted"`` (the expert's constant pace) or ``"human"`` (uneven pace,
            hesitations, overshoot, re-grasps: ``procvlm.sim.pacing``), drawn from ``seed``.
        antialias: render with 4x multisampling (smoother edges, a frame about twice as
            expensive to generate on a software renderer); visual only.

    Returns:
        The episode with frames, the 39-d observations as state, the applied 4-d actions,
        MetaWorld's success, the oracle's sub-step timeline and plan, simulator-truth progress
        (``procvlm.sim.truth``) and ``meta`` with the failure mode, the pacing and the events
        (failures, pacing, the oracle's regressions).

    Raises:
        ProcvlmError: unknown task, failure mode, pacing or camera, or bad sizes.
    """
    spec = task if isinstance(task, TaskSpec) else get_task(task)
    check_failure(failure)
    check_pacing(pacing)
    if not 1 <= max_steps <= MAX_PATH_LENGTH:
        raise ProcvlmError(f"max_steps={max_steps} is outside 1..{MAX_PATH_LENGTH} "
                           "(MetaWorld's horizon): pass a smaller value")
    cameras = tuple(cameras)
    if not cameras:
        raise ProcvlmError("no camera given: pass e.g. cameras=('corner', 'gripper')")
    draw = episode_draw(randomize, seed)
    sim = _sim(spec, int(width), int(height), cameras, bool(antialias))
    sim.set_render(draw)
    obs = sim.reset(seed)
    oracle = SubstepOracle(spec, obs[4:7].copy())
    injector = Injector(failure, _failure_rng(seed, failure), len(spec.plan))
    pacer = Pacer(pacing, _pacing_rng(seed), len(spec.plan), grasps=spec.kind == "pick")
    truth = TruthTracker(spec)
    record = _run(sim, obs, oracle, (pacer, injector), truth, max_steps)
    events = sorted(injector.events + oracle.regressions + pacer.finish(len(record["state"])),
                    key=lambda e: e.get("frame", e.get("start", 0)))
    length = len(record["state"])
    for e in events:  # a stall can outlast the episode (the task finished while the arm coasted)
        if "end" in e:
            e["end"] = min(int(e["end"]), length)
    return Episode(
        episode_index=episode_index, task=spec.instruction, fps=FPS,
        frames={c: ArrayFrames(np.stack(record["frames"][c])) for c in cameras},
        state=np.asarray(record["state"], dtype=np.float32),
        action=np.asarray(record["action"], dtype=np.float32),
        success=record["success"], subtasks=oracle.subtasks(), plan=spec.plan,
        meta={"env": "metaworld", "env_name": spec.env_name, "task_name": spec.name,
              "failure": failure, "pacing": pacing, "events": events, "seed": int(seed),
              "render": draw.to_dict() if draw is not None else None},
        true_progress=truth.array(),
    )


def _run(sim: SimEnv, obs: np.ndarray, oracle: SubstepOracle, actors: tuple[Pacer, Injector],
         truth: TruthTracker, max_steps: int) -> dict:
    """The control loop: frame t records observation t and the action applied at t (the
    expert's, paced, then changed by the failure injected)."""
    pacer, injector = actors
    frames: dict[str, list[np.ndarray]] = {c: [] for c in sim.cameras.names}
    states, actions = [], []
    success_now, final, done_at = False, False, None
    last = np.zeros(4)
    for t in range(max_steps):
        if injector.mode == "truncate" and success_now:
            injector.truncate_at(t - 1)          # cut before the success frame
            break
        for name, img in sim.render().items():
            frames[name].append(img)
        facts = sim.facts(obs, success_now)
        oracle.update(t, facts)
        truth.update(facts)
        final = success_now  # success of the last recorded frame
        paced = pacer.action(t, sim.expert_action(obs), oracle, last)
        action = injector.action(t, paced, oracle, last)
        states.append(obs.copy())
        actions.append(action)
        if oracle.done and done_at is None:
            done_at = t
        if (done_at is not None and t >= done_at + DONE_TAIL) or \
                (injector.stop_at is not None and t >= injector.stop_at):
            break
        obs, success_now = sim.step(action)
        last = action
    # The task counts as achieved when MetaWorld's flag completed the plan in order (the expert
    # may overshoot in the 'done' tail, as stick-pull's does) or holds on the last recorded
    # frame; a flag that flickered on once mid-episode (a puck pushed through the goal region
    # and on past it, the plan unfinished) does not count.
    success = bool(oracle.done or final)
    return {"frames": frames, "state": states, "action": actions, "success": success}
