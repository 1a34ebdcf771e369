"""Read robomimic / LIBERO HDF5 demonstration files.

Layout (robomimic ``dataset_states_to_obs`` output, also used by LIBERO)::

    data/                      attrs: env_args (JSON), problem_info (JSON, LIBERO), total
      demo_0/                  attrs: num_samples
        actions                (T, A)
        obs/<camera>_image     (T, H, W, 3) uint8, e.g. agentview_image, robot0_eye_in_hand_image
        obs/robot0_eef_pos     (T, 3), robot0_eef_quat (T, 4), robot0_gripper_qpos (T, 2), ...
        dones, rewards, states (optional)

The state is the concatenation of the low-dimensional ``obs`` arrays (preferred order:
eef position, eef quaternion, gripper, joints, then the rest sorted); its names go to
``Episode.meta["state_names"]``. The task comes from LIBERO's ``problem_info
["language_instruction"]``, a ``language_instruction`` attribute, ``env_args``, or the file name.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from procvlm.data.dataset import Dataset
from procvlm.data.episode import Episode, Frames
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

DEFAULT_FPS = 20.0  # robomimic and LIBERO control frequency
_IMAGE_SUFFIX = "_image"
_STATE_ORDER = ("robot0_eef_pos", "robot0_eef_quat", "robot0_gripper_qpos", "robot0_joint_pos",
                "ee_pos", "ee_ori", "gripper_states", "joint_states")


class H5Frames:
    """``Frames`` over an HDF5 (T, H, W, 3) uint8 dataset, read only where indexed."""

    def __init__(self, dataset: h5py.Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return int(self.dataset.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.dataset.shape)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, (int, np.integer, slice)):
            return np.asarray(self.dataset[index], dtype=np.uint8)
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        idx = np.where(idx < 0, idx + len(self), idx)
        if idx.size == 0:
            return np.zeros((0, *self.dataset.shape[1:]), dtype=np.uint8)
        uniq, inverse = np.unique(idx, return_inverse=True)  # h5py wants increasing indices
        return np.asarray(self.dataset[uniq], dtype=np.uint8)[inverse]


class HDF5Dataset(Dataset):
    """A robomimic / LIBERO ``.hdf5`` file of demos ``data/demo_N``.

    Args:
        path: the ``.hdf5`` / ``.h5`` file.
        fps: frames per second (robomimic files do not store it; default 20).
    """

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        self.root = Path(path)
        try:
            self._file = h5py.File(self.root, "r")
        except OSError as err:
            raise ProcvlmError(f"{self.root} is not a readable HDF5 file ({err}): pass a robomimic/"
                               "LIBERO .hdf5 file") from err
        if "data" not in self._file or not isinstance(self._file["data"], h5py.Group):
            raise ProcvlmError(f"{self.root} has no 'data' group: it is not a robomimic/LIBERO "
                               "file (expected data/demo_0/actions, data/demo_0/obs/...)")
        self._data = self._file["data"]
        self._demos = _demo_names(self._data)
        if not self._demos:
            raise ProcvlmError(f"{self.root} has no data/demo_N groups: it is not a robomimic/"
                               "LIBERO demonstration file")
        self.fps = float(fps or self._data.attrs.get("fps", DEFAULT_FPS))
        first = self._data[self._demos[min(self._demos)]]
        obs = first.get("obs", {})
        self.cameras = [k[: -len(_IMAGE_SUFFIX)] for k in obs if k.endswith(_IMAGE_SUFFIX)]
        self.state_keys = _state_keys(obs)
        self.state_names = [f"{k}_{j}" for k in self.state_keys
                            for j in range(int(np.prod(obs[k].shape[1:])))]
        self.env_args = _json_attr(self._data.attrs, "env_args")
        self.tasks = [_task(self._data, self.env_args, self.root)]

    @property
    def episode_indices(self) -> list[int]:
        return sorted(self._demos)

    def episode_length(self, i: int) -> int:
        return int(self._demo(i)["actions"].shape[0])

    def episode_meta(self, i: int) -> dict[str, Any]:
        demo = self._demo(i)
        meta = {k: _plain(v) for k, v in demo.attrs.items()}
        meta.update({"demo": self._demos[i], "source": str(self.root)})
        return meta

    def global_index(self, i: int) -> np.ndarray:
        start = sum(self.episode_length(j) for j in self.episode_indices if j < i)
        return np.arange(start, start + self.episode_length(i), dtype=np.int64)

    def episode(self, i: int, cameras: Sequence[str] | None = None) -> Episode:
        """Demo ``i`` (``data/demo_<i>``); images are read from the file on access."""
        demo = self._demo(i)
        cams = self._check_cameras(cameras)
        actions = np.asarray(demo["actions"], dtype=np.float32)
        t = len(actions)
        frames: dict[str, Frames] = {}
        for cam in cams:
            data = demo["obs"][cam + _IMAGE_SUFFIX]
            if data.shape[0] != t:
                raise ProcvlmError(f"{self.root} demo_{i}: {cam}{_IMAGE_SUFFIX} has "
                                   f"{data.shape[0]} "
                                   f"frames but actions has {t}: the file is inconsistent")
            frames[cam] = H5Frames(data)
        parts = [np.asarray(demo["obs"][k], dtype=np.float32).reshape(t, -1)
                 for k in self.state_keys if k in demo["obs"]]
        state = np.concatenate(parts, axis=1) if parts else np.zeros((t, 0), np.float32)
        success = None
        if "dones" in demo and len(demo["dones"]):
            success = bool(np.asarray(demo["dones"])[-1])
        meta = {"source": "hdf5", "demo": self._demos[i], "state_names": list(self.state_names)}
        return Episode(episode_index=i, task=self.tasks[0], fps=self.fps, frames=frames,
                       state=state, action=actions, success=success, meta=meta)

    def _demo(self, i: int) -> h5py.Group:
        return self._data[self._demos[self._check_index(i)]]

    def close(self) -> None:
        """Close the HDF5 file."""
        self._file.close()


def _demo_names(data: h5py.Group) -> dict[int, str]:
    out = {}
    for name in data:
        m = re.fullmatch(r"demo_(\d+)", name)
        if m and isinstance(data[name], h5py.Group) and "actions" in data[name]:
            out[int(m.group(1))] = name
    return out


def _state_keys(obs: Any) -> list[str]:
    low_dim = [k for k in obs if not k.endswith(_IMAGE_SUFFIX) and not k.endswith("_depth")
               and len(obs[k].shape) in (1, 2) and obs[k].dtype.kind == "f"]
    preferred = [k for k in _STATE_ORDER if k in low_dim]
    return preferred + sorted(k for k in low_dim if k not in preferred)


def _json_attr(attrs: Any, key: str) -> dict[str, Any]:
    raw = attrs.get(key)
    if raw is None:
        return {}
    try:
        value = json.loads(raw if isinstance(raw, str) else bytes(raw).decode())
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _task(data: h5py.Group, env_args: dict[str, Any], path: Path) -> str:
    problem = _json_attr(data.attrs, "problem_info")
    for source in (problem, {k: _plain(v) for k, v in data.attrs.items()},
                   env_args.get("env_kwargs", {}) or {}, env_args):
        text = source.get("language_instruction") or source.get("language")
        if isinstance(text, str) and text.strip():
            return text.strip()
    stem = re.sub(r"_demo$", "", path.stem)
    stem = re.sub(r"^([A-Z0-9_]+?_SCENE\d+_)", "", stem)  # LIBERO: KITCHEN_SCENE3_turn_on_...
    return stem.replace("_", " ").strip() or str(env_args.get("env_name", path.stem))


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
