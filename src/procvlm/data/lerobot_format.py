"""The LeRobot v3.0 on-disk layout, shared by the reader (``lerobot.py``) and the writer
(``lerobot_writer.py``).

Follows LeRobot's ``LeRobotDataset`` codebase version ``v3.0`` (lerobot >= 0.4,
``src/lerobot/datasets/utils.py`` and ``dataset_metadata.py``):

- ``meta/info.json``: ``codebase_version``, ``robot_type``, ``total_episodes``, ``total_frames``,
  ``total_tasks``, ``chunks_size``, ``data_files_size_in_mb``, ``video_files_size_in_mb``, ``fps``,
  ``splits``, ``data_path``, ``video_path`` and ``features`` (``dtype`` / ``shape`` / ``names``,
  plus ``info`` with ``video.*`` keys for video features);
- ``meta/episodes/chunk-000/file-000.parquet``: one row per episode (``episode_index``, ``tasks``,
  ``length``, ``data/chunk_index``, ``data/file_index``, ``dataset_from_index``,
  ``dataset_to_index``, ``videos/<key>/{chunk_index,file_index,from_timestamp,to_timestamp}``,
  ``meta/episodes/{chunk_index,file_index}``, ``stats/<feature>/<stat>``);
- ``meta/tasks.parquet`` and ``meta/subtasks.parquet``: a pandas frame indexed by the string
  (index name ``task`` / ``subtask``) with one column ``task_index`` / ``subtask_index``;
- ``meta/stats.json``; ``data/chunk-XXX/file-XXX.parquet``; ``videos/<key>/chunk-XXX/file-XXX.mp4``.

The pandas index metadata is written by hand so that only pyarrow is needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from procvlm.data.episode import DONE
from procvlm.errors import ProcvlmError

CODEBASE_VERSION = "v3.0"
DEFAULT_CHUNK_SIZE = 1000
DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
EPISODES_DIR = "meta/episodes"
TASKS_PATH = "meta/tasks.parquet"
SUBTASKS_PATH = "meta/subtasks.parquet"
CHUNK_FILE_PATTERN = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = EPISODES_DIR + "/" + CHUNK_FILE_PATTERN + ".parquet"
DATA_PATH = "data/" + CHUNK_FILE_PATTERN + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE_PATTERN + ".mp4"
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"

DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
SUBTASK_FEATURE = {"subtask_index": {"dtype": "int64", "shape": [1], "names": None}}
TRUE_PROGRESS_KEY = "true_progress"
TRUE_PROGRESS_FEATURE = {TRUE_PROGRESS_KEY: {"dtype": "float32", "shape": [1], "names": None}}
"""Per-frame simulator-truth progress (``Episode.true_progress``), present when episodes carry it."""

# procvlm's columns in meta/episodes (SARM's sparse_* names plus our own).
EPISODE_EXTRA_SCHEMA = pa.schema([
    ("success", pa.bool_()),
    ("plan", pa.list_(pa.string())),
    ("procvlm_meta", pa.string()),
    ("sparse_subtask_names", pa.list_(pa.string())),
    ("sparse_subtask_start_frames", pa.list_(pa.int64())),
    ("sparse_subtask_end_frames", pa.list_(pa.int64())),
    ("sparse_subtask_start_times", pa.list_(pa.float64())),
    ("sparse_subtask_end_times", pa.list_(pa.float64())),
    ("subtask_completed", pa.list_(pa.bool_())),
    ("dense_subtask_names", pa.list_(pa.string())),
    ("dense_subtask_start_frames", pa.list_(pa.int64())),
    ("dense_subtask_end_frames", pa.list_(pa.int64())),
    ("dense_subtask_start_times", pa.list_(pa.float64())),
    ("dense_subtask_end_times", pa.list_(pa.float64())),
])

IDLE_SUBTASK = "idle"
"""``meta/subtasks.parquet`` row of frames no sub-step covers (before the first, between two,
after the last of a failed episode). LeRobot 0.4 names every frame's sub-step with
``subtasks.iloc[subtask_index]``, so every frame needs a real row: -1 would read as the last."""
FILLER_SUBTASKS = (IDLE_SUBTASK, DONE)
"""Rows that fill time between sub-steps (``idle``; ``done`` after the last step of a successful
episode): readers do not turn them into sub-steps."""
TEMPORAL_PROPORTIONS_PATH = "meta/temporal_proportions_{kind}.json"
"""SARM's stage priors: ``{stage name: mean share of an episode's annotated time}``, in stage
order, summing to 1 (LeRobot's ``subtask_annotation.py`` writes, ``modeling_sarm.py`` reads)."""


def camera_key(camera: str) -> str:
    """LeRobot feature key of a short camera name: ``corner`` -> ``observation.images.corner``."""
    return camera if camera.startswith("observation.") else IMAGE_PREFIX + camera


def camera_name(key: str) -> str:
    """Short camera name of a LeRobot feature key (inverse of ``camera_key``)."""
    return key[len(IMAGE_PREFIX):] if key.startswith(IMAGE_PREFIX) else key


def video_info(height: int, width: int, fps: float, codec: str = "h264") -> dict[str, Any]:
    """The ``info`` entry LeRobot stores for a video feature."""
    return {"video.height": height, "video.width": width, "video.codec": codec,
            "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
            "video.channels": 3, "has_audio": False}


def build_features(cameras: dict[str, tuple[int, int]], state_dim: int, action_dim: int, *,
                   video: bool, fps: float, state_names: Sequence[str] | None = None,
                   action_names: Sequence[str] | None = None,
                   true_progress: bool = False) -> dict[str, dict[str, Any]]:
    """The ``features`` dict of ``info.json`` for cameras, state and action (and the
    ``true_progress`` column when ``true_progress`` is set)."""
    features: dict[str, dict[str, Any]] = {}
    for cam, (height, width) in cameras.items():
        ft: dict[str, Any] = {"dtype": "video" if video else "image", "shape": [height, width, 3],
                              "names": ["height", "width", "channels"]}
        if video:
            ft["info"] = video_info(height, width, fps)
        features[camera_key(cam)] = ft
    features[STATE_KEY] = {"dtype": "float32", "shape": [state_dim],
                           "names": list(state_names) if state_names else None}
    features[ACTION_KEY] = {"dtype": "float32", "shape": [action_dim],
                            "names": list(action_names) if action_names else None}
    features.update(json.loads(json.dumps(DEFAULT_FEATURES)))
    features.update(json.loads(json.dumps(SUBTASK_FEATURE)))
    if true_progress:
        features.update(json.loads(json.dumps(TRUE_PROGRESS_FEATURE)))
    return features


def build_info(features: dict[str, dict[str, Any]], *, fps: float, robot_type: str,
               total_episodes: int, total_frames: int, total_tasks: int,
               chunks_size: int = DEFAULT_CHUNK_SIZE) -> dict[str, Any]:
    """The whole ``meta/info.json`` object."""
    has_video = any(ft["dtype"] == "video" for ft in features.values())
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": total_episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": chunks_size,
        "data_files_size_in_mb": DEFAULT_DATA_FILE_SIZE_IN_MB,
        "video_files_size_in_mb": DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "fps": int(fps) if float(fps).is_integer() else fps,
        "splits": {"train": f"0:{total_episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if has_video else None,
        "features": features,
    }


def chunk_file(episode_index: int, chunks_size: int) -> tuple[int, int]:
    """(chunk_index, file_index) of the data/video file holding one episode (one per file)."""
    return episode_index // chunks_size, episode_index % chunks_size


def flat_names(names: Any) -> list[str] | None:
    """Feature ``names`` as a flat list (older datasets use ``{"motors": [...]}``)."""
    if names is None:
        return None
    if isinstance(names, dict):
        out: list[str] = []
        for value in names.values():
            out.extend(str(v) for v in (value if isinstance(value, list) else [value]))
        return out
    return [str(n) for n in names]


# --- tasks.parquet / subtasks.parquet: a string index and one int column -----------------------

def index_table(names: Sequence[str], index_name: str, column: str) -> pa.Table:
    """A table that ``pandas.read_parquet`` reads as a frame indexed by ``names``."""
    table = pa.table({column: pa.array(range(len(names)), pa.int64()),
                      index_name: pa.array(list(names), pa.string())})
    pandas_meta = {
        "index_columns": [index_name],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": column, "field_name": column, "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": index_name, "field_name": index_name, "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def read_index_table(path: Path, column: str) -> list[str]:
    """Strings of a tasks/subtasks parquet, ordered by their ``column`` index."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ProcvlmError(f"{path} is not a readable parquet file ({err}): restore it or "
                           "re-write the dataset") from err
    if column not in table.column_names:
        raise ProcvlmError(f"{path} has no {column!r} column: it is not a LeRobot v3 file")
    string_cols = [n for n in table.column_names if n != column
                   and (pa.types.is_string(table.schema.field(n).type)
                        or pa.types.is_large_string(table.schema.field(n).type))]
    if not string_cols:
        raise ProcvlmError(f"{path} has no string column next to {column!r}: not a LeRobot v3 file")
    indices = table.column(column).to_pylist()
    strings = table.column(string_cols[0]).to_pylist()
    out = [""] * (max(indices) + 1 if indices else 0)
    for k, s in zip(indices, strings):
        out[int(k)] = s
    return out


# --- SARM's sub-step annotation: gap-free stages and their temporal proportions --------------

Stages = tuple[list[str], list[int], list[int]]
"""(names, start frames, end frames (exclusive)) of one episode's stages, in time order."""


def gap_free(stages: Stages, num_frames: int) -> Stages:
    """Stages that cover every frame, as SARM's annotations do: the first starts at frame 0,
    the last ends at ``num_frames``, and time between two stages extends the earlier one."""
    names, starts, ends = (list(x) for x in stages)
    if not names:
        return [], [], []
    new_starts = [0] + [int(s) for s in starts[1:]]
    new_ends = [int(s) for s in starts[1:]] + [max(int(num_frames), int(ends[-1]))]
    return names, new_starts, new_ends


def stage_shares(episodes: Sequence[Stages]) -> dict[str, float]:
    """SARM's stage priors (its Eq. 1) with LeRobot's bookkeeping (``compute_temporal_proportions``).

    Per episode, a stage's share is the length of its *last* occurrence over the summed length
    of all the episode's stages (a repeated stage counts once, with its last length, while the
    total counts every occurrence); shares are averaged over the episodes holding the stage and
    normalised to sum 1 over every stage name seen.

    Args:
        episodes: every episode's stages.

    Returns:
        ``{name: share}`` in first-seen order (empty when no episode has a stage of length > 0).
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for names, starts, ends in episodes:
        lengths: dict[str, int] = {}
        total = 0
        for n, s, e in zip(names, starts, ends):
            lengths[n] = max(0, int(e) - int(s))
            total += lengths[n]
        if total > 0:
            for n, d in lengths.items():
                sums[n] = sums.get(n, 0.0) + d / total
                counts[n] = counts.get(n, 0) + 1
    mean = {n: sums[n] / counts[n] for n in sums}
    grand = sum(mean.values())
    return {n: m / grand for n, m in mean.items()} if grand > 0 else {}


def temporal_proportions(episodes: Sequence[Stages], order: Sequence[str]) -> dict[str, float]:
    """``meta/temporal_proportions_*.json``: ``stage_shares`` keyed in ``order`` (names not seen
    are left out)."""
    shares = stage_shares(episodes)
    return {n: shares[n] for n in order if n in shares}


# --- statistics ------------------------------------------------------------------------------

QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)  # LeRobot's q01, q10, q50, q90, q99


def _stats(x: np.ndarray, count: int, shape: tuple[int, ...]) -> dict[str, list]:
    out = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0)}
    for q, value in zip(QUANTILES, np.quantile(x, QUANTILES, axis=0)):
        out[f"q{round(q * 100):02d}"] = value
    stats = {k: np.asarray(v).reshape(shape).tolist() for k, v in out.items()}
    stats["count"] = [int(count)]
    return stats


def array_stats(values: np.ndarray) -> dict[str, list]:
    """min / max / mean / std / quantiles / count over axis 0 of a (N, D) array (JSON-able)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if len(values) == 0:
        values = np.zeros((1, values.shape[1]))
        return {**_stats(values, 0, values.shape[1:]), "count": [0]}
    return _stats(values, len(values), values.shape[1:])


def image_stats(frames: np.ndarray) -> dict[str, list]:
    """Per-channel stats of (N, H, W, 3) uint8 images scaled to [0, 1], shaped (3, 1, 1).

    Computed from each channel's 256-bin histogram: the same values as ``_stats`` over the
    pixels (quantiles interpolated linearly between order statistics, as ``np.quantile``),
    some 30 times faster than sorting millions of floats.
    """
    px = np.asarray(frames, dtype=np.uint8).reshape(-1, 3)
    n = len(px)
    if n == 0:
        raise ValueError("image_stats needs at least one pixel")
    counts = np.stack([np.bincount(px[:, c], minlength=256) for c in range(3)])  # (3, 256)
    levels = np.arange(256, dtype=np.float64) / 255.0
    seen = counts > 0
    mean = counts @ levels / n
    var = (counts * (levels[None, :] - mean[:, None]) ** 2).sum(1) / n
    out = {"min": levels[seen.argmax(1)], "max": levels[255 - seen[:, ::-1].argmax(1)],
           "mean": mean, "std": np.sqrt(var)}
    cum = counts.cumsum(1)
    for q in QUANTILES:
        h = q * (n - 1)
        k = int(np.floor(h))
        a = np.array([levels[np.searchsorted(c, k, side="right")] for c in cum])
        b = np.array([levels[np.searchsorted(c, min(k + 1, n - 1), side="right")] for c in cum])
        t = h - k  # np.quantile's linear interpolation, evaluated from the nearer end
        out[f"q{round(q * 100):02d}"] = a + (b - a) * t if t < 0.5 else b - (b - a) * (1 - t)
    stats = {k: np.asarray(v).reshape(3, 1, 1).tolist() for k, v in out.items()}
    stats["count"] = [int(len(frames))]
    return stats


def aggregate_stats(stats_list: Sequence[dict[str, dict[str, list]]]) -> dict[str, dict[str, list]]:
    """Merge per-episode stats into dataset stats (count-weighted mean and pooled variance)."""
    out: dict[str, dict[str, list]] = {}
    keys = {k for s in stats_list for k in s}
    for key in sorted(keys):
        parts = [s[key] for s in stats_list if key in s]
        counts = np.asarray([p["count"][0] for p in parts], dtype=np.float64)
        total = counts.sum()
        if total == 0:
            out[key] = parts[0]
            continue
        means = [np.asarray(p["mean"]) for p in parts]
        stds = [np.asarray(p["std"]) for p in parts]
        w = counts / total
        mean = sum(wi * m for wi, m in zip(w, means))
        var = sum(wi * (s**2 + (m - mean) ** 2) for wi, s, m in zip(w, stds, means))
        out[key] = {"min": np.min([np.asarray(p["min"]) for p in parts], axis=0).tolist(),
                    "max": np.max([np.asarray(p["max"]) for p in parts], axis=0).tolist(),
                    "mean": np.asarray(mean).tolist(), "std": np.sqrt(var).tolist(),
                    "count": [int(total)]}
        for name in parts[0]:  # quantiles: count-weighted mean, as LeRobot aggregates them
            if name.startswith("q") and all(name in p for p in parts):
                out[key][name] = np.asarray(sum(wi * np.asarray(p[name])
                                                for wi, p in zip(w, parts))).tolist()
    return out
