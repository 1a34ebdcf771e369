"""processor_compact: windows, resizing and training augmentation of frame windows."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from procvlm.errors import ProcvlmError
from procvlm.models.compact.processor_compact import (TILT_FOV, AugmentConfig,
                                                      augment_windows, blur_windows,
                                                      tilt_windows, turn_windows,
                                                      window_indices, window_offsets)

NONE = AugmentConfig(shift=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hflip=0.0,
                     still=0.0)


def windows(b=6, w=3, s=16, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (b, w, s, s, 3), dtype=np.uint8))


def test_offsets_and_indices_agree():
    assert window_offsets(4, 4).tolist() == [-12, -8, -4, 0]
    assert window_indices(5, 2, 3).tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 4]]


def test_anchored_indices_put_the_first_frame_in_front():
    idx = window_indices(5, 2, 3, anchor=True)
    assert idx.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 2], [0, 0, 3], [0, 1, 4]]


def test_anchored_still_windows_keep_the_episode_start():
    x = windows(b=4, w=4)
    out = augment_windows(x, torch.Generator().manual_seed(0),
                          AugmentConfig(shift=0.0, brightness=0.0, contrast=0.0,
                                        saturation=0.0, still=1.0), anchor=True)
    assert torch.equal(out[:, 0], x[:, 0])
    assert (out[:, 1:] == x[:, -1:]).all()
    plain = augment_windows(x, torch.Generator().manual_seed(0),
                            AugmentConfig(shift=0.0, brightness=0.0, contrast=0.0,
                                          saturation=0.0, still=1.0))
    assert (plain == x[:, -1:]).all()


def test_channel_shuffle_reorders_red_green_and_blue_per_window():
    x = windows(b=64, w=3, s=8)
    out = augment_windows(x, torch.Generator().manual_seed(0),
                          AugmentConfig(shift=0.0, brightness=0.0, contrast=0.0,
                                        saturation=0.0, still=0.0, channel_shuffle=1.0))
    perms = set()
    for i in range(len(x)):
        perm = next(p for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1),
                                (2, 1, 0)) if torch.equal(out[i], x[i][..., list(p)]))
        perms.add(perm)  # one order for every frame of the window
    assert len(perms) == 6


def test_zoom_and_rotation_move_the_scene_alike_in_every_frame():
    none = dict(shift=0.0, brightness=0.0, contrast=0.0, saturation=0.0, still=0.0)
    x = windows(b=8)[:, :1].expand(-1, 3, -1, -1, -1).contiguous()
    out = augment_windows(x, torch.Generator().manual_seed(0),
                          AugmentConfig(zoom=0.3, rotate=20.0, **none))
    assert (out == out[:, :1]).all()  # a still window stays still
    assert not torch.equal(out, x)
    # a zoom gain of 1 and no turn: the identity
    y = windows(b=4, w=2, s=8)
    assert torch.equal(turn_windows(y, torch.ones(4), torch.zeros(4)), y)


def test_turn_windows_turns_and_zooms_about_the_centre():
    y = windows(b=2, w=2, s=8)
    quarter = turn_windows(y, torch.ones(2), torch.full((2,), 90.0))
    assert torch.equal(quarter, y.rot90(1, (2, 3)))  # counter-clockwise on screen
    # zooming in by 2 shows the centre half of the image, each pixel twice as large
    ramp = torch.arange(8, dtype=torch.uint8).mul(30)[None, None, None, :, None]
    ramp = ramp.expand(1, 1, 8, 8, 3).contiguous()  # brightness grows left to right
    zoomed = turn_windows(ramp, torch.full((1,), 2.0), torch.zeros(1))[0, 0, 0, :, 0]
    np.testing.assert_allclose(zoomed.numpy(), 52.5 + 15.0 * np.arange(8), atol=1)


def test_blur_lowers_the_resolution_of_each_window_alike():
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 200  # 1-pixel squares
    x = checker.to(torch.uint8)[None, None, :, :, None].expand(3, 2, 8, 8, 3).contiguous()
    out = blur_windows(x, torch.tensor([1.0, 0.5, 0.95]))
    assert torch.equal(out[0], x[0]) and torch.equal(out[2], x[2])  # full side: untouched
    assert (out[1] == 100).all()  # half the side: every 2x2 box of the checker averages out
    ramp = torch.arange(8, dtype=torch.uint8).mul(30)[None, None, None, :, None]
    ramp = ramp.expand(1, 2, 8, 8, 3).contiguous()  # a smooth gradient keeps its mean level
    assert abs(blur_windows(ramp, torch.tensor([0.5])).float().mean() - ramp.float().mean()) < 1
    # drawn per window: every frame of a window gets the same scale, windows differ
    still = windows(b=16, w=1, s=16).expand(-1, 3, -1, -1, -1).contiguous()
    aug = augment_windows(still, torch.Generator().manual_seed(0),
                          AugmentConfig(lowres=0.25, **{k: 0.0 for k in (
                              "shift", "brightness", "contrast", "saturation", "still")}))
    assert (aug == aug[:, :1]).all()
    changed = [(aug[i] != still[i]).any().item() for i in range(16)]
    assert 0 < sum(changed) <= 16
    with pytest.raises(ProcvlmError, match="lowres=1.5"):
        AugmentConfig(lowres=1.5)


def test_tilt_turns_the_camera_about_its_centre():
    s = 32
    x = windows(b=2, w=2, s=s)
    zero = torch.zeros(2)
    assert torch.equal(tilt_windows(x, zero, zero), x)  # no turn: the window back
    # one bright column at the centre: a yaw of a degrees moves it sideways by
    # focal * tan(a) in normalised units, i.e. that times s / 2 pixels, against the turn
    stripe = torch.zeros(1, 1, s, s, 3, dtype=torch.uint8)
    stripe[..., :, 16, :] = 255
    focal = 1 / np.tan(np.radians(TILT_FOV) / 2)
    for yaw in (5.0, -8.0):
        out = tilt_windows(stripe, torch.tensor([yaw]), torch.zeros(1))
        row = out[0, 0, s // 2, :, 0].float()
        centre = float((row * torch.arange(s)).sum() / row.sum())
        want = 16.5 - focal * np.tan(np.radians(yaw)) * s / 2 - 0.5  # column index
        assert centre == pytest.approx(want, abs=0.3)
    # pitch moves the content vertically, not sideways
    band = stripe.transpose(2, 3).contiguous()  # one bright row
    out = tilt_windows(band, torch.zeros(1), torch.tensor([6.0]))
    col = out[0, 0, :, s // 2, 0].float()
    assert abs(float((col * torch.arange(s)).sum() / col.sum()) - 16) > 2
    pitched = tilt_windows(stripe, torch.zeros(1), torch.tensor([6.0]))
    assert pitched[..., :, 16, :].amin() >= 240  # the centre column stays (nearly) in place


def test_tilt_is_drawn_per_window_and_checked():
    still = windows(b=12, w=1, s=16).expand(-1, 3, -1, -1, -1).contiguous()
    aug = augment_windows(still, torch.Generator().manual_seed(0),
                          AugmentConfig(tilt=10.0, **{k: 0.0 for k in (
                              "shift", "brightness", "contrast", "saturation", "still")}))
    assert (aug == aug[:, :1]).all()  # every frame of a window turned the same way
    assert sum((aug[i] != still[i]).any().item() for i in range(12)) >= 10
    # runs without the option keep their random draws
    base = AugmentConfig()
    a = augment_windows(still, torch.Generator().manual_seed(1), base)
    b = augment_windows(still, torch.Generator().manual_seed(1), AugmentConfig(tilt=0.0))
    assert torch.equal(a, b)
    with pytest.raises(ProcvlmError, match="tilt=25"):
        AugmentConfig(tilt=25.0)


def test_no_augmentation_is_the_identity():
    x = windows()
    assert torch.equal(augment_windows(x, torch.Generator().manual_seed(0), NONE), x)


def test_flip_mirrors_every_frame_of_a_window():
    x = windows()
    out = augment_windows(x, torch.Generator().manual_seed(0),
                          AugmentConfig(shift=0.0, brightness=0.0, contrast=0.0,
                                        saturation=0.0, hflip=1.0, still=0.0))
    assert torch.equal(out, x.flip(3))


def test_vflip_turns_every_frame_upside_down_and_with_hflip_covers_all_four_flips():
    x = windows(b=64, s=8)
    none = dict(shift=0.0, brightness=0.0, contrast=0.0, saturation=0.0, still=0.0)
    out = augment_windows(x, torch.Generator().manual_seed(0), AugmentConfig(vflip=1.0, **none))
    assert torch.equal(out, x.flip(2))
    out = augment_windows(x, torch.Generator().manual_seed(0),
                          AugmentConfig(hflip=0.5, vflip=0.5, **none))
    seen = {next(d for d in ((), (3,), (2,), (2, 3)) if torch.equal(o, x[i].flip([a - 1 for a in d])))
            for i, o in enumerate(out)}
    assert len(seen) == 4


def test_draws_are_per_window_so_still_frames_stay_identical():
    # a window whose frames are all equal must stay so: shift, jitter and flip are drawn once
    # per window, and the network's frame differences then show no motion that is not there
    x = windows(8)[:, :1].expand(-1, 3, -1, -1, -1).contiguous()
    out = augment_windows(x, torch.Generator().manual_seed(1), AugmentConfig(hflip=0.5))
    assert (out == out[:, :1]).all()
    assert not torch.equal(out, x)


def test_augmentation_is_seeded():
    x = windows()
    a = augment_windows(x, torch.Generator().manual_seed(5))
    b = augment_windows(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == x.shape


@pytest.mark.parametrize("kwargs, match", [({"shift": 1.0}, "shift=1.0"),
                                           ({"hflip": 1.5}, "hflip=1.5"),
                                           ({"vflip": -1.0}, "vflip=-1.0"),
                                           ({"still": -0.1}, "still=-0.1"),
                                           ({"zoom": 1.0}, "zoom=1.0"),
                                           ({"rotate": 200.0}, "rotate=200.0"),
                                           ({"channel_shuffle": 2.0}, "channel_shuffle=2.0")])
def test_bad_augmentation_names_the_value(kwargs, match):
    with pytest.raises(ProcvlmError, match=match):
        AugmentConfig(**kwargs)


def reference_augment(frames, gen, cfg):
    """The augmentation written step by step in (B, W, 3, S, S): replicate padding and a
    per-window crop, then brightness, contrast and saturation one after the other."""
    b = frames.shape[0]
    x = frames.permute(0, 1, 4, 2, 3).float()
    still = torch.rand(b, generator=gen) < cfg.still
    x[still] = x[still, -1:].expand(-1, x.shape[1], -1, -1, -1)
    flip = torch.rand(b, generator=gen) < cfg.hflip
    x[flip] = x[flip].flip(-1)
    s, pad = x.shape[-1], round(cfg.shift * x.shape[-1])
    if pad >= 1:
        padded = F.pad(x.flatten(0, 1), (pad,) * 4, mode="replicate").unflatten(0, (b, -1))
        dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
        dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
        x = torch.stack([padded[i, :, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(b)])
    if cfg.brightness or cfg.contrast or cfg.saturation:
        def gain(amount):
            return 1.0 + amount * (2.0 * torch.rand(b, 1, 1, 1, 1, generator=gen) - 1.0)

        x = x * gain(cfg.brightness)
        mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)
        x = mean + (x - mean) * gain(cfg.contrast)
        grey = x.mean(dim=2, keepdim=True)
        x = grey + (x - grey) * gain(cfg.saturation)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 1, 3, 4, 2)


def test_shift_is_replicate_padding_and_a_crop():
    x = windows(b=16, s=32, seed=3)
    cfg = AugmentConfig(shift=0.25, brightness=0.0, contrast=0.0, saturation=0.0, hflip=0.5,
                        still=0.3)
    out = augment_windows(x, torch.Generator().manual_seed(7), cfg)
    ref = reference_augment(x, torch.Generator().manual_seed(7), cfg)
    assert torch.equal(out, ref)
    assert not torch.equal(out, x)


def test_jitter_matches_the_gains_applied_one_after_the_other():
    x = windows(b=32, s=32, seed=4)
    cfg = AugmentConfig(shift=0.1, brightness=0.3, contrast=0.4, saturation=0.5, hflip=0.5)
    out = augment_windows(x, torch.Generator().manual_seed(9), cfg).int()
    ref = reference_augment(x, torch.Generator().manual_seed(9), cfg).int()
    # the same draws and the same values up to float rounding at a .5 boundary
    assert (out - ref).abs().max() <= 1
    assert (out == ref).float().mean() > 0.99
    assert (out - x.int()).abs().float().mean() > 5  # and it did change the pixels
