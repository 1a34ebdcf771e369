"""Benchmark procvlm.data reading: frames/s for sequential and random windowed access.

Writes a small synthetic LeRobot v3 dataset (default 4 episodes x 200 frames, 2 cameras,
128x128, mp4) into a temporary folder, then times:
- sequential: every episode, every camera, read in blocks of 32 frames from start to end;
- random windows: windows of 8 consecutive frames at random starts (fresh episode objects,
  so every window pays its seek);
- random single frames.

Usage: python benchmarks/read.py [--episodes 4] [--frames 200] [--size 128] [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from procvlm.data import ArrayFrames, Episode, open_dataset, write_dataset


def synthetic_episode(i: int, t: int, size: int, rng: np.random.Generator) -> Episode:
    yy, xx = np.mgrid[0:size, 0:size]
    frames = {}
    for c, cam in enumerate(("corner", "gripper")):
        video = np.empty((t, size, size, 3), dtype=np.uint8)
        for k in range(t):
            video[k, ..., 0] = (xx + 2 * k + 40 * c) % 256
            video[k, ..., 1] = (yy + k) % 256
            video[k, ..., 2] = (xx ^ yy) % 256
            x0 = (3 * k) % (size - 16)
            video[k, 20:36, x0:x0 + 16] = 255
        frames[cam] = ArrayFrames(video)
    return Episode(i, "Push the puck to the goal", 20.0, frames,
                   rng.normal(size=(t, 8)).astype(np.float32),
                   rng.normal(size=(t, 4)).astype(np.float32), success=True)


def bench(root: Path, episodes: int, frames: int, size: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    write_dataset(root, (synthetic_episode(i, frames, size, rng) for i in range(episodes)))
    results = {"write frames/s": episodes * frames * 2 / (time.perf_counter() - t0)}
    ds = open_dataset(root)

    t0, n = time.perf_counter(), 0
    for ep in ds:
        for cam in ep.cameras:
            for s in range(0, len(ep), 32):
                n += len(ep.frames[cam][s:s + 32])
    results["sequential frames/s"] = n / (time.perf_counter() - t0)

    t0, n = time.perf_counter(), 0
    for _ in range(40):
        i = int(rng.integers(episodes))
        ep = ds.episode(i)
        start = int(rng.integers(0, frames - 8))
        for cam in ep.cameras:
            n += len(ep.frames[cam][start:start + 8])
    results["random 8-frame windows, frames/s"] = n / (time.perf_counter() - t0)

    ep = ds.episode(0)
    t0, n = time.perf_counter(), 0
    for _ in range(100):
        ep.frames["corner"][int(rng.integers(frames))]
        n += 1
    results["random single frames/s"] = n / (time.perf_counter() - t0)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = bench(Path(tmp) / "ds", args.episodes, args.frames, args.size, args.seed)
    print(f"{args.episodes} episodes x {args.frames} frames, 2 cameras, {args.size}x{args.size}")
    for name, value in results.items():
        print(f"{name:>36}: {value:10.1f}")


if __name__ == "__main__":
    main()
