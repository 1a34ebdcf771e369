"""Batched perceptual hashes that equal ``imagehash.phash`` bit for bit, in numpy alone.

``imagehash.phash(img)`` converts to grayscale (PIL mode "L"), resizes to 32x32 with PIL's
LANCZOS filter, takes ``scipy.fftpack.dct`` along axis 0 then axis 1, keeps the top-left 8x8
coefficients and compares them with their median. Each step is reproduced exactly:

- grayscale: PIL's ``L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16``, in integers;
- resize: PIL's two-pass fixed-point resampler (``Resample.c``): the filter coefficients are
  computed in double precision with the C library's ``sin`` (Python's ``math``), normalised and
  rounded to 22-bit fixed point, then each pass sums integer products (exact in float64, so the
  passes run as BLAS matrix products), rounds, and clips to 0..255. Which pass runs first
  depends on the shape and the Pillow version, so it is checked once per frame shape against
  the installed Pillow on probe images (Pillow resizes frames itself if neither order matches);
- DCT: pocketfft's DCT-II (``T_dcst23``, which ``scipy.fftpack.dct`` runs): the same butterfly
  before and after a length-32 real inverse FFT (numpy's FFT is the same pocketfft code), with
  pocketfft's own twiddle factors (``sincos_2pibyn``). A plain matrix-product DCT differs from
  scipy in the last bits, which flips hash bits whenever a coefficient ties the median (flat or
  mirror-symmetric images), so the rounding of scipy's algorithm is kept;
- median: ``numpy.median`` over the 64 coefficients, then ``>``.

The 64 bits are packed most significant first, so ``int(str(imagehash.phash(img)), 16)`` equals
``phash(frames)[i]``.
"""

from __future__ import annotations

import functools
import logging
import math

import numpy as np

from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

HASH_SIZE = 8
IMG_SIZE = 32
PRECISION_BITS = 32 - 8 - 2
"""PIL's fixed-point precision for 8-bit resampling."""

LANCZOS_SUPPORT = 3.0
CHUNK = 64
"""Frames processed at once (keeps the temporaries in cache)."""

_GRAY_WEIGHTS = np.array([19595, 38470, 7471], dtype=np.float32)


def grayscale(frames: np.ndarray) -> np.ndarray:
    """PIL's RGB -> "L" conversion of (N, H, W, 3) uint8 frames, as (N, H, W) uint8.

    The weighted sum is at most 255 * 65536 + 0x8000 < 2**24, so float32 holds it exactly.
    """
    s = frames.reshape(-1, 3).astype(np.float32) @ _GRAY_WEIGHTS
    return ((s.astype(np.int32) + 0x8000) >> 16).astype(np.uint8).reshape(frames.shape[:-1])


def _lanczos(x: float) -> float:
    def sinc(v: float) -> float:
        if v == 0.0:
            return 1.0
        v = v * math.pi
        return math.sin(v) / v

    if -3.0 <= x < 3.0:
        return sinc(x) * sinc(x / 3)
    return 0.0


@functools.lru_cache(maxsize=32)
def _resample_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(in_size, out_size) fixed-point LANCZOS coefficients, as PIL's ``precompute_coeffs``."""
    scale = filterscale = in_size / out_size
    filterscale = max(filterscale, 1.0)
    support = LANCZOS_SUPPORT * filterscale
    matrix = np.zeros((in_size, out_size), dtype=np.float64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        weights = [_lanczos((x + xmin - center + 0.5) / filterscale) for x in range(xmax)]
        total = 0.0
        for w in weights:
            total += w
        for x, w in enumerate(weights):
            w = w / total if total != 0.0 else w
            # C's (int) cast truncates towards zero
            fixed = math.trunc((-0.5 if w < 0 else 0.5) + w * (1 << PRECISION_BITS))
            matrix[xmin + x, xx] = fixed
    matrix.setflags(write=False)
    return matrix


def _clip8(acc: np.ndarray) -> np.ndarray:
    """PIL's ``clip8``: add the rounding half, shift out the fixed point, clip to 0..255."""
    return np.clip(np.floor((acc + (1 << (PRECISION_BITS - 1))) / (1 << PRECISION_BITS)), 0, 255)


def _resize_passes(gray: np.ndarray, size: int, vertical_first: bool) -> np.ndarray:
    n, h, w = gray.shape
    out = gray.astype(np.float64)
    if vertical_first and h != size:
        out = _clip8(_resample_matrix(h, size).T @ out)  # (N, size, W)
        h = size
    if w != size:
        out = _clip8(out.reshape(n * h, w) @ _resample_matrix(w, size)).reshape(n, h, size)
    if h != size:
        out = _clip8(_resample_matrix(h, size).T @ out)
    return out


def _pil_resize(gray: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.Resampling.LANCZOS))
                     for g in gray]).astype(np.float64)


@functools.lru_cache(maxsize=64)
def _pass_order(h: int, w: int, size: int) -> str:
    """Which pass the installed Pillow runs first for an (h, w) image: "h", "v" or "pil".

    Pillow runs the horizontal pass first, except (recent versions) when the height shrinks much
    more than the width: observed ``h > size and h - size > 2 * (w - size)``. The guess is
    checked against Pillow itself on random probe images; if neither order matches (another
    Pillow resampler), frames of this shape are resized by Pillow, which is exact by definition.
    """
    probe = np.random.default_rng(h * 100_003 + w).integers(0, 256, (3, h, w), dtype=np.uint8)
    probe[0] = (probe[0] // 128) * 255  # hard edges exercise the clipping
    ref = _pil_resize(probe, size)
    guess = "v" if h > size and h - size > 2 * (w - size) else "h"
    for order in (guess, "h" if guess == "v" else "v"):
        if np.array_equal(_resize_passes(probe, size, order == "v"), ref):
            return order
    logger.warning("numpy LANCZOS resize does not match this Pillow for %dx%d frames; using "
                   "Pillow per frame (slower)", h, w)
    return "pil"


def resize_lanczos(gray: np.ndarray, size: int = IMG_SIZE) -> np.ndarray:
    """PIL's ``Image.resize((size, size), LANCZOS)`` of (N, H, W) uint8 images, as float64.

    The products of uint8 pixels and 22-bit coefficients and their sums stay below 2**31, so
    float64 matrix products are exact integer arithmetic.
    """
    _, h, w = gray.shape
    if (h, w) == (size, size):
        return gray.astype(np.float64)
    order = _pass_order(h, w, size)
    if order == "pil":
        return _pil_resize(gray, size)
    return _resize_passes(gray, size, order == "v")


@functools.lru_cache(maxsize=4)
def _pocketfft_twiddle(n: int) -> np.ndarray:
    """``twiddle[i] = sincos_2pibyn(4n)[i + 1].r``, computed as pocketfft computes it."""
    big = 4 * n
    ang = float(np.longdouble(0.25) * np.longdouble("3.141592653589793238462643383279502884197")
                / np.longdouble(big))

    def calc(x: int) -> tuple[float, float]:
        x <<= 3
        if x < 4 * big:
            if x < 2 * big:
                if x < big:
                    return math.cos(x * ang), math.sin(x * ang)
                return math.sin((2 * big - x) * ang), math.cos((2 * big - x) * ang)
            x -= 2 * big
            if x < big:
                return -math.sin(x * ang), math.cos(x * ang)
            return -math.cos((2 * big - x) * ang), math.sin((2 * big - x) * ang)
        x = 8 * big - x
        if x < 2 * big:
            if x < big:
                return math.cos(x * ang), -math.sin(x * ang)
            return math.sin((2 * big - x) * ang), -math.cos((2 * big - x) * ang)
        x -= 2 * big
        if x < big:
            return -math.sin(x * ang), -math.cos(x * ang)
        return -math.cos((2 * big - x) * ang), -math.sin((2 * big - x) * ang)

    nval = (big + 2) // 2
    shift = 1
    while (1 << shift) * (1 << shift) < nval:
        shift += 1
    mask = (1 << shift) - 1
    v1 = [(1.0, 0.0)] + [calc(i) for i in range(1, mask + 1)]
    v2 = [(1.0, 0.0)] + [calc(i * (mask + 1)) for i in range(1, (nval + mask) // (mask + 1))]

    def real(idx: int) -> float:
        if 2 * idx > big:
            idx = big - idx
        a, b = v1[idx & mask], v2[idx >> shift]
        return a[0] * b[0] - a[1] * b[1]

    return np.array([real(i + 1) for i in range(n)], dtype=np.float64)


def dct2(x: np.ndarray) -> np.ndarray:
    """Unnormalised DCT-II along the last axis, bit-identical to ``scipy.fftpack.dct(x)``.

    pocketfft's ``T_dcst23`` for type 2: pre-butterfly, real inverse FFT, post-butterfly.
    Only even lengths are supported (phash uses 32).
    """
    n = x.shape[-1]
    if n % 2 or n < 4:
        raise ValueError(f"dct2 needs an even length >= 4, got {n}")
    tw = _pocketfft_twiddle(n)
    c = np.array(x, dtype=np.float64, copy=True)
    c[..., 0] *= 2
    c[..., n - 1] *= 2
    a, b = c[..., 2:n - 1:2].copy(), c[..., 1:n - 2:2].copy()
    c[..., 2:n - 1:2] = a - b  # MPINPLACE(c[k+1], c[k])
    c[..., 1:n - 2:2] = a + b
    half = np.empty(c.shape[:-1] + (n // 2 + 1,), dtype=np.complex128)  # halfcomplex -> complex
    half[..., 0] = c[..., 0]
    half[..., 1:n // 2] = c[..., 1:n - 1:2] + 1j * c[..., 2:n - 1:2]
    half[..., n // 2] = c[..., n - 1]
    r = np.fft.irfft(half, n=n, axis=-1, norm="forward")  # pocketfft backward, factor 1
    out = r.copy()
    k = np.arange(1, n // 2)
    kc = n - k
    t1 = tw[k - 1] * r[..., kc] + tw[kc - 1] * r[..., k]
    t2 = tw[k - 1] * r[..., k] - tw[kc - 1] * r[..., kc]
    out[..., k] = 0.5 * (t1 + t2)
    out[..., kc] = 0.5 * (t1 - t2)
    out[..., n // 2] *= tw[n // 2 - 1]
    return out


def _hash_bits(small: np.ndarray) -> np.ndarray:
    """(N, 32, 32) grayscale thumbnails -> (N, 64) bool hash bits."""
    cols = dct2(np.swapaxes(small, 1, 2))  # DCT along axis 0 of each image: (N, x, u)
    low = dct2(np.swapaxes(cols[:, :, :HASH_SIZE], 1, 2))  # then along axis 1: (N, u, v)
    low = low[:, :, :HASH_SIZE].reshape(len(small), -1)
    med = np.median(low, axis=1)
    return low > med[:, None]


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """(N, 64) bool -> (N,) uint64, the first bit most significant (imagehash's hex order)."""
    return np.packbits(bits, axis=1).view(">u8").reshape(-1).astype(np.uint64)


def thumbnails(frames: np.ndarray) -> np.ndarray:
    """imagehash's 32x32 grayscale thumbnails of (N, H, W, 3) or (N, H, W) uint8 frames."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or (
            frames.ndim == 4 and frames.shape[-1] != 3):
        raise ProcvlmError(f"frames must be (N, H, W, 3) or (N, H, W) uint8, got "
                           f"{frames.shape} {frames.dtype}: pass RGB or grayscale uint8 images")
    gray = grayscale(frames) if frames.ndim == 4 else frames
    return resize_lanczos(gray)


def phash(frames: np.ndarray) -> np.ndarray:
    """Perceptual hashes of (N, H, W, 3) (or grayscale (N, H, W)) uint8 frames.

    Args:
        frames: the images.

    Returns:
        (N,) uint64; ``int(str(imagehash.phash(Image.fromarray(frames[i]))), 16)`` for each i.
    """
    frames = np.asarray(frames)
    out = np.empty(len(frames), dtype=np.uint64)
    for i in range(0, len(frames), CHUNK):
        out[i:i + CHUNK] = pack_bits(_hash_bits(thumbnails(frames[i:i + CHUNK])))
    return out


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance between two arrays of uint64 hashes."""
    return np.bitwise_count(np.bitwise_xor(np.asarray(a, np.uint64), np.asarray(b, np.uint64)))
