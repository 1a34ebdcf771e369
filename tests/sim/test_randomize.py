"""Rendering randomisation: seeded draws, disjoint held-out conditions, visual only."""

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.sim.randomize import (HELDOUT, HELDOUT_GROUPS, ORIENTATIONS,
                                   RANDOMIZE_CHOICES, TRAIN, TRAIN_VIEWS, VIEWS, RandomizeSpec,
                                   RenderDraw, episode_draw, postprocess)

DRAWS = 300
GROUP_OVERLAP = {"camera": ("azimuth", "elevation", "distance", "lookat"),
                 "orientation": ("orientation",), "light": ("light_azimuth", "light", "ambient"),
                 "colour": ("table", "backdrop"), "resolution": ("resolution",)}
"""Each ``HELDOUT_GROUPS`` factor's names in ``RandomizeSpec.overlap``."""


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


@pytest.mark.parametrize("group", sorted(HELDOUT_GROUPS))
def test_a_heldout_factor_space_leaves_training_in_that_factor_only(group):
    every = set().union(*GROUP_OVERLAP.values())
    assert len(every) == 11 and sum(map(len, GROUP_OVERLAP.values())) == 11  # a partition
    outside = set(GROUP_OVERLAP[group])
    for seed in range(DRAWS):
        d = episode_draw(f"heldout-{group}", seed)
        assert set(TRAIN.overlap(d)) == every - outside, d
        assert outside <= set(HELDOUT.overlap(d)), d
        assert d.spec == f"heldout-{group}"


def test_view_draws_follow_their_weights_inside_training_ranges():
    views = [episode_draw("train-views", seed) for seed in range(DRAWS)]
    assert all(len(TRAIN.overlap(d)) == 11 for d in views)
    counts = {v: sum(d.view == v for d in views) for v, _ in TRAIN_VIEWS.views}
    assert 0.4 < counts["corner"] / DRAWS < 0.6, counts       # weight 3 of 6
    assert all(0.1 < counts[v] / DRAWS < 0.25 for v in ("corner2", "corner3", "topview")), counts
    assert all(TRAIN_VIEWS.overlap(episode_draw("heldout", s)) == [] for s in range(DRAWS))
    d = views[0]
    assert d.to_dict()["view"] == d.view and RenderDraw.from_dict(d.to_dict()) == d


def test_draws_without_a_view_keep_their_records():
    """A space without views spends no draw on one: its records read as they did before."""
    d = episode_draw("train", 5)
    assert d.view is None and "view" not in d.to_dict()
    assert RANDOMIZE_CHOICES[:3] == ("none", "train", "heldout")    # the index seeds the draws
    rng = np.random.default_rng([5, 0x5EED, 1])
    assert TRAIN.draw(rng) == d


def test_generate_cli_offers_every_space():
    from procvlm.cli.generate import RANDOMIZE

    assert RANDOMIZE == RANDOMIZE_CHOICES


def test_spec_and_draw_validate():
    with pytest.raises(ValueError, match="views=.*camera from corner, corner2"):
        RandomizeSpec(**{**TRAIN.__dict__, "views": (("gripper", 1.0),)})
    with pytest.raises(ValueError, match="views=.*weight above 0"):
        RandomizeSpec(**{**TRAIN.__dict__, "views": (("corner", 0.0),)})
    with pytest.raises(ValueError, match="view='gripper': choose from"):
        RenderDraw(**{**episode_draw("train", 0).__dict__, "view": "gripper"})
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
    for spec in ("train", "heldout", "train-views"):
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


def _still(view=None):
    """A draw that moves nothing: MetaWorld's own camera pose, light and colours."""
    return RenderDraw(spec="train", azimuth=0.0, elevation=0.0, distance=1.0,
                      lookat=(0.0, 0.0, 0.0), orientation="none", light_azimuth=0.0, light=1.0,
                      ambient=0.4, table_hsv=(0.0, 0.0, 1.0), backdrop_hsv=(0.0, 0.0, 0.0),
                      resolution=1.0, view=view)


@pytest.mark.sim
def test_unjittered_free_camera_sees_what_the_corner_camera_sees():
    from procvlm.sim import TASKS
    from procvlm.sim.env import SimEnv

    sim = SimEnv(TASKS["pick-place"], width=32, height=32, cameras=("corner",))
    sim.reset(0)
    plain = sim.render()["corner"]
    sim.set_render(_still())
    same = sim.render()["corner"]
    sim.close()
    assert np.abs(same.astype(int) - plain.astype(int)).mean() < 1.0


@pytest.mark.sim
def test_a_view_moves_the_camera_to_another_world_camera():
    from procvlm.sim import TASKS
    from procvlm.sim.env import CAMERAS, SimEnv

    assert set(VIEWS) == set(CAMERAS) - {"gripper"}
    sim = SimEnv(TASKS["pick-place"], width=32, height=32,
                 cameras=("corner", "topview", "corner2"))
    sim.reset(0)
    plain = sim.render()
    sim.set_render(_still(view="topview"))
    moved = sim.render()
    # Straight down, turned the way the top view's image is: nearly the top view's own image.
    assert np.abs(moved["corner"].astype(int) - plain["topview"].astype(int)).mean() < 8.0
    assert np.abs(moved["corner"].astype(int) - plain["corner"].astype(int)).mean() > 20.0
    # only the main camera takes the view: the others keep their own pose
    assert np.abs(moved["corner2"].astype(int) - moved["corner"].astype(int)).mean() > 20.0
    # The other views lie far from the corner camera: their training jitter (at most about
    # 21.5 degrees of turn) never reaches a held-out pose (at most about 34 degrees from it).
    m, data = sim.env.model, sim.env.data
    forward = {v: -data.cam_xmat[m.cam(CAMERAS[v]).id].reshape(3, 3)[:, 2] for v in VIEWS}
    for view, _ in TRAIN_VIEWS.views[1:]:
        angle = np.degrees(np.arccos(np.clip(forward[view] @ forward["corner"], -1, 1)))
        assert angle > 60.0, (view, angle)
    sim.close()
