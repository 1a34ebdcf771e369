"""Benchmark: human-like pacing against the scripted experts, and simulator-truth progress over
still stretches.

Per task, over a few seeds (expert episodes, no failure injected): MetaWorld success rate and mean
episode length with ``scripted`` and ``human`` pacing, and the human episodes' pacing events.
Then truth-progress flatness (max - min of ``true_progress`` inside each event) over every
hesitation of those episodes and over the injected stalls of ``stall`` episodes (human pacing).

Run: MUJOCO_GL=egl python benchmarks/pacing.py [--seeds 3 --tasks pick-place,drawer-open]
Targets: human success within 10 points of scripted per task; flatness <= 0.01 on every still
stretch.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

import numpy as np

os.environ.setdefault("MUJOCO_GL", "egl")


@dataclass
class Row:
    """What one task's episodes measured."""

    success: dict[str, list[bool]] = field(default_factory=lambda: {"scripted": [], "human": []})
    length: dict[str, list[int]] = field(default_factory=lambda: {"scripted": [], "human": []})
    events: dict[str, int] = field(default_factory=dict)
    still: dict[str, list[float]] = field(default_factory=lambda: {"hesitation": [], "stall": []})


def flatness(tp: np.ndarray, events: list[dict], kind: str) -> list[float]:
    """max - min of truth progress inside every event of type ``kind``."""
    return [float(np.ptp(tp[e["start"]:e["end"]])) for e in events if e["type"] == kind]


def measure(task: str, seeds: int, max_steps: int, size: int) -> Row:
    """Expert episodes with both pacings, plus human-paced stall episodes, of one task."""
    from procvlm.sim import rollout

    row = Row()
    for seed in range(seeds):
        for pacing in ("scripted", "human"):
            ep = rollout(task, seed, None, width=size, height=size, cameras=("corner",),
                         max_steps=max_steps, pacing=pacing)
            row.success[pacing].append(bool(ep.success))
            row.length[pacing].append(len(ep))
            if pacing == "human":
                for e in ep.meta["events"]:
                    row.events[e["type"]] = row.events.get(e["type"], 0) + 1
                row.still["hesitation"] += flatness(ep.true_progress, ep.meta["events"],
                                                    "hesitation")
        ep = rollout(task, seed, "stall", width=size, height=size, cameras=("corner",),
                     max_steps=max_steps, pacing="human")
        row.still["stall"] += flatness(ep.true_progress, ep.meta["events"], "stall")
    return row


def _fmt_still(values: list[float]) -> str:
    return f"{max(values):.4f} ({len(values)})" if values else "-"


def main() -> None:
    from procvlm.cli.generate import DEFAULT_TASKS
    from procvlm.sim import close_envs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default=DEFAULT_TASKS, help="comma-separated tasks "
                   "(default: procvlm generate's)")
    p.add_argument("--seeds", type=int, default=3, help="episodes per task and pacing")
    p.add_argument("--max-steps", type=int, default=400,
                   help="frames per episode at most (default: procvlm generate's)")
    p.add_argument("--size", type=int, default=32, help="image side (rendering is not measured)")
    a = p.parse_args()
    print(f"{'task':16s} {'success scr':>11s} {'success hum':>11s} {'len scr':>8s} "
          f"{'len hum':>8s}  {'hesit/overs/regr':>16s} {'flat hesit (n)':>15s} "
          f"{'flat stall (n)':>15s}")
    rows = {}
    for task in [t.strip() for t in a.tasks.split(",") if t.strip()]:
        row = rows[task] = measure(task, a.seeds, a.max_steps, a.size)
        ev = "/".join(str(row.events.get(k, 0)) for k in ("hesitation", "overshoot", "regrasp"))
        print(f"{task:16s} {np.mean(row.success['scripted']):11.2f} "
              f"{np.mean(row.success['human']):11.2f} {np.mean(row.length['scripted']):8.1f} "
              f"{np.mean(row.length['human']):8.1f}  {ev:>16s} "
              f"{_fmt_still(row.still['hesitation']):>15s} {_fmt_still(row.still['stall']):>15s}",
              flush=True)
    close_envs()
    allv = {k: [v for r in rows.values() for v in r.still[k]] for k in ("hesitation", "stall")}
    succ = {k: np.mean([v for r in rows.values() for v in r.success[k]])
            for k in ("scripted", "human")}
    print(f"{'all':16s} {succ['scripted']:11.2f} {succ['human']:11.2f}  "
          f"flatness max: hesitations {_fmt_still(allv['hesitation'])}, "
          f"stalls {_fmt_still(allv['stall'])}")


if __name__ == "__main__":
    main()
