"""``procvlm demo``: the whole pipeline on a small MetaWorld corpus, ending in a report."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo_out", help="demo folder (default: demo_out)")
    p.add_argument("--quick", action="store_true",
                   help="a 3-minute run: 3 tasks, a dozen episodes, short training")
    p.add_argument("--seed", type=int, default=0, help="seed of the whole demo (default: 0)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from procvlm.demo import QUICK, DemoConfig, run_demo

    cfg = dataclasses.replace(QUICK if args.quick else DemoConfig(), seed=args.seed)
    result = run_demo(args.out, cfg)
    print("\nThe pipeline, as commands:")
    for line in result.commands:
        print(f"  {line}")
    print(f"\ndone in {result.seconds / 60:.1f} min")
    print(f"frame strip with sub-steps and label curves: {result.strip}")
    print(f"report: {result.report}")
    return 0
