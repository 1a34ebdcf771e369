"""``procvlm eval``: compare progress models and label schemes on held-out labelled datasets."""

from __future__ import annotations

import argparse

from procvlm.errors import ProcvlmError
from procvlm.labels import SCHEMES


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            name, path = v.rstrip("/").split("/")[-1], v
        if not name or not path:
            raise ProcvlmError(f"--{what} {v!r}: write NAME=PATH, e.g. --{what} procvlm=runs/a")
        out[name] = path
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", action="append", default=[], metavar="NAME=RUN",
                   help="a trained run or model folder (repeat for several)")
    p.add_argument("--split", action="append", default=[], metavar="NAME=DATASET",
                   help="a labelled held-out dataset (repeat: e.g. test_id=..., test_ood=...)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--references", default=",".join(SCHEMES),
                   help="label schemes scored as references (comma-separated, '' for none)")
    p.add_argument("--window", type=int, default=None,
                   help="frames the models see (default: each model's own, from its "
                        "config.json)")
    p.add_argument("--camera", default=None,
                   help="camera the models read (default: the one each model's config.json "
                        "records, else the dataset's first)")
    p.add_argument("--scheme", choices=SCHEMES, default=None,
                   help="labels the models are judged against (default: the scheme the models "
                        "record having trained on, else procvlm)")


def run(args: argparse.Namespace) -> int:
    from procvlm.eval.compare import run_eval

    splits = _pairs(args.split, "split")
    if not splits:
        raise ProcvlmError("no --split given: pass at least one labelled dataset, "
                           "e.g. --split test=DATASET (label it with `procvlm label` first)")
    refs = [r for r in args.references.split(",") if r]
    bad = [r for r in refs if r not in SCHEMES]
    if bad:
        raise ProcvlmError(f"--references {','.join(bad)}: choose from {', '.join(SCHEMES)}")
    if not args.model and not refs:
        raise ProcvlmError("nothing to evaluate: pass --model NAME=RUN or --references")
    index = run_eval(_pairs(args.model, "model"), splits, args.out, refs, args.window,
                     show_progress=True, camera=args.camera, scheme=args.scheme)
    print(f"report: {index}")
    return 0
