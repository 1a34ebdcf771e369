"""Episodes and datasets: the ``Episode`` data model, LeRobot v3 (pyarrow + av) and HDF5
(robomimic / LIBERO) readers and writers. Imports numpy, pyarrow, av and pillow alone."""

from procvlm.data.episode import DONE, ArrayFrames, Episode, Frames, Subtask

__all__ = ["DONE", "ArrayFrames", "Episode", "Frames", "Subtask"]
