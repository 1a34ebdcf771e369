"""The model/label-scheme comparison on a tiny labelled dataset with known episode kinds."""

import json

import numpy as np
import pytest

from procvlm.cli.main import main
from procvlm.data import ArrayFrames, Episode, Subtask, write_dataset
from procvlm.errors import ProcvlmError
from procvlm.eval.compare import compare_split, episode_truth, stage_boundaries
from procvlm.labels import label_dataset, read_labels
from procvlm.models.base import ProgressModel, ProgressPrediction

PLAN = ["Grasp the puck", "Place the puck onto the goal"]


def _truth(kind: str, T: int) -> np.ndarray:
    """Simulator truth: a success climbs to 1 by frame 16, a failure stops at .5, still
    stretches are flat."""
    t = np.minimum(np.arange(T) / 15, 1.0)
    if kind in ("stall", "hesitation"):
        t = np.r_[t[:6], np.full(6, t[6]), np.minimum(t[6] + np.arange(1, T - 11) / 9, 1.0)]
    return (np.minimum(t, 0.5) if kind == "failure" else t).astype(np.float32)


def _episode(i: int, kind: str, T: int = 20) -> Episode:
    rng = np.random.default_rng(i)
    frames = rng.integers(0, 255, size=(T, 16, 16, 3), dtype=np.uint8)
    success = kind in ("success", "stall", "hesitation")
    events = []
    if kind in ("stall", "hesitation"):
        frames[6:12] = frames[6]
        events = [{"type": kind, "start": 6, "end": 12}]
    subs = [Subtask(PLAN[0], 0, 8), Subtask(PLAN[1], 8, T - 4 if success else T, success)]
    failure = None if kind in ("success", "hesitation") else kind
    return Episode(i, "put the puck on the goal", 10.0, {"corner": ArrayFrames(frames)},
                   np.zeros((T, 2), np.float32), np.zeros((T, 2), np.float32), success=success,
                   subtasks=subs, plan=list(PLAN), meta={"failure": failure, "events": events},
                   true_progress=_truth(kind, T))


class TimeModel(ProgressModel):
    """Predicts linear time: the baseline that cannot tell failures from successes."""

    model_type = "test-time"

    def predict(self, episode, task=None, plan=None, *, window=8):
        n = len(episode)
        return ProgressPrediction(np.linspace(0, 1, n), np.zeros(n, int), [[]] * n)

    def save_pretrained(self, directory):
        raise AssertionError("not used")


class SureModel(TimeModel):
    """Linear time, but sure the task is done at the end of every episode that succeeded
    (it reads the outcome: the test is of the plumbing, not of a model)."""

    model_type = "test-sure"

    def predict(self, episode, task=None, plan=None, *, window=8):
        pred = super().predict(episode, task, plan, window=window)
        pred.done = np.full(len(episode), 0.9 if episode.success else 0.1, np.float32)
        return pred


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp") / "ds"
    kinds = ["success", "failure", "stall", "success", "failure", "hesitation"]
    write_dataset(root, [_episode(i, k) for i, k in enumerate(kinds)], video=False)
    label_dataset(root, scheme="procvlm")
    return root


def test_episode_truth_reads_kind_events_and_boundaries(labelled):
    from procvlm.data import open_dataset

    ds = open_dataset(labelled)
    truth = episode_truth(ds, read_labels(labelled), 2)
    assert truth.kind == "stall" and truth.success
    assert truth.stalls == [(6, 12)] and truth.boundaries == [8]
    assert truth.truth is not None and truth.truth[8] == truth.truth[6]
    assert episode_truth(ds, read_labels(labelled), 1).kind == "failure"
    hesitation = episode_truth(ds, read_labels(labelled), 5)
    assert hesitation.kind == "hesitation" and hesitation.stills == [(6, 12, "hesitation")]
    assert hesitation.remaining[0] == PLAN and hesitation.stage[-1] == 2


def test_stage_boundaries():
    assert stage_boundaries(np.array([0, 0, 1, 1, 2, 1])) == [2, 4, 5]


def test_time_model_cannot_separate_failures_but_procvlm_labels_can(labelled):
    result = compare_split("test", labelled, {"time-model": TimeModel()}, ["procvlm", "time"],
                           steps={"time-model": 12})
    rows = {r["name"]: r for r in result.rows}
    assert set(rows) == {"time-model", "labels:procvlm", "labels:time"}
    # every episode ends at 1 under linear time: AUROC is chance, MCC@95 zero
    assert rows["time-model"]["auroc"] == pytest.approx(0.5)
    assert rows["time-model"]["steps"] == 12 and rows["labels:time"]["steps"] is None
    assert rows["labels:time"]["auroc"] == pytest.approx(0.5)
    assert rows["labels:procvlm"]["auroc"] == pytest.approx(1.0)
    assert rows["time-model"]["voc"] == pytest.approx(1.0)
    # linear time gains 5/19 over each 6-frame still stretch (stall and hesitation); procvlm
    # labels stay flat
    assert rows["time-model"]["stall_drift"] == pytest.approx(5 / 19)
    assert rows["labels:procvlm"]["stall_drift"] == pytest.approx(0.0)
    assert rows["time-model"]["n_episodes"] == 6 and rows["time-model"]["n_still"] == 2
    # CCC is against simulator truth, not against the procvlm labels themselves
    assert 0 < rows["labels:procvlm"]["ccc_truth"] < 1
    assert rows["labels:procvlm"]["ccc_labels"] == pytest.approx(1.0)
    assert rows["labels:procvlm"]["ccc_truth"] > rows["labels:time"]["ccc_truth"]
    # the time model names step 0 and no remaining action everywhere: right on the 4 done
    # frames of the 4 successes (16 of 120 frames) and on step 0 (frames 0-7: 48 of 120)
    assert rows["time-model"]["plan_exact"] == pytest.approx(16 / 120)
    assert rows["time-model"]["step_acc"] == pytest.approx(48 / 120)
    # labels are not scored on plans
    assert np.isnan(rows["labels:time"]["plan_exact"])
    kinds = [c["kind"] for c in result.curves]
    assert kinds == ["success", "failure", "stall", "hesitation"]
    stall = result.curves[2]
    assert stall["events"] == [{"type": "stall", "start": 6, "end": 12}]
    assert set(stall["series"]) == {"time-model"} and set(stall["labels"]) == {"procvlm", "time"}
    assert "failure mode: stall | stall 6-12" in stall["title"] and stall["truth"] is not None


def test_done_probability_reaches_auroc_done(labelled):
    result = compare_split("test", labelled, {"time": TimeModel(), "sure": SureModel()},
                           ["procvlm"])
    rows = {r["name"]: r for r in result.rows}
    assert rows["sure"]["auroc"] == pytest.approx(0.5)  # both end at progress 1
    assert rows["sure"]["auroc_done"] == pytest.approx(1.0)
    assert np.isnan(rows["time"]["auroc_done"]) and np.isnan(rows["labels:procvlm"]["auroc_done"])


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


class RecordedModel(TimeModel):
    """Records a camera and scheme, and remembers which frames it was shown."""

    def __init__(self, camera, scheme):
        self.camera, self.scheme, self.seen = camera, scheme, []

    @property
    def trained_on(self):
        from procvlm.models.base import TrainedOn

        return TrainedOn(camera=self.camera, scheme=self.scheme)

    def predict(self, episode, task=None, plan=None, *, window=8):
        self.seen.append(episode.main_camera)
        return super().predict(episode, task, plan, window=window)


def test_eval_defaults_to_the_models_recorded_camera_and_scheme(tmp_path):
    """Finding 6: eval reads the camera the model was trained on and judges it against the
    labels of its scheme; a camera the dataset lacks is a clear error."""
    from procvlm.eval.compare import reference_scheme

    eps = []
    for i, kind in enumerate(["success", "failure"]):
        ep = _episode(i, kind)
        ep.frames = {"corner": ep.frames["corner"], "top": ep.frames["corner"]}
        eps.append(ep)
    root = write_dataset(tmp_path / "ds", eps, video=False)
    label_dataset(root, scheme="procvlm")
    model = RecordedModel("top", "time")
    result = compare_split("test", root, {"m": model}, [])
    assert model.seen == ["top", "top"]
    # judged against the time labels: a linear-time model agrees with them exactly
    assert result.rows[0]["ccc_labels"] == pytest.approx(1.0)
    assert reference_scheme({"m": model}, "procvlm") == "procvlm"
    assert reference_scheme({"m": RecordedModel(None, None)}) == "procvlm"
    with pytest.raises(ProcvlmError, match="model trained on camera 'wrist', dataset has "
                                           "corner,top: pass --camera"):
        compare_split("test", root, {"m": RecordedModel("wrist", None)}, [])
    compare_split("test", root, {"m": RecordedModel("wrist", None)}, [], camera="corner")


def test_steps_are_the_annotation_whatever_the_reference_scheme(labelled):
    from procvlm.data import open_dataset

    ds, table = open_dataset(labelled), read_labels(labelled)
    ours, timed = episode_truth(ds, table, 0), episode_truth(ds, table, 0, "time")
    np.testing.assert_allclose(timed.reference, np.linspace(0, 1, 20))
    np.testing.assert_array_equal(timed.stage, ours.stage)
    assert timed.remaining == ours.remaining and ours.stage[-1] == 2


def test_pick_curves_shows_each_event_once():
    from procvlm.eval.compare import EpisodeTruth, pick_curves

    # human pacing: every episode holds a hesitation; the failure also holds a regression
    ok = EpisodeTruth(0, "t", True, stills=[(3, 9, "hesitation")])
    ok2 = EpisodeTruth(1, "t", True, stills=[(2, 5, "hesitation")])
    bad = EpisodeTruth(2, "t", False, failure="drop", stills=[(1, 4, "hesitation")],
                       regressions=[7])
    stalled = EpisodeTruth(3, "t", True, failure="stall", stills=[(4, 12, "stall")])
    picked = [(kind, t.episode) for kind, t in pick_curves([ok, ok2, bad, stalled])]
    # the rarest events are picked first: the failure shows the regression
    assert picked == [("success", 1), ("stall", 3), ("hesitation", 0), ("regression", 2)]
    assert [k for k, _ in pick_curves([bad])] == ["regression"]
