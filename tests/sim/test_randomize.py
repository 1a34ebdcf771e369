"""Rendering randomisation: seeded draws, disjoint held-out conditions, visual only."""

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.sim.randomize import (HELDOUT, ORIENTATIONS, TRAIN, RandomizeSpec, RenderDraw,
                                   episode_draw, postprocess)

DRAWS = 300


def test_draws_are_seeded_and_recorded_as_json():
    a, b = episode_draw("train", 5), episode_draw("train", 5)
    assert a == b and a != episode_draw("train", 6)
    assert episode_draw("none", 5) is None
    assert RenderDraw.from_dict(a.to_dict()) == a
    assert a.to_dict()["spec"] == "train" and isinstance(a.to_dict()["lookat"], list)
    with pytest.raises(ProcvlmError, match="unknown rendering randomisation 'test'.*heldout"):
        episode_draw("test", 5)


def test_training_draws_stay_inside_training_ranges():
    for seed in range(DRAWS):
        d = episode_draw("train", seed)
        assert len(TRAIN.overlap(d)) == 11, d
        assert d.orientation in TRAIN.orientations


def test_heldout_draws_share_no_parameter_with_training():
    seen = set()
    for seed in range(DRAWS):
        d = episode_draw("heldout", seed)
        assert TRAIN.overlap(d) == [], d
        assert len(HELDOUT.overlap(d)) == 11, d
        seen.add(d.orientation)
    assert seen == {"vflip"}


def test_spec_and_draw_validate():
    with pytest.raises(ValueError, match="azimuth=.*low <= high"):
        RandomizeSpec(**{**TRAIN.__dict__, "azimuth": ((5.0, 1.0),)})
    with pytest.raises(ValueError, match="orientations"):
        RandomizeSpec(**{**TRAIN.__dict__, "orientations": ("sideways",)})
    with pytest.raises(ValueError, match="orientation='sideways'"):
        RenderDraw(**{**episode_draw("train", 0).__dict__, "orientation": "sideways"})


def test_postprocess_turns_and_blurs():
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    base = episode_draw("train", 0).__dict__
    turned = {o: postprocess(img, RenderDraw(**{**base, "orientation": o, "resolution": 1.0}))
              for o in ORIENTATIONS}
    np.testing.assert_array_equal(turned["none"], img)
    np.testing.assert_array_equal(turned["hflip"], img[:, ::-1])
    np.testing.assert_array_equal(turned["vflip"], img[::-1])
    np.testing.assert_array_equal(turned["rot180"], img[::-1, ::-1])
    low = postprocess(img, RenderDraw(**{**base, "orientation": "none", "resolution": 0.5}))
    assert low.shape == img.shape and not np.array_equal(low, img)


@pytest.mark.sim
def test_randomised_rendering_is_visual_only_and_restored():
    from procvlm.sim import close_envs, rollout

    plain = rollout("pick-place", 3, width=32, height=32, cameras=("corner", "gripper"),
                    max_steps=60)
    for spec in ("train", "heldout"):
        ep = rollout("pick-place", 3, width=32, height=32, cameras=("corner", "gripper"),
                     max_steps=60, randomize=spec)
        np.testing.assert_array_equal(ep.state, plain.state)
        np.testing.assert_array_equal(ep.action, plain.action)
        assert ep.meta["render"] == episode_draw(spec, 3).to_dict()
        assert not np.array_equal(ep.frames["corner"][:], plain.frames["corner"][:])
    again = rollout("pick-place", 3, width=32, height=32, cameras=("corner", "gripper"),
                    max_steps=60)   # the same cached env: the defaults are back
    np.testing.assert_array_equal(again.frames["corner"][:], plain.frames["corner"][:])
    assert again.meta["render"] is None
    close_envs()


@pytest.mark.sim
def test_unjittered_free_camera_sees_what_the_corner_camera_sees():
    from procvlm.sim import TASKS
    from procvlm.sim.env import SimEnv

    sim = SimEnv(TASKS["pick-place"], width=32, height=32, cameras=("corner",))
    sim.reset(0)
    plain = sim.render()["corner"]
    still = RenderDraw(spec="train", azimuth=0.0, elevation=0.0, distance=1.0,
                       lookat=(0.0, 0.0, 0.0), orientation="none", light_azimuth=0.0, light=1.0,
                       ambient=0.4, table_hsv=(0.0, 0.0, 1.0), backdrop_hsv=(0.0, 0.0, 0.0),
                       resolution=1.0)
    sim.set_render(still)
    same = sim.render()["corner"]
    sim.close()
    assert np.abs(same.astype(int) - plain.astype(int)).mean() < 1.0
