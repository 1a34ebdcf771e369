"""``procvlm demo``: the whole pipeline on a small MetaWorld corpus, ending in a report."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="demo folder (default: demo_out)")
    p.add_argument("--quick", action="store_true",
                   help="a short run: 3 tasks, a dozen episodes, short training")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole demo (default: 0)")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import os

    # Torch's OpenMP threads spin while they wait for work. On a machine shared with other jobs
    # the spinning cost more than the work: 20 training steps took 40 CPU s with 2 threads at
    # load 8, and 3 CPU s with passive waiting. It has to be set before torch is imported.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from procvlm.demo import QUICK, DemoConfig, compact_runs, run_demo

    cfg = dataclasses.replace(QUICK if args.quick else DemoConfig(), seed=args.seed)
    episodes = cfg.train_episodes + 2 * cfg.test_episodes
    print(f"procvlm demo: {episodes} MetaWorld episodes, {len(compact_runs())} compact models "
          f"of {cfg.train_steps} steps, report in {args.out}/report", flush=True)
    print(f"procvlm demo: about {cfg.estimated_minutes():.0f} min on a free 2-core machine "
          f"({cfg.estimated_cpu_minutes():.0f} CPU min), longer on a busy one; interrupted, the "
          "same command resumes", flush=True)
    result = run_demo(args.out, cfg)
    print("\nThe pipeline, as commands:")
    for line, seconds, cpu in zip(result.commands, result.command_seconds,
                                  result.command_cpu_seconds):
        print(f"  {line}   # {seconds:.0f} s ({cpu:.0f} CPU s)")
    print(f"\ndone in {result.seconds / 60:.1f} min ({result.cpu_seconds / 60:.1f} CPU min)")
    print(f"frame strip with sub-steps and label curves: {result.strip}")
    print(f"report: {result.report}")
    return 0
