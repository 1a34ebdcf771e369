"""``procvlm train --model compact``: the compact model's own options and its run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from procvlm.errors import ProcvlmError
from procvlm.labels import SCHEMES


def _widths(text: str) -> tuple[int, ...]:
    """``--channels``: comma-separated positive ints (read as annotator options are)."""
    from procvlm.annotate.base import parse_value

    try:
        widths = tuple(parse_value(text, tuple[int, ...]))
    except ValueError:
        widths = ()
    if not widths or any(w < 1 for w in widths):
        raise argparse.ArgumentTypeError(f"{text!r}: give positive ints separated by commas, "
                                         "e.g. 32,64,128,192")
    return widths


def add_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--scheme", default="procvlm",
                       choices=SCHEMES,
                       help="label scheme to learn (default: procvlm)")
    group.add_argument("--head", default="reason", choices=["reason", "direct"],
                       help="'reason': current step, remaining actions, then progress; "
                            "'direct': the same backbone regresses progress (the reasoning "
                            "ablation) (default: reason)")
    group.add_argument("--window", type=int, default=4, help="frames per window (default: 4)")
    group.add_argument("--stride", type=int, default=4,
                       help="frames between window frames (default: 4)")
    group.add_argument("--val-fraction", type=float, default=0.2,
                       help="episodes held out for validation (default: 0.2)")
    group.add_argument("--steps", type=int, default=1500,
                       help="optimiser steps: the whole training budget, the same on any "
                            "machine (default: 1500)")
    group.add_argument("--channels", type=_widths, default=None,
                       help="conv widths, comma-separated, one stride-2 conv each, e.g. "
                            "32,64,128,192 for a wider model (default: 24,48,96,128)")
    group.add_argument("--hidden", type=int, default=None,
                       help="width of the visual/task state vector (default: 256)")
    group.add_argument("--pool", default=None, choices=["flatten", "meanmax", "keypoints"],
                       help="'flatten': the last feature map's cells each get their own "
                            "weights; 'meanmax': mean and max over the cells, what is seen and "
                            "not where; 'keypoints': each channel's mean and the image position "
                            "of its activation (spatial soft-argmax) (default: flatten)")
    group.add_argument("--input-norm", default=None, choices=["none", "window"],
                       help="'window': bring each window's colour channels to one mean and "
                            "spread before the convolutions, so exposure, contrast and tint "
                            "do not reach the model (default: none)")
    group.add_argument("--camera", default=None, help="camera to use (default: the first)")
    group.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    group.add_argument("--no-augment", dest="augment", action="store_false",
                       help="train on the frames as they are (default: shifts, colour jitter "
                            "and still windows)")
    group.add_argument("--hflip", type=float, default=0.0,
                       help="probability of a horizontal flip per training window "
                            "(default: 0; for data with mirrored cameras)")
    group.add_argument("--vflip", type=float, default=0.0,
                       help="probability of an upside-down flip per training window "
                            "(default: 0; with --hflip 0.5 for --flip-average)")
    group.add_argument("--jitter", type=float, default=0.2,
                       help="colour jitter: brightness, contrast and saturation gains drawn in "
                            "1 +- this per training window (default: 0.2)")
    group.add_argument("--still", type=float, default=0.15,
                       help="share of training windows made still (every frame the newest), "
                            "so that stillness alone never moves progress (default: 0.15)")
    group.add_argument("--anchor", action="store_true",
                       help="also show the model the episode's first frame in front of every "
                            "window (recorded in its config: the change since the start is in "
                            "view; a live stream then keeps the episode's first frame)")
    group.add_argument("--shift", type=float, default=1 / 16,
                       help="shift each training window by up to this share of its side, "
                            "the same for all its frames (default: 0.0625)")
    group.add_argument("--zoom", type=float, default=0.0,
                       help="zoom each training window by a gain in 1 +- this (default: 0)")
    group.add_argument("--rotate", type=float, default=0.0,
                       help="turn each training window by up to this many degrees (default: 0)")
    group.add_argument("--channel-shuffle", type=float, default=0.0,
                       help="probability of a random order of the colour channels per training "
                            "window (default: 0)")
    group.add_argument("--lowres", type=float, default=0.0,
                       help="lower each training window's effective resolution to a share of "
                            "its side drawn in [this, 1], e.g. 0.5 (default: 0, off)")
    group.add_argument("--tilt", type=float, default=0.0,
                       help="turn each training window's camera about its own centre by a yaw "
                            "and a pitch of up to this many degrees, e.g. 10 (default: 0, off)")
    group.add_argument("--end-weight", type=float, default=0.0,
                       help="extra loss weight of the last --end-frames frames of every "
                            "episode, where success and failure are told apart, e.g. 2 "
                            "(they then weigh 1 + this; default: 0)")
    group.add_argument("--end-frames", type=int, default=10,
                       help="frames at each episode's end that --end-weight weighs "
                            "(default: 10)")
    group.add_argument("--ema", type=float, default=0.0,
                       help="keep an exponential moving average of the weights with this decay "
                            "per step, e.g. 0.999; validation and the saved model use it "
                            "(default: 0, off)")
    group.add_argument("--flip-average", action="store_true",
                       help="score each window as given, mirrored, upside down and rotated "
                            "180 degrees and report the median (recorded in the model's config: "
                            "an answer that does not depend on the image's orientation; four "
                            "forward passes per window)")


def run(args: argparse.Namespace) -> int:
    from procvlm.models.compact.configuration_compact import CompactConfig
    from procvlm.models.compact.processor_compact import AugmentConfig
    from procvlm.training.compact import TrainConfig, train_from_dataset

    if not args.dataset:
        raise ProcvlmError("no dataset given: procvlm train --model compact DATASET --out RUN")
    if not Path(args.dataset).exists():
        raise ProcvlmError(f"dataset {args.dataset} does not exist: pass a labelled LeRobot "
                           "v3 folder (procvlm generate + procvlm label)")
    if not 0.0 <= args.jitter < 1.0:
        raise ProcvlmError(f"--jitter {args.jitter}: need 0 <= jitter < 1 (gains in 1 +- jitter)")
    size = {k: v for k, v in {"image_size": args.image_size, "channels": args.channels,
                              "hidden": args.hidden, "pool": args.pool,
                              "input_norm": args.input_norm}.items()
            if v is not None}
    mcfg = CompactConfig(window=args.window, stride=args.stride, head=args.head,
                         flip_average=args.flip_average, anchor=args.anchor, **size)
    extra = {k: v for k, v in {"batch_size": args.batch_size, "lr": args.lr}.items()
             if v is not None}
    tcfg = TrainConfig(scheme=args.scheme, steps=args.steps, val_fraction=args.val_fraction,
                       seed=args.seed, threads=args.threads, augment=args.augment,
                       augmentation=AugmentConfig(shift=args.shift,
                                                  hflip=args.hflip, vflip=args.vflip,
                                                  brightness=args.jitter,
                                                  contrast=args.jitter,
                                                  saturation=args.jitter,
                                                  still=args.still, zoom=args.zoom,
                                                  rotate=args.rotate,
                                                  channel_shuffle=args.channel_shuffle,
                                                  lowres=args.lowres, tilt=args.tilt),
                       end_weight=args.end_weight, end_frames=args.end_frames, ema=args.ema,
                       **extra)
    result = train_from_dataset(args.dataset, args.out, mcfg, tcfg, resume=args.resume,
                                camera=args.camera)
    print(f"model: {result.model_dir} ({result.metrics['steps']} steps)")
    print(f"metrics: {Path(args.out) / 'metrics.json'}")
    print(validation_line(result.metrics, args.val_fraction))
    return 0


def validation_line(metrics: dict, val_fraction: float) -> str:
    """The validation metrics in one line, or in words why there are none."""
    if not metrics.get("val_episodes"):
        return (f"validation: none, no episode was held out (--val-fraction {val_fraction} of "
                "each outcome's episodes rounds to 0): generate more episodes or raise "
                "--val-fraction to get validation metrics")
    val = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics["val"].items()}
    return f"validation on {metrics['val_episodes']} held-out episodes: {json.dumps(val)}"
