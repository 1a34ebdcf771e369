"""Write ``Episode``s as a LeRobot v3.0 dataset (layout: see ``procvlm.data.lerobot_format``).

One episode per data file and per video file; every file goes through a temporary file and a
rename, and the metadata (``meta/episodes``, tasks, subtasks, stats, ``info.json``) is rewritten
after each episode. An episode becomes visible only when its ``meta/episodes`` row is written,
so a crash mid-episode leaves nothing half-visible, and reopening the folder resumes.

procvlm stores, beside LeRobot's own columns: per-frame ``subtask_index`` (into
``meta/subtasks.parquet``; frames no sub-step covers point at an explicit ``idle`` row, or
``done`` after the last step of a successful episode, because LeRobot names a frame's sub-step
with ``subtasks.iloc[subtask_index]``), when the writer is asked to, per-frame float32
``true_progress`` (simulator-truth progress, ``Episode.true_progress``), and per episode
``success``, ``plan``, ``procvlm_meta``
(JSON) and the sub-step timeline as SARM-style ``sparse_subtask_names`` /
``sparse_subtask_start_frames`` / ``sparse_subtask_end_frames`` (+ ``_times`` in seconds) plus
``subtask_completed``. SARM's dense head reads ``dense_subtask_*``: the same steps made gap-free
as SARM's annotations are (no gaps, idle time extends the step before). Both heads' priors go to
``meta/temporal_proportions_{sparse,dense}.json``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from procvlm._io import write_json, write_parquet
from procvlm.data import lerobot_format as fmt
from procvlm.data.episode import DONE, Episode
from procvlm.data.video import VideoConfig, encode_video
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

_STAT_FRAMES = 64  # frames sampled per episode and camera for image stats


class LeRobotWriter:
    """Writes episodes into a LeRobot v3.0 folder; reopening an existing folder resumes it.

    Args:
        root: dataset folder (created if missing).
        fps: frames per second.
        cameras: short camera name -> (height, width); the first is the main camera.
        state_dim: length of ``observation.state``.
        action_dim: length of ``action``.
        robot_type: stored in ``info.json``.
        video: True stores mp4 videos (dtype ``video``); False stores PNG images in the parquet
            (dtype ``image``).
        state_names: names of the state dimensions (``features[...]["names"]``).
        action_names: names of the action dimensions.
        video_config: encoder settings.
        true_progress: store every episode's ``true_progress`` as a per-frame float32 column
            (declared in ``info.json``); every episode must then carry it.
    """

    def __init__(self, root: str | Path, *, fps: float, cameras: dict[str, tuple[int, int]],
                 state_dim: int, action_dim: int, robot_type: str = "unknown", video: bool = True,
                 state_names: Sequence[str] | None = None,
                 action_names: Sequence[str] | None = None,
                 video_config: VideoConfig | None = None, true_progress: bool = False) -> None:
        self.root = Path(root)
        self.fps = float(fps)
        self.cameras = {str(c): (int(h), int(w)) for c, (h, w) in cameras.items()}
        self.state_dim, self.action_dim = int(state_dim), int(action_dim)
        self.robot_type, self.video = robot_type, bool(video)
        self.video_config = video_config or VideoConfig()
        self.true_progress = bool(true_progress)
        self._check_args(state_names, action_names)
        self.features = fmt.build_features(self.cameras, self.state_dim, self.action_dim,
                                           video=self.video, fps=self.fps,
                                           state_names=state_names, action_names=action_names,
                                           true_progress=self.true_progress)
        self.chunks_size = fmt.DEFAULT_CHUNK_SIZE
        self._rows: list[dict[str, Any]] = []
        self._tasks: list[str] = []
        self._subtasks: list[str] = []
        if (self.root / fmt.INFO_PATH).exists():
            self._resume()
        elif self.root.exists() and any(self.root.iterdir()):
            raise ProcvlmError(f"{self.root} exists, is not empty and is not a LeRobot dataset (no "
                               f"{fmt.INFO_PATH}): pass a new or empty folder")
        else:
            self._write_meta()

    # --- set-up ---------------------------------------------------------------------------

    def _check_args(self, state_names: Sequence[str] | None,
                    action_names: Sequence[str] | None) -> None:
        if self.fps <= 0:
            raise ProcvlmError(f"fps={self.fps} for {self.root}: pass a positive frame rate")
        if self.state_dim < 1 or self.action_dim < 1:
            raise ProcvlmError(f"state_dim={self.state_dim}, action_dim={self.action_dim} for "
                               f"{self.root}: both must be >= 1")
        for cam, (h, w) in self.cameras.items():
            if h < 2 or w < 2 or (self.video and (h % 2 or w % 2)):
                raise ProcvlmError(f"camera {cam!r} shape ({h}, {w}) for {self.root}: video needs "
                                   "even height and width >= 2 (crop, or pass video=False)")
        for names, dim, what in ((state_names, self.state_dim, "state_names"),
                                 (action_names, self.action_dim, "action_names")):
            if names is not None and len(names) != dim:
                raise ProcvlmError(f"{what} has {len(names)} names but the dimension is {dim}: "
                                   "pass one name per dimension")

    def _resume(self) -> None:
        try:
            info = json.loads((self.root / fmt.INFO_PATH).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise ProcvlmError(f"{self.root / fmt.INFO_PATH} is not readable JSON "
                               f"({type(err).__name__}): delete {self.root} or pass a new "
                               "folder") from err
        if not info.get("total_episodes") and info.get("features") != self.features:
            # An empty dataset (only a stub info.json) loses nothing by taking new features.
            logger.info("%s holds no episode yet; starting it with the given features", self.root)
            self._write_meta()
            return
        if info.get("features") != self.features:
            raise ProcvlmError(f"{self.root} already holds a dataset with other features "
                               f"(cameras, dims, names or video mode): pass a new folder or the "
                               f"same settings to resume it")
        path = self.root / fmt.EPISODES_PATH.format(chunk_index=0, file_index=0)
        if path.exists():
            self._rows = pq.read_table(path).to_pylist()
        if (self.root / fmt.TASKS_PATH).exists():
            self._tasks = fmt.read_index_table(self.root / fmt.TASKS_PATH, "task_index")
        if (self.root / fmt.SUBTASKS_PATH).exists():
            self._subtasks = fmt.read_index_table(self.root / fmt.SUBTASKS_PATH, "subtask_index")
        logger.info("resuming %s at episode %d", self.root, len(self._rows))

    @property
    def done_episodes(self) -> set[int]:
        """Indices of the episodes already written (complete and visible)."""
        return {int(r["episode_index"]) for r in self._rows}

    @property
    def num_episodes(self) -> int:
        return len(self._rows)

    # --- writing ------------------------------------------------------------------------------

    def add_episode(self, ep: Episode) -> int:
        """Write one episode (data, videos or images, metadata); return its dataset index.

        Episodes are numbered in the order they are added (0, 1, 2, ...), whatever
        ``ep.episode_index`` says, as LeRobot requires contiguous indices.

        Raises:
            ProcvlmError: the episode does not match the declared cameras, shapes or dims;
                nothing is written then.
        """
        self._validate(ep)
        index = len(self._rows)
        if ep.episode_index != index:
            logger.debug("episode %d stored as index %d", ep.episode_index, index)
        tasks = list(self._tasks)
        subtasks = list(self._subtasks)
        task_index = _intern(tasks, ep.task)
        sub_ids = _frame_subtask_ids(ep, subtasks)
        start = int(self._rows[-1]["dataset_to_index"]) if self._rows else 0
        chunk, file = fmt.chunk_file(index, self.chunks_size)
        stats = self._write_episode_data(ep, index, task_index, sub_ids, start, chunk, file)
        row = self._episode_row(ep, index, start, chunk, file, stats)
        self._tasks, self._subtasks = tasks, subtasks
        self._rows.append(row)
        self._write_meta()
        return index

    def replace_episode(self, index: int, ep: Episode) -> int:
        """Write ``ep`` over the held episode ``index`` (e.g. one whose video is corrupt).

        The new episode must have the stored one's length, as the global frame ``index``
        column of every later episode depends on it; generating it again from the same seed
        gives that.

        Raises:
            ProcvlmError: ``index`` is not held, or the lengths differ; nothing is written then.
        """
        if not 0 <= index < len(self._rows):
            raise ProcvlmError(f"episode {index} is not in {self.root} (it holds "
                               f"{len(self._rows)}): pass an index it holds")
        self._validate(ep)
        old = self._rows[index]
        if len(ep) != int(old["length"]):
            raise ProcvlmError(f"the new episode {index} has {len(ep)} frames, the stored one "
                               f"{old['length']}: replace it with an episode of the same length")
        tasks, subtasks = list(self._tasks), list(self._subtasks)
        task_index = _intern(tasks, ep.task)
        sub_ids = _frame_subtask_ids(ep, subtasks)
        start = int(old["dataset_from_index"])
        chunk, file = int(old["data/chunk_index"]), int(old["data/file_index"])
        stats = self._write_episode_data(ep, index, task_index, sub_ids, start, chunk, file)
        self._tasks, self._subtasks = tasks, subtasks
        self._rows[index] = self._episode_row(ep, index, start, chunk, file, stats)
        self._write_meta()
        return index

    def _validate(self, ep: Episode) -> None:
        t = len(ep.state)
        where = f"episode {ep.episode_index} given to the writer of {self.root}"
        state, action = np.asarray(ep.state), np.asarray(ep.action)
        if t == 0:
            raise ProcvlmError(f"{where} has no frames: pass an episode with at least one step")
        if state.shape != (t, self.state_dim) or action.shape != (t, self.action_dim):
            raise ProcvlmError(f"{where} has state {state.shape} and action {action.shape}, "
                               f"declared ({t}, {self.state_dim}) and ({t}, {self.action_dim}): "
                               "fix the episode or the writer's state_dim/action_dim")
        if list(ep.frames) != list(self.cameras):
            raise ProcvlmError(f"{where} has cameras {list(ep.frames)}, declared "
                               f"{list(self.cameras)}: pass the same cameras in the same order")
        for cam, (h, w) in self.cameras.items():
            frames = ep.frames[cam]
            shape = tuple(getattr(frames, "shape", ())) or (len(frames), *np.shape(frames[0]))
            if shape != (t, h, w, 3):
                raise ProcvlmError(f"{where} has camera {cam!r} frames of shape {shape}, declared "
                                   f"({t}, {h}, {w}, 3): resize the frames or fix cameras=")
        try:
            _meta_json(ep.meta)
        except (TypeError, ValueError) as err:
            raise ProcvlmError(f"{where} has meta that is not JSON-able ({err}): keep Episode.meta "
                               "to str/number/bool/None/list/dict values") from err
        self._validate_true_progress(ep, where)
        for s in ep.subtasks or []:
            if s.end > t:
                raise ProcvlmError(f"{where} has sub-step {s.name!r} ending at frame {s.end} > "
                                   f"length {t}: fix the sub-step timeline")

    def _validate_true_progress(self, ep: Episode, where: str) -> None:
        if ep.true_progress is None:
            if self.true_progress:
                raise ProcvlmError(f"{where} has no true_progress but the dataset stores it: "
                                   "give every episode true_progress, or open the writer with "
                                   "true_progress=False")
            return
        if not self.true_progress:
            raise ProcvlmError(f"{where} carries true_progress but the writer does not store it: "
                               "open the writer with true_progress=True")
        shape = np.shape(ep.true_progress)
        if shape != (len(ep),) or not np.all(np.isfinite(ep.true_progress)):
            raise ProcvlmError(f"{where} has true_progress of shape {shape} (or non-finite "
                               f"values), expected ({len(ep)},) finite floats: fix the episode")

    def _write_episode_data(self, ep: Episode, index: int, task_index: int, sub_ids: np.ndarray,
                            start: int, chunk: int, file: int) -> dict[str, dict[str, list]]:
        t = len(ep)
        columns = self._frame_columns(ep, index, task_index, sub_ids, start)
        stats = {k: fmt.array_stats(np.asarray(v)) for k, v in columns.items()}
        for cam in self.cameras:
            key = fmt.camera_key(cam)
            stats[key] = fmt.image_stats(ep.frames[cam][_stat_sample(t)])
            if self.video:
                path = self.root / fmt.VIDEO_PATH.format(video_key=key, chunk_index=chunk,
                                                         file_index=file)
                n = encode_video(path, _iter_frames(ep.frames[cam], self._shape(cam), key),
                                 self.fps, self.video_config)
                if n != t:
                    raise ProcvlmError(f"camera {cam!r} of episode {ep.episode_index} yielded {n} "
                                       f"frames for {t} steps: fix the episode's frames")
        arrays: dict[str, pa.Array] = {}
        if not self.video:
            for cam in self.cameras:
                arrays[fmt.camera_key(cam)] = _png_column(ep.frames[cam], self._shape(cam), cam)
        arrays[fmt.STATE_KEY] = _fixed_list(columns.pop(fmt.STATE_KEY))
        arrays[fmt.ACTION_KEY] = _fixed_list(columns.pop(fmt.ACTION_KEY))
        for key, values in columns.items():
            arrays[key] = pa.array(values)
        table = pa.table(arrays)
        write_parquet(self.root / fmt.DATA_PATH.format(chunk_index=chunk, file_index=file), table)
        return stats

    def _shape(self, cam: str) -> tuple[int, int, int]:
        h, w = self.cameras[cam]
        return (h, w, 3)

    def _frame_columns(self, ep: Episode, index: int, task_index: int, sub_ids: np.ndarray,
                       start: int) -> dict[str, np.ndarray]:
        t = len(ep)
        columns = {
            fmt.STATE_KEY: np.asarray(ep.state, dtype=np.float32),
            fmt.ACTION_KEY: np.asarray(ep.action, dtype=np.float32),
            "timestamp": (np.arange(t) / self.fps).astype(np.float32),
            "frame_index": np.arange(t, dtype=np.int64),
            "episode_index": np.full(t, index, dtype=np.int64),
            "index": np.arange(start, start + t, dtype=np.int64),
            "task_index": np.full(t, task_index, dtype=np.int64),
            "subtask_index": sub_ids,
        }
        if self.true_progress:
            columns[fmt.TRUE_PROGRESS_KEY] = np.asarray(ep.true_progress, dtype=np.float32)
        return columns

    def _episode_row(self, ep: Episode, index: int, start: int, chunk: int, file: int,
                     stats: dict[str, dict[str, list]]) -> dict[str, Any]:
        t = len(ep)
        row: dict[str, Any] = {"episode_index": index, "tasks": [ep.task], "length": t,
                               "data/chunk_index": chunk, "data/file_index": file,
                               "dataset_from_index": start, "dataset_to_index": start + t}
        if self.video:
            for cam in self.cameras:
                key = fmt.camera_key(cam)
                row.update({f"videos/{key}/chunk_index": chunk, f"videos/{key}/file_index": file,
                            f"videos/{key}/from_timestamp": 0.0,
                            f"videos/{key}/to_timestamp": t / self.fps})
        row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
        for key, st in stats.items():
            for name, value in st.items():
                row[f"stats/{key}/{name}"] = value
        subs = sorted(ep.subtasks or [], key=lambda s: s.start)
        dense = fmt.gap_free(([s.name for s in subs], [s.start for s in subs],
                              [s.end for s in subs]), t)
        row.update({
            "success": None if ep.success is None else bool(ep.success),
            "plan": None if ep.plan is None else [str(a) for a in ep.plan],
            "procvlm_meta": _meta_json(ep.meta),
            "sparse_subtask_names": [s.name for s in subs] if ep.subtasks is not None else None,
            "sparse_subtask_start_frames": [int(s.start) for s in subs],
            "sparse_subtask_end_frames": [int(s.end) for s in subs],
            "sparse_subtask_start_times": [s.start / self.fps for s in subs],
            "sparse_subtask_end_times": [s.end / self.fps for s in subs],
            "subtask_completed": [bool(s.completed) for s in subs],
            "dense_subtask_names": dense[0] if ep.subtasks is not None else None,
            "dense_subtask_start_frames": dense[1],
            "dense_subtask_end_frames": dense[2],
            "dense_subtask_start_times": [f / self.fps for f in dense[1]],
            "dense_subtask_end_times": [f / self.fps for f in dense[2]],
        })
        return row

    def _write_meta(self) -> None:
        if self._tasks:
            write_parquet(self.root / fmt.TASKS_PATH,
                          fmt.index_table(self._tasks, "task", "task_index"))
        if self._subtasks:
            write_parquet(self.root / fmt.SUBTASKS_PATH,
                          fmt.index_table(self._subtasks, "subtask", "subtask_index"))
        if self._rows:
            write_parquet(self.root / fmt.EPISODES_PATH.format(chunk_index=0, file_index=0),
                          _episodes_table(self._rows))
            stats = [{k.split("/")[1]: {} for k in r if k.startswith("stats/")} for r in self._rows]
            for r, st in zip(self._rows, stats):
                for k, v in r.items():
                    if k.startswith("stats/"):
                        _, feat, name = k.split("/")
                        st[feat][name] = v
            write_json(self.root / fmt.STATS_PATH, fmt.aggregate_stats(stats), indent=4)
            self._write_temporal_proportions()
        total_frames = int(self._rows[-1]["dataset_to_index"]) if self._rows else 0
        info = fmt.build_info(self.features, fps=self.fps, robot_type=self.robot_type,
                              total_episodes=len(self._rows), total_frames=total_frames,
                              total_tasks=len(self._tasks), chunks_size=self.chunks_size)
        write_json(self.root / fmt.INFO_PATH, info, indent=4)

    def _write_temporal_proportions(self) -> None:
        """SARM's stage priors of the sparse and dense stage columns (when any episode has
        sub-steps)."""
        for kind in ("sparse", "dense"):
            stages = [(r[f"{kind}_subtask_names"], r[f"{kind}_subtask_start_frames"],
                       r[f"{kind}_subtask_end_frames"])
                      for r in self._rows if r.get(f"{kind}_subtask_names")]
            if stages:
                write_json(self.root / fmt.TEMPORAL_PROPORTIONS_PATH.format(kind=kind),
                           fmt.temporal_proportions(stages, self._subtasks), indent=2)

    def finalize(self) -> Path:
        """Rewrite the metadata once more (idempotent) and return the dataset root."""
        self._write_meta()
        return self.root

    def __enter__(self) -> LeRobotWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finalize()


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _meta_json(meta: dict[str, Any] | None) -> str:
    return json.dumps(meta or {}, sort_keys=True, default=_json_default, allow_nan=False)


def _intern(names: list[str], name: str) -> int:
    if name not in names:
        names.append(name)
    return names.index(name)


def _frame_subtask_ids(ep: Episode, names: list[str]) -> np.ndarray:
    """(T,) row of ``names`` (interned as needed) for every frame: the covering sub-step, else
    ``done`` after the last step of a successful episode, else ``idle``."""
    subs = ep.subtasks or []
    ids = np.asarray([_intern(names, s.name) for s in subs] + [-1], np.int64)
    ids = ids[ep.subtask_index_per_frame()]  # -1 (no sub-step) picks the trailing -1
    if subs and ep.success:
        tail = np.arange(len(ids)) >= max(s.end for s in subs)
        if (tail & (ids < 0)).any():
            ids[tail & (ids < 0)] = _intern(names, DONE)
    if (ids < 0).any():
        ids[ids < 0] = _intern(names, fmt.IDLE_SUBTASK)
    return ids


def _stat_sample(t: int) -> np.ndarray:
    return np.unique(np.linspace(0, t - 1, min(t, _STAT_FRAMES)).round().astype(np.int64))


def _iter_frames(frames: Any, shape: tuple[int, int, int], what: str,
                 block: int = 64) -> Iterator[np.ndarray]:
    for s in range(0, len(frames), block):
        chunk = np.asarray(frames[s:s + block])
        if chunk.shape[1:] != shape or chunk.dtype != np.uint8:
            raise ProcvlmError(f"{what} frames {s}..{s + len(chunk)} are {chunk.shape[1:]} "
                               f"{chunk.dtype}, declared {shape} uint8: fix the frames")
        yield from chunk


def _png_column(frames: Any, shape: tuple[int, int, int], cam: str) -> pa.Array:
    blobs = []
    for frame in _iter_frames(frames, shape, f"camera {cam!r}"):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="PNG", compress_level=1)
        blobs.append(buf.getvalue())
    return pa.StructArray.from_arrays(
        [pa.array(blobs, pa.binary()), pa.array([None] * len(blobs), pa.string())],
        names=["bytes", "path"])


def _fixed_list(values: np.ndarray) -> pa.Array:
    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _episodes_table(rows: list[dict[str, Any]]) -> pa.Table:
    extra = set(fmt.EPISODE_EXTRA_SCHEMA.names)
    base = pa.Table.from_pylist([{k: v for k, v in r.items() if k not in extra} for r in rows])
    for field in fmt.EPISODE_EXTRA_SCHEMA:
        base = base.append_column(field, pa.array([r.get(field.name) for r in rows], field.type))
    return base


def write_dataset(root: str | Path, episodes: Iterable[Episode], **writer_kwargs: Any) -> Path:
    """Write episodes as a LeRobot v3 dataset.

    Args:
        root: dataset folder.
        episodes: the episodes, in order.
        **writer_kwargs: ``LeRobotWriter`` arguments; ``fps``, ``cameras``, ``state_dim``,
            ``action_dim`` and ``true_progress`` default to the first episode's.

    Returns:
        The dataset root.
    """
    writer: LeRobotWriter | None = None
    for ep in episodes:
        if writer is None:
            kwargs = dict(writer_kwargs)
            kwargs.setdefault("fps", ep.fps)
            kwargs.setdefault("cameras", {c: tuple(np.shape(f[0])[:2])
                                          for c, f in ep.frames.items()})
            kwargs.setdefault("state_dim", int(np.shape(ep.state)[1]))
            kwargs.setdefault("action_dim", int(np.shape(ep.action)[1]))
            kwargs.setdefault("true_progress", ep.true_progress is not None)
            writer = LeRobotWriter(root, **kwargs)
        writer.add_episode(ep)
    if writer is None:
        raise ProcvlmError(f"no episodes given to write into {root}: pass at least one episode")
    return writer.finalize()
