"""Progress as reward: scoring a dataset with a progress model, and shaping progress into dense
rewards (progress differences, potential-based shaping ``gamma * p' - p``).

Score files:
- ``procvlm`` format: ``index, episode_index, frame_index, progress, remaining (list<str>),
  stage`` (the keys of ``meta/procvlm/labels.parquet``).
- ``lerobot-rabc`` format: LeRobot's RA-BC progress file (``sarm_progress.parquet``, which
  LeRobot's ``compute_rabc_weights.py`` writes to the dataset root and ``RABCWeights`` reads
  through ``rabc_progress_path``): ``index, episode_index, frame_index`` (int64) and
  ``progress_sparse``, ``progress_dense`` (float32), sorted by ``index``. RA-BC reads
  ``progress_<rabc_head_mode>``; procvlm's progress is one estimate over the plan's atomic
  actions, so both columns hold it and either head mode works.

Plans: a model needs each episode's plan (its atomic actions). ``PlanSource`` takes the first
of: the ``--plan`` given, the episode's own plan (datasets procvlm wrote), the dataset's
``meta/procvlm/plans.json`` (``procvlm label``), the plan the model learned for the task, the
dataset's own sub-step names in time order (LeRobot ``meta/subtasks.parquet`` + per-frame
``subtask_index``, or SARM columns), and last one whole-task step; it logs one line per task
saying which.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from procvlm._io import write_parquet
from procvlm.data.episode import Episode
from procvlm.data.lerobot_format import FILLER_SUBTASKS
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

FORMATS = ("procvlm", "lerobot-rabc")
RABC_FILE_NAME = "sarm_progress.parquet"
FRAMES_PER_CALL = 1024
"""Frames of consecutive episodes handed to one ``predict_batch`` call when scoring."""


def progress_delta(progress: np.ndarray) -> np.ndarray:
    """Dense reward of each transition t -> t+1: ``p[t+1] - p[t]``, shape (T - 1,)."""
    p = np.asarray(progress, np.float64)
    return (p[1:] - p[:-1]).astype(np.float32)


def potential_shaping(progress: np.ndarray, gamma: float = 0.99) -> np.ndarray:
    """Potential-based shaping term ``gamma * p[t+1] - p[t]`` of each transition, (T - 1,).

    With progress as the potential, adding this to the task reward keeps the optimal policy
    (Ng et al., 1999).
    """
    if not 0.0 < gamma <= 1.0:
        raise ProcvlmError(f"gamma={gamma}: need 0 < gamma <= 1")
    p = np.asarray(progress, np.float64)
    return (gamma * p[1:] - p[:-1]).astype(np.float32)


def shaped_reward(env_reward: np.ndarray, progress: np.ndarray, gamma: float = 0.99,
                  scale: float = 1.0) -> np.ndarray:
    """Task reward of each transition plus ``scale`` times the potential-based term."""
    r = np.asarray(env_reward, np.float32)
    f = potential_shaping(progress, gamma)
    if len(r) != len(f):
        raise ProcvlmError(f"{len(r)} rewards for {len(f) + 1} progress values: pass one "
                           "reward per transition (T - 1)")
    return r + np.float32(scale) * f


def parse_plan(text: str) -> list[str]:
    """A ``--plan`` value as a list of atomic actions.

    Args:
        text: ``"step 1; step 2; ..."``, a JSON list of strings, or the path of a file holding
            either (or one step per line).
    """
    path = Path(text)
    from_file = len(text) < 4096 and "\n" not in text and path.is_file()
    body = path.read_text() if from_file else text
    what = f"plan file {text}" if from_file else f"--plan {text!r}"
    if body.lstrip().startswith("["):
        try:
            steps = json.loads(body)
        except ValueError as err:
            raise ProcvlmError(f"{what} is not a JSON list ({err}): write "
                               "[\"step 1\", \"step 2\"] or \"step 1; step 2\"") from err
        if not isinstance(steps, list) or not all(isinstance(x, str) for x in steps):
            raise ProcvlmError(f"{what} must be a JSON list of strings: write "
                               "[\"step 1\", \"step 2\"]")
    else:
        sep = ";" if ";" in body or not from_file else "\n"
        steps = body.split(sep)
    steps = [x.strip() for x in steps if x.strip()]
    if not steps:
        raise ProcvlmError(f"{what} holds no step: write \"step 1; step 2; ...\"")
    return steps


def substep_plan(ep: Episode) -> list[str] | None:
    """The episode's own sub-step names in time order (repeats and filler rows dropped)."""
    names: list[str] = []
    for s in sorted(ep.subtasks or [], key=lambda s: s.start):
        if s.name not in FILLER_SUBTASKS and s.name not in names:
            names.append(s.name)
    return names or None


def read_dataset_plans(root: str | Path) -> dict[str, list[str]]:
    """``meta/procvlm/plans.json`` of a labelled dataset (empty when it has none)."""
    from procvlm.labels.store import PLANS_FILE, labels_dir

    path = labels_dir(root) / PLANS_FILE
    if not path.is_file():
        return {}
    try:
        plans = json.loads(path.read_text())
    except ValueError as err:
        raise ProcvlmError(f"{path} is not valid JSON ({err}): run `procvlm label` again") from err
    return {str(t): [str(a) for a in p] for t, p in plans.items()}


class PlanSource:
    """Each episode's plan, from the first source that has one (see the module docstring).

    Args:
        model: the ``ProgressModel`` (asked for the plan it learned for a task).
        root: the dataset (for ``plans.json``).
        plan: a plan given by the user for every episode (``--plan``).
    """

    def __init__(self, model: Any, root: str | Path, plan: Sequence[str] | None = None) -> None:
        self.model = model
        self.plan = list(plan) if plan else None
        self.plans = read_dataset_plans(root)
        self.used: dict[str, str] = {}

    def choose(self, ep: Episode) -> tuple[list[str], str]:
        """(plan, where it came from) for one episode."""
        candidates = ((self.plan, "--plan"), (ep.plan, "the episode's plan"),
                      (self.plans.get(ep.task), "plans.json"),
                      (self.model.known_plan(ep.task), "the model's training plan"),
                      (substep_plan(ep), "the dataset's sub-step names"))
        for plan, source in candidates:
            if plan:
                return list(plan), source
        return [ep.task], "one whole-task step"

    def __call__(self, ep: Episode) -> list[str]:
        plan, source = self.choose(ep)
        if self.used.get(ep.task) != source:
            self.used[ep.task] = source
            level = logging.WARNING if source in ("the dataset's sub-step names",
                                                  "one whole-task step") else logging.INFO
            logger.log(level, "plan of task %r: %s (%d step(s)%s)", ep.task, source, len(plan),
                       "; pass --plan 'step 1; step 2' or label the dataset for a better one"
                       if level == logging.WARNING else "")
        return plan


def score_episodes(model: Any, ds: Any, batch_size: int | None = None,
                   camera: str | None = None, show_progress: bool = True,
                   plan: Sequence[str] | None = None) -> pa.Table:
    """Score every frame of a dataset with a progress model.

    Args:
        model: a ``ProgressModel``.
        ds: a ``procvlm.data`` Dataset.
        batch_size: windows per forward pass (None: the model's own).
        camera: camera to score (default: the model's training camera, else the dataset's
            first; see ``procvlm.data.choose_camera``).
        show_progress: draw a tqdm bar.
        plan: one plan for every episode (default: see ``PlanSource``).

    Returns:
        The ``procvlm`` score table, sorted by ``index``: progress, stage and remaining
        actions per frame, and ``done``, the model's probability that the task is finished
        (``ProgressPrediction.done``; null for a model that gives none).
    """
    from procvlm.data import choose_camera

    camera = choose_camera(ds.cameras, camera, model.trained_on.camera)
    plans = PlanSource(model, ds.root, plan)
    cols: dict[str, list] = {k: [] for k in ("index", "episode_index", "frame_index",
                                             "progress", "remaining", "stage", "done")}
    bar = tqdm(total=len(ds.episode_indices), desc="scoring", disable=not show_progress)
    for i, pred in _predictions(model, ds, camera, batch_size, plans):
        bar.update(1)
        n = len(pred)
        cols["index"].append(np.asarray(ds.global_index(i), np.int64)[:n])
        cols["episode_index"].append(np.full(n, i, np.int64))
        cols["frame_index"].append(np.arange(n, dtype=np.int64))
        cols["progress"].append(pred.progress.astype(np.float32))
        cols["stage"].append(pred.stage.astype(np.int64))
        cols["remaining"].extend(pred.remaining)
        cols["done"].extend([None] * n if pred.done is None else pred.done.tolist())
    bar.close()
    arrays = {k: (np.concatenate(v) if k not in ("remaining", "done") else v)
              for k, v in cols.items()}
    table = pa.table({"index": arrays["index"], "episode_index": arrays["episode_index"],
                      "frame_index": arrays["frame_index"], "progress": arrays["progress"],
                      "remaining": pa.array(arrays["remaining"], pa.list_(pa.string())),
                      "stage": arrays["stage"],
                      "done": pa.array(arrays["done"], pa.float32())})
    return table.sort_by("index")


def _episode_chunks(ds: Any, frames_per_chunk: int) -> list[list[int]]:
    """Consecutive episodes grouped so each group holds at least ``frames_per_chunk`` frames."""
    chunks: list[list[int]] = [[]]
    count = 0
    for i in ds.episode_indices:
        if count >= frames_per_chunk:
            chunks.append([])
            count = 0
        chunks[-1].append(i)
        count += len(ds.global_index(i))
    return [c for c in chunks if c]


def _predictions(model: Any, ds: Any, camera: str, batch_size: int | None,
                 plans: PlanSource) -> Iterator[tuple[int, Any]]:
    """(episode index, prediction) for every episode.

    Episodes go to ``model.predict_batch`` in groups of at least ``FRAMES_PER_CALL`` frames,
    so a model that batches across inputs (the VLM's generation batches, the compact's
    windows) fills its batches, while a thread opens the next group.
    """
    chunks = _episode_chunks(ds, FRAMES_PER_CALL)

    def load(chunk: list[int]) -> list[Any]:
        return [ds.episode(i, cameras=[camera]) for i in chunk]

    with ThreadPoolExecutor(1, thread_name_prefix="procvlm-decode") as pool:
        pending = pool.submit(load, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            episodes = pending.result()
            pending = pool.submit(load, chunks[k + 1]) if k + 1 < len(chunks) else None
            preds = model.predict_batch([(ep, ep.task, plans(ep)) for ep in episodes],
                                        batch_size=batch_size)
            yield from zip(chunk, preds)


def to_rabc_table(scores: pa.Table) -> pa.Table:
    """LeRobot RA-BC progress table (``progress_sparse`` and ``progress_dense``, both the
    model's progress) from a ``procvlm`` score table."""
    progress = scores.column("progress").cast(pa.float32())
    return pa.table({
        "index": scores.column("index").cast(pa.int64()),
        "episode_index": scores.column("episode_index").cast(pa.int64()),
        "frame_index": scores.column("frame_index").cast(pa.int64()),
        "progress_sparse": progress,
        "progress_dense": progress,
    }).sort_by("index")


def default_output(dataset: str | Path, fmt: str) -> Path:
    """Where scores go without ``--out``: LeRobot's file at the dataset root for RA-BC,
    ``meta/procvlm/scores.parquet`` otherwise."""
    root = Path(dataset)
    return root / RABC_FILE_NAME if fmt == "lerobot-rabc" else root / "meta/procvlm/scores.parquet"


def score_dataset(model: Any, dataset: str | Path, out: str | Path | None = None,
                  fmt: str = "procvlm", batch_size: int | None = None,
                  camera: str | None = None,
                  show_progress: bool = True, plan: Sequence[str] | None = None) -> Path:
    """Score a dataset and write the score parquet (atomically). Returns its path.

    Arguments as ``score_episodes``; ``fmt`` is one of ``FORMATS``, ``out`` defaults to
    ``default_output``.
    """
    from procvlm.data import open_dataset

    if fmt not in FORMATS:
        raise ProcvlmError(f"unknown score format {fmt!r}: choose one of {', '.join(FORMATS)}")
    table = score_episodes(model, open_dataset(dataset), batch_size, camera, show_progress,
                           plan)
    if fmt == "lerobot-rabc":
        table = to_rabc_table(table)
    path = Path(out) if out else default_output(dataset, fmt)
    write_parquet(path, table)
    logger.info("wrote %d frame scores to %s", table.num_rows, path)
    return path
