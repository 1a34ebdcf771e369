"""Progress as an online reward: gymnasium wrappers that render the camera a progress model was
trained on, keep each (sub-)environment's recent frames, score all of them in one batch and
turn the estimates into a dense reward.

Rewards of a transition s -> s' with progress Φ (the model's estimate, in [0, 1]):
- ``delta`` (default): ``clip(Φ(s') - Φ(s), -clip, clip)``;
- ``potential``: ``gamma * Φ(s') - Φ(s)`` (potential-based shaping, keeps the optimal policy);
plus ``done_bonus`` times the model's probability that the task is finished (its own success
detector, ``ProgressPrediction.done``: the compact model's reasoning head gives it), plus
``success_bonus`` on every step whose ``info["success"]`` is true (the simulator's truth), plus
``env_weight`` times the environment's own reward. The raw progress goes into
``info["progress"]``, the model's P(done) into ``info["p_done"]`` when it gives one, the
model's part of the reward (progress term and done bonus) into ``info["progress_reward"]``.

Scoring: ``ModelScorer`` runs any ``ProgressModel`` in-process (``score_last``: the compact
model scores every sub-environment's window in one forward pass); ``RemoteScorer`` asks a
``procvlm serve`` server (``POST /v1/progress``), one request per sub-environment sent
together, which the server batches.

Asynchronous scoring (``asynchronous=True``): a worker thread scores the frames of step t while
the simulator computes step t+1, so a reward arrives one step late. On the step an episode ends
the wrapper waits for its last score, so that step carries both pending rewards and an episode's
rewards sum to the same total as with synchronous scoring.
"""

from __future__ import annotations

import abc
import base64
import io
import logging
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np

from procvlm.data.episode import ArrayFrames
from procvlm.errors import ProcvlmError
from procvlm.models.base import LastScores, ProgressModel

logger = logging.getLogger(__name__)

FRAME_KEY = "procvlm_frame"
"""The ``info`` key ``RenderFrame`` puts each step's camera image under."""

MODES = ("delta", "potential")


@dataclass(frozen=True)
class RewardConfig:
    """How progress becomes a reward (see the module docstring)."""

    mode: str = field(default="delta", metadata={"help": "'delta' or 'potential'"})
    clip: float = field(default=0.2, metadata={"help": "delta mode: |reward| cap per step"})
    gamma: float = field(default=0.99, metadata={"help": "potential mode: discount"})
    scale: float = field(default=1.0, metadata={"help": "multiplies the progress term"})
    success_bonus: float = field(default=0.0, metadata={"help": "added while info['success']"})
    done_bonus: float = field(default=0.0, metadata={
        "help": "times the model's P(done), added every step (needs a model that gives it)"})
    env_weight: float = field(default=0.0, metadata={"help": "weight of the env's own reward"})
    asynchronous: bool = field(default=False, metadata={"help": "score in a worker thread; "
                                                                 "rewards lag one step"})

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ProcvlmError(f"RewardConfig.mode={self.mode!r}: choose one of {MODES}")
        if self.clip <= 0:
            raise ProcvlmError(f"RewardConfig.clip={self.clip}: need > 0 (e.g. 0.2)")
        if not 0.0 < self.gamma <= 1.0:
            raise ProcvlmError(f"RewardConfig.gamma={self.gamma}: need 0 < gamma <= 1")

    def term(self, new: np.ndarray, old: np.ndarray) -> np.ndarray:
        """The progress term of transitions with potentials ``old`` -> ``new``."""
        if self.mode == "delta":
            r = np.clip(new - old, -self.clip, self.clip)
        else:
            r = self.gamma * new - old
        return (self.scale * r).astype(np.float32)


# ----------------------------------------------------------------------------- scorers
class ProgressScorer(abc.ABC):
    """Scores the newest frame of a batch of clips (one per sub-environment).

    Subclasses implement ``score`` (progress); those that also know the model's P(done)
    override ``score_done``, which the reward tracker calls.
    """

    history: int = 1
    """Frames (newest included) each clip must hold once the stream is that long."""
    anchored: bool = False
    """Each clip must start with its episode's first frame (an anchored model: the tracker
    puts it in front of the recent frames once they no longer hold it)."""

    @abc.abstractmethod
    def score(self, clips: Sequence[np.ndarray], tasks: Sequence[str],
              plans: Sequence[list[str] | None]) -> np.ndarray:
        """(B,) progress at the last frame of each (n_i, H, W, 3) uint8 clip."""

    def score_done(self, clips: Sequence[np.ndarray], tasks: Sequence[str],
                   plans: Sequence[list[str] | None]) -> LastScores:
        """Progress and P(done) at the last frame of each clip (``done`` None by default)."""
        return LastScores(np.asarray(self.score(clips, tasks, plans), np.float32), None)

    def close(self) -> None:
        """Release connections (nothing by default)."""


class ModelScorer(ProgressScorer):
    """An in-process ``ProgressModel``; the batch goes to ``model.score_last`` at once."""

    def __init__(self, model: ProgressModel) -> None:
        self.model = model
        self.history = int(model.history)
        self.anchored = bool(model.anchored)

    def score(self, clips: Sequence[np.ndarray], tasks: Sequence[str],
              plans: Sequence[list[str] | None]) -> np.ndarray:
        return self.score_done(clips, tasks, plans).progress

    def score_done(self, clips: Sequence[np.ndarray], tasks: Sequence[str],
                   plans: Sequence[list[str] | None]) -> LastScores:
        items = [(ArrayFrames(np.asarray(c, np.uint8)), t, p)
                 for c, t, p in zip(clips, tasks, plans)]
        return self.model.score_last(items)


def encode_png(frame: np.ndarray) -> str:
    """Base64 PNG of one (H, W, 3) uint8 frame, as ``/v1/progress`` takes frames."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(frame, np.uint8)).save(buf, format="PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode()


class RemoteScorer(ProgressScorer):
    """A ``procvlm serve`` server: one ``/v1/progress`` request per clip, all in flight at once.

    Args:
        url: server root, e.g. ``http://127.0.0.1:8000``.
        history: frames sent per request (the served model's window span; 13 for the shipped
            compact model).
        anchored: the served model is anchored (``ProgressModel.anchored``): every request
            also starts with the episode's first frame.
        timeout: seconds per request.
        max_parallel: most requests in flight.
    """

    def __init__(self, url: str, history: int = 13, timeout: float = 60.0,
                 max_parallel: int = 16, anchored: bool = False) -> None:
        import httpx

        if history < 1:
            raise ProcvlmError(f"RemoteScorer history={history}: need >= 1 frame")
        self.url = url.rstrip("/") + "/v1/progress"
        self.history = int(history)
        self.anchored = bool(anchored)
        self._client = httpx.Client(timeout=timeout)
        self._pool = ThreadPoolExecutor(max_parallel, thread_name_prefix="procvlm-remote")

    def _post(self, clip: np.ndarray, task: str, plan: list[str] | None
              ) -> tuple[float, float | None]:
        body: dict[str, Any] = {"task": task, "frames": [encode_png(f) for f in clip]}
        if plan:
            body["plan"] = list(plan)
        resp = self._client.post(self.url, json=body)
        if resp.status_code != 200:
            raise ProcvlmError(f"{self.url} answered {resp.status_code}: {resp.text[:200]} "
                               "(is `procvlm serve` running with a progress model?)")
        answer = resp.json()
        done = answer.get("done")
        return float(answer["progress"][-1]), None if not done else float(done[-1])

    def score(self, clips: Sequence[np.ndarray], tasks: Sequence[str],
              plans: Sequence[list[str] | None]) -> np.ndarray:
        return self.score_done(clips, tasks, plans).progress

    def score_done(self, clips: Sequence[np.ndarray], tasks: Sequence[str],
                   plans: Sequence[list[str] | None]) -> LastScores:
        futures = [self._pool.submit(self._post, c, t, p) for c, t, p in zip(clips, tasks, plans)]
        answers = [f.result() for f in futures]
        return LastScores.collect([a[0] for a in answers], [a[1] for a in answers])

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()


def make_scorer(source: ProgressModel | ProgressScorer | str, history: int = 13) -> ProgressScorer:
    """A scorer from a model, a scorer, an ``http(s)://`` server URL or a checkpoint path/name."""
    if isinstance(source, ProgressScorer):
        return source
    if isinstance(source, ProgressModel):
        return ModelScorer(source)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        return RemoteScorer(source, history=history)
    from procvlm.models.base import load_model

    return ModelScorer(load_model(source))


# ----------------------------------------------------------------------------- rendering
def metaworld_camera(camera: str = "corner", size: int = 64) -> Callable[[gym.Env], np.ndarray]:
    """A render function for MetaWorld envs drawing ``camera`` at ``size`` x ``size`` the way
    ``procvlm generate`` does (same flips, no shadows), so frames match the training data."""
    from procvlm.sim.env import Cameras

    cache: dict[int, Cameras] = {}

    def render(env: gym.Env) -> np.ndarray:
        base = env.unwrapped
        key = id(base)
        if key not in cache:
            cache[key] = Cameras(base.model, (camera,), size, size)
        return cache[key].render(base.data)[camera]

    return render


def model_camera(model: ProgressModel, camera: str = "corner",
                 size: int | None = None) -> Callable[[gym.Env], np.ndarray]:
    """``metaworld_camera`` for the camera and image size ``model`` was trained on (its
    ``trained_on``); ``camera`` and ``size`` (default: the model's config image size) fill in
    what the checkpoint does not record."""
    seen = model.trained_on
    side = seen.image_size or size or getattr(getattr(model, "config", None), "image_size", None)
    if side is None:
        raise ProcvlmError("the model records no image size: pass size=... (e.g. 64)")
    return metaworld_camera(seen.camera or camera, int(side))


class RenderFrame(gym.Wrapper):
    """Puts the camera image of every reset and step into ``info[FRAME_KEY]``.

    Wrap each sub-environment of a vector env with it, so frames are drawn where the env runs
    (in parallel with ``AsyncVectorEnv``).
    """

    def __init__(self, env: gym.Env, render: Callable[[gym.Env], np.ndarray]) -> None:
        super().__init__(env)
        self._render = render

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, FRAME_KEY: self._render(self.env)}

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict]:
        obs, reward, term, trunc, info = self.env.step(action)
        return obs, reward, term, trunc, {**info, FRAME_KEY: self._render(self.env)}


# ----------------------------------------------------------------------------- the tracker
class ProgressTracker:
    """Frame histories, potentials and pending scores of N parallel episodes.

    Every scored batch is tagged with each env's (episode id, step); a score is used once, in
    step order, and only while its episode is current, so late (asynchronous) scores never leak
    into the next episode.
    """

    def __init__(self, scorer: ProgressScorer, tasks: Sequence[str],
                 plans: Sequence[list[str] | None], config: RewardConfig) -> None:
        n = len(tasks)
        if len(plans) != n:
            raise ProcvlmError(f"{len(plans)} plans for {n} environments: pass one per env")
        self.scorer, self.config = scorer, config
        self.tasks, self.plans = list(tasks), list(plans)
        self.frames: list[deque] = [deque(maxlen=max(1, scorer.history)) for _ in range(n)]
        self.first: list[np.ndarray | None] = [None] * n  # each episode's first frame
        self.episode = np.zeros(n, np.int64)
        self.step_no = np.zeros(n, np.int64)
        self.used = np.full(n, -1, np.int64)
        self.phi = np.zeros(n, np.float32)
        self.p_done = np.full(n, np.nan, np.float32)
        """The model's P(done) at each env's latest used score (NaN where it gives none)."""
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="procvlm-score") \
            if config.asynchronous else None
        self._pending: tuple[Future, np.ndarray, np.ndarray] | None = None

    @property
    def num_envs(self) -> int:
        return len(self.tasks)

    def _start(self, i: int, frame: np.ndarray) -> None:
        self.frames[i].clear()
        self.frames[i].append(np.asarray(frame, np.uint8))
        self.first[i] = self.frames[i][0]
        self.episode[i] += 1
        self.step_no[i], self.used[i] = 0, -1

    def _record(self, frames: np.ndarray, new: np.ndarray) -> None:
        for i in range(self.num_envs):
            if new[i]:
                self._start(i, frames[i])
            else:
                self.step_no[i] += 1
                self.frames[i].append(np.asarray(frames[i], np.uint8))

    def clips(self) -> list[np.ndarray]:
        """Every env's recent frames, oldest first; for an anchored scorer, with the episode's
        first frame in front once the recent frames no longer start with it."""
        out = []
        for i, frames in enumerate(self.frames):
            clip = list(frames)
            if self.scorer.anchored and self.step_no[i] >= len(frames):
                clip.insert(0, self.first[i])
            out.append(np.stack(clip))
        return out

    def _submit(self, wait: bool) -> tuple[Future, np.ndarray, np.ndarray]:
        """Score every env's newest frame, in the worker thread unless ``wait``."""
        args = (self.clips(), list(self.tasks), list(self.plans))
        if wait or self._pool is None:
            fut: Future = Future()
            fut.set_result(self.scorer.score_done(*args))
        else:
            fut = self._pool.submit(self.scorer.score_done, *args)
        return fut, self.episode.copy(), self.step_no.copy()

    def _consume(self, job: tuple[Future, np.ndarray, np.ndarray], rewards: np.ndarray,
                 only: np.ndarray | None = None) -> None:
        fut, episode, step = job
        result = fut.result()
        scores = np.asarray(result.progress, np.float32)
        done = result.done
        bonus = self.config.done_bonus
        if done is None and bonus:
            raise ProcvlmError(f"RewardConfig.done_bonus={bonus} needs the model's P(done), "
                               "and this scorer gives none: use a VLM or a compact model "
                               "with the reasoning head, or set done_bonus=0")
        for i in range(self.num_envs):
            if (only is not None and not only[i]) or episode[i] != self.episode[i] \
                    or step[i] <= self.used[i]:
                continue
            if step[i] > 0:
                rewards[i] += self.config.term(scores[i:i + 1], self.phi[i:i + 1])[0]
                if bonus:
                    rewards[i] += bonus * float(done[i])
            self.phi[i], self.used[i] = scores[i], step[i]
            self.p_done[i] = np.nan if done is None else done[i]

    def reset(self, frames: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Start new episodes (all, or where ``mask``) at ``frames``; returns the potentials."""
        mask = np.ones(self.num_envs, bool) if mask is None else np.asarray(mask, bool)
        self._drain()
        for i in np.flatnonzero(mask):
            self._start(int(i), frames[i])
            self.p_done[i] = np.nan
        self._consume(self._submit(wait=True), np.zeros(self.num_envs, np.float32), mask)
        return self.phi.copy()

    def _drain(self) -> None:
        if self._pending is not None:
            self._pending[0].result()
            self._pending = None

    def step(self, frames: np.ndarray, new: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Record one step of every env and return the progress rewards available now.

        Args:
            frames: (N, H, W, 3) the frame each env shows after this step.
            new: (N,) bool, this frame starts a new episode (a vector env's autoreset).
            done: (N,) bool, this frame ends its episode (terminated or truncated).
        """
        new, done = np.asarray(new, bool), np.asarray(done, bool)
        self._record(frames, new)
        rewards = np.zeros(self.num_envs, np.float32)
        job = self._submit(wait=False)
        if self._pending is not None:
            self._consume(self._pending, rewards)
        if done.any() or self._pool is None:
            self._consume(job, rewards, done if self._pool is not None else None)
        self._pending = job if self._pool is not None else None
        return rewards

    def close(self) -> None:
        self._drain()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self.scorer.close()


def _as_list(value: str | Sequence[str] | None, n: int, name: str) -> list:
    if value is None or isinstance(value, str):
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ProcvlmError(f"{len(value)} {name} for {n} environments: pass one or one per env")
    return value


def _plans(plan: list[str] | Sequence[list[str] | None] | None, n: int) -> list:
    if plan is None or (plan and isinstance(plan[0], str)):
        return [list(plan) if plan else None] * n
    return _as_list(plan, n, "plans")


def _success(info: dict, n: int) -> np.ndarray:
    s = info.get("success")
    if s is None:
        return np.zeros(n, bool)
    s = np.asarray(s, dtype=np.float64).reshape(-1)
    mask = np.asarray(info.get("_success", np.ones(n, bool)), bool).reshape(-1)
    return (s > 0) & mask


# ----------------------------------------------------------------------------- wrappers
class ProgressReward(gym.Wrapper):
    """One environment whose reward is the progress model's (see the module docstring).

    Args:
        env: the environment (5-tuple step API).
        scorer: a ``ProgressScorer``, a ``ProgressModel``, a server URL, or a checkpoint.
        task: the instruction the model is asked about.
        plan: the task's atomic actions (default: the model's plan for ``task``).
        config: reward settings.
        render: draws the model's camera from ``env`` (``metaworld_camera``); not needed when
            ``env`` is wrapped in ``RenderFrame``.
    """

    def __init__(self, env: gym.Env, scorer: Any, task: str, plan: list[str] | None = None,
                 config: RewardConfig | None = None,
                 render: Callable[[gym.Env], np.ndarray] | None = None) -> None:
        super().__init__(env)
        self.config = config or RewardConfig()
        self.tracker = ProgressTracker(make_scorer(scorer), [task], [plan], self.config)
        self._render = render

    def _frame(self, info: dict) -> np.ndarray:
        if FRAME_KEY in info:
            return np.asarray(info[FRAME_KEY])
        if self._render is None:
            raise ProcvlmError("ProgressReward has no frames: pass render=metaworld_camera(...) "
                               "or wrap the env in RenderFrame")
        return self._render(self.env)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        phi = self.tracker.reset(self._frame(info)[None])
        return obs, {**info, "progress": float(phi[0]), **self._done_info()}

    def _done_info(self) -> dict:
        p = float(self.tracker.p_done[0])
        return {} if np.isnan(p) else {"p_done": p}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, env_reward, term, trunc, info = self.env.step(action)
        term_r = self.tracker.step(self._frame(info)[None], np.zeros(1, bool),
                                   np.asarray([term or trunc]))
        c = self.config
        reward = float(term_r[0]) + c.success_bonus * float(_success(info, 1)[0]) \
            + c.env_weight * float(env_reward)
        info = {**info, "progress": float(self.tracker.phi[0]), "progress_reward": float(term_r[0]),
                "env_reward": float(env_reward), **self._done_info()}
        return obs, reward, bool(term), bool(trunc), info

    def close(self) -> None:
        self.tracker.close()
        super().close()


class VectorProgressReward(gym.vector.VectorWrapper):
    """``ProgressReward`` for a ``gymnasium.vector`` env: every sub-environment is scored in one
    batch per step. Sub-environments must be wrapped in ``RenderFrame``; autoreset must be
    gymnasium's default ``NEXT_STEP`` (the step after an episode ends starts the next one).

    Args:
        env: the vector environment.
        scorer: a ``ProgressScorer``, a ``ProgressModel``, a server URL, or a checkpoint.
        task: the instruction (one for all, or one per sub-environment).
        plan: the plan (one for all, or one per sub-environment; default: the model's).
        config: reward settings.
    """

    def __init__(self, env: gym.vector.VectorEnv, scorer: Any, task: str | Sequence[str],
                 plan: list[str] | Sequence[list[str] | None] | None = None,
                 config: RewardConfig | None = None) -> None:
        super().__init__(env)
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode != gym.vector.AutoresetMode.NEXT_STEP:
            raise ProcvlmError(f"VectorProgressReward needs autoreset_mode NEXT_STEP, the env "
                               f"has {mode}: build the vector env with the default")
        n = env.num_envs
        self.config = config or RewardConfig()
        self.tracker = ProgressTracker(make_scorer(scorer), _as_list(task, n, "tasks"),
                                       _plans(plan, n), self.config)
        self._ended = np.zeros(n, bool)

    @staticmethod
    def _frames(info: dict) -> np.ndarray:
        if FRAME_KEY not in info:
            raise ProcvlmError("the vector env gives no frames: wrap every sub-environment in "
                               "RenderFrame(env, metaworld_camera(...))")
        return np.asarray(info[FRAME_KEY])

    def reset(self, *, seed: int | list[int] | None = None,
              options: dict | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        mask = (options or {}).get("reset_mask")
        phi = self.tracker.reset(self._frames(info), mask)
        self._ended[:] = False if mask is None else self._ended & ~np.asarray(mask, bool)
        return obs, {**info, "progress": phi, "_progress": np.ones(self.num_envs, bool),
                     **self._done_info()}

    def _done_info(self) -> dict:
        p = self.tracker.p_done
        known = ~np.isnan(p)
        return {"p_done": np.nan_to_num(p), "_p_done": known} if known.any() else {}

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, env_reward, term, trunc, info = self.env.step(actions)
        done = np.asarray(term, bool) | np.asarray(trunc, bool)
        term_r = self.tracker.step(self._frames(info), self._ended, done)
        self._ended = done
        c = self.config
        reward = term_r + c.success_bonus * _success(info, self.num_envs) \
            + c.env_weight * np.asarray(env_reward, np.float32)
        ones = np.ones(self.num_envs, bool)
        info = {**info, "progress": self.tracker.phi.copy(), "_progress": ones,
                "progress_reward": term_r, "_progress_reward": ones, **self._done_info()}
        return obs, reward.astype(np.float32), term, trunc, info

    def close(self, **kwargs: Any) -> None:
        self.tracker.close()
        super().close(**kwargs)
