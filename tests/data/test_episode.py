import numpy as np
import pytest

from procvlm.data import ArrayFrames, Episode, Subtask


def test_subtask_rejects_empty_span():
    with pytest.raises(ValueError, match="start=3, end=3"):
        Subtask("Grasp the puck", 3, 3)


def test_subtask_index_per_frame():
    frames = ArrayFrames(np.zeros((6, 4, 4, 3), np.uint8))
    ep = Episode(0, "pick", 10.0, {"corner": frames}, np.zeros((6, 2)), np.zeros((6, 2)),
                 subtasks=[Subtask("Grasp the puck", 0, 2), Subtask("Place the puck onto the goal", 2, 5)])
    assert ep.subtask_index_per_frame().tolist() == [0, 0, 1, 1, 1, -1]
    assert ep.main_camera == "corner"
    assert frames[[0, 2]].shape == (2, 4, 4, 3)
