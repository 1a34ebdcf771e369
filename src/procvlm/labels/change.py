"""Visual change between consecutive frames, the paper's ``d_i = 1.5 - S(I_{i-1}, I_i)``.

Three similarity measures ``S`` in [0, 1] (1 = identical frames):

- ``phash``: ``1 - Hamming(pHash_{i-1}, pHash_i) / 64`` (the paper; ``imagehash.phash`` bits);
- ``l1``: ``1 - mean |I_i - I_{i-1}| / 255`` over all pixels and channels;
- ``embedding``: cosine similarity (clipped to [0, 1]) of a fixed random-projection embedding:
  each frame's 32x32 grayscale pHash thumbnail, centred on its mean, is projected to 64
  dimensions by a Gaussian matrix drawn from ``numpy.random.default_rng(0)``.
  Deterministic, needs no model weights and no torch; two flat frames count as identical.

Frames are read in windows (``Frames`` objects decode lazily), so an episode never has to fit
in memory at full resolution.

``anchored_change`` measures each frame against a *reference* frame instead of its predecessor:
the last frame that counted as a change. A frame counts when it, and the frame before it, differ
from the reference by more than the measure's flicker threshold (``ANCHOR_THRESHOLD``: 2 pHash
bits, the flicker of video compression and of an arm settling), and then becomes the reference.
Flicker that comes and goes around a still scene never accumulates, even on top of motion not
yet counted when the scene stopped; real motion, however slow, drifts away from the reference
and stays away, and is counted in hops. The ``procvlm`` scheme uses it; ``procvlm-paper`` keeps
the paper's frame-to-frame change.

The anchored change has a measure of its own (``ANCHOR_MEASURE``, ``anchor_measure``): the
``procvlm`` scheme's increments need not use the paper's pHash.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from procvlm.data.episode import Frames
from procvlm.errors import ProcvlmError
from procvlm.labels.phash import IMG_SIZE, phash, thumbnails

MEASURES = ("phash", "l1", "embedding")
ANCHOR_MEASURE = "phash"
"""Default measure of the anchored change (the ``procvlm`` scheme); see the module doc."""
ANCHOR_THRESHOLD = {"phash": 2 / 64, "l1": 2 / 255, "embedding": 0.01}
"""Change ``1 - S`` from the reference frame at or below which a frame is flicker, per measure:
2 of 64 pHash bits, 2 grey levels of mean pixel difference, 0.01 of embedding cosine."""
PAPER_OFFSET = 1.5
"""``d_i = PAPER_OFFSET - S``: the paper's increment never falls below 0.5."""

WINDOW = 256
EMBED_DIM = 64


def _windows(frames: Frames | np.ndarray, window: int):
    """Yield consecutive (n, H, W, 3) uint8 blocks of ``frames``."""
    for start in range(0, len(frames), window):
        block = np.asarray(frames[start:min(start + window, len(frames))])
        if block.dtype != np.uint8 or block.ndim != 4 or block.shape[-1] != 3:
            raise ProcvlmError(f"frames must be (T, H, W, 3) uint8, got a block of {block.shape} "
                               f"{block.dtype}: pass RGB uint8 camera frames")
        yield block


@functools.lru_cache(maxsize=1)
def _projection() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((IMG_SIZE * IMG_SIZE, EMBED_DIM)) / np.sqrt(EMBED_DIM)


def embed(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 64) float64 random-projection embeddings (see module doc);
    a flat frame embeds to exactly zero."""
    small = thumbnails(frames).reshape(len(frames), -1)  # integer-valued
    # centred and scaled by the pixel count, in exact integer arithmetic: a flat frame gives
    # exactly the zero vector (cosine only sees directions, so the scale does not matter)
    small = small * small.shape[1] - small.sum(axis=1, keepdims=True)
    proj = _projection()
    # one product per frame: a batched product rounds differently with the batch size
    return np.stack([row @ proj for row in small]) if len(small) else np.zeros((0, EMBED_DIM))


def _phash_sim(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    return 1.0 - np.bitwise_count(prev ^ cur).astype(np.float64) / 64.0


def _l1_sim(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    diff = np.abs(cur.astype(np.int16) - prev.astype(np.int16))
    return 1.0 - diff.reshape(len(cur), -1).mean(axis=1) / 255.0


def _cos_sim(prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
    na, nb = np.linalg.norm(prev, axis=1), np.linalg.norm(cur, axis=1)
    dot = np.einsum("nd,nd->n", prev, cur)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where((na > 0) & (nb > 0), dot / (na * nb), np.where((na == 0) & (nb == 0), 1, 0))
    return np.clip(cos, 0.0, 1.0)


_FEATURES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "phash": phash, "l1": lambda block: block, "embedding": embed}
_SIMILARITY: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "phash": _phash_sim, "l1": _l1_sim, "embedding": _cos_sim}


def check_measure(measure: str) -> None:
    """Raise a one-line error unless ``measure`` is one of ``MEASURES``."""
    if measure not in MEASURES:
        raise ProcvlmError(f"unknown visual-change measure {measure!r}: choose one of "
                           f"{', '.join(MEASURES)}")


def _blocks(frames: Frames | np.ndarray, window: int):
    """Yield (start, block) per window of frames."""
    if window < 1:
        raise ProcvlmError(f"window {window} must be >= 1")
    yield from zip(range(0, len(frames), window), _windows(frames, window))


def _features(frames: Frames | np.ndarray, measure: str, window: int):
    """Yield (start, features) per window of frames."""
    check_measure(measure)
    for start, block in _blocks(frames, window):
        yield start, _FEATURES[measure](block)


def _consecutive(out: np.ndarray, start: int, feats: np.ndarray, last: np.ndarray | None,
                 sim: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
    if last is not None:
        out[start] = sim(last, feats[:1])[0]
    if len(feats) > 1:
        out[start + 1:start + len(feats)] = sim(feats[:-1], feats[1:])


def _anchored(out: np.ndarray, start: int, feats: np.ndarray, state: list,
              sim: Callable[[np.ndarray, np.ndarray], np.ndarray], threshold: float) -> None:
    """Fill ``out`` (similarity to the reference where a frame counts, 1 elsewhere) for one
    window. ``state`` carries ``[reference features, previous frame beyond the threshold]``."""
    for k in range(len(feats)):
        cur = feats[k:k + 1]
        if state[0] is None:
            state[0] = cur
            continue
        s = float(sim(state[0], cur)[0])
        beyond = 1.0 - s > threshold + 1e-12
        if beyond and state[1]:  # two frames in a row away from the reference: motion
            out[start + k], state[0], beyond = s, cur, False
        state[1] = beyond


def visual_changes(frames: Frames | np.ndarray, measure: str = "phash",
                   threshold: float | None = None, window: int = WINDOW,
                   anchor_measure: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frame-to-frame and anchored visual change from one pass over the frames.

    Args:
        frames: (T, H, W, 3) uint8 array or a lazily decoded ``Frames`` (main camera).
        measure: measure of the frame-to-frame change: ``phash`` (paper), ``l1`` or
            ``embedding``.
        threshold: flicker threshold of the anchored change (default
            ``ANCHOR_THRESHOLD[anchor_measure]``).
        window: frames decoded at once.
        anchor_measure: measure of the anchored change (None: ``measure``).

    Returns:
        ``(visual_change, anchored_change)``, each (T,) float64 in [0.5, 1.5] (``1.5 - S``).
    """
    anchor_measure = measure if anchor_measure is None else anchor_measure
    threshold = ANCHOR_THRESHOLD.get(anchor_measure, 0.0) if threshold is None \
        else float(threshold)
    if not 0.0 <= threshold < 1.0:
        raise ProcvlmError(f"threshold={threshold}: need 0 <= threshold < 1 (0 = every change "
                           "counts)")
    check_measure(measure)
    check_measure(anchor_measure)
    step, anchored = np.ones(len(frames)), np.ones(len(frames))
    last, state = None, [None, False]
    for start, block in _blocks(frames, window):
        feats = _FEATURES[measure](block)
        _consecutive(step, start, feats, last, _SIMILARITY[measure])
        last = feats[-1:]
        if anchor_measure != measure:
            feats = _FEATURES[anchor_measure](block)
        _anchored(anchored, start, feats, state, _SIMILARITY[anchor_measure], threshold)
    return PAPER_OFFSET - step, PAPER_OFFSET - anchored


def anchored_change(frames: Frames | np.ndarray, measure: str = ANCHOR_MEASURE,
                    threshold: float | None = None, window: int = WINDOW) -> np.ndarray:
    """Visual change against the last frame that counted as a change (see the module doc):
    ``d_i = 1.5 - S(I_r, I_i)`` when frames i - 1 and i both differ from the reference r by
    more than ``threshold`` (frame i then becomes the reference), else 0.5 (no change).

    Returns:
        (T,) float64 in [0.5, 1.5]; ``d[0] = 0.5``.
    """
    return visual_changes(frames, measure, threshold, window)[1]


def similarity(frames: Frames | np.ndarray, measure: str = "phash",
               window: int = WINDOW) -> np.ndarray:
    """Similarity ``S(I_{i-1}, I_i)`` in [0, 1] of consecutive frames.

    Args:
        frames: (T, H, W, 3) uint8 array or a lazily decoded ``Frames``.
        measure: ``phash``, ``l1`` or ``embedding``.
        window: frames decoded at once.

    Returns:
        (T,) float64 with ``S[0] = 1`` (the first frame has no predecessor).
    """
    sim = _SIMILARITY.get(measure)
    out = np.ones(len(frames), dtype=np.float64)
    last = None
    for start, feats in _features(frames, measure, window):
        _consecutive(out, start, feats, last, sim)
        last = feats[-1:]
    return out


def visual_change(frames: Frames | np.ndarray, measure: str = "phash",
                  window: int = WINDOW) -> np.ndarray:
    """The paper's per-frame visual change ``d_i = 1.5 - S(I_{i-1}, I_i)``.

    Args:
        frames: (T, H, W, 3) uint8 array or a lazily decoded ``Frames`` (main camera).
        measure: ``phash`` (paper), ``l1`` or ``embedding`` (see the module docstring).
        window: frames decoded at once.

    Returns:
        (T,) float64 in [0.5, 1.5]; ``d[0]`` is unused (0.5 by convention).
    """
    return PAPER_OFFSET - similarity(frames, measure, window)
