"""Throughput of procvlm.labels: pHash labels from decoded frames, and end to end from mp4.

Run ``.venv/bin/python benchmarks/labels.py [--frames N] [--episodes E --length T]``. BLAS is
pinned to one thread so the figures are per core. Prints frames/s for:

1. pHash labels from decoded 128x128 frames (visual change + all four schemes), against
   ``imagehash.phash`` per frame (PIL + scipy) for reference (target >= 5,000 frames/s);
2. decoding the synthetic mp4 dataset alone, and ``label_dataset`` on it end to end (decode +
   annotate + pHash + labels + parquet; target within 1.5x of decoding alone).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from procvlm.data import ArrayFrames, Episode, Subtask, open_dataset, write_dataset  # noqa: E402
from procvlm.labels import SCHEMES, compute_labels, label_dataset, visual_change  # noqa: E402

PLAN = ["Move to the puck", "Grasp the puck", "Place the puck onto the goal"]


def scene_frames(n: int, size: int, seed: int) -> np.ndarray:
    """A moving square over a gradient with sensor noise: (n, size, size, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([yy * 200 // size, xx * 200 // size, np.full_like(yy, 90)], -1)
    out = np.empty((n, size, size, 3), np.uint8)
    for t in range(n):
        img = base.copy()
        y = int(size * 0.2 + size * 0.5 * t / max(n - 1, 1))
        img[y:y + size // 6, size // 3:size // 3 + size // 6] = (240, 40, 40)
        out[t] = np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    return out


def bench_decoded(n: int, size: int) -> None:
    frames = scene_frames(n, size, 0)
    subs = [Subtask(PLAN[0], 0, n // 3), Subtask(PLAN[1], n // 3, 2 * n // 3),
            Subtask(PLAN[2], 2 * n // 3, n - 10)]
    visual_change(frames[:64])  # warm the resampling tables
    t0 = time.perf_counter()
    change = visual_change(frames, "phash")
    t1 = time.perf_counter()
    for s in SCHEMES:
        compute_labels(subs, PLAN, n, change, True, s)
    t2 = time.perf_counter()
    print(f"[decoded {size}x{size}, {n} frames] pHash visual change: {n / (t1 - t0):,.0f} "
          f"frames/s; + 4 label schemes: {n / (t2 - t0):,.0f} frames/s")
    try:
        import imagehash
        from PIL import Image
    except ImportError:
        return
    m = min(n, 1000)
    t0 = time.perf_counter()
    for f in frames[:m]:
        imagehash.phash(Image.fromarray(f))
    print(f"[decoded {size}x{size}] reference imagehash.phash per frame: "
          f"{m / (time.perf_counter() - t0):,.0f} frames/s")


def synthetic_episode(i: int, length: int, size: int) -> Episode:
    frames = scene_frames(length, size, i)
    cut = [0, length // 3, 2 * length // 3, length - 5]
    return Episode(episode_index=i, task="put the puck on the goal", fps=20.0,
                   frames={"corner": ArrayFrames(frames)},
                   state=np.zeros((length, 4), np.float32), action=np.zeros((length, 4), np.float32),
                   success=True, plan=list(PLAN),
                   subtasks=[Subtask(PLAN[k], cut[k], cut[k + 1]) for k in range(3)])


def bench_mp4(episodes: int, length: int, size: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="procvlm_bench_"))
    try:
        root = write_dataset(tmp / "ds", (synthetic_episode(i, length, size)
                                          for i in range(episodes)), video=True)
        ds = open_dataset(root)
        n = sum(ds.episode_length(i) for i in ds.episode_indices)
        t0 = time.perf_counter()
        for i in ds.episode_indices:
            frames = ds.episode(i, cameras=["corner"]).frames["corner"]
            for a in range(0, len(frames), 256):
                frames[a:a + 256]
        decode = time.perf_counter() - t0
        t0 = time.perf_counter()
        label_dataset(root)
        label = time.perf_counter() - t0
        print(f"[mp4 {size}x{size}, {episodes} episodes, {n} frames] decode only: "
              f"{n / decode:,.0f} frames/s; label_dataset end to end: {n / label:,.0f} frames/s "
              f"({label / decode:.2f}x the decode time)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=4096)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--length", type=int, default=300)
    args = p.parse_args()
    bench_decoded(args.frames, args.size)
    bench_mp4(args.episodes, args.length, args.size)


if __name__ == "__main__":
    main()
