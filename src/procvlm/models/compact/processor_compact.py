"""Model-side preprocessing of the compact progress model (LeRobot's ``processor_*`` layout).

Training and inference share these functions, so a frame reaches the network the same way in
both: decoded, resized to ``CompactConfig.image_size`` squares (antialiased bilinear), and
stacked into a window of ``window`` frames spaced ``stride`` apart, oldest first, clamped at the
episode's first frame. An anchored model (``CompactConfig.anchor``) also sees the episode's first
frame, put in front of every window: what has changed since the start is then in view.

Training also augments windows (``augment_windows``). Every random draw is made per window, not
per frame, so the frame differences the network sees still show only the scene's motion:

- a shift of up to ``shift`` of the side (replicate padding, then a crop);
- a zoom in ``1 +- zoom`` and a rotation in ``+- rotate`` degrees about the centre (replicated
  borders): the camera's distance and roll, a little like another camera pose. Off by default;
- a camera turn (``tilt``): the window as a camera turned about its own centre by a yaw and a
  pitch drawn in ``+- tilt`` degrees would see it (the homography ``K R K^-1`` of a 45 degree
  field of view, replicated borders). Turning in place is the part of a camera-pose change
  that needs no depth; off by default;
- a lower effective resolution (``lowres``): the window is shrunk to a scale drawn in
  ``[lowres, 1]`` of its side (box filter) and scaled back up (bilinear), the blur of a camera
  with fewer pixels or further away. Off by default;
- colour jitter: brightness, contrast and saturation gains drawn in ``1 +- amount``;
- a random order of the colour channels (probability ``channel_shuffle``): red, green and blue
  swapped, so that no hue of a table, wall or object can carry progress. Off by default;
- a horizontal flip with probability ``hflip`` and an upside-down flip with probability
  ``vflip`` (together, the four orientations of ``FLIPS``). Off by default: the procedures'
  atomic actions never name a side, so a flipped image keeps the task's meaning, but the
  training cameras are fixed and a flipped scene is then a view the model never meets at test
  time. Turn them on for data rendered with mirrored cameras (domain randomisation) and for
  flip-averaging models (``CompactConfig.flip_average``), which score all four orientations;
- "still" windows (probability ``still``): every frame becomes the newest one with the same
  label, so that stillness alone never moves progress (without it, the still windows at
  episode starts teach "still -> progress 0" and stalls drift down). An anchored window keeps
  its first frame, the episode's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from procvlm.data.episode import Frames
from procvlm.errors import ProcvlmError


FLIPS: tuple[tuple[int, ...], ...] = ((), (3,), (2,), (2, 3))
"""The image orientations a flip-averaging model scores, as the axes of (B, W, S, S, 3) windows
to flip: as given, mirrored left-right, upside down, rotated 180 degrees. Flipping any of them
again gives another of them (a group), so the set is the same for an image in any orientation."""


def flip_windows(frames: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """(B, W, S, S, 3) windows flipped along ``dims`` (one of ``FLIPS``)."""
    return frames.flip(dims) if dims else frames


def window_offsets(window: int, stride: int) -> np.ndarray:
    """(window,) frame offsets of a window relative to its newest frame, e.g. [-12, -8, -4, 0]."""
    return (np.arange(window) - (window - 1)) * stride


def window_indices(num_frames: int, window: int, stride: int,
                   anchor: bool = False) -> np.ndarray:
    """(T, window) frame indices of each frame's window, oldest first, clamped at frame 0;
    with ``anchor``, (T, window + 1): frame 0 first, then the window."""
    idx = np.clip(np.arange(num_frames)[:, None] + window_offsets(window, stride)[None, :],
                  0, None)
    if anchor:
        idx = np.concatenate([np.zeros((num_frames, 1), idx.dtype), idx], axis=1)
    return idx


def resize_frames(frames: np.ndarray, size: int, chunk: int = 512) -> np.ndarray:
    """Resize (N, H, W, 3) uint8 frames to (N, size, size, 3) uint8 (antialiased bilinear)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ProcvlmError(f"frames must be (N, H, W, 3), got shape {frames.shape}")
    if frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(frames, dtype=np.uint8)
    out = np.empty((len(frames), size, size, 3), np.uint8)
    for i in range(0, len(frames), chunk):
        x = torch.from_numpy(np.ascontiguousarray(frames[i:i + chunk])).permute(0, 3, 1, 2)
        y = F.interpolate(x.float(), size=(size, size), mode="bilinear", antialias=True,
                          align_corners=False)
        out[i:i + chunk] = y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def read_frames(frames: Frames, size: int, chunk: int = 256) -> np.ndarray:
    """Decode every frame of a stream and resize it: (T, size, size, 3) uint8."""
    n = len(frames)
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(0, n, chunk):
        out[i:i + chunk] = resize_frames(frames[np.arange(i, min(n, i + chunk))], size)
    return out


TILT_FOV = 45.0
"""Field of view (degrees) that ``tilt_windows`` assumes: MetaWorld's cameras'."""
MAX_TILT = 20.0
"""Largest ``AugmentConfig.tilt``: beyond it much of the view leaves the image."""


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation of frame windows (see the module docstring)."""

    shift: float = field(default=1 / 16, metadata={"help": "largest shift, share of the side"})
    brightness: float = field(default=0.2, metadata={"help": "brightness gain in 1 +- this"})
    contrast: float = field(default=0.2, metadata={"help": "contrast gain in 1 +- this"})
    saturation: float = field(default=0.2, metadata={"help": "saturation gain in 1 +- this"})
    hflip: float = field(default=0.0, metadata={"help": "probability of a horizontal flip"})
    vflip: float = field(default=0.0, metadata={"help": "probability of an upside-down flip"})
    still: float = field(default=0.15, metadata={"help": "share of windows made still"})
    zoom: float = field(default=0.0, metadata={"help": "zoom gain in 1 +- this"})
    rotate: float = field(default=0.0, metadata={"help": "largest rotation, degrees"})
    channel_shuffle: float = field(default=0.0, metadata={
        "help": "probability of a random order of the colour channels"})
    lowres: float = field(default=0.0, metadata={
        "help": "lowest effective resolution, a share of the side (0: off)"})
    tilt: float = field(default=0.0, metadata={
        "help": "largest camera yaw and pitch, degrees (0: off)"})

    def __post_init__(self) -> None:
        if self.lowres != 0.0 and not 0.0 < self.lowres < 1.0:
            raise ProcvlmError(f"AugmentConfig.lowres={self.lowres}: need 0 (off) or a share "
                               "of the side in (0, 1), e.g. 0.5")
        if not 0.0 <= self.tilt <= MAX_TILT:
            raise ProcvlmError(f"AugmentConfig.tilt={self.tilt}: need 0 <= degrees <= "
                               f"{MAX_TILT:g} (a {TILT_FOV:g} degree field of view)")
        if not 0.0 <= self.rotate <= 180.0:
            raise ProcvlmError(f"AugmentConfig.rotate={self.rotate}: need 0 <= degrees <= 180")
        for name in ("shift", "brightness", "contrast", "saturation", "zoom"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ProcvlmError(f"AugmentConfig.{name}={value}: need 0 <= value < 1")
        for name in ("hflip", "vflip", "still", "channel_shuffle"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ProcvlmError(f"AugmentConfig.{name}={value}: need a probability in [0, 1]")


def _gain(b: int, amount: float, gen: torch.Generator) -> torch.Tensor:
    """(B, 1, 1, 1, 1) gains drawn uniformly in [1 - amount, 1 + amount]."""
    return 1.0 + amount * (2.0 * torch.rand(b, 1, 1, 1, 1, generator=gen) - 1.0)


def _shift(x: torch.Tensor, shift: float, gen: torch.Generator) -> torch.Tensor:
    """Shift each window of (B, W, S, S, C) by the same random offset for all its frames.

    The same as replicate padding by ``pad`` pixels and cropping at a random offset, done by
    selecting clamped rows and columns (no padded copy of the batch).
    """
    b, s = x.shape[0], x.shape[2]
    pad = round(shift * s)
    if pad < 1:
        return x
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=gen).tolist()
    index = torch.arange(-pad, s + pad).clamp(0, s - 1)  # replicate padding as indices
    out = torch.empty_like(x)
    for i in range(b):
        rows, cols = index[dy[i]:dy[i] + s], index[dx[i]:dx[i] + s]
        out[i] = x[i].index_select(1, rows).index_select(2, cols)
    return out


def _sample_windows(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample every frame of each window of (B, W, S, S, C) uint8 at ``grid`` (B, S, S, 2),
    normalised input coordinates per output pixel (bilinear, replicated borders)."""
    w = x.shape[1]
    imgs = x.permute(0, 1, 4, 2, 3).float().flatten(1, 2)  # (B, W * C, S, S)
    out = F.grid_sample(imgs, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.unflatten(1, (w, -1)).permute(0, 1, 3, 4, 2).round_().clamp_(0, 255).to(x.dtype)


def turn_windows(x: torch.Tensor, gain: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Zoom each window of (B, W, S, S, C) uint8 by ``gain`` (B,) and turn it by ``angle`` (B,)
    degrees counter-clockwise about the centre, the same for all its frames (bilinear,
    replicated borders)."""
    b, s = x.shape[0], x.shape[2]
    rad = torch.deg2rad(angle.float())
    cos, sin = torch.cos(rad) / gain, torch.sin(rad) / gain  # output -> input coordinates
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta, [b, 1, s, s], align_corners=False)  # (B, S, S, 2)
    return _sample_windows(x, grid)


def _affine(x: torch.Tensor, zoom: float, rotate: float, gen: torch.Generator) -> torch.Tensor:
    """``turn_windows`` with a gain in ``1 +- zoom`` and an angle in ``+- rotate`` per window."""
    b = x.shape[0]
    gain = 1.0 + zoom * (2.0 * torch.rand(b, generator=gen) - 1.0)
    angle = rotate * (2.0 * torch.rand(b, generator=gen) - 1.0)
    return turn_windows(x, gain, angle)


def tilt_windows(x: torch.Tensor, yaw: torch.Tensor, pitch: torch.Tensor,
                 fov: float = TILT_FOV) -> torch.Tensor:
    """Each window of (B, W, S, S, C) uint8 as seen by its camera turned by ``yaw`` (B,)
    degrees about the image's vertical axis and ``pitch`` (B,) degrees about its horizontal
    axis, the same for all its frames: an output pixel's ray through a pinhole of field of view
    ``fov`` is turned back into the original camera and sampled there (bilinear, replicated
    borders). Zero angles give the window back."""
    b, s = x.shape[0], x.shape[2]
    focal = 1.0 / math.tan(math.radians(fov) / 2.0)  # in normalised image units
    centres = (torch.arange(s, dtype=torch.float32) + 0.5) / s * 2.0 - 1.0
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    rays = torch.stack([u, v, torch.full_like(u, focal)], dim=-1)  # (S, S, 3)
    a, e = torch.deg2rad(yaw.float()), torch.deg2rad(pitch.float())
    one, zero = torch.ones_like(a), torch.zeros_like(a)
    turn_y = torch.stack([torch.cos(a), zero, torch.sin(a), zero, one, zero,
                          -torch.sin(a), zero, torch.cos(a)], -1).view(b, 3, 3)
    turn_x = torch.stack([one, zero, zero, zero, torch.cos(e), -torch.sin(e),
                          zero, torch.sin(e), torch.cos(e)], -1).view(b, 3, 3)
    seen = torch.einsum("bij,hwj->bhwi", turn_y @ turn_x, rays)  # (B, S, S, 3)
    grid = focal * seen[..., :2] / seen[..., 2:].clamp(min=1e-3)
    return _sample_windows(x, grid)


def blur_windows(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Lower the effective resolution of each window of (B, W, S, S, C) uint8 to ``scale`` (B,)
    of its side, the same for all its frames: shrunk with a box filter (area), scaled back up
    bilinearly. A scale of 1 (or one that rounds to the full side) leaves the window as is."""
    s = x.shape[2]
    out = x.clone()
    for i, f in enumerate(scale.tolist()):
        small = max(2, round(s * float(f)))
        if small >= s:
            continue
        img = x[i].permute(0, 3, 1, 2).float()  # (W, C, S, S)
        img = F.interpolate(F.interpolate(img, size=(small, small), mode="area"), size=(s, s),
                            mode="bilinear", align_corners=False)
        out[i] = img.round_().clamp_(0, 255).to(x.dtype).permute(0, 2, 3, 1)
    return out


def _jitter(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation gains per window of (B, W, S, S, 3) in [0, 255].

    Applied one after the other, with ``m`` the window's mean grey level and ``g`` each pixel's
    grey level, the gains ``b, c, s`` give ``b*c*s*x + b*c*(1-s)*g + b*(1-c)*m``: two fused
    passes over the pixels instead of six.
    """
    b = x.shape[0]
    gb, gc, gs = (_gain(b, amount, gen)
                  for amount in (cfg.brightness, cfg.contrast, cfg.saturation))
    mean = x.mean(dim=(1, 2, 3, 4), keepdim=True)  # one grey level per window
    grey = (x @ torch.full((3,), 1.0 / 3.0)).unsqueeze(-1)  # per pixel
    out = torch.addcmul(gb * (1.0 - gc) * mean, x, gb * gc * gs)
    return out.addcmul_(grey, gb * gc * (1.0 - gs))


def augment_windows(frames: torch.Tensor, gen: torch.Generator,
                    config: AugmentConfig | None = None, anchor: bool = False) -> torch.Tensor:
    """Augment a batch of windows (see the module docstring).

    Args:
        frames: (B, W, S, S, 3) uint8 windows, oldest frame first.
        gen: the generator of every random draw (checkpointed with the run).
        config: amounts and probabilities (``AugmentConfig()`` by default).
        anchor: the first frame of each window is the episode's start (an anchored model):
            still windows keep it.

    Returns:
        (B, W, S, S, 3) uint8 windows.
    """
    cfg = config or AugmentConfig()
    b = frames.shape[0]
    x = frames.clone()  # (B, W, S, S, 3) uint8; still, flip and shift move whole pixels
    still = torch.rand(b, generator=gen) < cfg.still
    first = 1 if anchor else 0
    for i in still.nonzero().flatten().tolist():
        x[i, first:-1] = x[i, -1:]
    flip = torch.rand(b, generator=gen) < cfg.hflip
    for i in flip.nonzero().flatten().tolist():
        x[i] = x[i].flip(2)
    if cfg.vflip > 0.0:  # drawn only when asked, so runs without it keep their draws
        vflip = torch.rand(b, generator=gen) < cfg.vflip
        for i in vflip.nonzero().flatten().tolist():
            x[i] = x[i].flip(1)
    if cfg.channel_shuffle > 0.0:  # drawn only when asked, as the options below
        shuffle = torch.rand(b, generator=gen) < cfg.channel_shuffle
        for i in shuffle.nonzero().flatten().tolist():
            x[i] = x[i][..., torch.randperm(3, generator=gen)]
    x = _shift(x, cfg.shift, gen)
    if cfg.zoom > 0.0 or cfg.rotate > 0.0:
        x = _affine(x, cfg.zoom, cfg.rotate, gen)
    if cfg.tilt > 0.0:
        turn = cfg.tilt * (2.0 * torch.rand(2, b, generator=gen) - 1.0)
        x = tilt_windows(x, turn[0], turn[1])
    if cfg.lowres > 0.0:
        x = blur_windows(x, cfg.lowres + (1.0 - cfg.lowres) * torch.rand(b, generator=gen))
    if cfg.brightness == cfg.contrast == cfg.saturation == 0.0:
        return x.contiguous()
    return _jitter(x.float(), cfg, gen).round_().clamp_(0, 255).to(torch.uint8)
