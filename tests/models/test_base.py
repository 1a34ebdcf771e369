"""Model loading by path, run folder or shipped name."""

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.models.base import (ProgressModel, ProgressPrediction, load_model, pretrained_names,
                                 resolve_model_dir)


def test_shipped_metaworld_model_loads_by_name_and_is_small():
    assert "metaworld" in pretrained_names()
    folder = resolve_model_dir("metaworld")
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 20 * 2**20
    model = load_model("metaworld")
    assert model.model_type == "compact" and not model.training


def test_run_folder_and_missing_paths(tmp_path):
    (tmp_path / "run" / "model").mkdir(parents=True)
    (tmp_path / "run" / "model" / "config.json").write_text('{"type": "compact"}')
    assert resolve_model_dir(tmp_path / "run") == tmp_path / "run" / "model"
    with pytest.raises(ProcvlmError, match="does not exist.*metaworld"):
        resolve_model_dir(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ProcvlmError, match="holds no model"):
        resolve_model_dir(tmp_path / "empty")


def test_shipped_model_scores_a_known_task_without_training():
    import numpy as np

    from procvlm.sim.tasks import TASKS

    spec = TASKS["pick-place"]
    frames = np.random.default_rng(0).integers(0, 255, (12, 128, 128, 3), dtype=np.uint8)
    pred = load_model("metaworld").predict(frames, spec.instruction, spec.plan)
    assert pred.progress.shape == (12,)
    assert ((pred.progress >= 0) & (pred.progress <= 1)).all()
    assert all(r == spec.plan[s:] for r, s in zip(pred.remaining, pred.stage))


def test_shipped_randomized_model_knows_its_35_tasks_and_records_its_camera():
    from procvlm.sim.tasks import TASKS

    assert "metaworld-randomized" in pretrained_names()
    folder = resolve_model_dir("metaworld-randomized")
    assert sum(p.stat().st_size for p in folder.iterdir()) < 20 * 2**20
    model = load_model("metaworld-randomized")
    assert model.trained_on.camera == "corner"
    known = {s.name for s in TASKS.values() if s.instruction in model.plans}
    assert len(known) == 35 and "drawer-open" in known and "sweep-into" in known
    assert not known & {"drawer-close", "window-close", "button-press", "faucet-close",
                        "pick-place-wall", "pick-out-of-hole"}  # generalize.py holds these out
    assert model.anchored  # it sees each episode's first frame
    assert all(model.plans[TASKS[n].instruction] == TASKS[n].plan for n in known)
    # a flip-averaging model: upside-down or mirrored footage gets the as-given answer
    assert model.config.flip_average
    frames = np.random.default_rng(3).integers(0, 256, (9, 64, 64, 3), dtype=np.uint8)
    spec = TASKS["pick-place"]
    want = model.predict(frames, spec.instruction).progress
    for turned in (frames[:, ::-1], frames[:, :, ::-1], frames[:, ::-1, ::-1]):
        got = model.predict(np.ascontiguousarray(turned), spec.instruction).progress
        np.testing.assert_allclose(got, want, atol=1e-4)


def test_prediction_lengths_must_agree_done_included():
    pred = ProgressPrediction([0.1, 0.5], [0, 1], [["a", "b"], ["b"]], done=[0.0, 0.25])
    assert pred.done.dtype == np.float32 and pred.done.tolist() == [0.0, 0.25]
    assert ProgressPrediction([0.1], [0], [["a"]]).done is None
    with pytest.raises(ValueError, match="done 1"):
        ProgressPrediction([0.1, 0.5], [0, 1], [["a", "b"], ["b"]], done=[0.0])


class Ramp(ProgressModel):
    """Progress = frame index / 10; P(done) only when ``with_done``."""

    model_type = "test"

    def __init__(self, with_done):
        self.with_done = with_done

    def predict(self, episode, task=None, plan=None, *, window=8):
        p = np.arange(len(episode)) / 10
        return ProgressPrediction(p, np.zeros(len(p)), [[]] * len(p),
                                  done=p / 2 if self.with_done else None)

    def save_pretrained(self, directory):
        raise NotImplementedError


def test_default_score_last_keeps_each_clips_last_progress_and_p_done():
    clips = [(np.zeros((n, 4, 4, 3), np.uint8), "t", None) for n in (3, 7)]
    scores = Ramp(True).score_last(clips)
    np.testing.assert_allclose(scores.progress, [0.2, 0.6])
    np.testing.assert_allclose(scores.done, [0.1, 0.3])
    np.testing.assert_allclose(Ramp(True).predict_last(clips), [0.2, 0.6])
    assert Ramp(False).score_last(clips).done is None
    assert Ramp(True).score_last([]).done is None
