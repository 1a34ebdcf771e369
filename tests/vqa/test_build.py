"""ProcVQA folder writing from in-memory episodes: files, images, splits, determinism."""

import json

import numpy as np
import pytest

from procvlm.data.episode import ArrayFrames
from procvlm.errors import ProcvlmError
from procvlm.vqa.build import (EpisodeInput, VQAConfig, anchor_frames, dataset_info,
                               episode_samples, image_relpath, split_episodes, write_vqa)
from procvlm.models.vlm.processor_vlm import NO_ACTION, progress_answer

PLANS = {"push the puck": ["Push the puck to the goal"],
         "pick the puck": ["Grasp the puck", "Place the puck onto the goal"],
         "open the drawer": ["Grasp the handle", "Pull the drawer"]}


def make_episode(index: int, task: str, T: int = 20, success: bool = True) -> EpisodeInput:
    plan = PLANS[task]
    K = len(plan)
    rng = np.random.default_rng(index)
    frames = rng.integers(0, 255, size=(T, 16, 16, 3), dtype=np.uint8)
    done_from = T - 3 if success else T
    stage = np.minimum((np.arange(T) * K) // done_from, K)
    stage[done_from:] = K
    progress = np.where(stage >= K, 1.0, np.linspace(0, 0.9, T))
    subtask = [plan[k] if k < K else "done" for k in stage]
    remaining = [plan[k:] for k in stage]
    return EpisodeInput(index, task, ArrayFrames(frames), progress, remaining, subtask)


def corpus() -> list[EpisodeInput]:
    tasks = list(PLANS)
    return [make_episode(i, tasks[i % 3], success=i != 4) for i in range(9)]


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_write_vqa_formats_and_images(tmp_path):
    eps = corpus()
    config = VQAConfig(seed=3, samples_per_episode=4)
    splits = split_episodes({e.episode_index: e.task for e in eps}, 3, 0.25)
    out = write_vqa(eps, tmp_path / "vqa", config, splits)
    rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "val.jsonl")
    assert len(rows) == 9 * 4 * 3
    by_ep = {e.episode_index: e for e in eps}
    for r in rows:
        user, assistant = r["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert user["content"].count("<image>") == len(r["images"]) == len(r["frame_indices"])
        assert r["frame_indices"][-1] == r["frame_index"]
        for f, p in zip(r["frame_indices"], r["images"]):
            assert p == image_relpath(r["episode_index"], f) and (out / p).is_file()
        ep = by_ep[r["episode_index"]]
        t = r["frame_index"]
        if r["family"] == "progress":
            assert assistant["content"] == progress_answer(list(ep.remaining[t]), ep.progress[t])
        elif r["family"] == "segmentation":
            segs = json.loads(assistant["content"])
            assert all(set(s) == {"action", "start_frame", "end_frame"} for s in segs)
        elif not ep.remaining[t]:
            assert assistant["content"] == NO_ACTION
    assert {r["family"] for r in rows} == {"progress", "segmentation", "planning"}
    # the last frame of a successful episode is always an anchor: the finished case appears
    assert any("No action required" in r["messages"][1]["content"] for r in rows)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"procvqa_train", "procvqa_val"}
    assert info["procvqa_train"]["columns"] == {"messages": "messages", "images": "images"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train"]["samples"] + manifest["counts"]["val"]["samples"] == 108


def test_jpegs_are_quality_90_and_deduplicated(tmp_path):
    from PIL import Image

    eps = [make_episode(0, "push the puck", T=12)]
    out = write_vqa(eps, tmp_path, VQAConfig(samples_per_episode=12, val_fraction=0.0),
                    {"train": [0], "val": []})
    files = sorted((out / "images" / "ep000000").glob("*.jpg"))
    used = {f for r in read_jsonl(out / "train.jsonl") for f in r["frame_indices"]}
    assert [p.name for p in files] == [f"{f:06d}.jpg" for f in sorted(used)]
    with Image.open(files[0]) as im:
        assert im.format == "JPEG" and im.size == (16, 16)
    assert not list(out.rglob(".*.tmp"))


def test_same_seed_gives_identical_jsonl(tmp_path):
    eps = corpus()
    splits = split_episodes({e.episode_index: e.task for e in eps}, 7, 0.2)
    a = write_vqa(eps, tmp_path / "a", VQAConfig(seed=7), splits)
    b = write_vqa(eps, tmp_path / "b", VQAConfig(seed=7), splits)
    c = write_vqa(eps, tmp_path / "c", VQAConfig(seed=8), splits)
    assert (a / "train.jsonl").read_bytes() == (b / "train.jsonl").read_bytes()
    assert (a / "val.jsonl").read_bytes() == (b / "val.jsonl").read_bytes()
    assert (a / "train.jsonl").read_bytes() != (c / "train.jsonl").read_bytes()


def test_ood_split_holds_out_whole_tasks(tmp_path):
    eps = corpus()
    tasks = {e.episode_index: e.task for e in eps}
    splits = split_episodes(tasks, 0, 0.3, ood_tasks=["open the drawer"])
    out = write_vqa(eps, tmp_path, VQAConfig(ood_tasks=("open the drawer",)), splits)
    ood = read_jsonl(out / "test_ood.jsonl")
    ind = read_jsonl(out / "train.jsonl") + read_jsonl(out / "val.jsonl")
    assert ood and {r["task"] for r in ood} == {"open the drawer"}
    assert "open the drawer" not in {r["task"] for r in ind}
    assert {r["episode_index"] for r in ood} == {2, 5, 8}
    assert "procvqa_test_ood" in json.loads((out / "dataset_info.json").read_text())


def test_episodes_never_straddle_splits(tmp_path):
    eps = corpus()
    splits = split_episodes({e.episode_index: e.task for e in eps}, 1, 0.3)
    assert not set(splits["train"]) & set(splits["val"])
    assert sorted(splits["train"] + splits["val"]) == list(range(9))
    out = write_vqa(eps, tmp_path, VQAConfig(seed=1), splits)
    train = {r["episode_index"] for r in read_jsonl(out / "train.jsonl")}
    val = {r["episode_index"] for r in read_jsonl(out / "val.jsonl")}
    assert train and val and not train & val
    assert val == set(splits["val"])


def test_split_errors_and_val_minimum():
    tasks = {0: "a", 1: "a", 2: "b"}
    with pytest.raises(ProcvlmError, match="not in the dataset"):
        split_episodes(tasks, 0, 0.1, ood_tasks=["c"])
    with pytest.raises(ProcvlmError, match="leave no episode"):
        split_episodes(tasks, 0, 0.1, ood_tasks=["a", "b"])
    s = split_episodes(tasks, 0, 0.01)
    assert len(s["val"]) == 1 and len(s["train"]) == 2


def test_ood_tasks_take_metaworld_short_names():
    from procvlm.sim.tasks import TASKS

    tasks = {0: TASKS["assembly"].instruction, 1: TASKS["pick-place"].instruction,
             2: TASKS["assembly"].instruction}
    by_name = split_episodes(tasks, 0, 0.0, ood_tasks=["assembly"])
    assert by_name == split_episodes(tasks, 0, 0.0, ood_tasks=[TASKS["assembly"].instruction])
    assert by_name["test_ood"] == [0, 2] and by_name["train"] == [1]


def test_config_and_episode_validation():
    with pytest.raises(ProcvlmError, match="val_fraction"):
        VQAConfig(val_fraction=1.0)
    with pytest.raises(ProcvlmError, match="families"):
        VQAConfig(families=("captioning",))
    ep = make_episode(0, "push the puck", T=10)
    with pytest.raises(ProcvlmError, match="label lengths"):
        EpisodeInput(0, "push the puck", ep.frames, ep.progress[:5], ep.remaining, ep.subtask)


def test_anchor_frames_include_last():
    rng = np.random.default_rng(0)
    assert anchor_frames(rng, 5, 10) == [0, 1, 2, 3, 4]
    a = anchor_frames(rng, 100, 8)
    assert len(a) == 8 and a[-1] == 99 and len(set(a)) == 8
    assert anchor_frames(rng, 1, 3) == [0]


def test_episode_samples_families_subset():
    ep = make_episode(0, "pick the puck")
    samples = episode_samples(ep, VQAConfig(families=("planning",), samples_per_episode=3))
    assert len(samples) == 3 and {s["family"] for s in samples} == {"planning"}


def test_dataset_info_matches_llamafactory_sharegpt():
    info = dataset_info(["train"])["procvqa_train"]
    assert info["formatting"] == "sharegpt" and info["file_name"] == "train.jsonl"
    assert info["tags"]["user_tag"] == "user"


def test_progress_one_counts_as_finished():
    # the last frame of the last sub-step: progress 1 while the labels still name that step
    T = 6
    ep = EpisodeInput(0, "push the puck", ArrayFrames(np.zeros((T, 8, 8, 3), np.uint8)),
                      np.linspace(0.2, 1.0, T), [["Push the puck to the goal"]] * T,
                      ["Push the puck to the goal"] * T)
    samples = episode_samples(ep, VQAConfig(samples_per_episode=1))
    assert [s["frame_index"] for s in samples] == [T - 1] * 3
    by_family = {s["family"]: s["messages"][1]["content"] for s in samples}
    assert by_family["progress"] == progress_answer([], 1.0)
    assert by_family["planning"] == NO_ACTION
