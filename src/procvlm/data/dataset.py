"""The ``Dataset`` interface every reader implements, and ``open_dataset`` which picks the reader.

A ``Dataset`` is a sequence of episodes: ``len(ds)`` episodes, ``ds.episode(i)`` builds one
``Episode`` whose camera frames decode lazily, ``iter(ds)`` yields them in order.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from procvlm.data.episode import Episode
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

HDF5_SUFFIXES = (".hdf5", ".h5")


class Dataset(abc.ABC):
    """A read-only collection of episodes.

    Attributes:
        root: the dataset folder (LeRobot) or file (HDF5).
        fps: frames per second.
        cameras: short camera names (``"corner"``), in feature order; the first is the main one.
        tasks: the task instructions, indexed by task index.
    """

    root: Path
    fps: float
    cameras: list[str]
    tasks: list[str]

    @property
    @abc.abstractmethod
    def episode_indices(self) -> list[int]:
        """The episode indices, ascending."""

    @abc.abstractmethod
    def episode_length(self, i: int) -> int:
        """Number of frames of episode ``i``."""

    @abc.abstractmethod
    def episode(self, i: int, cameras: Sequence[str] | None = None) -> Episode:
        """Episode ``i`` with lazily decoded frames for ``cameras`` (default: all)."""

    @abc.abstractmethod
    def episode_meta(self, i: int) -> dict[str, Any]:
        """The raw per-episode metadata row of episode ``i``."""

    @abc.abstractmethod
    def global_index(self, i: int) -> np.ndarray:
        """(T,) int64 dataset-wide frame index of each frame of episode ``i``."""

    @property
    def num_episodes(self) -> int:
        return len(self.episode_indices)

    def __len__(self) -> int:
        return self.num_episodes

    def __iter__(self) -> Iterator[Episode]:
        for i in self.episode_indices:
            yield self.episode(i)

    def _check_index(self, i: int) -> int:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise ProcvlmError(f"episode index {i!r} of {self.root} is not an integer: pass one of "
                               f"the dataset's episode indices")
        if int(i) not in set(self.episode_indices):
            idx = self.episode_indices
            span = f"{idx[0]}..{idx[-1]}" if idx else "none"
            raise ProcvlmError(f"episode {i} is out of range for {self.root} ({len(idx)} episodes, "
                               f"indices {span}): pass an existing episode index")
        return int(i)

    def _check_cameras(self, cameras: Sequence[str] | None) -> list[str]:
        if cameras is None:
            return list(self.cameras)
        if isinstance(cameras, str):
            cameras = [cameras]
        unknown = [c for c in cameras if c not in self.cameras]
        if unknown:
            raise ProcvlmError(f"camera(s) {unknown} not in {self.root}: "
                               f"choose from {self.cameras}")
        return list(cameras)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, episodes={self.num_episodes}, "
                f"fps={self.fps}, cameras={self.cameras})")


def choose_camera(available: Sequence[str], requested: str | None = None,
                  trained: str | None = None) -> str:
    """The one camera a model reads from a dataset, decided in one place.

    Args:
        available: the dataset's cameras, main camera first.
        requested: the camera the user asked for (``--camera``); it wins.
        trained: the camera the model was trained on, when its config records it.

    Returns:
        ``requested``, else ``trained``, else the dataset's first camera; a dataset with one
        camera that is not ``trained`` gives that camera (with a warning).

    Raises:
        ProcvlmError: the requested camera is not in the dataset, or no camera was requested
            and the dataset has several cameras but not the one the model was trained on.
    """
    available = list(available)
    if not available:
        raise ProcvlmError("the dataset has no camera: pass a dataset with image or video "
                           "features")
    if requested is not None:
        if requested not in available:
            raise ProcvlmError(f"camera {requested!r} is not in the dataset (has "
                               f"{', '.join(available)}): pass --camera one of them")
        if trained is not None and requested != trained:
            logger.warning("model trained on camera %r, reading camera %r as asked", trained,
                           requested)
        return requested
    if trained is None:
        return available[0]
    if trained in available:
        return trained
    if len(available) == 1:
        logger.warning("model trained on camera %r, the dataset has only %r: reading it (its "
                       "viewpoint may differ from the model's)", trained, available[0])
        return available[0]
    raise ProcvlmError(f"model trained on camera {trained!r}, dataset has "
                       f"{','.join(available)}: pass --camera")


def open_dataset(path: str | Path) -> Dataset:
    """Open a dataset for reading.

    Args:
        path: a LeRobot v3 dataset folder (with ``meta/info.json``), or a robomimic / LIBERO
            ``.hdf5`` / ``.h5`` file.

    Returns:
        A ``Dataset``.

    Raises:
        ProcvlmError: the path is missing or is not a dataset.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise ProcvlmError(f"{path} does not exist: pass the root folder of a LeRobot v3 dataset "
                           "or a robomimic/LIBERO .hdf5 file")
    if path.is_file() and path.suffix.lower() in HDF5_SUFFIXES:
        from procvlm.data.hdf5 import HDF5Dataset

        return HDF5Dataset(path)
    if path.is_dir():
        from procvlm.data.lerobot import LeRobotDataset

        return LeRobotDataset(path)
    raise ProcvlmError(f"{path} is neither a LeRobot v3 dataset folder nor a .hdf5/.h5 file: pass "
                       "the dataset's root folder or an HDF5 file")
