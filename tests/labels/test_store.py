"""label_dataset end to end on tiny LeRobot datasets: columns, files, resume, read-back."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from procvlm.data import ArrayFrames, Episode, Subtask, open_dataset, write_dataset
from procvlm.errors import ProcvlmError
from procvlm.labels import (
    SCHEMES,
    LabelParams,
    anchored_change,
    compute_labels,
    episode_labels,
    label_dataset,
    labels_dir,
    read_labels,
    read_plans,
    read_provenance,
    scheme_curves,
    visual_change,
    visual_changes,
)
from procvlm.labels import store

PLAN = ["Grasp the puck", "Place the puck onto the goal"]
TASK = "put the puck on the goal"


def tiny_episode(i: int, success: bool = True, T: int = 14) -> Episode:
    rng = np.random.default_rng(i)
    frames = rng.integers(0, 255, size=(T, 24, 24, 3), dtype=np.uint8)
    frames[3:6] = frames[3]  # a stall
    cut = 5 + i % 3
    end = T - 3 if success else T
    subs = [Subtask(PLAN[0], 0, cut), Subtask(PLAN[1], cut, end, completed=success)]
    return Episode(episode_index=i, task=TASK, fps=10.0, frames={"corner": ArrayFrames(frames)},
                   state=np.zeros((T, 2), np.float32), action=np.zeros((T, 2), np.float32),
                   success=success, plan=list(PLAN), subtasks=subs)


EPISODES = [tiny_episode(0), tiny_episode(1, success=False), tiny_episode(2)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("labels") / "ds"
    write_dataset(root, EPISODES, video=False)
    return root


@pytest.fixture(scope="module")
def labelled(dataset):
    label_dataset(dataset, scheme="procvlm")
    return dataset


def test_label_dataset_writes_contract_columns(labelled):
    table = read_labels(labelled)
    head = ["index", "episode_index", "frame_index", "subtask_index", "subtask", "completed",
            "stage_progress", "progress", "remaining", "done"]
    assert table.column_names[:len(head)] == head
    for s in ("procvlm", "procvlm_paper", "time", "sarm"):
        for c in (f"progress_{s}", f"stage_{s}", f"stage_progress_{s}"):
            assert c in table.column_names
    remaining = table.schema.field("remaining").type
    assert pa.types.is_list(remaining) and pa.types.is_string(remaining.value_type)
    assert table.num_rows == sum(len(e) for e in EPISODES)
    ds = open_dataset(labelled)
    idx = np.concatenate([ds.global_index(i) for i in ds.episode_indices])
    np.testing.assert_array_equal(table["index"].to_numpy(), idx)


def test_stored_labels_equal_compute_labels(labelled):
    table = read_labels(labelled)
    for ep in EPISODES:
        change, anchored = visual_changes(ep.frames["corner"])
        np.testing.assert_array_equal(change, visual_change(ep.frames["corner"]))
        want = compute_labels(ep.subtasks, ep.plan, len(ep), change, ep.success,
                              anchored_change=anchored)
        got = episode_labels(table, ep.episode_index)
        np.testing.assert_array_equal(got.progress, want.progress)
        np.testing.assert_array_equal(got.stage, want.stage)
        assert got.remaining == want.remaining
        assert list(got.subtask) == list(want.subtask)
        np.testing.assert_array_equal(got.done, want.done)
        np.testing.assert_array_equal(
            table.filter(table["episode_index"].to_numpy() == ep.episode_index)["progress"]
            .to_numpy(), want.progress)


def test_success_ends_at_one_failure_below(labelled):
    curves = {i: scheme_curves(labelled, i) for i in range(3)}
    assert set(curves[0]) == set(SCHEMES)
    assert curves[0]["procvlm"][-1] == 1.0 and curves[2]["procvlm"][-1] == 1.0
    assert curves[1]["procvlm"].max() < 1.0
    np.testing.assert_allclose(curves[1]["time"], np.linspace(0, 1, 14))


def test_other_scheme_rebuilt_from_columns(labelled):
    table = read_labels(labelled)
    lab = episode_labels(table, 0, "time")
    assert lab.scheme == "time" and lab.plan == PLAN
    np.testing.assert_array_equal(lab.stage, np.minimum(np.arange(14) * 2 // 14, 1))
    assert lab.remaining[0] == PLAN and lab.remaining[-1] == PLAN[1:]
    paper = episode_labels(table, 0, "procvlm-paper")
    assert paper.done[-1] and paper.remaining[-1] == []


def test_sarm_uses_proportions_across_episodes(labelled):
    records = store.collect_records(open_dataset(labelled))
    props = store.sarm_stage_proportions(records)[(TASK, tuple(PLAN))]
    # grasp/place lengths 5/6 (success), 6/8 (failure), 7/4: SARM's Eq. 1 averages the ratios
    grasp = (5 / 11 + 6 / 14 + 7 / 11) / 3
    assert props == pytest.approx([grasp, 1 - grasp])
    table = read_labels(labelled)
    # grasp is [0, 5] with its end frame included: tau = t / 5
    np.testing.assert_allclose(episode_labels(table, 0, "sarm").progress[:6],
                               grasp * np.arange(6) / 5)


def test_plans_and_provenance(labelled):
    assert read_plans(labelled) == {TASK: PLAN}
    prov = read_provenance(labelled)
    assert prov["annotator"] == "oracle" and prov["scheme"] == "procvlm"
    assert prov["measure"] == "phash" and prov["params"]["floor"] == 0.0
    assert prov["params_by_scheme"]["procvlm-paper"]["floor"] == 0.5
    assert prov["version"] and prov["created"].endswith("Z")
    assert prov["num_frames"] == 42


def test_cache_is_reused_only_for_the_same_settings(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    write_dataset(root, EPISODES, video=False)
    calls = []
    real = store._annotate_batch
    monkeypatch.setattr(store, "ANNOTATE_BATCH", 1)
    monkeypatch.setattr(store, "_annotate_batch",
                        lambda ds, idx, *a: calls.append(list(idx)) or real(ds, idx, *a))
    label_dataset(root)
    assert calls == [[0], [1], [2]]
    calls.clear()
    # schemes and their parameters do not change annotation or visual change: cache reused
    label_dataset(root, scheme="sarm", params=LabelParams(floor=0.1))
    assert calls == []
    assert read_provenance(root)["params"]["floor"] == 0.1
    label_dataset(root, measure="l1")  # another measure: another cache, recomputed
    assert calls == [[0], [1], [2]]
    assert read_provenance(root)["measure"] == "l1"
    calls.clear()
    label_dataset(root, measure="l1", anchor_measure="embedding")  # so does the anchor's
    assert calls == [[0], [1], [2]]
    assert read_provenance(root)["anchor_measure"] == "embedding"


def test_anchor_measure_drives_procvlm_only(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, EPISODES, video=False)
    label_dataset(root, anchor_measure="l1")
    table = read_labels(root)
    for ep in EPISODES:
        change, anchored = visual_changes(ep.frames["corner"], anchor_measure="l1")
        np.testing.assert_array_equal(change, visual_change(ep.frames["corner"]))
        np.testing.assert_array_equal(anchored, anchored_change(ep.frames["corner"], "l1"))
        for scheme in ("procvlm", "procvlm-paper"):
            want = compute_labels(ep.subtasks, ep.plan, len(ep), change, ep.success, scheme,
                                  anchored_change=anchored)
            np.testing.assert_array_equal(episode_labels(table, ep.episode_index, scheme)
                                          .progress, want.progress)


def test_interrupted_run_skips_finished_episodes(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    write_dataset(root, EPISODES, video=False)
    done = []
    real = store._annotate_batch

    def flaky(ds, indices, *a):
        if indices[0] == 2 and not done:
            done.append(True)
            raise KeyboardInterrupt
        return real(ds, indices, *a)

    monkeypatch.setattr(store, "ANNOTATE_BATCH", 1)
    monkeypatch.setattr(store, "_annotate_batch", flaky)
    with pytest.raises(KeyboardInterrupt):
        label_dataset(root)
    seen = []
    monkeypatch.setattr(store, "_annotate_batch",
                        lambda ds, idx, *a: seen.append(list(idx)) or real(ds, idx, *a))
    label_dataset(root)
    assert seen == [[2]]


def test_main_scheme_choice_changes_main_columns(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, EPISODES[:1], video=False)
    label_dataset(root, scheme="procvlm-paper")
    table = read_labels(root)
    np.testing.assert_array_equal(table["progress"].to_numpy(),
                                  table["progress_procvlm_paper"].to_numpy())
    meta = json.loads(table.schema.metadata[b"procvlm"])
    assert meta["scheme"] == "procvlm-paper"
    assert episode_labels(table, 0).scheme == "procvlm-paper"


def test_unlabelled_dataset_tells_to_run_label(tmp_path):
    root = tmp_path / "ds"
    write_dataset(root, EPISODES[:1], video=False)
    for fn in (read_labels, read_plans, lambda r: scheme_curves(r, 0)):
        with pytest.raises(ProcvlmError, match="procvlm label"):
            fn(root)


def test_bad_choices_and_episodes(labelled):
    with pytest.raises(ProcvlmError, match="unknown label scheme"):
        label_dataset(labelled, scheme="linear")
    with pytest.raises(ProcvlmError, match="measure"):
        label_dataset(labelled, measure="ssim")
    with pytest.raises(ProcvlmError, match="'ssim'"):
        label_dataset(labelled, anchor_measure="ssim")
    with pytest.raises(ProcvlmError, match="episode 99 has no labels"):
        episode_labels(read_labels(labelled), 99)
    with pytest.raises(ProcvlmError, match="camera"):
        label_dataset(labelled, camera="wrist")


def test_written_parquet_is_plain_parquet(labelled):
    table = pq.read_table(labels_dir(labelled) / "labels.parquet")
    assert table.num_rows == 42
