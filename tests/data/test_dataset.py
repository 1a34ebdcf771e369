"""Tests for procvlm.data.dataset: open_dataset dispatch and one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from procvlm.data import ArrayFrames, Episode, LeRobotDataset, open_dataset, write_dataset
from procvlm.data.video import encode_video
from procvlm.errors import ProcvlmError

VIDEO = "videos/observation.images.corner/chunk-000/file-000.mp4"


def episode(i: int, t: int = 20) -> Episode:
    frames = np.full((t, 16, 16, 3), 40 * i, dtype=np.uint8)
    frames[:, :, :, 0] = np.arange(t, dtype=np.uint8)[:, None, None] * 5
    return Episode(i, "Open the drawer", 10.0, {"corner": ArrayFrames(frames)},
                   np.ones((t, 2), np.float32) * i, np.zeros((t, 2), np.float32))


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds", [episode(0), episode(1)])


def test_open_dataset_dispatches_on_folder(dataset: Path) -> None:
    ds = open_dataset(dataset)
    assert isinstance(ds, LeRobotDataset) and len(ds) == 2 and ds.episode_indices == [0, 1]
    assert "LeRobotDataset" in repr(ds)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ProcvlmError, match=r"nowhere does not exist: pass the root folder"):
        open_dataset(tmp_path / "nowhere")


def test_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(ProcvlmError, match=r"is not a LeRobot v3 dataset \(no meta/info.json\)"):
        open_dataset(tmp_path)
    with pytest.raises(ProcvlmError, match="neither a LeRobot v3 dataset folder nor"):
        open_dataset(tmp_path / "x.txt")


def test_older_lerobot_version_names_the_converter(dataset: Path) -> None:
    info = json.loads((dataset / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (dataset / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(ProcvlmError, match="v2.1 dataset.*convert_dataset_v21_to_v30"):
        open_dataset(dataset)


@pytest.mark.parametrize("cut", ["truncate", "garbage"])
def test_corrupt_or_truncated_mp4(dataset: Path, cut: str) -> None:
    path = dataset / VIDEO
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if cut == "truncate" else b"\0" * len(data))
    ds = open_dataset(dataset)
    with pytest.raises(ProcvlmError, match=r"file-000.mp4 is not a readable mp4.*re-write"):
        ds.episode(0)
    assert ds.episode(1).frames["corner"][3].shape == (16, 16, 3)  # others still readable


def test_video_shorter_than_parquet(dataset: Path) -> None:
    encode_video(dataset / VIDEO, episode(0).frames["corner"][:15], fps=10)
    with pytest.raises(ProcvlmError, match="holds 15 frames .* parquet has 20: parquet and video"):
        open_dataset(dataset).episode(0)


def test_parquet_shorter_than_metadata(dataset: Path) -> None:
    path = dataset / "data/chunk-000/file-001.parquet"
    pq.write_table(pq.read_table(path).slice(0, 12), path)
    with pytest.raises(ProcvlmError, match="holds 12 frames but meta/episodes says length 20"):
        open_dataset(dataset).episode(1)


def test_episode_index_out_of_range(dataset: Path) -> None:
    ds = open_dataset(dataset)
    with pytest.raises(ProcvlmError, match=r"episode 7 is out of range .*2 episodes, indices 0..1"):
        ds.episode(7)
    with pytest.raises(ProcvlmError, match="out of range"):
        ds.episode_length(-1)
    with pytest.raises(ProcvlmError, match="not an integer"):
        ds.episode("0")  # type: ignore[arg-type]


def test_unknown_camera(dataset: Path) -> None:
    with pytest.raises(ProcvlmError, match=r"camera\(s\) \['wrist'\] not in .*choose from \['corner'\]"):
        open_dataset(dataset).episode(0, cameras=["wrist"])


def test_missing_data_file(dataset: Path) -> None:
    (dataset / "data/chunk-000/file-000.parquet").unlink()
    with pytest.raises(ProcvlmError, match="file-000.parquet is missing"):
        open_dataset(dataset).episode(0)


def test_subset_of_cameras_and_lazy_frames(dataset: Path) -> None:
    ep = open_dataset(dataset).episode(1, cameras=["corner"])
    assert ep.cameras == ["corner"] and len(ep.frames["corner"]) == 20
    assert ep.frames["corner"]._cache == {}  # nothing decoded until indexed
    assert abs(int(ep.frames["corner"][10][..., 1].mean()) - 40) <= 3


def test_choose_camera_one_rule_for_every_command(caplog) -> None:
    from procvlm.data import choose_camera

    assert choose_camera(["corner", "top"]) == "corner"
    assert choose_camera(["corner", "top"], trained="top") == "top"
    assert choose_camera(["corner", "top"], requested="corner") == "corner"
    with caplog.at_level("WARNING"):
        assert choose_camera(["corner", "top"], requested="corner", trained="top") == "corner"
    assert "model trained on camera 'top'" in caplog.text
    with pytest.raises(ProcvlmError, match=r"model trained on camera 'corner', dataset has "
                                           r"top,front: pass --camera"):
        choose_camera(["top", "front"], trained="corner")
    with pytest.raises(ProcvlmError, match="camera 'side' is not in the dataset"):
        choose_camera(["top"], requested="side")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert choose_camera(["top"], trained="corner") == "top"  # no choice to make
    assert "the dataset has only 'top'" in caplog.text
