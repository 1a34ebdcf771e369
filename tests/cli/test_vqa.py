"""``procvlm vqa`` end to end on a tiny labelled LeRobot dataset, and its error messages."""

import json

import numpy as np
import pytest

from procvlm.cli.main import main
from procvlm.data import ArrayFrames, Episode, Subtask, write_dataset

TASKS = {"push the puck": ["Grasp the puck", "Push the puck to the goal"],
         "open the drawer": ["Grasp the handle", "Pull the drawer"]}


def tiny_episode(i: int, task: str, T: int = 12) -> Episode:
    rng = np.random.default_rng(i)
    frames = rng.integers(0, 255, size=(T, 16, 16, 3), dtype=np.uint8)
    a, b = TASKS[task]
    return Episode(episode_index=i, task=task, fps=10.0, frames={"corner": ArrayFrames(frames)},
                   state=np.zeros((T, 2), np.float32), action=np.zeros((T, 2), np.float32),
                   success=True, plan=[a, b],
                   subtasks=[Subtask(a, 0, T // 2), Subtask(b, T // 2, T)])


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from procvlm.labels import label_dataset

    root = tmp_path_factory.mktemp("ds") / "ds"
    tasks = list(TASKS)
    write_dataset(root, [tiny_episode(i, tasks[i % 2]) for i in range(6)], video=False)
    label_dataset(root)
    return root


def test_vqa_cli_writes_splits(labelled, tmp_path, capsys):
    out = tmp_path / "vqa"
    rc = main(["vqa", str(labelled), "--out", str(out), "--seed", "2",
               "--ood-tasks", "open the drawer", "--samples-per-episode", "3"])
    assert rc == 0 and "ProcVQA written to" in capsys.readouterr().out
    ood = [json.loads(x) for x in (out / "test_ood.jsonl").read_text().splitlines()]
    train = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
    assert {r["task"] for r in ood} == {"open the drawer"}
    assert {r["task"] for r in train} == {"push the puck"}
    assert len(ood) == 3 * 3 * 3  # 3 episodes x 3 anchors x 3 families
    assert all((out / p).is_file() for r in train + ood for p in r["images"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["camera"] and manifest["scheme"] in ("procvlm", "procvlm-paper", "time", "sarm")
    first = (out / "train.jsonl").read_bytes()
    assert main(["vqa", str(labelled), "--out", str(tmp_path / "again"), "--seed", "2",
                 "--ood-tasks", "open the drawer", "--samples-per-episode", "3"]) == 0
    assert (tmp_path / "again" / "train.jsonl").read_bytes() == first


def test_vqa_cli_unknown_ood_task(labelled, tmp_path, capsys):
    rc = main(["vqa", str(labelled), "--out", str(tmp_path / "v"), "--ood-tasks", "fly"])
    assert rc == 2 and "task 'fly' is not in the dataset" in capsys.readouterr().err


def test_vqa_cli_missing_dataset(tmp_path, capsys):
    rc = main(["vqa", str(tmp_path / "nope"), "--out", str(tmp_path / "v")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_vqa_cli_bad_option(tmp_path, capsys):
    rc = main(["vqa", str(tmp_path), "--out", str(tmp_path / "v"), "--samples-per-episode", "0"])
    assert rc == 2 and "samples_per_episode=0" in capsys.readouterr().err
