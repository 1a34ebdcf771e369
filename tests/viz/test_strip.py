"""Frame strips: evenly spaced frames, a sub-step timeline, optional progress curves."""

import numpy as np
import pytest
from PIL import Image

from procvlm.data import ArrayFrames, Episode, Subtask
from procvlm.errors import ProcvlmError
from procvlm.viz import draw_strip, frame_indices


def episode(t=30):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8)
    subs = [Subtask("Grasp the puck", 0, 10), Subtask("Lift the puck", 10, 18, completed=False),
            Subtask("Grasp the puck", 18, 25)]
    return Episode(0, "pick", 20.0, {"corner": ArrayFrames(frames), "wrist": ArrayFrames(frames)},
                   np.zeros((t, 2), np.float32), np.zeros((t, 1), np.float32), success=True,
                   subtasks=subs, plan=["Grasp the puck", "Lift the puck"],
                   meta={"failure": "regression"})


def test_frame_indices_evenly_spaced_first_and_last():
    assert frame_indices(30, 4).tolist() == [0, 10, 19, 29]
    assert frame_indices(3, 8).tolist() == [0, 1, 2]
    with pytest.raises(ProcvlmError, match="frames=0"):
        frame_indices(10, 0)
    with pytest.raises(ProcvlmError, match="no frames"):
        frame_indices(0, 4)


def test_draw_strip_writes_a_png(tmp_path):
    out = draw_strip(episode(), tmp_path / "s.png", frames=5)
    assert out == tmp_path / "s.png"
    w, h = Image.open(out).size
    assert w > 400 and h > 150
    assert [p.name for p in tmp_path.iterdir()] == ["s.png"], "no temporary file left"


def test_curves_panel_makes_the_figure_taller(tmp_path):
    plain = Image.open(draw_strip(episode(), tmp_path / "a.png")).size[1]
    t = len(episode())
    curves = {"procvlm": np.linspace(0, 1, t), "time": np.linspace(0, 1, t) ** 2}
    with_curves = Image.open(draw_strip(episode(), tmp_path / "b.png", curves=curves)).size[1]
    assert with_curves > plain + 100


def test_bad_camera_and_curve(tmp_path):
    with pytest.raises(ProcvlmError, match="camera 'top'.*corner, wrist"):
        draw_strip(episode(), tmp_path / "a.png", camera="top")
    with pytest.raises(ProcvlmError, match="curve 'x' has shape"):
        draw_strip(episode(), tmp_path / "a.png", curves={"x": np.zeros((30, 2))})
