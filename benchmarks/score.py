"""Scoring throughput of the compact model: frames per second of ``predict`` (resize to the
model's resolution + windowing + batched forward) on 128x128 frames, 2 CPU threads by default.

    python benchmarks/score.py [--model RUN/model] [--dataset DATASET] [--threads 2]

Without ``--model`` a randomly initialised default-config model is timed (speed does not depend
on the weights). With ``--dataset`` whole episodes are decoded from the dataset too.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def synthetic_frames(episodes: int, length: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8) for _ in range(episodes)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="a model folder (default: random init)")
    p.add_argument("--dataset", default=None, help="score this dataset's episodes instead")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--length", type=int, default=250)
    p.add_argument("--size", type=int, default=128, help="synthetic frame size")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    from procvlm.models import load_model
    from procvlm.models.compact import CompactConfig, CompactProgressModel

    if args.model:
        model = load_model(args.model)
    else:
        torch.manual_seed(0)
        model = CompactProgressModel(CompactConfig()).eval()
    task, plan = "Pick up the puck", ["Move to the puck", "Grasp the puck", "Lift the puck",
                                      "Place the puck onto the goal"]
    model.predict(synthetic_frames(1, 16, args.size)[0], task, plan)  # warm-up, text cache
    if args.dataset:
        from procvlm.data import open_dataset

        ds = open_dataset(args.dataset)
        items = [ds.episode(i, cameras=[ds.cameras[0]]) for i in ds.episode_indices]
        items = items[:args.episodes]
        t0, n = time.perf_counter(), 0
        for ep in items:
            n += len(model.predict(ep, batch_size=args.batch_size))
    else:
        items = synthetic_frames(args.episodes, args.length, args.size)
        t0, n = time.perf_counter(), 0
        for frames in items:
            n += len(model.predict(frames, task, plan, batch_size=args.batch_size))
    dt = time.perf_counter() - t0
    src = args.dataset or f"synthetic {args.size}x{args.size}"
    print(f"compact scoring: {n} frames in {dt:.2f} s = {n / dt:.0f} frames/s "
          f"({src}, {args.threads} threads, batch {args.batch_size}, "
          f"model {model.config.image_size}px window {model.config.window})")


if __name__ == "__main__":
    main()
