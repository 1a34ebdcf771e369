"""``procvlm policy``: behaviour cloning against progress-weighted behaviour cloning on
MetaWorld (success table, JSON, bar chart, failed-rollout strips), or with ``--online`` the
online RL check through ``ProgressReward``."""

from __future__ import annotations

import argparse
from dataclasses import replace

from procvlm.errors import ProcvlmError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    p.add_argument("--quick", action="store_true",
                   help="a test-sized run (one task, tiny corpus and policies; minutes)")
    p.add_argument("--tasks", default=None,
                   help="comma-separated MetaWorld tasks (default: assembly,basketball,"
                        "bin-picking,hammer)")
    p.add_argument("--episodes", type=int, default=None, help="training episodes per task "
                                                               "(default: 24)")
    p.add_argument("--failure-rate", type=float, default=None,
                   help="share of episodes with an injected failure (default: 0.6)")
    p.add_argument("--seeds", type=int, default=None, help="training seeds (default: 3)")
    p.add_argument("--corpus-seed", type=int, default=None,
                   help="seed of the generated corpora (default: 0)")
    p.add_argument("--rollouts", type=int, default=None,
                   help="evaluation rollouts per policy (default: 50)")
    p.add_argument("--steps", type=int, default=None,
                   help="gradient steps of every policy (default: 2000); with --online, "
                        "environment steps per reward (default: 3000)")
    p.add_argument("--methods", default=None,
                   help="comma-separated methods to train and report (default: all: bc, time, "
                        "procvlm, compact, truth, top-<source>, done-compact, oracle)")
    p.add_argument("--model", default=None,
                   help="compact progress model: a run folder or a shipped name (default: "
                        "metaworld)")
    p.add_argument("--only-task", default=None,
                   help="worker mode: run one task's cells into --out and stop (run several "
                        "at once, then once without it to write the table)")
    p.add_argument("--part", default=None, metavar="I/N",
                   help="with --only-task: run every N-th cell from the I-th (N workers share a "
                        "task whose corpus is already written)")
    p.add_argument("--online", action="store_true",
                   help="run the online RL check (SAC through ProgressReward) instead")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes sharing the corpora and cells (default: 2; 1 with --quick)")


def _config(args: argparse.Namespace):
    from procvlm.policy.experiment import QUICK, PolicyConfig

    cfg = QUICK if args.quick else PolicyConfig()
    changes = {k: v for k, v in {"episodes": args.episodes, "failure_rate": args.failure_rate,
                                 "seeds": args.seeds, "rollouts": args.rollouts,
                                 "model": args.model, "seed": args.corpus_seed}.items()
               if v is not None}
    if args.tasks:
        changes["tasks"] = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    if args.methods:
        changes["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if args.steps is not None:
        changes["bc"] = replace(cfg.bc, steps=args.steps)
    return replace(cfg, **changes)


def _part(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ProcvlmError(f"--part {text!r}: write it as I/N, e.g. 0/2") from None
    return i, n


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads < 1:
        raise ProcvlmError(f"--threads {args.threads}: need >= 1")
    torch.set_num_threads(args.threads)
    if args.online:
        from procvlm.policy.online import QUICK_ONLINE, OnlineConfig, run_online

        cfg = QUICK_ONLINE if args.quick else OnlineConfig()
        if args.steps is not None:
            cfg = replace(cfg, steps=args.steps, learning_starts=min(cfg.learning_starts,
                                                                     args.steps // 3))
        res = run_online(args.out, cfg)
        print(res.table, end="")
        print(f"curves: {res.chart}\nresults: {res.json}")
        return 0
    from procvlm.policy.experiment import run_experiment

    workers = args.workers if args.workers is not None else (1 if args.quick else 2)
    res = run_experiment(args.out, _config(args), only=args.only_task, part=_part(args.part),
                         workers=workers)
    if res is None:
        print(f"{args.only_task}: cells done in {args.out}")
        return 0
    print(res.table, end="")
    print(f"table: {res.markdown}\njson: {res.json}\nchart: {res.chart}")
    for s in res.strips:
        print(f"failed rollout: {s}")
    return 0
