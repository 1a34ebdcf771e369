"""Benchmark: MetaWorld generation speed (rendered images per second on one core, and CPU
milliseconds per image, every thread counted) and how much faster frames read back through
``procvlm.data.open_dataset``.

Run: MUJOCO_GL=egl python benchmarks/generate.py [--episodes 4 --size 128 --task pick-place]
Targets: >= 40 images/s per core for one camera at 128x128; reading >= 10x faster; rendering
randomisation (``--randomize train``) costs at most 20 % of the plain rate. The antialiased line
(``generate --antialias``, 4x multisampling) shows what one sample per pixel saves.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def bench_rollout(task: str, episodes: int, size: int, cameras: tuple[str, ...],
                  randomize: str = "none", antialias: bool = False) -> tuple[float, float]:
    """Images rendered per second by ``rollout`` (simulation, expert, oracle and rendering),
    and CPU milliseconds per image (``time.process_time``: the renderer's threads included)."""
    from procvlm.sim import rollout

    kwargs = {"width": size, "height": size, "cameras": cameras, "antialias": antialias}
    rollout(task, 10_000, **kwargs)  # build env + GL context
    images, start, cpu = 0, time.perf_counter(), time.process_time()
    for seed in range(episodes):
        ep = rollout(task, seed, randomize=randomize, **kwargs)
        images += len(ep) * len(cameras)
    return images / (time.perf_counter() - start), (time.process_time() - cpu) / images * 1e3


def bench_generate(out: Path, task: str, episodes: int, size: int) -> tuple[float, int]:
    """Frames per second of the whole ``generate`` (two cameras, mp4 encoding)."""
    from procvlm.data import open_dataset
    from procvlm.sim import generate

    start = time.perf_counter()
    generate(out, task, episodes, 0.0, 0, size, size, progress=False)
    elapsed = time.perf_counter() - start
    ds = open_dataset(out)
    frames = sum(ds.episode_length(i) for i in ds.episode_indices)
    return frames / elapsed, frames


def bench_read(root: Path) -> float:
    """Main-camera frames decoded per second through ``open_dataset``."""
    from procvlm.data import open_dataset

    ds = open_dataset(root)
    frames, start = 0, time.perf_counter()
    for i in ds.episode_indices:
        ep = ds.episode(i)
        frames += len(ep.main_frames()[0:len(ep)])
    return frames / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="pick-place")
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--randomize-only", action="store_true",
                   help="stop after the plain and randomised one-camera rollouts")
    a = p.parse_args()
    one, one_ms = bench_rollout(a.task, a.episodes, a.size, ("corner",))
    print(f"rollout, 1 camera  {a.size}x{a.size}: {one:7.1f} images/s per core, {one_ms:5.1f} "
          "CPU ms per image (target >= 40 images/s)")
    rnd, rnd_ms = bench_rollout(a.task, a.episodes, a.size, ("corner",), "train")
    print(f"rollout, 1 camera  {a.size}x{a.size}, --randomize train: {rnd:7.1f} images/s "
          f"= {rnd / one:.2f}x plain, {rnd_ms:5.1f} CPU ms per image (target >= 0.8x)")
    if a.randomize_only:
        return
    _, aa_ms = bench_rollout(a.task, a.episodes, a.size, ("corner",), antialias=True)
    print(f"rollout, 1 camera  {a.size}x{a.size}, --antialias: {aa_ms:5.1f} CPU ms per image "
          f"= {aa_ms / one_ms:.2f}x plain")
    two, _ = bench_rollout(a.task, a.episodes, a.size, ("corner", "gripper"))
    print(f"rollout, 2 cameras {a.size}x{a.size}: {two:7.1f} images/s per core")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        gen_fps, frames = bench_generate(root, a.task, a.episodes, a.size)
        print(f"generate (2 cameras + mp4): {gen_fps:7.1f} frames/s ({frames} frames)")
        read_fps = bench_read(root)
        print(f"read back (main camera):    {read_fps:7.1f} frames/s "
              f"= {read_fps / gen_fps:.1f}x generation (target >= 10x)")


if __name__ == "__main__":
    main()
