"""``procvlm view``: a frame strip of one stored episode."""

import numpy as np
import pytest
from PIL import Image

from procvlm.cli.main import main
from procvlm.data import ArrayFrames, Episode, Subtask
from procvlm.data.lerobot import write_dataset


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    eps = []
    for i in range(2):
        t = 12
        frames = rng.integers(0, 255, (t, 16, 16, 3), dtype=np.uint8)
        eps.append(Episode(i, "pick", 20.0, {"corner": ArrayFrames(frames)},
                           np.zeros((t, 3), np.float32), np.zeros((t, 2), np.float32),
                           success=True, plan=["Grasp the puck", "Lift the puck"],
                           subtasks=[Subtask("Grasp the puck", 0, 5), Subtask("Lift the puck", 5, 9)]))
    return write_dataset(tmp_path / "ds", eps, fps=20.0, cameras={"corner": (16, 16)},
                         state_dim=3, action_dim=2, video=False)


def test_view_draws_a_strip(dataset, tmp_path, capsys):
    out = tmp_path / "strip.png"
    assert main(["view", str(dataset), "--episode", "1", "--out", str(out), "--frames", "4"]) == 0
    assert str(out) in capsys.readouterr().out
    assert Image.open(out).size[0] > 300


def test_view_bad_episode(dataset, tmp_path, capsys):
    assert main(["view", str(dataset), "--episode", "5", "--out", str(tmp_path / "a.png")]) == 2
    assert "episode 5 is not in" in capsys.readouterr().err
