"""procvlm.labels.phash must equal imagehash.phash (PIL + scipy) bit for bit."""

import importlib

import imagehash
import numpy as np
import pytest
import scipy.fftpack
from PIL import Image

from procvlm.errors import ProcvlmError
from procvlm.labels.phash import dct2, grayscale, hamming, phash, resize_lanczos


def _reference(images: np.ndarray) -> np.ndarray:
    return np.array([int(str(imagehash.phash(Image.fromarray(im))), 16) for im in images],
                    dtype=np.uint64)


def _scenes(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """Real-ish renders: flat background, a few rectangles, a soft gradient, some noise."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        img = np.empty((h, w, 3), np.float64)
        img[:] = rng.integers(0, 256, 3)
        img += (yy / h * rng.integers(-60, 60))[..., None]
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h - 4), rng.integers(0, w - 4)
            img[y:y + rng.integers(3, h // 2), x:x + rng.integers(3, w // 2)] = rng.integers(0, 256,
                                                                                           3)
        img += rng.normal(0, rng.choice([0, 2]), img.shape)
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def _degenerate(rng: np.random.Generator) -> np.ndarray:
    """Images whose DCT coefficients tie the median: flat, mirror-symmetric, centred squares."""
    imgs = [np.full((64, 64, 3), v, np.uint8) for v in (0, 1, 77, 128, 255)]
    for _ in range(10):
        half = rng.integers(0, 256, (64, 32, 3), dtype=np.uint8)
        imgs.append(np.concatenate([half, half[:, ::-1]], axis=1))
    for s in (4, 10, 20, 30):
        img = np.full((64, 64, 3), 40, np.uint8)
        img[32 - s:32 + s, 32 - s:32 + s] = 210
        imgs.append(img)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::4] = 255
    imgs.append(stripes)
    return np.stack(imgs)


def test_grayscale_matches_pil_convert_l():
    r, g = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    for b in (0, 1, 127, 128, 200, 255):
        img = np.stack([r, g, np.full_like(r, b)], -1).astype(np.uint8)
        ref = np.asarray(Image.fromarray(img).convert("L"))
        np.testing.assert_array_equal(grayscale(img[None])[0], ref)


@pytest.mark.parametrize("shape", [(128, 128), (96, 160), (33, 47), (32, 80), (20, 20), (480, 64),
                                   (97, 64), (96, 64), (40, 33), (31, 20), (64, 32)])
def test_resize_matches_pil_lanczos(shape):
    rng = np.random.default_rng(sum(shape))
    gray = rng.integers(0, 256, (4,) + shape, dtype=np.uint8)
    gray[0] = (gray[0] // 128) * 255  # hard edges exercise the clipping
    ref = np.stack([np.asarray(Image.fromarray(g).resize((32, 32), Image.LANCZOS)) for g in gray])
    np.testing.assert_array_equal(resize_lanczos(gray), ref)


def test_resize_falls_back_to_pillow_when_no_pass_order_matches(monkeypatch):
    mod = importlib.import_module("procvlm.labels.phash")
    mod._pass_order.cache_clear()
    monkeypatch.setattr(mod, "_resize_passes", lambda gray, size, v: np.zeros((len(gray), 32, 32)))
    gray = np.random.default_rng(5).integers(0, 256, (2, 50, 70), dtype=np.uint8)
    ref = np.stack([np.asarray(Image.fromarray(g).resize((32, 32), Image.LANCZOS)) for g in gray])
    try:
        np.testing.assert_array_equal(mod.resize_lanczos(gray), ref)
        assert mod._pass_order(50, 70, 32) == "pil"
    finally:
        mod._pass_order.cache_clear()


def test_dct2_matches_scipy_fftpack_exactly():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (300, 32)).astype(np.float64)
    x[::3, 16:] = x[::3, :16][:, ::-1]
    x[::7] = x[::7, :1]
    np.testing.assert_array_equal(dct2(x), scipy.fftpack.dct(x, axis=1))
    # the matrix-product DCT is not bit-exact: this is why pocketfft's algorithm is replicated
    n, k = np.arange(32), np.arange(32)
    naive = x @ (2 * np.cos(np.pi * k[None, :] * (2 * n[:, None] + 1) / 64))
    assert not np.array_equal(naive, scipy.fftpack.dct(x, axis=1))


def test_phash_matches_imagehash_on_random_images():
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (80, 48, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(phash(imgs), _reference(imgs))


@pytest.mark.parametrize("shape", [(128, 128), (90, 120), (32, 32), (24, 40)])
def test_phash_matches_imagehash_on_scenes(shape):
    rng = np.random.default_rng(shape[0])
    imgs = _scenes(rng, 40, *shape)
    np.testing.assert_array_equal(phash(imgs), _reference(imgs))


def test_phash_matches_imagehash_on_ties():
    imgs = _degenerate(np.random.default_rng(2))
    np.testing.assert_array_equal(phash(imgs), _reference(imgs))


def test_phash_of_grayscale_equals_phash_of_rgb():
    imgs = _scenes(np.random.default_rng(3), 8, 64, 64)
    np.testing.assert_array_equal(phash(grayscale(imgs)), phash(imgs))


def test_phash_batches_across_chunks():
    imgs = _scenes(np.random.default_rng(4), 70, 40, 40)  # more than one CHUNK of 64
    h = phash(imgs)
    np.testing.assert_array_equal(h[64:], phash(imgs[64:]))


def test_hamming_counts_bits():
    a = np.array([0, 0xFFFFFFFFFFFFFFFF, 0b1011], dtype=np.uint64)
    b = np.array([0, 0, 0b0001], dtype=np.uint64)
    np.testing.assert_array_equal(hamming(a, b), [0, 64, 2])


def test_phash_rejects_float_frames():
    with pytest.raises(ProcvlmError, match="uint8"):
        phash(np.zeros((2, 8, 8, 3), np.float32))
