"""The dataset annotator on tiny LeRobot-style folders with SARM columns and subtask_index."""

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from procvlm.annotate import get_annotator
from procvlm.annotate.dataset import DatasetAnnotator, segments_from_columns
from procvlm.data.episode import Subtask
from procvlm.errors import ProcvlmError

T = 30


def _write_meta(root: Path, rows: list[dict]) -> None:
    path = root / "meta" / "episodes" / "chunk-000" / "file-000.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path)


@pytest.fixture
def episode(synth):
    """Factory: an episode of T frames (its state plays no part here)."""
    return lambda index=0, success=True: synth.make_episode(np.zeros((T, 39)), index=index,
                                                            success=success)


def test_sarm_sparse_columns_shared_boundaries(episode, tmp_path):
    _write_meta(tmp_path, [{
        "episode_index": 0, "length": T,
        "sparse_subtask_names": ["reach", "grasp", "lift"],
        "sparse_subtask_start_frames": [0, 10, 20], "sparse_subtask_end_frames": [10, 20, 30]}])
    ann = DatasetAnnotator(tmp_path).annotate(episode())
    assert ann.subtasks == [Subtask("reach", 0, 10), Subtask("grasp", 10, 20),
                            Subtask("lift", 20, 30)]
    assert ann.plan == ["reach", "grasp", "lift"]


def test_inclusive_ends_last_frame_and_completed_column():
    subs = segments_from_columns(["a", "b"], [0, 12], [11, 29], T, completed=[True, False])
    assert subs == [Subtask("a", 0, 12), Subtask("b", 12, 30, False)]


def test_auto_prefers_finer_dense_and_placeholder_sparse_is_ignored(episode, tmp_path):
    _write_meta(tmp_path, [{
        "episode_index": 0,
        "sparse_subtask_names": ["task"], "sparse_subtask_start_frames": [0],
        "sparse_subtask_end_frames": [T - 1],
        "dense_subtask_names": ["a", "b", "c", "d"],
        "dense_subtask_start_frames": [0, 5, 15, 25], "dense_subtask_end_frames": [5, 15, 25, 30]}])
    ann = DatasetAnnotator(tmp_path).annotate(episode())
    assert [s.name for s in ann.subtasks] == ["a", "b", "c", "d"]
    with pytest.raises(ProcvlmError, match="gripper"):
        DatasetAnnotator(tmp_path, granularity="sparse").annotate(episode())


def test_failed_episode_last_step_not_completed(episode, tmp_path):
    _write_meta(tmp_path, [{
        "episode_index": 3, "subtask_names": ["a", "b"],  # legacy unprefixed columns
        "subtask_start_frames": [0, 10], "subtask_end_frames": [10, 30]}])
    ann = DatasetAnnotator(tmp_path).annotate(episode(index=3, success=False))
    assert [s.completed for s in ann.subtasks] == [True, False]


@pytest.mark.parametrize("name_column", ["subtask", "__index_level_0__"])
def test_per_frame_subtask_index(episode, tmp_path, name_column):
    _write_meta(tmp_path, [{"episode_index": 0}, {"episode_index": 1}])
    index = np.r_[np.full(8, -1), np.full(12, 1), np.full(10, 0)]
    data = pa.table({"episode_index": np.r_[np.zeros(T, int), np.ones(5, int)],
                     "frame_index": np.r_[np.arange(T)[::-1], np.arange(5)],
                     "subtask_index": np.r_[index[::-1], np.zeros(5, int)]})
    (tmp_path / "data" / "chunk-000").mkdir(parents=True)
    pq.write_table(data, tmp_path / "data" / "chunk-000" / "file-000.parquet")
    pq.write_table(pa.table({"subtask_index": [0, 1], name_column: ["Place it", "Grasp it"]}),
                   tmp_path / "meta" / "subtasks.parquet")
    ann = get_annotator("dataset", dataset=tmp_path).annotate(episode())
    assert ann.subtasks == [Subtask("Grasp it", 8, 20), Subtask("Place it", 20, 30)]


class _FakeDataset:
    def __init__(self, root, rows):
        self.root, self.rows = root, rows

    def episode_meta(self, i):
        return self.rows[i]


def test_dataset_object_and_episode_subtasks_fallback(episode, tmp_path):
    ds = _FakeDataset(tmp_path, {0: {"episode_index": 0}})
    ep = episode()
    with pytest.raises(ProcvlmError, match="--annotator gripper"):
        DatasetAnnotator(dataset=ds).annotate(ep)
    ep.subtasks, ep.plan = [Subtask("x", 0, 15), Subtask("y", 15, 30, False)], ["x", "y", "z"]
    ann = DatasetAnnotator(dataset=ds).annotate(ep)
    assert ann.plan == ["x", "y", "z"] and ann.subtasks[1].completed is False
    ann = DatasetAnnotator().annotate(ep)
    assert [s.name for s in ann.subtasks] == ["x", "y"]


def test_bad_inputs(tmp_path):
    with pytest.raises(ProcvlmError, match="meta/episodes"):
        DatasetAnnotator(tmp_path / "missing")
    with pytest.raises(ProcvlmError, match="granularity"):
        DatasetAnnotator(granularity="fine")
    with pytest.raises(ProcvlmError, match="disagree"):
        segments_from_columns(["a", "b"], [0], [5, 9], T)
