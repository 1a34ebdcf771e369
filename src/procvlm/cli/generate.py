"""``procvlm generate``: write a MetaWorld demonstration corpus as a LeRobot v3 dataset.

Every option is checked before anything is written; the settings are recorded in the dataset
(``meta/procvlm/generate.json``), so the same command resumes an interrupted run and a command
with other settings is refused with the setting named.
"""

from __future__ import annotations

import argparse

from procvlm.errors import ProcvlmError

RANDOMIZE = ("none", "train", "heldout", "train-views", "heldout-camera", "heldout-orientation",
             "heldout-light", "heldout-colour", "heldout-resolution")
"""``procvlm.sim.randomize.RANDOMIZE_CHOICES``, spelled out: the simulator loads only to run."""

ENVS = ("metaworld",)
DEFAULT_TASKS = "pick-place,assembly,hammer,shelf-place,bin-picking,basketball"


def _csv(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--env", default="metaworld", help="simulator (only metaworld)")
    p.add_argument("--tasks", default=DEFAULT_TASKS,
                   help="comma-separated MetaWorld tasks (short names), used round-robin")
    p.add_argument("--episodes", type=int, default=None,
                   help="episodes in the finished dataset (default: 20, or the number an "
                        "existing dataset was started with)")
    p.add_argument("--failure-rate", type=float, default=0.5,
                   help="fraction of episodes with an injected failure")
    p.add_argument("--seed", type=int, default=0, help="corpus seed")
    p.add_argument("--out", required=True,
                   help="dataset folder: new or empty, or one to resume with the same settings")
    p.add_argument("--width", type=int, default=128, help="image width")
    p.add_argument("--height", type=int, default=128, help="image height")
    p.add_argument("--cameras", default="corner,gripper",
                   help="comma-separated cameras, the first is the main one")
    p.add_argument("--max-steps", type=int, default=400,
                   help="most frames per episode (MetaWorld allows 500)")
    p.add_argument("--randomize", default="none", choices=RANDOMIZE,
                   help="rendering conditions drawn per episode from its seed (camera pose, "
                        "image orientation, lighting, table and backdrop colours, resolution): "
                        "'train'; 'train-views' ('train' with half of the episodes seen from "
                        "around MetaWorld's corner2, corner3 or topview cameras instead of the "
                        "first camera); or 'heldout' (conditions never drawn for 'train' or "
                        "'train-views'); 'heldout-camera', -orientation, -light, -colour or "
                        "-resolution: that factor from 'heldout', the others from 'train'; "
                        "'none' is MetaWorld's own")
    p.add_argument("--workers", type=int, default=1,
                   help="processes running episodes in parallel (the same dataset for any)")
    p.add_argument("--pacing", choices=("human", "scripted"), default="human",
                   help="human: demonstrations as people record them (uneven pace per "
                        "sub-step, hesitation pauses, overshoot-and-correct, re-grasps, jitter; "
                        "recorded as events); scripted: the experts' constant pace "
                        "(default: human)")
    p.add_argument("--antialias", action="store_true",
                   help="render with 4x multisampling: smoother edges, frames about twice as "
                        "expensive to generate without a GPU (default: one sample per pixel)")
    p.add_argument("--images", action="store_true",
                   help="store PNG images in the parquet files instead of mp4 videos")
    p.add_argument("--redo-episode", type=int, action="append", default=[], metavar="N",
                   help="generate episode N again and replace it, e.g. after a corrupt-video "
                        "error (repeatable)")


def settings_from_args(args: argparse.Namespace):
    """The ``CorpusSettings`` the options ask for (validated, nothing written)."""
    from procvlm.sim.corpus import CorpusSettings

    return CorpusSettings(tasks=_csv(args.tasks), failure_rate=args.failure_rate,
                          seed=args.seed, width=args.width, height=args.height,
                          cameras=_csv(args.cameras), max_steps=args.max_steps,
                          video=not args.images, randomize=args.randomize,
                          pacing=args.pacing, antialias=args.antialias)


def run(args: argparse.Namespace) -> int:
    if args.env not in ENVS:
        raise ProcvlmError(f"--env {args.env!r} is not supported: use --env metaworld")
    from procvlm.sim import close_envs
    from procvlm.sim.corpus import generate_corpus

    settings = settings_from_args(args)
    try:
        result = generate_corpus(args.out, settings, args.episodes, redo=args.redo_episode,
                                 workers=args.workers)
    finally:
        close_envs()
    if result.redone:
        print(f"generated episode(s) {', '.join(map(str, result.redone))} of {result.root} "
              "again")
    if result.written:
        n = len(result.written)
        print(f"wrote {n} episode{'s' * (n != 1)} to {result.root} (it holds {result.total})")
    elif not result.redone:
        print(f"{result.root} already holds {result.total} episodes (>= --episodes "
              f"{args.episodes or result.total}): nothing to do")
    return 0
