"""Visual change d = 1.5 - S for the three measures, windowed over lazy frames."""

import imagehash
import numpy as np
import pytest
from PIL import Image

from procvlm.data import ArrayFrames
from procvlm.errors import ProcvlmError
from procvlm.labels import similarity, visual_change


class CountingFrames:
    """A lazy ``Frames`` that records the size of every block asked for."""

    def __init__(self, array):
        self.array, self.blocks = array, []

    def __len__(self):
        return len(self.array)

    def __getitem__(self, index):
        out = self.array[index]
        self.blocks.append(len(out) if out.ndim == 4 else 1)
        return out


def _frames(n=12, seed=0):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (n, 20, 28, 3), dtype=np.uint8)
    frames[4:7] = frames[4]  # a stall
    return frames


def test_phash_change_matches_imagehash():
    frames = _frames()
    hashes = [imagehash.phash(Image.fromarray(f)) for f in frames]
    want = [0.5] + [1.5 - (1 - (hashes[i] - hashes[i - 1]) / 64) for i in range(1, len(frames))]
    np.testing.assert_allclose(visual_change(frames), want, rtol=0, atol=0)


@pytest.mark.parametrize("measure", ["phash", "l1", "embedding"])
def test_windows_do_not_change_the_result(measure):
    frames = _frames(30)
    lazy = CountingFrames(frames)
    whole = visual_change(frames, measure)
    windowed = visual_change(lazy, measure, window=7)
    np.testing.assert_array_equal(whole, windowed)
    assert max(lazy.blocks) <= 7
    np.testing.assert_array_equal(visual_change(ArrayFrames(frames), measure), whole)


@pytest.mark.parametrize("measure", ["phash", "l1", "embedding"])
def test_identical_frames_change_by_the_floor_only(measure):
    d = visual_change(_frames(), measure)
    np.testing.assert_allclose(d[5:7], 0.5)
    assert np.all(d >= 0.5) and np.all(d <= 1.5)
    assert d[1] > 0.5  # random frames differ


def test_l1_by_hand():
    frames = np.zeros((3, 2, 2, 3), np.uint8)
    frames[1] = 255
    frames[2, 0] = 255  # half the pixels stay at 255
    np.testing.assert_allclose(similarity(frames, "l1"), [1.0, 0.0, 0.5])


def test_embedding_is_deterministic_and_flat_frames_are_identical():
    frames = _frames(6, seed=3)
    np.testing.assert_array_equal(similarity(frames, "embedding"),
                                  similarity(frames.copy(), "embedding"))
    flat = np.stack([np.full((16, 16, 3), v, np.uint8) for v in (0, 90, 200)])
    np.testing.assert_allclose(similarity(flat, "embedding"), 1.0)


def test_empty_and_single_frame():
    assert visual_change(np.zeros((0, 8, 8, 3), np.uint8)).shape == (0,)
    np.testing.assert_array_equal(visual_change(np.zeros((1, 8, 8, 3), np.uint8)), [0.5])


def test_bad_measure_and_frames():
    with pytest.raises(ProcvlmError, match="unknown visual-change measure"):
        visual_change(_frames(), "ssim")
    with pytest.raises(ProcvlmError, match="uint8"):
        visual_change(np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(ProcvlmError, match="window"):
        visual_change(_frames(), window=0)
