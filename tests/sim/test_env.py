"""The MetaWorld wrapper: cameras the right way up, state names, grasp contacts."""

import numpy as np
import pytest

from procvlm.sim import STATE_NAMES, TASKS
from procvlm.sim.env import SimEnv

pytestmark = [pytest.mark.sim]
SIZE = 32


def test_state_names_cover_the_observation():
    assert len(STATE_NAMES) == 39 == len(set(STATE_NAMES))
    assert STATE_NAMES[:5] == ["hand_x", "hand_y", "hand_z", "gripper", "obj1_x"]
    assert STATE_NAMES[-3:] == ["goal_x", "goal_y", "goal_z"]


def test_expert_grasp_is_seen_through_pad_contacts():
    sim = SimEnv(TASKS["pick-place"], width=SIZE, height=SIZE, cameras=("corner",))
    obs = sim.reset(0)
    assert not sim.grasped()
    seen = []
    for _ in range(45):
        obs, _ = sim.step(np.clip(sim.expert_action(obs), -1, 1))
        seen.append(sim.grasped())
    assert any(seen) and seen[-1]
    sim.close()


def test_corner_camera_is_turned_the_right_way_up():
    import mujoco

    sim = SimEnv(TASKS["pick-place"], width=SIZE, height=SIZE, cameras=("corner",))
    sim.reset(0)
    ours = sim.render()["corner"]
    raw = mujoco.Renderer(sim.env.model, SIZE, SIZE)
    raw.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    raw.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    raw.scene.flags[mujoco.mjtRndFlag.mjRND_SKYBOX] = 0
    raw.update_scene(sim.env.data, camera="corner")
    np.testing.assert_array_equal(ours, raw.render()[::-1, ::-1])
    raw.close()


    sim.close()


def test_antialiasing_is_multisampling_and_visual_only():
    plain = SimEnv(TASKS["pick-place"], width=SIZE, height=SIZE, cameras=("corner",))
    smooth = SimEnv(TASKS["pick-place"], width=SIZE, height=SIZE, cameras=("corner",),
                    antialias=True)
    assert plain.env.model.vis.quality.offsamples == 0
    assert smooth.env.model.vis.quality.offsamples == 4
    plain.reset(0), smooth.reset(0)
    a, b = plain.render()["corner"], smooth.render()["corner"]
    assert a.shape == b.shape and not np.array_equal(a, b)
    assert np.abs(a.astype(int) - b).mean() < 8  # the same scene, edges aside
    plain.close(), smooth.close()
