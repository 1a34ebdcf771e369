"""Tests for procvlm.data.hdf5: robomimic / LIBERO files written on the spot with h5py."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from procvlm.data import open_dataset, write_dataset
from procvlm.data.hdf5 import HDF5Dataset
from procvlm.errors import ProcvlmError


def write_libero(path: Path, lengths: tuple[int, ...] = (12, 9), language: bool = True) -> Path:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "Libero_Kitchen", "env_kwargs": {}})
        if language:
            data.attrs["problem_info"] = json.dumps({"language_instruction": "turn on the stove"})
        for n, t in enumerate(lengths):
            demo = data.create_group(f"demo_{n}")
            demo.attrs["num_samples"] = t
            demo.create_dataset("actions", data=rng.normal(size=(t, 7)))
            dones = np.zeros(t, dtype=np.uint8)
            dones[-1] = 1
            demo.create_dataset("dones", data=dones)
            obs = demo.create_group("obs")
            obs.create_dataset("agentview_image", data=rng.integers(0, 255, (t, 8, 10, 3), np.uint8))
            obs.create_dataset("robot0_eye_in_hand_image",
                               data=rng.integers(0, 255, (t, 8, 10, 3), np.uint8))
            obs.create_dataset("robot0_gripper_qpos", data=rng.normal(size=(t, 2)))
            obs.create_dataset("robot0_eef_pos", data=rng.normal(size=(t, 3)))
            obs.create_dataset("object", data=rng.normal(size=(t, 5)))
    return path


def test_open_dataset_reads_a_libero_file(tmp_path: Path) -> None:
    path = write_libero(tmp_path / "KITCHEN_SCENE3_turn_on_the_stove_demo.hdf5")
    ds = open_dataset(path)
    assert isinstance(ds, HDF5Dataset)
    assert ds.cameras == ["agentview", "robot0_eye_in_hand"] and ds.tasks == ["turn on the stove"]
    assert ds.state_keys == ["robot0_eef_pos", "robot0_gripper_qpos", "object"]
    assert (len(ds), ds.episode_indices, ds.fps) == (2, [0, 1], 20.0)
    ep = ds.episode(1)
    with h5py.File(path, "r") as f:
        demo = f["data/demo_1"]
        np.testing.assert_allclose(ep.action, demo["actions"][:].astype(np.float32))
        want = np.concatenate([demo["obs/robot0_eef_pos"][:], demo["obs/robot0_gripper_qpos"][:],
                               demo["obs/object"][:]], axis=1).astype(np.float32)
        np.testing.assert_array_equal(ep.state, want)
        images = demo["obs/agentview_image"][:]
    np.testing.assert_array_equal(ep.frames["agentview"][[5, 1, 5]], images[[5, 1, 5]])
    np.testing.assert_array_equal(ep.frames["agentview"][2:4], images[2:4])
    assert ep.success is True and ep.task == "turn on the stove" and len(ep) == 9
    assert ep.meta["state_names"][:4] == ["robot0_eef_pos_0", "robot0_eef_pos_1",
                                          "robot0_eef_pos_2", "robot0_gripper_qpos_0"]
    np.testing.assert_array_equal(ds.global_index(1), np.arange(12, 21))
    assert ds.episode_meta(0)["num_samples"] == 12


def test_task_falls_back_to_the_file_name(tmp_path: Path) -> None:
    path = write_libero(tmp_path / "LIVING_ROOM_SCENE2_pick_up_the_ketchup_demo.h5", language=False)
    assert open_dataset(path).tasks == ["pick up the ketchup"]


def test_hdf5_converts_to_lerobot(tmp_path: Path) -> None:
    ds = open_dataset(write_libero(tmp_path / "demo.hdf5"))
    out = write_dataset(tmp_path / "lr", ds, video=False)
    back = open_dataset(out)
    assert back.cameras == ds.cameras and len(back) == 2
    np.testing.assert_array_equal(back.episode(0).frames["agentview"][:],
                                  ds.episode(0).frames["agentview"][:])


def test_bad_hdf5_files(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "empty.hdf5", "w") as f:
        f.create_group("other")
    with pytest.raises(ProcvlmError, match="has no 'data' group"):
        open_dataset(tmp_path / "empty.hdf5")
    with h5py.File(tmp_path / "nodemo.hdf5", "w") as f:
        f.create_group("data")
    with pytest.raises(ProcvlmError, match="no data/demo_N groups"):
        open_dataset(tmp_path / "nodemo.hdf5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ProcvlmError, match="junk.h5 is not a readable HDF5 file"):
        open_dataset(tmp_path / "junk.h5")
    with pytest.raises(ProcvlmError, match="episode 5 is out of range"):
        open_dataset(write_libero(tmp_path / "ok.hdf5")).episode(5)
