"""``procvlm label``: frame-level procedure-grounded progress labels for a dataset, written to
``meta/procvlm/labels.parquet`` (+ ``plans.json``, ``provenance.json``)."""

from __future__ import annotations

import argparse
import textwrap

from procvlm.annotate.base import ANNOTATORS, annotator_options, parse_annotator_args
from procvlm.labels import ANCHOR_MEASURE, MEASURES, SCHEMES


def _key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` split at the first ``=``; the value is typed later, per annotator."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    key, value = text.split("=", 1)
    return key.strip(), value.strip()


def _options_help() -> str:
    lines = ["annotator options (--annotator-arg KEY=VALUE; lists as 0,1,2 or JSON, lists of "
             "lists as 4,5,6;7,8,9, none for None):"]
    for name in ANNOTATORS:
        opts = annotator_options(name).values()
        lines.append(textwrap.fill(f"{name}: " + ("; ".join(o.describe() for o in opts)
                                                  or "none"), 90, initial_indent="  ",
                                   subsequent_indent="      "))
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="LeRobot v3 dataset folder or robomimic/LIBERO .hdf5 file")
    p.add_argument("--annotator", choices=list(ANNOTATORS), default="oracle",
                   help="sub-step segmentation (default: oracle, the simulator's own)")
    p.add_argument("--annotator-arg", action="append", type=_key_value, default=[],
                   metavar="KEY=VALUE", help="annotator option, repeatable, e.g. gripper: "
                                             "gripper_dims=3 hand_dims=0,1,2; vlm: "
                                             "base_url=http://localhost:8000/v1 (all listed "
                                             "below)")
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = _options_help()
    p.add_argument("--scheme", choices=SCHEMES, default="procvlm",
                   help="scheme of the main label columns; all four are written as "
                        "progress_<scheme> (default: procvlm)")
    p.add_argument("--measure", choices=MEASURES, default="phash",
                   help="visual change between consecutive frames, procvlm-paper's increments "
                        "(default: phash, as the paper)")
    p.add_argument("--anchor-measure", choices=MEASURES, default=ANCHOR_MEASURE,
                   help="visual change against the last frame that counted, the procvlm "
                        f"scheme's increments (default: {ANCHOR_MEASURE})")
    p.add_argument("--floor", type=float, default=None,
                   help="increment of a frame without visual change (default: 0 for procvlm, "
                        "0.5 for procvlm-paper)")
    p.add_argument("--uncompleted-fraction", type=float, default=0.5,
                   help="share of its budget an uncompleted sub-step earns (default: 0.5)")
    p.add_argument("--noise", type=float, default=0.0,
                   help="visual change 1-S (against the last frame that counted) treated as "
                        "none by the procvlm scheme; flicker is ignored already (default: 0)")
    p.add_argument("--camera", default=None,
                   help="camera of the visual change (default: the dataset's first)")


def run(args: argparse.Namespace) -> int:
    from procvlm.labels import LabelParams, label_dataset, read_provenance

    params = LabelParams(floor=args.floor, uncompleted_fraction=args.uncompleted_fraction,
                         noise=args.noise)
    kwargs = parse_annotator_args(args.annotator, args.annotator_arg)
    path = label_dataset(args.dataset, annotator=args.annotator, scheme=args.scheme,
                         measure=args.measure, params=params, annotator_kwargs=kwargs,
                         camera=args.camera, progress_bar=True,
                         anchor_measure=args.anchor_measure)
    prov = read_provenance(args.dataset)
    print(f"labels written to {path} ({prov['num_episodes']} episodes, {prov['num_frames']} "
          f"frames; annotator {args.annotator}, scheme {args.scheme}, measures {args.measure} / "
          f"{args.anchor_measure})")
    return 0
