"""MP4 video for camera streams: fast H.264 encoding (PyAV) and lazy, windowed decoding.

``encode_video`` writes (T, H, W, 3) uint8 frames as yuv420p H.264 with a short GOP, so that a
random access seeks to a keyframe at most ``gop - 1`` frames before the wanted one.
``VideoFrames`` is a ``Frames`` (see ``procvlm.data.episode``) over one episode's span of an mp4
file: it decodes only what is indexed, decoding forward from the nearest keyframe, and keeps a
small LRU cache of decoded frames, so a long episode never sits in memory whole.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from procvlm._io import atomic_path
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoConfig:
    """Encoder settings, chosen for speed and cheap seeks.

    Attributes:
        codec: PyAV encoder name.
        crf: constant rate factor (lower is better quality; 18 is visually lossless).
        preset: x264 speed preset.
        gop: keyframe interval in frames (small = cheap random access).
        pix_fmt: pixel format stored in the file (LeRobot expects yuv420p).
    """

    codec: str = "libx264"
    crf: int = 18
    preset: str = "ultrafast"
    gop: int = 10
    pix_fmt: str = "yuv420p"

    def __post_init__(self) -> None:
        if not 0 <= self.crf <= 51:
            raise ValueError(f"VideoConfig.crf={self.crf}: need 0 <= crf <= 51")
        if self.gop < 1:
            raise ValueError(f"VideoConfig.gop={self.gop}: need gop >= 1")
        if self.codec not in av.codecs_available:
            raise ValueError(f"VideoConfig.codec={self.codec!r} is not in this PyAV build")


def _fps_fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)


def encode_video(path: str | Path, frames: Iterable[np.ndarray], fps: float,
                 config: VideoConfig | None = None) -> int:
    """Encode RGB frames into an mp4 file, atomically (temporary file, then rename).

    Args:
        path: destination ``.mp4``.
        frames: an iterable of (H, W, 3) uint8 arrays (or one (T, H, W, 3) array); H and W even.
        fps: frames per second; frame ``i`` gets timestamp ``i / fps``.
        config: encoder settings (defaults: libx264 ultrafast, crf 18, gop 10).

    Returns:
        The number of frames written.
    """
    config = config or VideoConfig()
    rate = _fps_fraction(fps)
    count = 0
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                frame = np.ascontiguousarray(frame, dtype=np.uint8)
                if stream is None:
                    stream = _add_stream(container, config, rate, frame.shape)
                video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                video_frame.pts = count
                for packet in stream.encode(video_frame):
                    container.mux(packet)
                count += 1
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
    return count


def _add_stream(container: av.container.OutputContainer, config: VideoConfig, rate: Fraction,
                shape: tuple[int, ...]) -> av.video.stream.VideoStream:
    height, width = shape[:2]
    stream = container.add_stream(config.codec, rate=rate)
    stream.width, stream.height = width, height
    stream.pix_fmt = config.pix_fmt
    stream.time_base = 1 / rate
    stream.codec_context.time_base = 1 / rate
    stream.gop_size = config.gop
    if config.codec.startswith("libx264"):
        stream.options = {"crf": str(config.crf), "preset": config.preset,
                          "x264-params": f"keyint={config.gop}:min-keyint={config.gop}:scenecut=0"}
    return stream


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` finds in a file."""

    frames: int
    fps: float
    height: int
    width: int
    codec: str
    pix_fmt: str


FIX = "re-write that episode"
"""The default end of a broken-video message; readers that know the episode pass a better one."""


def probe_video(path: str | Path, fix: str = FIX) -> VideoInfo:
    """Read an mp4's stream header; ``fix`` ends the message of a broken file.

    Raises:
        ProcvlmError: the file is missing, truncated or not a video.
    """
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ProcvlmError(f"{path} has no video stream: {fix}")
            stream = container.streams.video[0]
            frames = int(stream.frames)
            if frames == 0 and stream.duration is not None and stream.average_rate:
                frames = round(float(stream.duration * stream.time_base * stream.average_rate))
            return VideoInfo(frames=frames, fps=float(stream.average_rate or 0),
                             height=stream.codec_context.height, width=stream.codec_context.width,
                             codec=stream.codec_context.name,
                             pix_fmt=str(stream.codec_context.pix_fmt))
    except (av.error.FFmpegError, OSError) as err:
        raise ProcvlmError(f"{path} is not a readable mp4 ({type(err).__name__}): the file is "
                           f"corrupt or truncated, {fix}") from err


class VideoFrames:
    """``Frames`` over frames ``[from_timestamp, from_timestamp + length / fps)`` of an mp4 file.

    Decoding is lazy: indexing seeks to the keyframe before the first uncached wanted frame and
    decodes forward; a request just after the last decoded frame continues without seeking
    (cheap sequential reading). At most ``cache_size`` decoded frames are kept.
    """

    def __init__(self, path: str | Path, length: int, fps: float, from_timestamp: float = 0.0,
                 cache_size: int = 64, forward_limit: int = 48, fix: str = FIX) -> None:
        self.path = Path(path)
        self.fix = fix
        self.length = int(length)
        self.fps = float(fps)
        self.from_timestamp = float(from_timestamp)
        self.cache_size = int(cache_size)
        self.forward_limit = int(forward_limit)
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._container: av.container.InputContainer | None = None
        self._iter = None
        self._pos = -(10**9)  # index of the last frame the decoder produced

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> np.ndarray:
        if isinstance(index, slice):
            return self._get_many(np.arange(self.length)[index])
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if i < 0:
                i += self.length
            return self._get_many(np.asarray([i]))[0]
        return self._get_many(np.asarray(index, dtype=np.int64).reshape(-1))

    def close(self) -> None:
        """Close the open file (it reopens on the next access)."""
        if self._container is not None:
            self._container.close()
        self._container, self._iter, self._pos = None, None, -(10**9)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass

    def _get_many(self, indices: np.ndarray) -> np.ndarray:
        indices = np.where(indices < 0, indices + self.length, indices)
        if indices.size and (indices.min() < 0 or indices.max() >= self.length):
            raise IndexError(f"frame index out of range [0, {self.length}) in {self.path}")
        out: dict[int, np.ndarray] = {}
        for i in sorted(set(indices.tolist())):
            if i in self._cache:
                self._cache.move_to_end(i)
                out[i] = self._cache[i]
            else:
                out[i] = self._decode_to(i)
        if not len(indices):
            return np.zeros((0, 0, 0, 3), dtype=np.uint8)
        return np.stack([out[i] for i in indices.tolist()])

    def _open(self) -> None:
        try:
            self._container = av.open(str(self.path))
            self._stream = self._container.streams.video[0]
            self._stream.thread_type = "AUTO"
        except (av.error.FFmpegError, OSError, IndexError) as err:
            raise ProcvlmError(f"{self.path} is not a readable mp4 ({type(err).__name__}): the "
                               f"file is corrupt or truncated, {self.fix}") from err

    def _seek(self, i: int) -> None:
        if self._container is None:
            self._open()
        stream = self._stream
        target = self.from_timestamp + i / self.fps
        pts = int(round(target / float(stream.time_base)))
        self._container.seek(max(pts, 0), stream=stream, backward=True, any_frame=False)
        self._iter = self._container.decode(stream)
        self._pos = -(10**9)

    def _decode_to(self, i: int) -> np.ndarray:
        if self._iter is None or not (self._pos < i <= self._pos + self.forward_limit):
            self._seek(i)
        try:
            for frame in self._iter:
                j = round((float(frame.pts * frame.time_base) - self.from_timestamp) * self.fps)
                if j < 0:
                    continue
                self._pos = j
                if j >= self.length:
                    break
                array = frame.to_ndarray(format="rgb24")
                self._remember(j, array)
                if j == i:
                    return array
                if j > i:
                    break
        except av.error.FFmpegError as err:
            raise ProcvlmError(f"{self.path} could not be decoded at frame {i} ({err}): the file "
                               f"is corrupt, {self.fix}") from err
        raise ProcvlmError(f"{self.path} has no frame {i} of {self.length} expected: the video is "
                           f"shorter than the episode's parquet data, {self.fix}")

    def _remember(self, j: int, array: np.ndarray) -> None:
        self._cache[j] = array
        self._cache.move_to_end(j)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
