"""Windowed training samples for the compact model: every labelled episode's main camera is
decoded once into an in-memory uint8 cache at the training resolution, with per-frame labels.

A ``Corpus`` can come from a labelled LeRobot v3 dataset (``load_corpus``), from in-memory
``Episode``s with label arrays (``corpus_from_episodes``), or from ``synthetic_episodes`` (a
toy corpus of moving squares with failures, stalls and regressions, for tests and benchmarks).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from procvlm.data.dataset import choose_camera
from procvlm.data.episode import ArrayFrames, Episode, Subtask
from procvlm.errors import ProcvlmError
from procvlm.labels import SCHEMES, get_scheme
from procvlm.labels import scheme_suffix as _column_suffix
from procvlm.models.compact.processor_compact import read_frames, window_offsets

logger = logging.getLogger(__name__)

__all__ = ["SCHEMES", "Corpus", "EpisodeTargets", "check_scheme", "corpus_from_dataset",
           "corpus_from_episodes", "load_corpus", "scheme_suffix", "split_episodes",
           "synthetic_episodes"]


@dataclass
class EpisodeTargets:
    """Per-frame training targets of one episode (T frames).

    Attributes:
        stage: (T,) int index into the plan, ``len(plan)`` = done, -1 = no label.
        progress: (T,) float overall progress in [0, 1].
        stage_progress: (T,) float progress within the stage.
    """

    stage: np.ndarray
    progress: np.ndarray
    stage_progress: np.ndarray


@dataclass
class Corpus:
    """All frames of a set of episodes at one resolution, with their labels.

    Frames of episode ``e`` are ``frames[offsets[e]:offsets[e + 1]]``.
    """

    frames: np.ndarray  # (N, S, S, 3) uint8
    offsets: np.ndarray  # (E + 1,)
    episode_index: np.ndarray  # (E,) dataset episode indices
    tasks: list[str]
    plans: list[list[str]]
    success: np.ndarray  # (E,) 1 success, 0 failure, -1 unknown
    stage: np.ndarray  # (N,)
    progress: np.ndarray  # (N,)
    stage_progress: np.ndarray  # (N,)
    meta: list[dict[str, Any]] = field(default_factory=list)
    camera: str | None = None  # the camera the frames come from

    @property
    def num_episodes(self) -> int:
        return len(self.offsets) - 1

    @property
    def image_size(self) -> int:
        return int(self.frames.shape[1])

    def episode_of(self, frame_ids: np.ndarray) -> np.ndarray:
        """Corpus episode (0..E-1) of each global frame id."""
        return np.searchsorted(self.offsets, frame_ids, side="right") - 1

    def frame_ids(self, episodes: Sequence[int]) -> np.ndarray:
        """All global frame ids of the given corpus episodes."""
        parts = [np.arange(self.offsets[e], self.offsets[e + 1]) for e in episodes]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def windows(self, frame_ids: np.ndarray, window: int, stride: int,
                anchor: bool = False) -> np.ndarray:
        """(B, window) global frame ids of each frame's window, clamped to its episode start;
        with ``anchor``, (B, window + 1): the episode's first frame, then the window."""
        starts = self.offsets[self.episode_of(frame_ids)]
        offsets = window_offsets(window, stride)
        idx = np.maximum(frame_ids[:, None] + offsets[None, :], starts[:, None])
        return np.concatenate([starts[:, None], idx], axis=1) if anchor else idx


def _concat(frames: list[np.ndarray | None], targets: list[EpisodeTargets], episodes: list[dict],
            camera: str | None) -> Corpus:
    """The corpus of per-episode frames, targets and infos; ``frames`` is consumed (each piece
    is set to None once copied, so the pieces and the corpus are never all in memory)."""
    if not frames:
        raise ProcvlmError("no labelled episodes to train on: label the dataset first "
                           "(`procvlm label DATASET`)")
    lengths = [len(f) for f in frames]
    stacked = np.empty((sum(lengths), *frames[0].shape[1:]), frames[0].dtype)
    start = 0
    for k, n in enumerate(lengths):  # piece by piece, each released once copied: one copy
        stacked[start:start + n] = frames[k]
        frames[k] = None  # released (a view of it would keep its memory)
        start += n
    return Corpus(
        frames=stacked,
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        episode_index=np.array([e["episode_index"] for e in episodes], np.int64),
        tasks=[e["task"] for e in episodes], plans=[list(e["plan"]) for e in episodes],
        success=np.array([-1 if e["success"] is None else int(e["success"]) for e in episodes]),
        stage=np.concatenate([t.stage for t in targets]).astype(np.int64),
        progress=np.concatenate([t.progress for t in targets]).astype(np.float32),
        stage_progress=np.concatenate([t.stage_progress for t in targets]).astype(np.float32),
        meta=[e.get("meta", {}) for e in episodes], camera=camera)


def corpus_from_episodes(episodes: Sequence[Episode], targets: Sequence[EpisodeTargets],
                         image_size: int, plans: dict[str, list[str]] | None = None) -> Corpus:
    """Build a corpus from in-memory episodes and their label arrays.

    Args:
        episodes: episodes whose main camera is used; ``plan`` may come from ``plans``.
        targets: per-episode labels, same order and lengths as ``episodes``.
        image_size: training resolution (frames are resized once).
        plans: task -> plan for episodes without ``plan``.
    """
    frames, infos = [], []
    for ep, tg in zip(episodes, targets, strict=True):
        small, info = _corpus_entry(ep, tg, image_size, plans)
        frames.append(small)
        infos.append(info)
    return _concat(frames, list(targets), infos, episodes[0].main_camera if episodes else None)


def _corpus_entry(ep: Episode, tg: EpisodeTargets, image_size: int,
                  plans: dict[str, list[str]] | None) -> tuple[np.ndarray, dict]:
    """One episode's frames at the training resolution and what the corpus keeps of it."""
    plan = ep.plan or (plans or {}).get(ep.task)
    if not plan:
        raise ProcvlmError(f"episode {ep.episode_index} (task {ep.task!r}) has no plan: "
                           "label the dataset so meta/procvlm/plans.json has its task")
    if len(tg.progress) != len(ep):
        raise ProcvlmError(f"episode {ep.episode_index}: {len(tg.progress)} labels for "
                           f"{len(ep)} frames: relabel the dataset")
    return read_frames(ep.main_frames(), image_size), {
        "episode_index": ep.episode_index, "task": ep.task, "plan": plan,
        "success": ep.success, "meta": ep.meta}


def check_scheme(scheme: str) -> str:
    """``scheme`` if it is a registered label scheme, else a ProcvlmError listing them."""
    get_scheme(scheme)
    return scheme


def scheme_suffix(scheme: str) -> str:
    """Column suffix of a label scheme ("procvlm-paper" -> "procvlm_paper"), checked."""
    return _column_suffix(check_scheme(scheme))


def _label_columns(table: Any, scheme: str) -> dict[str, np.ndarray]:
    s = scheme_suffix(scheme)
    names = set(table.column_names)
    wanted = {"stage": f"stage_{s}", "progress": f"progress_{s}",
              "stage_progress": f"stage_progress_{s}"}
    if not set(wanted.values()) <= names:
        plain = {"stage": "subtask_index", "progress": "progress",
                 "stage_progress": "stage_progress"}
        if scheme != "procvlm" or not set(plain.values()) <= names:
            raise ProcvlmError(f"labels have no {scheme!r} columns ({', '.join(wanted.values())})"
                               ": relabel the dataset with `procvlm label`")
        wanted = plain
    cols = {k: table.column(v).to_numpy(zero_copy_only=False) for k, v in wanted.items()}
    cols["episode_index"] = table.column("episode_index").to_numpy(zero_copy_only=False)
    cols["frame_index"] = table.column("frame_index").to_numpy(zero_copy_only=False)
    return cols


def _episode_targets(cols: dict[str, np.ndarray], rows: np.ndarray, n: int) -> EpisodeTargets:
    fi = cols["frame_index"][rows]
    if len(rows) != n or fi.min() != 0 or fi.max() != n - 1:
        raise ProcvlmError(f"labels cover {len(rows)} frames of an episode of {n}: relabel the "
                           "dataset with `procvlm label`")
    order = np.argsort(fi, kind="stable")
    pick = rows[order]
    return EpisodeTargets(cols["stage"][pick].astype(np.int64),
                          np.nan_to_num(cols["progress"][pick].astype(np.float32)),
                          np.nan_to_num(cols["stage_progress"][pick].astype(np.float32)))


def corpus_from_dataset(ds: Any, table: Any, plans: dict[str, list[str]], scheme: str,
                        image_size: int, camera: str | None = None,
                        show_progress: bool = True) -> Corpus:
    """Decode a dataset's labelled episodes into a corpus.

    Args:
        ds: a ``procvlm.data`` Dataset (``episode_indices``, ``episode(i, cameras)``, ...).
        table: the labels table (``procvlm.labels.read_labels``).
        plans: task -> plan (``procvlm.labels.read_plans``).
        scheme: which label columns to train on.
        image_size: training resolution.
        camera: camera name (default: the dataset's first camera).
        show_progress: draw a tqdm bar while decoding.
    """
    cols = _label_columns(table, scheme)
    camera = choose_camera(ds.cameras, camera)
    by_episode: dict[int, list[int]] = {}
    for row, e in enumerate(cols["episode_index"].tolist()):
        by_episode.setdefault(int(e), []).append(row)
    frames, infos, targets = [], [], []
    for i in tqdm(ds.episode_indices, desc="decoding episodes", disable=not show_progress):
        if i not in by_episode:
            logger.warning("episode %d has no labels; skipped", i)
            continue
        # decoded and resized now, the episode (encoded frames, decoded-frame cache) let go:
        # a corpus of thousands of episodes holds only its training-size frames
        ep = ds.episode(i, cameras=[camera])
        targets.append(_episode_targets(cols, np.asarray(by_episode[i]), len(ep)))
        small, info = _corpus_entry(ep, targets[-1], image_size, plans)
        frames.append(small)
        infos.append(info)
    return _concat(frames, targets, infos, camera)


def load_corpus(root: str | Path, scheme: str = "procvlm", image_size: int = 64,
                camera: str | None = None, show_progress: bool = True) -> Corpus:
    """Open a labelled LeRobot v3 dataset and decode it into a corpus (see ``corpus_from_dataset``)."""
    from procvlm.data import open_dataset
    from procvlm.labels import read_labels, read_plans

    # read_labels finds the labels of LeRobot folders and HDF5 files alike, and says to run
    # `procvlm label` when there are none
    return corpus_from_dataset(open_dataset(root), read_labels(root), read_plans(root), scheme,
                               image_size, camera, show_progress)


def split_episodes(corpus: Corpus, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Episode-level train/validation split, stratified by success (corpus episode ids)."""
    if not 0.0 <= val_fraction < 1.0:
        raise ProcvlmError(f"--val-fraction {val_fraction}: need 0 <= fraction < 1")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for outcome in (1, 0, -1):
        ids = np.flatnonzero(corpus.success == outcome)
        rng.shuffle(ids)
        n_val = int(round(len(ids) * val_fraction))
        val += ids[:n_val].tolist()
        train += ids[n_val:].tolist()
    if not train:
        raise ProcvlmError(f"no training episodes left after --val-fraction {val_fraction}: "
                           "use a smaller fraction or more episodes")
    return sorted(train), sorted(val)


SYNTHETIC_TASKS: dict[str, list[str]] = {
    "Push the block to the goal": ["Move to the block", "Push the block to the goal"],
    "Put the red block on the blue block": [
        "Grasp the red block", "Lift the red block", "Place the red block onto the blue block"],
    "Open the drawer": ["Move to the drawer", "Grasp the handle", "Pull the handle",
                        "Close the gripper"],
}
_PALETTE = np.array([[230, 60, 60], [60, 200, 60], [60, 90, 230], [230, 200, 40],
                     [200, 60, 200], [40, 200, 200]], np.uint8)


def _synthetic_progress(rng: np.random.Generator, length: int, failure: str | None
                        ) -> tuple[np.ndarray, list[dict]]:
    """(T,) true progress of a toy episode and its injected events."""
    active = int(length * 0.85)
    t = np.arange(length)
    p = np.clip(t / max(active - 1, 1), 0, 1)
    events: list[dict] = []
    if failure == "stall":
        s = int(rng.integers(length // 5, length // 2))
        d = int(rng.integers(length // 8, length // 4))
        p = np.concatenate([p[:s], np.full(d, p[s]), p[s:]])[:length]
        events.append({"type": "stall", "start": s, "end": s + d})
    elif failure == "truncate":
        stop = int(rng.integers(length // 4, int(length * 0.7)))
        p = np.where(t < stop, p, p[stop])
    elif failure == "regression":
        a = int(rng.integers(length // 3, length // 2))
        back = int(rng.integers(length // 8, length // 5))
        p = np.concatenate([p[:a], np.linspace(p[a], p[a - back], back), p[a - back:]])[:length]
        events.append({"type": "regression", "start": a, "end": a + back})
    return p.astype(np.float32), events


def _render(p: np.ndarray, num_steps: int, size: int, shade: int, done: np.ndarray) -> np.ndarray:
    """Draw a square whose row band is the stage and whose column is the within-stage progress."""
    side = max(2, size // 6)
    frames = np.full((len(p), size, size, 3), shade, np.uint8)
    stage = np.minimum((p * num_steps).astype(int), num_steps - 1)
    within = p * num_steps - stage
    for i in range(len(p)):
        x = int(round(within[i] * (size - side)))
        y = int(round(stage[i] / max(num_steps - 1, 1) * (size - side)))
        colour = (255, 255, 255) if done[i] else _PALETTE[stage[i] % len(_PALETTE)]
        frames[i, y:y + side, x:x + side] = colour
    return frames


def _runs(stage: np.ndarray, plan: list[str]) -> list[Subtask]:
    """The timeline as runs of equal stage (done frames excluded); a run is completed when
    the next run is a later step (or done)."""
    cuts = np.flatnonzero(np.diff(stage)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, len(stage)]
    out = []
    for i, (a, b) in enumerate(zip(starts, ends)):
        k = int(stage[a])
        if k < len(plan):
            nxt = int(stage[ends[i]]) if i + 1 < len(starts) else -1
            out.append(Subtask(plan[k], int(a), int(b), nxt > k))
    return out


def synthetic_episodes(num_episodes: int = 8, length: int = 40, size: int = 32, seed: int = 0,
                       failure_rate: float = 0.5, tasks: dict[str, list[str]] | None = None
                       ) -> tuple[list[Episode], list[EpisodeTargets]]:
    """A toy corpus: a square moves through the plan's steps (row band = step); successful
    episodes end with a few "done" frames; failures stall, stop short or regress.

    Returns:
        The episodes (plan, subtasks, success and failure meta set) and their targets.
    """
    rng = np.random.default_rng(seed)
    tasks = tasks or SYNTHETIC_TASKS
    names = sorted(tasks)
    episodes, targets = [], []
    for e in range(num_episodes):
        task = names[e % len(names)]
        plan, k = tasks[task], len(tasks[task])
        failure = None
        if int((e + 1) * failure_rate) > int(e * failure_rate):  # exactly the failure rate
            failure = ("truncate", "stall", "regression")[int(e * failure_rate) % 3]
        p, events = _synthetic_progress(rng, length, failure)
        success = failure != "truncate"
        done = (p >= 1.0) & success
        stage = np.where(done, k, np.minimum((p * k).astype(int), k - 1))
        stage_progress = np.where(done, 1.0, p * k - np.minimum((p * k).astype(int), k - 1))
        frames = _render(p, k, size, 60 + 40 * names.index(task), done)
        subtasks = _runs(stage, plan)
        episodes.append(Episode(
            episode_index=e, task=task, fps=10.0, frames={"main": ArrayFrames(frames)},
            state=np.zeros((length, 2), np.float32), action=np.zeros((length, 2), np.float32),
            success=success, subtasks=subtasks, plan=list(plan),
            meta={"env": "synthetic", "failure": failure, "events": events}))
        targets.append(EpisodeTargets(stage.astype(np.int64), np.where(done, 1.0, p),
                                      stage_progress.astype(np.float32)))
    return episodes, targets
