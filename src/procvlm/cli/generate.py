"""``procvlm generate``: write a MetaWorld demonstration corpus as a LeRobot v3 dataset."""

from __future__ import annotations

import argparse

from procvlm.errors import ProcvlmError

ENVS = ("metaworld",)
DEFAULT_TASKS = "pick-place,assembly,hammer,shelf-place,bin-picking,basketball"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="metaworld", help="simulator (only 'metaworld')")
    p.add_argument("--tasks", default=DEFAULT_TASKS,
                   help=f"comma-separated MetaWorld tasks, round-robin (default: {DEFAULT_TASKS})")
    p.add_argument("--episodes", type=int, default=20, help="episodes in the dataset (default: 20)")
    p.add_argument("--failure-rate", type=float, default=0.5,
                   help="fraction of episodes with an injected failure (default: 0.5)")
    p.add_argument("--seed", type=int, default=0, help="corpus seed (default: 0)")
    p.add_argument("--out", required=True, help="dataset folder; an existing one is resumed")
    p.add_argument("--width", type=int, default=128, help="image width (default: 128)")
    p.add_argument("--height", type=int, default=128, help="image height (default: 128)")
    p.add_argument("--cameras", default="corner,gripper",
                   help="comma-separated cameras, the first is the main one (default: corner,gripper)")
    p.add_argument("--max-steps", type=int, default=300,
                   help="most frames per episode (default: 300, MetaWorld allows 500)")
    p.add_argument("--images", action="store_true",
                   help="store PNG images in the parquet files instead of mp4 videos")


def run(args: argparse.Namespace) -> int:
    if args.env not in ENVS:
        raise ProcvlmError(f"--env {args.env!r} is not supported: use --env metaworld")
    from procvlm.sim import close_envs, generate

    cameras = [c.strip() for c in args.cameras.split(",") if c.strip()]
    try:
        out = generate(args.out, args.tasks, args.episodes, args.failure_rate, args.seed,
                       args.width, args.height, cameras=cameras, max_steps=args.max_steps,
                       video=not args.images)
    finally:
        close_envs()
    print(f"wrote {args.episodes} episodes to {out}")
    return 0
