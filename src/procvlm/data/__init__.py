"""Episodes and datasets: the ``Episode`` data model, LeRobot v3 (pyarrow + av) and HDF5
(robomimic / LIBERO) readers and writers. Imports numpy, pyarrow, av and pillow alone."""

from procvlm.data.dataset import Dataset, choose_camera, open_dataset
from procvlm.data.episode import DONE, ArrayFrames, Episode, Frames, Subtask
from procvlm.data.lerobot import LeRobotDataset, PNGFrames
from procvlm.data.lerobot_writer import LeRobotWriter, write_dataset
from procvlm.data.video import VideoConfig, VideoFrames

__all__ = ["DONE", "ArrayFrames", "Dataset", "Episode", "Frames", "LeRobotDataset",
           "LeRobotWriter", "PNGFrames", "Subtask", "VideoConfig", "VideoFrames", "choose_camera",
           "open_dataset", "write_dataset"]
