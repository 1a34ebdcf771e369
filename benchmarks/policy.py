"""Behaviour cloning against progress-weighted behaviour cloning on MetaWorld: prints the
success table (mean and 95% interval per task and on average) and writes it as JSON.

    python benchmarks/policy.py [--out RUN] [--json PATH] [--quick] [--workers N] [--methods M]
                                [--corpus-seed S]

The default settings are ``procvlm policy``'s (4 tasks, 24 episodes each, 3 training seeds,
50 rollouts per policy, 2 worker processes). ``--workers N`` shares the corpora and cells among
N processes; the table is the same. An interrupted run resumes from ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/policy", help="run folder (resumed if present)")
    p.add_argument("--json", default=None, help="also write the summary to this JSON file")
    p.add_argument("--quick", action="store_true", help="the test-sized settings")
    p.add_argument("--workers", type=int, default=None,
                   help="processes sharing the work (default: 2; 1 with --quick)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods to run (default: all; see procvlm policy)")
    p.add_argument("--corpus-seed", type=int, default=0,
                   help="seed of the generated corpora (default: 0)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from procvlm.policy.experiment import QUICK, PolicyConfig, run_experiment

    cfg = QUICK if args.quick else PolicyConfig()
    if args.methods:
        cfg = replace(cfg, methods=tuple(m.strip() for m in args.methods.split(",")))
    cfg = replace(cfg, seed=args.corpus_seed)
    out = Path(args.out)
    start = time.monotonic()
    workers = args.workers if args.workers is not None else (1 if args.quick else 2)
    res = run_experiment(out, cfg, show_progress=False, workers=workers)
    print(res.table, end="")
    print(f"({time.monotonic() - start:.0f} s; chart {res.chart})")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res.summary, indent=2))
        print(f"json: {args.json}")


if __name__ == "__main__":
    main()
