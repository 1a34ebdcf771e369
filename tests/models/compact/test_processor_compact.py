"""processor_compact: windows, resizing and training augmentation of frame windows."""

import numpy as np
import pytest
import torch

from procvlm.errors import ProcvlmError
from procvlm.models.compact.processor_compact import (AugmentConfig, augment_windows,
                                                      window_indices, window_offsets)

NONE = AugmentConfig(shift=0.0, brightness=0.0, contrast=0.0, saturation=0.0, hflip=0.0,
                     still=0.0)


def windows(b=6, w=3, s=16, seed=0):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (b, w, s, s, 3), dtype=np.uint8))


def test_offsets_and_indices_agree():
    assert window_offsets(4, 4).tolist() == [-12, -8, -4, 0]
    assert window_indices(5, 2, 3).tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 4]]


def test_no_augmentation_is_the_identity():
    x = windows()
    assert torch.equal(augment_windows(x, torch.Generator().manual_seed(0), NONE), x)


def test_flip_mirrors_every_frame_of_a_window():
    x = windows()
    out = augment_windows(x, torch.Generator().manual_seed(0),
                          AugmentConfig(shift=0.0, brightness=0.0, contrast=0.0,
                                        saturation=0.0, hflip=1.0, still=0.0))
    assert torch.equal(out, x.flip(3))


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
                                           ({"still": -0.1}, "still=-0.1")])
def test_bad_augmentation_names_the_value(kwargs, match):
    with pytest.raises(ProcvlmError, match=match):
        AugmentConfig(**kwargs)
