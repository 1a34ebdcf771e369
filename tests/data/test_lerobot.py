"""Tests for the LeRobot v3 writer and reader: exact round trips, layout, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from procvlm.data import (ArrayFrames, Episode, LeRobotWriter, Subtask, open_dataset,
                          write_dataset)
from procvlm.data import lerobot_format as fmt
from procvlm.data.video import encode_video
from procvlm.errors import ProcvlmError

CAMS = {"corner": (32, 48), "gripper": (16, 16)}
TASKS = ["Push the puck to the goal", "Open the drawer"]


def smooth(t: int, h: int, w: int, seed: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        out[i, ..., 0] = (xx * 5 + i * 4 + seed * 20) % 256
        out[i, ..., 1] = (yy * 7 + seed * 30) % 256
        out[i, ..., 2] = (i * 9) % 256
    return out


def make_episode(i: int, t: int = 24, cams: dict[str, tuple[int, int]] = CAMS) -> Episode:
    rng = np.random.default_rng(i)
    subtasks = [Subtask("Grasp the puck", 0, t // 3),
                Subtask("Push the puck onto the goal", t // 3, t - 4, completed=i % 2 == 0)]
    return Episode(
        episode_index=i, task=TASKS[i % 2], fps=10.0,
        frames={c: ArrayFrames(smooth(t, h, w, i)) for c, (h, w) in cams.items()},
        state=rng.normal(size=(t, 4)).astype(np.float32),
        action=rng.normal(size=(t, 3)).astype(np.float32),
        success=[True, False, None][i % 3], subtasks=subtasks if i != 2 else None,
        plan=["Grasp the puck", "Push the puck onto the goal"] if i != 2 else None,
        meta={"env": "test", "failure": None if i % 2 == 0 else "drop", "events": [[1, 2]]})


def writer(root: Path, video: bool = True, **kw: object) -> LeRobotWriter:
    return LeRobotWriter(root, fps=10, cameras=CAMS, state_dim=4, action_dim=3, video=video, **kw)


def assert_same_episode(got: Episode, want: Episode, exact_frames: bool) -> None:
    assert got.task == want.task and got.fps == want.fps and len(got) == len(want)
    np.testing.assert_array_equal(got.state, want.state)
    np.testing.assert_array_equal(got.action, want.action)
    assert got.success == want.success and got.plan == want.plan
    assert got.subtasks == want.subtasks and got.meta == want.meta
    assert got.cameras == want.cameras
    for cam in want.cameras:
        a, b = got.frames[cam][:], want.frames[cam][:]
        assert a.shape == b.shape and len(got.frames[cam]) == len(want.frames[cam])
        if exact_frames:
            np.testing.assert_array_equal(a, b)
        else:
            assert np.abs(a.astype(int) - b).mean() < 6.0


@pytest.mark.parametrize("video", [True, False])
def test_round_trip(tmp_path: Path, video: bool) -> None:
    episodes = [make_episode(i, t=20 + 2 * i) for i in range(3)]
    write_dataset(tmp_path / "ds", episodes, video=video)
    ds = open_dataset(tmp_path / "ds")
    assert (len(ds), ds.fps, ds.cameras, ds.tasks) == (3, 10.0, ["corner", "gripper"], TASKS)
    for want in episodes:
        got = ds.episode(want.episode_index)
        assert_same_episode(got, want, exact_frames=not video)
    assert [ds.episode_length(i) for i in range(3)] == [20, 22, 24]
    np.testing.assert_array_equal(ds.global_index(1), np.arange(20, 42))
    assert [e.episode_index for e in ds] == [0, 1, 2]


def test_rewrite_of_a_read_dataset_is_identical(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", [make_episode(i) for i in range(2)], video=False)
    first = open_dataset(tmp_path / "a")
    write_dataset(tmp_path / "b", first, video=False)
    second = open_dataset(tmp_path / "b")
    for i in range(2):
        assert_same_episode(second.episode(i), first.episode(i), exact_frames=True)


def test_state_names_reach_episode_meta(tmp_path: Path) -> None:
    names = ["x", "y", "z", "grip"]
    w = writer(tmp_path / "ds", state_names=names, action_names=["a", "b", "c"])
    w.add_episode(make_episode(0))
    ds = open_dataset(tmp_path / "ds")
    assert ds.episode(0).meta["state_names"] == names
    assert ds.features["action"]["names"] == ["a", "b", "c"]


def test_layout_is_lerobot_v3(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", [make_episode(0), make_episode(1)])
    info = json.loads((root / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 2
    assert info["total_frames"] == 48 and info["total_tasks"] == 2
    assert info["splits"] == {"train": "0:2"} and info["chunks_size"] == 1000
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    ft = info["features"]["observation.images.corner"]
    assert ft["dtype"] == "video" and ft["shape"] == [32, 48, 3]
    assert ft["info"]["video.pix_fmt"] == "yuv420p"
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index", "subtask_index"):
        assert info["features"][key]["shape"] == [1]
    assert (root / "videos/observation.images.gripper/chunk-000/file-001.mp4").exists()
    data = pq.read_table(root / "data/chunk-000/file-001.parquet")
    assert data.schema.field("observation.state").type == pa.list_(pa.float32(), 4)
    np.testing.assert_allclose(data.column("timestamp").to_numpy(), np.arange(24) / 10, atol=1e-6)
    assert data.column("index").to_pylist() == list(range(24, 48))
    eps = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert eps[1]["dataset_from_index"] == 24 and eps[1]["dataset_to_index"] == 48
    assert eps[1]["videos/observation.images.corner/to_timestamp"] == pytest.approx(2.4)
    assert eps[1]["tasks"] == [TASKS[1]] and eps[1]["stats/observation.state/count"] == [24]
    stats = json.loads((root / "meta/stats.json").read_text())
    assert stats["observation.state"]["count"] == [48]
    assert np.asarray(stats["observation.images.corner"]["mean"]).shape == (3, 1, 1)


def test_tasks_parquet_reads_as_lerobot_expects(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    root = write_dataset(tmp_path / "ds", [make_episode(0), make_episode(1)])
    tasks = pd.read_parquet(root / "meta/tasks.parquet")
    assert list(tasks.index) == TASKS and tasks.index.name == "task"
    assert int(tasks.loc[TASKS[1]].task_index) == 1
    subtasks = pd.read_parquet(root / "meta/subtasks.parquet")
    assert list(subtasks.index) == ["Grasp the puck", "Push the puck onto the goal", "done",
                                    "idle"]


def gap_episode(i: int, t: int, success: bool | None) -> Episode:
    """Sub-steps with a gap between them ([5, 8)) and an uncovered tail ([t - 4, t))."""
    ep = make_episode(i, t=t)
    ep.subtasks = [Subtask("Grasp the puck", 0, 5), Subtask("Push the puck onto the goal", 8,
                                                            t - 4, completed=bool(success))]
    ep.success = success
    return ep


def test_lerobot_names_every_frame_sub_step_right(tmp_path: Path) -> None:
    """LeRobot 0.4.4 names a frame's sub-step ``meta.subtasks.iloc[subtask_index].name``
    (lerobot_dataset.py); -1 would silently read as the last row."""
    pd = pytest.importorskip("pandas")
    eps = [gap_episode(0, 24, True), gap_episode(1, 20, False), make_episode(2)]
    root = write_dataset(tmp_path / "ds", eps, video=False)
    subtasks = pd.read_parquet(root / "meta/subtasks.parquet")
    data = pd.concat([pd.read_parquet(f) for f in sorted((root / "data").glob("*/*.parquet"))])
    assert (data["subtask_index"] >= 0).all()
    got = [subtasks.iloc[int(k)].name for k in data["subtask_index"]]
    want = []
    for ep, tail in zip(eps, ["done", "idle", "idle"]):
        names = ["idle"] * len(ep)
        for s in ep.subtasks or []:
            names[s.start:s.end] = [s.name] * (s.end - s.start)
        if ep.subtasks:
            names[ep.subtasks[-1].end:] = [tail] * (len(ep) - ep.subtasks[-1].end)
        want += names
    assert got == want
    assert got[5:8] == ["idle"] * 3 and got[20:24] == ["done"] * 4 and got[24 + 16:44] == \
        ["idle"] * 4


def test_filler_rows_and_old_minus_one_read_as_no_sub_step(tmp_path: Path) -> None:
    from procvlm.annotate.dataset import DatasetAnnotator

    eps = [gap_episode(0, 24, True), gap_episode(1, 20, False)]
    root = write_dataset(tmp_path / "ds", eps, video=False)
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop([c for c in table.column_names
                               if c.startswith(("sparse_", "dense_", "plan"))]), path)
    want = [[Subtask(s.name, s.start, s.end) for s in ep.subtasks] for ep in eps]
    ds = open_dataset(root)
    assert [ds.episode(i).subtasks for i in (0, 1)] == want
    assert DatasetAnnotator(ds).annotate(ds.episode(0)).subtasks == want[0]
    # a dataset written by an older procvlm: -1 where no sub-step covers a frame
    names = fmt.read_index_table(root / fmt.SUBTASKS_PATH, "subtask_index")
    for f in sorted((root / "data").glob("*/*.parquet")):
        t = pq.read_table(f)
        ids = t.column("subtask_index").to_numpy().copy()
        ids[np.isin(ids, [names.index("idle"), names.index("done")])] = -1
        pq.write_table(t.set_column(t.column_names.index("subtask_index"), "subtask_index",
                                    pa.array(ids)), f)
    ds = open_dataset(root)
    assert [ds.episode(i).subtasks for i in (0, 1)] == want
    assert DatasetAnnotator(ds).annotate(ds.episode(1)).subtasks[0] == want[1][0]


def test_sarm_dense_stages_and_temporal_proportions(tmp_path: Path) -> None:
    """SARM's dual heads read ``{sparse,dense}_subtask_*`` and
    ``meta/temporal_proportions_{sparse,dense}.json`` ({name: mean share}, summing to 1)."""
    eps = [gap_episode(0, 24, True), gap_episode(1, 30, False), make_episode(2)]
    root = write_dataset(tmp_path / "ds", eps, video=False)
    rows = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert rows[0]["dense_subtask_names"] == ["Grasp the puck", "Push the puck onto the goal"]
    assert rows[0]["dense_subtask_start_frames"] == [0, 8]
    assert rows[0]["dense_subtask_end_frames"] == [8, 24]
    assert rows[1]["dense_subtask_end_times"] == [0.8, 3.0]
    assert rows[2]["dense_subtask_names"] is None
    sparse = json.loads((root / "meta/temporal_proportions_sparse.json").read_text())
    dense = json.loads((root / "meta/temporal_proportions_dense.json").read_text())
    # sparse: ep 0 grasp 5 of 5 + 12 frames, ep 1 grasp 5 of 5 + 18 frames
    grasp = (5 / 17 + 5 / 23) / 2
    assert list(sparse) == ["Grasp the puck", "Push the puck onto the goal"]
    assert sparse["Grasp the puck"] == pytest.approx(grasp)
    assert sparse["Push the puck onto the goal"] == pytest.approx(1 - grasp)
    grasp = (8 / 24 + 8 / 30) / 2  # dense: the gap joins the grasp, the tail the push
    assert dense == pytest.approx({"Grasp the puck": grasp, "Push the puck onto the goal":
                                   1 - grasp})


def test_hf_datasets_loads_data_with_lerobot_features(tmp_path: Path) -> None:
    """LeRobot loads data parquet through ``datasets`` with features built from info.json."""
    datasets = pytest.importorskip("datasets")
    root = write_dataset(tmp_path / "ds", [make_episode(0), make_episode(1)], video=False)
    features = json.loads((root / "meta/info.json").read_text())["features"]
    hf = {}
    for key, ft in features.items():
        if ft["dtype"] == "image":
            hf[key] = datasets.Image()
        elif ft["shape"] == [1]:
            hf[key] = datasets.Value(ft["dtype"])
        else:
            hf[key] = datasets.Sequence(length=ft["shape"][0], feature=datasets.Value(ft["dtype"]))
    files = sorted(str(p) for p in (root / "data").glob("*/*.parquet"))
    ds = datasets.Dataset.from_parquet(files, features=datasets.Features(hf),
                                       cache_dir=str(tmp_path / "cache"))
    assert len(ds) == 48
    image = np.asarray(ds[30]["observation.images.corner"])
    np.testing.assert_array_equal(image, make_episode(1).frames["corner"][6])


def test_sub_steps_fall_back_to_per_frame_subtask_index(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", [make_episode(0)])
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop([c for c in table.column_names if c.startswith("sparse_")]), path)
    got = open_dataset(root).episode(0).subtasks
    assert got == [Subtask("Grasp the puck", 0, 8), Subtask("Push the puck onto the goal", 8, 20)]


def test_reads_several_episodes_per_file(tmp_path: Path) -> None:
    """LeRobot itself packs episodes into shared files, addressed by from/to timestamps."""
    root = write_dataset(tmp_path / "ds", [make_episode(0, t=20), make_episode(1, t=15)])
    want = [make_episode(0, t=20), make_episode(1, t=15)]
    for cam in CAMS:
        key = fmt.camera_key(cam)
        both = np.concatenate([want[0].frames[cam][:], want[1].frames[cam][:]])
        encode_video(root / fmt.VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0),
                     both, fps=10)
        (root / fmt.VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=1)).unlink()
    data = [pq.read_table(root / f"data/chunk-000/file-00{i}.parquet") for i in range(2)]
    pq.write_table(pa.concat_tables(data), root / "data/chunk-000/file-000.parquet")
    (root / "data/chunk-000/file-001.parquet").unlink()
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[1]["data/file_index"] = 0
    for cam in CAMS:
        key = fmt.camera_key(cam)
        rows[1].update({f"videos/{key}/file_index": 0, f"videos/{key}/from_timestamp": 2.0,
                        f"videos/{key}/to_timestamp": 3.5})
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)
    ds = open_dataset(root)
    for i, ep in enumerate(want):
        got = ds.episode(i)
        np.testing.assert_array_equal(got.state, ep.state)
        for cam in CAMS:
            assert len(got.frames[cam]) == len(ep)
            assert np.abs(got.frames[cam][:].astype(int) - ep.frames[cam][:]).mean() < 6.0


def test_resume_exposes_done_episodes(tmp_path: Path) -> None:
    w = writer(tmp_path / "ds")
    for i in range(2):
        w.add_episode(make_episode(i))
    again = writer(tmp_path / "ds")
    assert again.done_episodes == {0, 1}
    assert again.add_episode(make_episode(2)) == 2
    ds = open_dataset(tmp_path / "ds")
    assert len(ds) == 3 and ds.tasks == TASKS
    assert_same_episode(ds.episode(2), make_episode(2), exact_frames=False)


class ExplodingFrames(ArrayFrames):
    """Frames that fail part-way through, as a crash during encoding would."""

    def __getitem__(self, index):  # type: ignore[no-untyped-def]
        if isinstance(index, slice) and (index.start or 0) >= 64:
            raise RuntimeError("simulated crash")
        return super().__getitem__(index)


def test_crash_mid_episode_leaves_nothing_visible(tmp_path: Path) -> None:
    w = writer(tmp_path / "ds")
    w.add_episode(make_episode(0))
    before = json.loads((tmp_path / "ds/meta/info.json").read_text())
    ep = make_episode(1, t=100)
    ep.frames["gripper"] = ExplodingFrames(ep.frames["gripper"][:])
    with pytest.raises(RuntimeError, match="simulated crash"):
        w.add_episode(ep)
    assert json.loads((tmp_path / "ds/meta/info.json").read_text()) == before
    assert not list((tmp_path / "ds").rglob(".*.tmp"))
    ds = open_dataset(tmp_path / "ds")
    assert len(ds) == 1
    resumed = writer(tmp_path / "ds")
    assert resumed.done_episodes == {0}
    resumed.add_episode(make_episode(1, t=30))
    assert_same_episode(open_dataset(tmp_path / "ds").episode(1), make_episode(1, t=30), False)


def test_wrong_frame_shape_is_refused_and_nothing_damaged(tmp_path: Path) -> None:
    w = writer(tmp_path / "ds")
    w.add_episode(make_episode(0))
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "ds").rglob("*"))
    bad = make_episode(1, cams={"corner": (32, 48), "gripper": (16, 18)})
    with pytest.raises(ProcvlmError, match=r"camera 'gripper' frames of shape \(24, 16, 18, 3\)"):
        w.add_episode(bad)
    with pytest.raises(ProcvlmError, match="cameras"):
        w.add_episode(make_episode(1, cams={"corner": (32, 48)}))
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "ds").rglob("*")) == files
    assert_same_episode(open_dataset(tmp_path / "ds").episode(0), make_episode(0), False)


def test_writer_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ProcvlmError, match="even height and width"):
        LeRobotWriter(tmp_path / "a", fps=10, cameras={"c": (15, 16)}, state_dim=1, action_dim=1)
    with pytest.raises(ProcvlmError, match="state_names has 2 names"):
        LeRobotWriter(tmp_path / "b", fps=10, cameras={"c": (16, 16)}, state_dim=1, action_dim=1,
                      state_names=["a", "b"])
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("mine")
    with pytest.raises(ProcvlmError, match="not empty and is not a LeRobot dataset"):
        writer(tmp_path / "c")
    writer(tmp_path / "d").add_episode(make_episode(0))
    with pytest.raises(ProcvlmError, match="other features"):
        LeRobotWriter(tmp_path / "d", fps=10, cameras=CAMS, state_dim=5, action_dim=3)
    with pytest.raises(ProcvlmError, match="state"):
        writer(tmp_path / "d").add_episode(
            Episode(1, "t", 10.0, make_episode(1).frames, np.zeros((24, 2)), np.zeros((24, 3))))


def test_stats_aggregate_exactly_over_episodes(tmp_path: Path) -> None:
    episodes = [make_episode(i, t=10 + 5 * i) for i in range(3)]
    root = write_dataset(tmp_path / "ds", episodes)
    stats = json.loads((root / "meta/stats.json").read_text())["observation.state"]
    states = np.concatenate([e.state for e in episodes]).astype(np.float64)
    np.testing.assert_allclose(stats["mean"], states.mean(0), rtol=1e-9)
    np.testing.assert_allclose(stats["std"], states.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats["min"], states.min(0))
    assert stats["count"] == [45] and set(stats) >= {"q01", "q10", "q50", "q90", "q99"}


def test_meta_with_numpy_values_and_bad_meta(tmp_path: Path) -> None:
    ep = make_episode(0)
    ep.meta = {"events": np.arange(3), "n": np.int64(4), "ok": True}
    w = writer(tmp_path / "ds")
    w.add_episode(ep)
    assert open_dataset(tmp_path / "ds").episode(0).meta == {"events": [0, 1, 2], "n": 4, "ok": True}
    bad = make_episode(1)
    bad.meta = {"obj": object()}
    with pytest.raises(ProcvlmError, match="meta that is not JSON-able"):
        w.add_episode(bad)
    assert w.done_episodes == {0}


def with_truth(ep: Episode) -> Episode:
    ep.true_progress = np.linspace(0.0, 0.9, len(ep), dtype=np.float32) ** 2
    return ep


@pytest.mark.parametrize("video", [True, False])
def test_true_progress_round_trips_as_a_float32_column(tmp_path: Path, video: bool) -> None:
    episodes = [with_truth(make_episode(i, t=20 + 2 * i)) for i in range(2)]
    root = write_dataset(tmp_path / "ds", episodes, video=video)
    info = json.loads((root / fmt.INFO_PATH).read_text())
    assert info["features"]["true_progress"] == {"dtype": "float32", "shape": [1], "names": None}
    data = pq.read_table(root / "data/chunk-000/file-001.parquet")
    assert data.schema.field("true_progress").type == pa.float32()
    ds = open_dataset(root)
    for want in episodes:
        got = ds.episode(want.episode_index)
        assert got.true_progress.dtype == np.float32
        np.testing.assert_array_equal(got.true_progress, want.true_progress)
    assert "true_progress" in json.loads((root / fmt.STATS_PATH).read_text())


def test_datasets_without_true_progress_read_none(tmp_path: Path) -> None:
    root = write_dataset(tmp_path / "ds", [make_episode(0)])
    assert "true_progress" not in json.loads((root / fmt.INFO_PATH).read_text())["features"]
    assert open_dataset(root).episode(0).true_progress is None


def test_writer_refuses_missing_or_undeclared_true_progress(tmp_path: Path) -> None:
    with pytest.raises(ProcvlmError, match="has no true_progress"):
        writer(tmp_path / "a", true_progress=True).add_episode(make_episode(0))
    with pytest.raises(ProcvlmError, match="true_progress=True"):
        writer(tmp_path / "b").add_episode(with_truth(make_episode(0)))
    bad = make_episode(0)
    bad.true_progress = np.zeros(3, dtype=np.float32)
    with pytest.raises(ProcvlmError, match="shape"):
        writer(tmp_path / "c", true_progress=True).add_episode(bad)


def test_replace_episode_rewrites_one_episode_in_place(tmp_path: Path) -> None:
    w = writer(tmp_path / "ds")
    for i in range(3):
        w.add_episode(make_episode(i))
    fresh = make_episode(5)
    fresh.task = TASKS[1]
    assert writer(tmp_path / "ds").replace_episode(1, fresh) == 1
    ds = open_dataset(tmp_path / "ds")
    assert len(ds) == 3 and ds.episode_indices == [0, 1, 2]
    assert_same_episode(ds.episode(1), fresh, exact_frames=False)
    assert_same_episode(ds.episode(2), make_episode(2), exact_frames=False)
    with pytest.raises(ProcvlmError, match="same length"):
        w.replace_episode(1, make_episode(1, t=30))
    with pytest.raises(ProcvlmError, match="episode 3 is not in"):
        w.replace_episode(3, make_episode(3))


def test_an_empty_stub_takes_new_features_and_corrupt_info_is_one_line(tmp_path: Path) -> None:
    writer(tmp_path / "ds")  # info.json only, no episode
    other = LeRobotWriter(tmp_path / "ds", fps=10, cameras={"corner": (16, 16)}, state_dim=4,
                          action_dim=3)
    other.add_episode(make_episode(0, cams={"corner": (16, 16)}))
    assert open_dataset(tmp_path / "ds").cameras == ["corner"]
    (tmp_path / "bad" / "meta").mkdir(parents=True)
    (tmp_path / "bad" / "meta" / "info.json").write_bytes(b"\xff\xfe")
    with pytest.raises(ProcvlmError, match="info.json is not readable JSON"):
        writer(tmp_path / "bad")


def test_image_stats_from_histograms_match_the_pixels() -> None:
    rng = np.random.default_rng(3)
    for shape in [(5, 16, 12, 3), (1, 1, 2, 3)]:
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
        frames[..., 1] = rng.integers(20, 40, shape[:3])  # a narrow channel: ties everywhere
        x = frames.reshape(-1, 3) / 255.0
        stats = fmt.image_stats(frames)
        want = {"min": x.min(0), "max": x.max(0), "mean": x.mean(0), "std": x.std(0),
                **{f"q{round(q * 100):02d}": v
                   for q, v in zip(fmt.QUANTILES, np.quantile(x, fmt.QUANTILES, axis=0))}}
        for key, value in want.items():
            np.testing.assert_allclose(np.asarray(stats[key]).reshape(3), value, rtol=0,
                                       atol=1e-12, err_msg=key)
        assert stats["count"] == [shape[0]]
