"""Benchmark the ``gripper`` annotator against the MetaWorld oracle.

For every episode, boundaries (frames where the sub-step changes, see
``procvlm.annotate.metrics.subtask_boundaries``) of the gripper annotator's timeline are compared
with the oracle's: boundary F1 within 5% of the episode (BF1@5), mean absolute boundary error
(mMAE) in frames and as a fraction of the episode, and frame accuracy (the fraction of frames
whose sub-step name agrees, "done" included). The gripper annotator is given the task's plan
(``episode.plan``), as ``procvlm label --annotator gripper`` does on a generated corpus.

Episodes come from a dataset folder (argv) or are rolled out in memory with the scripted experts
(``procvlm.sim.rollout``, tiny 32x32 frames since only the state is used).

Usage: python benchmarks/annotate.py [DATASET] [--tasks pick-place,assembly,...]
       [--episodes-per-task 3] [--failure-rate 0.0] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from procvlm.annotate.gripper import GripperAnnotator
from procvlm.annotate.metrics import boundary_f1, boundary_mae, subtask_boundaries
from procvlm.data.episode import Episode, Subtask

DEFAULT_TASKS = ("pick-place,assembly,disassemble,hammer,shelf-place,bin-picking,stick-pull,"
                 "basketball,peg-insert-side")


def _labels(subtasks: list[Subtask], num_frames: int) -> np.ndarray:
    out = np.full(num_frames, "done", dtype=object)
    for s in subtasks:
        out[s.start:s.end] = s.name
    return out


def _rollouts(tasks: list[str], per_task: int, failure_rate: float,
              seed: int) -> Iterator[tuple[str, Episode]]:
    from procvlm.sim import FAILURE_MODES, rollout

    rng = np.random.default_rng(seed)
    k = 0
    for task in tasks:
        for i in range(per_task):
            failure = None
            if rng.random() < failure_rate:
                failure = FAILURE_MODES[k % len(FAILURE_MODES)]
                k += 1
            yield task, rollout(task, seed * 1000 + i, failure, width=32, height=32,
                                cameras=("corner",), episode_index=k)


def _dataset(path: str) -> Iterator[tuple[str, Episode]]:
    from procvlm.data import open_dataset

    ds = open_dataset(path)
    for ep in ds:
        yield str(ep.meta.get("task_name", ep.task)), ep


def evaluate(episodes: Iterator[tuple[str, Episode]]) -> dict[str, dict[str, list[float]]]:
    """Per task, the per-episode BF1@5, mMAE (frames, fraction) and frame accuracy."""
    annotator = GripperAnnotator()
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for task, ep in episodes:
        if not ep.subtasks:
            continue
        n = len(ep)
        ann = annotator.annotate(ep)
        pred, true = subtask_boundaries(ann.subtasks, n), subtask_boundaries(ep.subtasks, n)
        mae = boundary_mae(pred, true, n)
        s = scores[task]
        s["bf1"].append(boundary_f1(pred, true, n, 0.05))
        s["mae"].append(mae)
        s["mae_frac"].append(mae / n)
        s["acc"].append(float(np.mean(_labels(ann.subtasks, n) == _labels(ep.subtasks, n))))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dataset", nargs="?", help="dataset folder (default: roll out episodes)")
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--episodes-per-task", type=int, default=3)
    parser.add_argument("--failure-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    start = time.time()
    source = _dataset(args.dataset) if args.dataset else _rollouts(
        args.tasks.split(","), args.episodes_per_task, args.failure_rate, args.seed)
    scores = evaluate(source)
    print(f"{'task':16s} {'n':>3s} {'BF1@5':>6s} {'mMAE(fr)':>9s} {'mMAE(%T)':>9s} {'acc':>6s}")
    total: dict[str, list[float]] = defaultdict(list)
    for task, s in scores.items():
        for key, values in s.items():
            total[key] += values
        print(f"{task:16s} {len(s['bf1']):3d} {np.mean(s['bf1']):6.3f} {np.mean(s['mae']):9.2f} "
              f"{100 * np.mean(s['mae_frac']):8.2f}% {np.mean(s['acc']):6.3f}")
    print(f"{'all':16s} {len(total['bf1']):3d} {np.mean(total['bf1']):6.3f} "
          f"{np.mean(total['mae']):9.2f} {100 * np.mean(total['mae_frac']):8.2f}% "
          f"{np.mean(total['acc']):6.3f}")
    print(f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
