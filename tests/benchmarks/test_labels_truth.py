"""benchmarks/labels_truth.py's measuring on a tiny labelled mp4 dataset with simulator truth
and a still stretch (no MetaWorld needed): hand-checkable figures and the JSON it writes."""

import json
import sys

import numpy as np
import pytest

from procvlm.data import ArrayFrames, Episode, Subtask, write_dataset
from procvlm.labels import label_dataset

PLAN = ["Move to the puck", "Place the puck onto the goal"]
T = 60


def _episode(i: int, success: bool) -> Episode:
    speed = np.ones(T)
    speed[[0, *range(10, 30)]] = 0  # still over [10, 30)
    pos = np.cumsum(speed) / speed.sum()
    if not success:
        pos = np.minimum(pos, 0.5)
    rng = np.random.default_rng(i)
    frames = np.zeros((T, 48, 48, 3), np.uint8)
    for t, p in enumerate(pos):
        frames[t, :, :, 2] = 80
        y = int(4 + 32 * p)
        frames[t, y:y + 10, y:y + 10] = (230, 40, 40)
        frames[t] = np.clip(frames[t] + rng.integers(-2, 3, frames[t].shape), 0, 255)
    end = T if not success else T - 4
    subs = [Subtask(PLAN[0], 0, 35), Subtask(PLAN[1], 35, end, success)]
    return Episode(i, "put the puck on the goal", 20.0, {"corner": ArrayFrames(frames)},
                   np.zeros((T, 2), np.float32), np.zeros((T, 2), np.float32), success=success,
                   subtasks=subs, plan=list(PLAN), true_progress=pos.astype(np.float32),
                   meta={"events": [{"type": "hesitation" if success else "stall",
                                     "start": 10, "end": 30}]})


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth") / "ds"
    write_dataset(root, [_episode(0, True), _episode(1, False)], video=True)
    label_dataset(root)
    return root


def test_measure_reports_every_scheme_against_truth(load_benchmark, labelled, tmp_path,
                                                    monkeypatch, capsys):
    bench = load_benchmark("labels_truth")
    result = bench.measure(labelled)
    assert (result["episodes"], result["successes"]) == (2, 1)
    assert (result["still_stretches"], result["still_frames"]) == (2, 40)
    rows = result["schemes"]
    assert set(rows) == {"procvlm", "procvlm-paper", "time", "sarm"}
    # linear time gains 19/59 over each 20-frame still stretch
    assert rows["time"]["drift_max"] == pytest.approx(19 / 59)
    assert rows["procvlm"]["drift_max"] <= 0.02
    assert rows["procvlm"]["ccc_truth"] > rows["time"]["ccc_truth"]
    monkeypatch.setattr(sys, "argv", ["labels_truth.py", "--data", str(labelled), "--json",
                                      str(tmp_path / "f.json")])
    bench.main()
    printed = capsys.readouterr().out
    assert "procvlm drift_max <= 0.02" in printed
    saved = json.loads((tmp_path / "f.json").read_text())
    assert saved["schemes"]["time"]["drift_max"] == pytest.approx(19 / 59)


def test_anchor_measures_add_procvlm_rows(load_benchmark, labelled):
    bench = load_benchmark("labels_truth")
    result = bench.measure(labelled, ("phash", "l1"))
    rows = result["schemes"]
    # the dataset was labelled with the default anchored measure (phash): the same figures
    assert rows["procvlm[phash]"] == pytest.approx(rows["procvlm"], nan_ok=True)
    assert rows["procvlm[l1]"]["ccc_truth"] != rows["procvlm"]["ccc_truth"]
    assert "procvlm[l1]" in bench.report(result)
