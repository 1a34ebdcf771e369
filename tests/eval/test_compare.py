"""The model/label-scheme comparison on a tiny labelled dataset with known episode kinds."""

import json

import numpy as np
import pytest

from procvlm.cli.main import main
from procvlm.data import ArrayFrames, Episode, Subtask, write_dataset
from procvlm.eval.compare import compare_split, episode_truth, stage_boundaries
from procvlm.labels import label_dataset, read_labels
from procvlm.models.base import ProgressModel, ProgressPrediction

PLAN = ["Grasp the puck", "Place the puck onto the goal"]


def _episode(i: int, kind: str, T: int = 20) -> Episode:
    rng = np.random.default_rng(i)
    frames = rng.integers(0, 255, size=(T, 16, 16, 3), dtype=np.uint8)
    success = kind in ("success", "stall")
    events = []
    if kind == "stall":
        frames[6:12] = frames[6]
        events = [{"type": "stall", "start": 6, "end": 12}]
    subs = [Subtask(PLAN[0], 0, 8), Subtask(PLAN[1], 8, T - 4 if success else T, success)]
    return Episode(i, "put the puck on the goal", 10.0, {"corner": ArrayFrames(frames)},
                   np.zeros((T, 2), np.float32), np.zeros((T, 2), np.float32), success=success,
                   subtasks=subs, plan=list(PLAN),
                   meta={"failure": None if kind == "success" else kind, "events": events})


class TimeModel(ProgressModel):
    """Predicts linear time: the baseline that cannot tell failures from successes."""

    model_type = "test-time"

    def predict(self, episode, task=None, plan=None, *, window=8):
        n = len(episode)
        return ProgressPrediction(np.linspace(0, 1, n), np.zeros(n, int), [[]] * n)

    def save_pretrained(self, directory):
        raise AssertionError("not used")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp") / "ds"
    kinds = ["success", "failure", "stall", "success", "failure"]
    write_dataset(root, [_episode(i, k) for i, k in enumerate(kinds)], video=False)
    label_dataset(root, scheme="procvlm")
    return root


def test_episode_truth_reads_kind_events_and_boundaries(labelled):
    from procvlm.data import open_dataset

    ds = open_dataset(labelled)
    truth = episode_truth(ds, read_labels(labelled), 2)
    assert truth.kind == "stall" and truth.success
    assert truth.stalls == [(6, 12)] and truth.boundaries == [8]
    assert episode_truth(ds, read_labels(labelled), 1).kind == "failure"


def test_stage_boundaries():
    assert stage_boundaries(np.array([0, 0, 1, 1, 2, 1])) == [2, 4, 5]


def test_time_model_cannot_separate_failures_but_procvlm_labels_can(labelled):
    result = compare_split("test", labelled, {"time-model": TimeModel()}, ["procvlm", "time"])
    rows = {r["name"]: r for r in result.rows}
    assert set(rows) == {"time-model", "labels:procvlm", "labels:time"}
    # every episode ends at 1 under linear time: AUROC is chance, MCC@95 zero
    assert rows["time-model"]["auroc"] == pytest.approx(0.5)
    assert rows["labels:time"]["auroc"] == pytest.approx(0.5)
    assert rows["labels:procvlm"]["auroc"] == pytest.approx(1.0)
    assert rows["time-model"]["voc"] == pytest.approx(1.0)
    # linear time gains 5/19 over the 6-frame stall; procvlm labels stay flat
    assert rows["time-model"]["stall_drift"] == pytest.approx(5 / 19)
    assert rows["labels:procvlm"]["stall_drift"] == pytest.approx(0.0)
    assert rows["time-model"]["n_episodes"] == 5 and rows["time-model"]["n_stall"] == 1
    kinds = [c["kind"] for c in result.curves]
    assert kinds == ["success", "failure", "stall"]


def test_eval_cli_writes_report_of_label_schemes(labelled, tmp_path):
    out = tmp_path / "report"
    assert main(["eval", "--split", f"test={labelled}", "--references", "procvlm,time",
                 "--out", str(out)]) == 0
    data = json.loads((out / "results.json").read_text())
    assert {r["name"] for r in data["table"]} == {"labels:procvlm", "labels:time"}
    assert (out / "index.html").is_file() and list((out / "plots").glob("*.png"))


def test_eval_cli_errors_name_the_fix(labelled, tmp_path, capsys):
    assert main(["eval", "--out", str(tmp_path / "r")]) == 2
    assert "--split" in capsys.readouterr().err
    assert main(["eval", "--split", f"t={labelled}", "--references", "clock",
                 "--out", str(tmp_path / "r")]) == 2
    assert "clock" in capsys.readouterr().err
