"""Progress as reward: scoring a dataset with a progress model, and shaping progress into dense
rewards (progress differences, potential-based shaping ``gamma * p' - p``).

Score files:
- ``procvlm`` format: ``index, episode_index, frame_index, progress, remaining (list<str>),
  stage`` (the keys of ``meta/procvlm/labels.parquet``).
- ``lerobot-rabc`` format: LeRobot's RA-BC progress file (``sarm_progress.parquet``, which
  LeRobot's ``compute_rabc_weights.py`` writes to the dataset root and ``RABCWeights`` reads
  through ``rabc_progress_path``): ``index, episode_index, frame_index`` (int64) and
  ``progress_sparse`` (float32), sorted by ``index``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from procvlm._io import write_parquet
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

FORMATS = ("procvlm", "lerobot-rabc")
RABC_FILE_NAME = "sarm_progress.parquet"


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


def score_episodes(model: Any, ds: Any, batch_size: int = 256, camera: str | None = None,
                   show_progress: bool = True) -> pa.Table:
    """Score every frame of a dataset with a progress model.

    Args:
        model: a ``ProgressModel``.
        ds: a ``procvlm.data`` Dataset.
        batch_size: windows per forward pass (compact model).
        camera: camera to score (default: the dataset's first).
        show_progress: draw a tqdm bar.

    Returns:
        The ``procvlm`` score table, sorted by ``index``.
    """
    camera = camera or ds.cameras[0]
    if camera not in ds.cameras:
        raise ProcvlmError(f"camera {camera!r} not in the dataset (has {ds.cameras})")
    cols: dict[str, list] = {k: [] for k in ("index", "episode_index", "frame_index",
                                             "progress", "remaining", "stage")}
    bar = tqdm(total=len(ds.episode_indices), desc="scoring", disable=not show_progress)
    for i, pred in _predictions(model, ds, camera, batch_size):
        bar.update(1)
        n = len(pred)
        cols["index"].append(np.asarray(ds.global_index(i), np.int64)[:n])
        cols["episode_index"].append(np.full(n, i, np.int64))
        cols["frame_index"].append(np.arange(n, dtype=np.int64))
        cols["progress"].append(pred.progress.astype(np.float32))
        cols["stage"].append(pred.stage.astype(np.int64))
        cols["remaining"].extend(pred.remaining)
    bar.close()
    arrays = {k: (np.concatenate(v) if k != "remaining" else v) for k, v in cols.items()}
    table = pa.table({"index": arrays["index"], "episode_index": arrays["episode_index"],
                      "frame_index": arrays["frame_index"], "progress": arrays["progress"],
                      "remaining": pa.array(arrays["remaining"], pa.list_(pa.string())),
                      "stage": arrays["stage"]})
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


def _predictions(model: Any, ds: Any, camera: str, batch_size: int) -> Iterator[tuple[int, Any]]:
    """(episode index, prediction) for every episode.

    A model with ``predict_batch`` (the VLM) gets the frames of many episodes at once, so they
    share large batches, while a thread decodes the next group of episodes.
    """
    if getattr(model, "model_type", "") == "compact":
        for i in ds.episode_indices:
            yield i, model.predict(ds.episode(i, cameras=[camera]), batch_size=batch_size)
        return
    if not hasattr(model, "predict_batch"):
        for i in ds.episode_indices:
            yield i, model.predict(ds.episode(i, cameras=[camera]))
        return
    per_chunk = 8 * int(getattr(getattr(model, "config", None), "batch_size", 16))
    chunks = _episode_chunks(ds, per_chunk)

    def load(chunk: list[int]) -> list[Any]:
        return [ds.episode(i, cameras=[camera]) for i in chunk]

    with ThreadPoolExecutor(1, thread_name_prefix="procvlm-decode") as pool:
        pending = pool.submit(load, chunks[0]) if chunks else None
        for k, chunk in enumerate(chunks):
            episodes = pending.result()
            pending = pool.submit(load, chunks[k + 1]) if k + 1 < len(chunks) else None
            preds = model.predict_batch([(ep, None, None) for ep in episodes])
            yield from zip(chunk, preds)


def to_rabc_table(scores: pa.Table) -> pa.Table:
    """LeRobot RA-BC progress table (``progress_sparse``) from a ``procvlm`` score table."""
    return pa.table({
        "index": scores.column("index").cast(pa.int64()),
        "episode_index": scores.column("episode_index").cast(pa.int64()),
        "frame_index": scores.column("frame_index").cast(pa.int64()),
        "progress_sparse": scores.column("progress").cast(pa.float32()),
    }).sort_by("index")


def default_output(dataset: str | Path, fmt: str) -> Path:
    """Where scores go without ``--out``: LeRobot's file at the dataset root for RA-BC,
    ``meta/procvlm/scores.parquet`` otherwise."""
    root = Path(dataset)
    return root / RABC_FILE_NAME if fmt == "lerobot-rabc" else root / "meta/procvlm/scores.parquet"


def score_dataset(model: Any, dataset: str | Path, out: str | Path | None = None,
                  fmt: str = "procvlm", batch_size: int = 256, camera: str | None = None,
                  show_progress: bool = True) -> Path:
    """Score a dataset and write the score parquet (atomically). Returns its path."""
    from procvlm.data import open_dataset

    if fmt not in FORMATS:
        raise ProcvlmError(f"unknown score format {fmt!r}: choose one of {', '.join(FORMATS)}")
    table = score_episodes(model, open_dataset(dataset), batch_size, camera, show_progress)
    if fmt == "lerobot-rabc":
        table = to_rabc_table(table)
    path = Path(out) if out else default_output(dataset, fmt)
    write_parquet(path, table)
    logger.info("wrote %d frame scores to %s", table.num_rows, path)
    return path
