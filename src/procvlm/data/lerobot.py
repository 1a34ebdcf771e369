"""Read LeRobot v3.0 datasets (lerobot >= 0.4, ``LeRobotDataset`` codebase version ``v3.0``).

The layout is described in ``procvlm.data.lerobot_format``; ``LeRobotWriter`` and
``write_dataset`` (re-exported here) write it. Camera frames decode lazily: video features
through ``VideoFrames`` (windowed seeks in the mp4 files), image features through ``PNGFrames``
(PNG bytes from the parquet, decoded on access). Datasets written by LeRobot itself open here;
procvlm's extra episode columns (success, plan, sub-steps, meta) are used when present, and
sub-steps fall back to SARM's ``sparse_subtask_*`` columns or to per-frame ``subtask_index``;
a per-frame ``true_progress`` column fills ``Episode.true_progress`` (None without it).
"""

from __future__ import annotations

import io
import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from procvlm.data import lerobot_format as fmt
from procvlm.data.dataset import Dataset
from procvlm.data.episode import Episode, Frames, Subtask
from procvlm.data.lerobot_writer import LeRobotWriter, write_dataset
from procvlm.data.video import VideoFrames, probe_video
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

__all__ = ["LeRobotDataset", "LeRobotWriter", "PNGFrames", "redo_hint", "write_dataset"]


def redo_hint(episode: int) -> str:
    """How to repair one broken episode, the end of a corrupt-file message."""
    return (f"re-write episode {episode} (a corpus made by procvlm generate: run its generate "
            f"command again with --redo-episode {episode})")


class PNGFrames:
    """``Frames`` over PNG/JPEG-encoded images, decoded on access with a small LRU cache."""

    def __init__(self, blobs: Sequence[bytes], cache_size: int = 64, source: str = "") -> None:
        self.blobs = list(blobs)
        self.cache_size = cache_size
        self.source = source
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.blobs)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self._one(int(index))
        idx = np.arange(len(self))[index] if isinstance(index, slice) else np.asarray(index)
        if idx.size == 0:
            return np.zeros((0, *self._one(0).shape), dtype=np.uint8)
        return np.stack([self._one(int(i)) for i in idx.reshape(-1)])

    def _one(self, i: int) -> np.ndarray:
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"frame index {i} out of range [0, {len(self)}) in {self.source}")
        if i in self._cache:
            self._cache.move_to_end(i)
            return self._cache[i]
        try:
            array = np.asarray(Image.open(io.BytesIO(self.blobs[i])).convert("RGB"))
        except (OSError, ValueError) as err:
            raise ProcvlmError(f"image {i} of {self.source} cannot be decoded ({err}): re-write "
                               "that episode") from err
        self._cache[i] = array
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return array


class LeRobotDataset(Dataset):
    """A LeRobot v3.0 dataset folder, read with pyarrow and PyAV.

    Args:
        root: the folder holding ``meta/info.json``.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.exists():
            raise ProcvlmError(f"{self.root} does not exist: pass the root folder of a LeRobot v3 "
                               "dataset")
        info_path = self.root / fmt.INFO_PATH
        if not info_path.is_file():
            raise ProcvlmError(f"{self.root} is not a LeRobot v3 dataset (no {fmt.INFO_PATH}): "
                               "pass the dataset's root folder")
        try:
            self.info: dict[str, Any] = json.loads(info_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ProcvlmError(f"{info_path} is not valid JSON ({err}): restore the file") from err
        version = str(self.info.get("codebase_version", "?"))
        if not version.startswith("v3"):
            raise ProcvlmError(f"{self.root} is a LeRobot {version} dataset, procvlm reads v3.0: "
                               "convert it with lerobot's convert_dataset_v21_to_v30")
        self.fps = float(self.info["fps"])
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.camera_keys = [k for k, ft in self.features.items()
                            if ft["dtype"] in ("video", "image")]
        self.cameras = [fmt.camera_name(k) for k in self.camera_keys]
        self._rows = self._load_episodes()
        self.tasks = self._load_strings(fmt.TASKS_PATH, "task_index", required=True)
        self.subtask_names = self._load_strings(fmt.SUBTASKS_PATH, "subtask_index", required=False)
        self._data_cache: tuple[Path, pa.Table] | None = None

    def _load_episodes(self) -> dict[int, dict[str, Any]]:
        paths = sorted((self.root / fmt.EPISODES_DIR).glob("*/*.parquet"))
        if not paths:
            raise ProcvlmError(f"{self.root} has no {fmt.EPISODES_DIR}/*/*.parquet: it is not a "
                               "complete LeRobot v3 dataset, re-write or re-download it")
        rows: dict[int, dict[str, Any]] = {}
        for path in paths:
            try:
                table = pq.read_table(path)
            except (pa.ArrowException, OSError) as err:
                raise ProcvlmError(f"{path} is not a readable parquet file ({err}): restore it"
                                   ) from err
            for row in table.to_pylist():
                rows[int(row["episode_index"])] = row
        return dict(sorted(rows.items()))

    def _load_strings(self, rel: str, column: str, required: bool) -> list[str]:
        path = self.root / rel
        if not path.exists():
            if required:
                raise ProcvlmError(f"{self.root} has no {rel}: it is not a complete LeRobot v3 "
                                   "dataset, re-write or re-download it")
            return []
        return fmt.read_index_table(path, column)

    # --- the Dataset interface ------------------------------------------------------------

    @property
    def episode_indices(self) -> list[int]:
        return list(self._rows)

    def episode_length(self, i: int) -> int:
        return int(self._rows[self._check_index(i)]["length"])

    def episode_meta(self, i: int) -> dict[str, Any]:
        return dict(self._rows[self._check_index(i)])

    def global_index(self, i: int) -> np.ndarray:
        row = self._rows[self._check_index(i)]
        return np.arange(int(row["dataset_from_index"]), int(row["dataset_to_index"]),
                         dtype=np.int64)

    @property
    def state_names(self) -> list[str] | None:
        ft = self.features.get(fmt.STATE_KEY)
        return fmt.flat_names(ft.get("names")) if ft else None

    def episode(self, i: int, cameras: Sequence[str] | None = None) -> Episode:
        """Episode ``i``; camera frames decode lazily (see ``VideoFrames`` / ``PNGFrames``).

        Raises:
            ProcvlmError: unknown episode or camera, missing or corrupt files, or parquet and
                video lengths that disagree.
        """
        i = self._check_index(i)
        cams = self._check_cameras(cameras)
        row = self._rows[i]
        table = self._episode_table(i, row, cams)
        length = int(row["length"])
        frames: dict[str, Frames] = {cam: self._frames(cam, row, table) for cam in cams}
        meta = json.loads(row["procvlm_meta"]) if row.get("procvlm_meta") else {}
        if self.state_names and "state_names" not in meta:
            meta["state_names"] = self.state_names
        task_ids = table.column("task_index") if "task_index" in table.column_names else None
        task = (self.tasks[int(task_ids[0].as_py())] if task_ids is not None and len(self.tasks)
                else (row.get("tasks") or [""])[0])
        return Episode(episode_index=i, task=task, fps=self.fps, frames=frames,
                       state=_matrix(table, fmt.STATE_KEY, length),
                       action=_matrix(table, fmt.ACTION_KEY, length),
                       success=row.get("success"), subtasks=self._subtasks(row, table),
                       plan=list(row["plan"]) if row.get("plan") is not None else None, meta=meta,
                       true_progress=_true_progress(table, length))

    # --- helpers ------------------------------------------------------------------------------

    def _data_table(self, path: Path) -> pa.Table:
        if self._data_cache is not None and self._data_cache[0] == path:
            return self._data_cache[1]
        if not path.exists():
            raise ProcvlmError(f"{path} is missing: the dataset is incomplete, re-write or "
                               "re-download it")
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as err:
            raise ProcvlmError(f"{path} is not a readable parquet file ({err}): re-write it"
                               ) from err
        self._data_cache = (path, table)
        return table

    def _episode_table(self, i: int, row: dict[str, Any], cams: list[str]) -> pa.Table:
        path = self.root / self.info["data_path"].format(chunk_index=row["data/chunk_index"],
                                                         file_index=row["data/file_index"])
        table = self._data_table(path)
        table = table.filter(pc.equal(table.column("episode_index"), i))
        if table.num_rows != int(row["length"]):
            raise ProcvlmError(f"episode {i} of {self.root}: {path.name} holds {table.num_rows} "
                               f"frames but meta/episodes says length {row['length']}: parquet "
                               f"and metadata disagree, {redo_hint(i)}")
        if "frame_index" in table.column_names:
            table = table.sort_by("frame_index")
        return table

    def _frames(self, cam: str, row: dict[str, Any], table: pa.Table) -> Frames:
        key = fmt.camera_key(cam) if fmt.camera_key(cam) in self.features else cam
        length = int(row["length"])
        if self.features[key]["dtype"] == "image":
            column = table.column(key).to_pylist()
            return PNGFrames([c["bytes"] if isinstance(c, dict) else c for c in column],
                             source=f"{key} of episode {row['episode_index']} in {self.root}")
        path = self.root / self.info["video_path"].format(
            video_key=key, chunk_index=row[f"videos/{key}/chunk_index"],
            file_index=row[f"videos/{key}/file_index"])
        if not path.exists():
            raise ProcvlmError(f"{path} is missing: the dataset is incomplete, re-write or "
                               "re-download it")
        start = float(row[f"videos/{key}/from_timestamp"])
        end = float(row[f"videos/{key}/to_timestamp"])
        fix = redo_hint(int(row["episode_index"]))
        probe = probe_video(path, fix)
        span = round((end - start) * self.fps)
        available = probe.frames - round(start * self.fps)
        if span != length or (probe.frames > 0 and available < length):
            raise ProcvlmError(f"{path} holds {min(span, available)} frames for episode "
                               f"{row['episode_index']} but its parquet has {length}: parquet and "
                               f"video lengths disagree, {fix}")
        return VideoFrames(path, length, self.fps, from_timestamp=start, fix=fix)

    def _subtasks(self, row: dict[str, Any], table: pa.Table) -> list[Subtask] | None:
        names = row.get("sparse_subtask_names")
        if "sparse_subtask_names" in row and names is None:
            return None  # written by procvlm without a sub-step timeline
        if names is not None:
            starts = row.get("sparse_subtask_start_frames")
            ends = row.get("sparse_subtask_end_frames")
            if starts is None or ends is None:
                starts = [round(t * self.fps) for t in row.get("sparse_subtask_start_times") or []]
                ends = [round(t * self.fps) for t in row.get("sparse_subtask_end_times") or []]
            done = row.get("subtask_completed") or [True] * len(names)
            return [Subtask(str(n), int(s), int(e), bool(c))
                    for n, s, e, c in zip(names, starts, ends, done)]
        if "subtask_index" not in table.column_names or not self.subtask_names:
            return None
        return _runs(table.column("subtask_index").to_numpy(), self.subtask_names) or None


def _matrix(table: pa.Table, key: str, length: int) -> np.ndarray:
    if key not in table.column_names:
        return np.zeros((length, 0), dtype=np.float32)
    column = table.column(key).combine_chunks()
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        values = column.flatten().to_numpy(zero_copy_only=False)
        return values.reshape(length, -1).astype(np.float32, copy=False)
    return column.to_numpy(zero_copy_only=False).reshape(length, -1).astype(np.float32)


def _true_progress(table: pa.Table, length: int) -> np.ndarray | None:
    """The per-frame ``true_progress`` column as (T,) float32, or None when absent."""
    if fmt.TRUE_PROGRESS_KEY not in table.column_names:
        return None
    column = table.column(fmt.TRUE_PROGRESS_KEY).combine_chunks()
    if pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
        column = column.flatten()
    return column.to_numpy(zero_copy_only=False).reshape(length).astype(np.float32)


def _runs(ids: np.ndarray, names: list[str]) -> list[Subtask]:
    """Sub-steps from per-frame ``subtask_index`` runs (all marked completed); -1 (older
    procvlm datasets) and the ``idle`` / ``done`` filler rows are no sub-step."""
    out: list[Subtask] = []
    start = 0
    for t in range(1, len(ids) + 1):
        if t == len(ids) or ids[t] != ids[start]:
            k = int(ids[start])
            if 0 <= k < len(names) and names[k] not in fmt.FILLER_SUBTASKS:
                out.append(Subtask(names[k], start, t, True))
            start = t
    return out
