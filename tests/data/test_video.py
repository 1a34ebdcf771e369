"""Tests for procvlm.data.video: encoding, lazy windowed decoding, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from procvlm.data.video import VideoConfig, VideoFrames, encode_video, probe_video
from procvlm.errors import ProcvlmError


def smooth_frames(t: int, h: int = 32, w: int = 48) -> np.ndarray:
    """Gradient images with a moving square: easy for the codec, different every frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((t, h, w, 3), dtype=np.uint8)
    for i in range(t):
        out[i, ..., 0] = (xx * 4 + i * 3) % 256
        out[i, ..., 1] = (yy * 6) % 256
        out[i, ..., 2] = 128
        x0 = (i * 2) % (w - 8)
        out[i, 8:16, x0:x0 + 8] = 255
    return out


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    frames = smooth_frames(60)
    path = tmp_path_factory.mktemp("video") / "v.mp4"
    assert encode_video(path, frames, fps=15) == 60
    return path, frames


def test_encode_keeps_count_size_and_format(video: tuple[Path, np.ndarray]) -> None:
    path, _ = video
    info = probe_video(path)
    assert (info.frames, info.height, info.width) == (60, 32, 48)
    assert info.fps == 15.0 and info.codec == "h264" and info.pix_fmt == "yuv420p"


def test_decode_within_codec_tolerance(video: tuple[Path, np.ndarray]) -> None:
    path, frames = video
    decoded = VideoFrames(path, 60, 15)[:]
    assert decoded.shape == frames.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).mean() < 3.0


def test_random_access_matches_sequential_decoding(video: tuple[Path, np.ndarray]) -> None:
    path, _ = video
    sequential = VideoFrames(path, 60, 15)[:]
    frames = VideoFrames(path, 60, 15, cache_size=4)
    for i in [41, 3, 59, 0, 27, 28, 12, 41]:
        np.testing.assert_array_equal(frames[i], sequential[i])
    np.testing.assert_array_equal(frames[[50, 2, 50]], sequential[[50, 2, 50]])
    np.testing.assert_array_equal(frames[-1], sequential[59])
    np.testing.assert_array_equal(frames[10:20:3], sequential[10:20:3])
    assert len(frames._cache) <= 4


def test_seek_decodes_only_from_the_keyframe_before(video: tuple[Path, np.ndarray]) -> None:
    path, _ = video
    frames = VideoFrames(path, 60, 15, cache_size=100)
    frames[45]
    assert min(frames._cache) >= 45 - VideoConfig().gop and max(frames._cache) == 45


def test_from_timestamp_offsets_into_a_shared_file(video: tuple[Path, np.ndarray]) -> None:
    path, _ = video
    full = VideoFrames(path, 60, 15)[:]
    part = VideoFrames(path, 20, 15, from_timestamp=30 / 15)
    assert len(part) == 20
    np.testing.assert_array_equal(part[:], full[30:50])


def test_out_of_range_index_raises(video: tuple[Path, np.ndarray]) -> None:
    path, _ = video
    with pytest.raises(IndexError):
        VideoFrames(path, 60, 15)[60]


def test_corrupt_and_truncated_files_raise(tmp_path: Path, video: tuple[Path, np.ndarray]) -> None:
    path, _ = video
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    garbage = tmp_path / "junk.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    for bad in (truncated, garbage):
        with pytest.raises(ProcvlmError, match="corrupt or truncated"):
            probe_video(bad)
        with pytest.raises(ProcvlmError, match=bad.name):
            VideoFrames(bad, 60, 15)[0]


def test_video_config_is_validated() -> None:
    with pytest.raises(ValueError, match="crf"):
        VideoConfig(crf=80)
    with pytest.raises(ValueError, match="gop"):
        VideoConfig(gop=0)
