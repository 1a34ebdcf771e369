"""The ``dataset`` annotator: sub-steps that a LeRobot dataset already carries.

Two layouts are read:

- SARM's episode columns in ``meta/episodes/*.parquet``: ``{sparse,dense}_subtask_names``,
  ``..._start_frames``, ``..._end_frames`` (and the legacy unprefixed ``subtask_*``), as written
  by LeRobot's ``subtask_annotation.py``; procvlm's own writer adds ``subtask_completed``.
  LeRobot writes boundaries as shared points (the end of a stage equals the start of the next),
  some tools write inclusive ends (``end + 1 == next start``); both become end-exclusive
  ``Subtask`` ranges, and a last stage ending on the last frame covers it.
- LeRobot's per-frame ``subtask_index`` column in ``data/`` with the names in
  ``meta/subtasks.parquet`` (the subtask string as the pandas index, or a ``subtask`` column).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from procvlm.annotate.base import Annotation, Annotator
from procvlm.data.episode import Episode, Subtask
from procvlm.data.lerobot_format import FILLER_SUBTASKS
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

GRANULARITIES = ("auto", "sparse", "dense")
_PREFIXES = {"sparse": ("sparse_", ""), "dense": ("dense_",)}
_PLACEHOLDER = "task"  # LeRobot's auto-generated single stage spanning the whole episode


class EpisodeMetaSource(Protocol):
    """What the annotator needs from a dataset: its root and raw ``meta/episodes`` rows."""

    root: Path

    def episode_meta(self, episode_index: int) -> dict[str, Any]: ...


class _MetaReader:
    """Reads ``meta/episodes/**/*.parquet`` of a LeRobot v3 folder (no decoding, no videos)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        files = sorted((self.root / "meta" / "episodes").glob("**/*.parquet"))
        if not files:
            raise ProcvlmError(f"{self.root} has no meta/episodes/*.parquet: pass the root folder "
                               "of a LeRobot v3 dataset")
        self._rows: dict[int, dict[str, Any]] = {}
        for f in files:
            for row in pq.read_table(f).to_pylist():
                self._rows[int(row["episode_index"])] = row

    def episode_meta(self, episode_index: int) -> dict[str, Any]:
        if episode_index not in self._rows:
            raise ProcvlmError(f"episode {episode_index} is not in {self.root}/meta/episodes")
        return self._rows[episode_index]


class DatasetAnnotator(Annotator):
    """Sub-steps stored in the dataset (SARM columns, per-frame ``subtask_index``, or the
    ``Episode.subtasks`` that the data layer already read).

    Args:
        dataset: a ``procvlm.data.Dataset`` (anything with ``.root`` and ``.episode_meta(i)``)
            or a dataset root folder. ``label_dataset`` passes ``dataset=ds``. Without it only
            ``Episode.subtasks`` can be used.
        granularity: ``"sparse"``, ``"dense"`` or ``"auto"`` (the one of the two with more
            stages; sparse on a tie).
    """

    name = "dataset"
    internal_args = ("dataset",)  # label_dataset passes the open dataset

    def __init__(self, dataset: EpisodeMetaSource | str | os.PathLike | None = None, *,
                 granularity: str = "auto") -> None:
        if granularity not in GRANULARITIES:
            raise ProcvlmError(f"granularity={granularity!r}: choose one of "
                               f"{', '.join(GRANULARITIES)}")
        if isinstance(dataset, (str, os.PathLike)):
            dataset = _MetaReader(dataset)
        self.dataset = dataset
        self.granularity = granularity
        self._subtask_names: dict[int, str] | None = None

    def annotate(self, episode: Episode) -> Annotation:
        subtasks = None
        if self.dataset is not None:
            row = self.dataset.episode_meta(episode.episode_index)
            subtasks = self._from_columns(row, len(episode))
            if subtasks is None and self.granularity != "dense":
                subtasks = self._from_frame_index(episode, row)
        if subtasks is None and episode.subtasks and self.granularity == "auto":
            subtasks = list(episode.subtasks)
        if not subtasks:
            where = self.dataset.root if self.dataset is not None else "the episode"
            raise ProcvlmError(
                f"episode {episode.episode_index} of {where} has no stored sub-step annotation "
                "(no sparse_/dense_subtask_* columns in meta/episodes, no subtask_index): "
                "use --annotator gripper (proprioception) or --annotator vlm instead")
        subtasks = _mark_failure(subtasks, episode)
        plan = list(episode.plan) if episode.plan else _plan_of(subtasks)
        return Annotation(subtasks=subtasks, plan=plan)

    def _from_columns(self, row: dict[str, Any], num_frames: int) -> list[Subtask] | None:
        kinds = ("sparse", "dense") if self.granularity == "auto" else (self.granularity,)
        found = {k: _read_stage_columns(row, k) for k in kinds}
        found = {k: v for k, v in found.items() if v is not None}
        if not found:
            return None
        kind = max(found, key=lambda k: (len(found[k][0]), k == "sparse"))
        names, starts, ends = found[kind]
        completed = row.get("subtask_completed") if kind == "sparse" else None
        return segments_from_columns(names, starts, ends, num_frames, completed)

    def _from_frame_index(self, episode: Episode, row: dict[str, Any]) -> list[Subtask] | None:
        index = _read_frame_subtask_index(self.dataset.root, episode.episode_index, row)
        if index is None:
            return None
        if self._subtask_names is None:
            self._subtask_names = _read_subtask_names(self.dataset.root)
        return segments_from_frame_index(index, self._subtask_names)


def _read_stage_columns(row: dict[str, Any], kind: str) -> tuple[list, list, list] | None:
    for prefix in _PREFIXES[kind]:
        names = row.get(f"{prefix}subtask_names")
        if names is None or len(names) == 0:
            continue
        starts = row.get(f"{prefix}subtask_start_frames")
        ends = row.get(f"{prefix}subtask_end_frames")
        if starts is None or ends is None:
            raise ProcvlmError(f"meta/episodes has {prefix}subtask_names but no "
                               f"{prefix}subtask_start_frames / _end_frames: re-run the "
                               "annotation tool, or use --annotator gripper or vlm")
        if list(names) == [_PLACEHOLDER]:
            continue  # SARM's single auto-generated stage says nothing about sub-steps
        return list(names), [int(s) for s in starts], [int(e) for e in ends]
    return None


def segments_from_columns(names: Sequence[str], starts: Sequence[int], ends: Sequence[int],
                          num_frames: int, completed: Sequence[bool] | None = None
                          ) -> list[Subtask]:
    """SARM-style stage lists -> end-exclusive ``Subtask`` ranges.

    Args:
        names: stage names in time order.
        starts: first frame of each stage.
        ends: end frame of each stage: shared with the next start (LeRobot) or inclusive.
        num_frames: episode length; ranges are clipped to it.
        completed: per-stage completion flags (procvlm's ``subtask_completed``), default True.

    Returns:
        The timeline; zero-length stages are dropped.
    """
    n = len(names)
    if not (len(starts) == len(ends) == n) or (completed is not None and len(completed) != n):
        raise ProcvlmError(f"stage columns disagree in length (names {n}, starts {len(starts)}, "
                           f"ends {len(ends)}): fix the dataset's meta/episodes annotation")
    inclusive = (n > 1 and all(ends[k] + 1 == starts[k + 1] for k in range(n - 1))) or \
        (n == 1 and ends[0] == num_frames - 1)
    out = []
    for k in range(n):
        start = max(0, int(starts[k]))
        end = int(ends[k]) + (1 if inclusive else 0)
        if k == n - 1 and end >= num_frames - 1:
            end = num_frames  # the last stage runs to the end of the episode
        end = min(end, num_frames)
        if end <= start:
            logger.debug("dropping empty stage %r [%d, %d)", names[k], start, end)
            continue
        done = True if completed is None else bool(completed[k])
        out.append(Subtask(str(names[k]), start, end, done))
    return out


def segments_from_frame_index(index: np.ndarray, names: dict[int, str]) -> list[Subtask]:
    """Runs of equal per-frame ``subtask_index`` -> ``Subtask`` ranges (-1 and the ``idle`` /
    ``done`` filler rows procvlm writes mean no sub-step).

    Args:
        index: (T,) per-frame subtask index, in frame order.
        names: subtask index -> name (``meta/subtasks.parquet``).
    """
    index = np.asarray(index, dtype=np.int64)
    out: list[Subtask] = []
    start = 0
    for t in range(1, len(index) + 1):
        if t < len(index) and index[t] == index[start]:
            continue
        value = int(index[start])
        if value >= 0 and names.get(value) not in FILLER_SUBTASKS:
            if value not in names:
                raise ProcvlmError(f"subtask_index {value} has no name in meta/subtasks.parquet: "
                                   "fix the dataset, or use --annotator gripper or vlm")
            out.append(Subtask(names[value], start, t, True))
        start = t
    return out


def _read_subtask_names(root: Path) -> dict[int, str]:
    path = root / "meta" / "subtasks.parquet"
    if not path.exists():
        raise ProcvlmError(f"{root} has a per-frame subtask_index but no meta/subtasks.parquet: "
                           "restore it, or use --annotator gripper or vlm")
    table = pq.read_table(path)
    text_cols = [c for c in table.column_names
                 if c != "subtask_index" and (pa.types.is_string(table.schema.field(c).type)
                                              or pa.types.is_large_string(table.schema.field(c).type))]
    if "subtask_index" not in table.column_names or not text_cols:
        raise ProcvlmError(f"{path} needs a subtask_index column and the subtask text "
                           "(LeRobot layout): fix the file, or use --annotator gripper or vlm")
    col = "subtask" if "subtask" in text_cols else text_cols[0]
    return {int(i): str(s) for i, s in zip(table.column("subtask_index").to_pylist(),
                                           table.column(col).to_pylist())}


def _read_frame_subtask_index(root: Path, episode_index: int,
                              row: dict[str, Any]) -> np.ndarray | None:
    chunk, file = row.get("data/chunk_index"), row.get("data/file_index")
    if chunk is not None and file is not None:
        files = [root / "data" / f"chunk-{int(chunk):03d}" / f"file-{int(file):03d}.parquet"]
    else:
        files = sorted((root / "data").glob("**/*.parquet"))
    for f in files:
        if not f.exists() or "subtask_index" not in pq.read_schema(f).names:
            continue
        table = pq.read_table(f, columns=["episode_index", "frame_index", "subtask_index"])
        table = table.filter(pc.equal(table["episode_index"], episode_index))
        if table.num_rows:
            order = np.argsort(table["frame_index"].to_numpy())
            return table["subtask_index"].to_numpy().reshape(-1)[order]
    return None


def _mark_failure(subtasks: list[Subtask], episode: Episode) -> list[Subtask]:
    """A failed episode whose stored timeline claims every step done: the last one was not."""
    if episode.success is False and subtasks and all(s.completed for s in subtasks):
        last = subtasks[-1]
        return subtasks[:-1] + [Subtask(last.name, last.start, last.end, False)]
    return subtasks


def _plan_of(subtasks: list[Subtask]) -> list[str]:
    """The distinct step names in order of first appearance."""
    return list(dict.fromkeys(s.name for s in subtasks))
