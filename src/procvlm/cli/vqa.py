"""``procvlm vqa``: derive ProcVQA chat samples (progress, segmentation, planning) from a
labelled dataset into a folder of JSONL splits and JPEG frames."""

from __future__ import annotations

import argparse
from pathlib import Path

from procvlm.vqa.samples import FAMILIES


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="labelled dataset (LeRobot v3 folder or .hdf5) after "
                                   "`procvlm label`")
    p.add_argument("--out", required=True, help="ProcVQA folder to write")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of in-distribution episodes for val.jsonl (default: 0.1)")
    p.add_argument("--ood-tasks", type=_csv, default=[],
                   help="comma-separated tasks held out whole into test_ood.jsonl, by short "
                        "name (assembly) or instruction (default: none)")
    p.add_argument("--samples-per-episode", type=int, default=8,
                   help="current frames per episode, one sample per family each (default: 8)")
    p.add_argument("--families", type=_csv, default=list(FAMILIES),
                   help=f"comma-separated sample families (default: {','.join(FAMILIES)})")
    p.add_argument("--scheme", default=None,
                   help="label scheme whose progress is taught (default: the one labelled)")
    p.add_argument("--camera", default=None, help="camera shown (default: the first)")


def run(args: argparse.Namespace) -> int:
    from procvlm.vqa import build_vqa

    out = build_vqa(args.dataset, args.out, seed=args.seed, val_fraction=args.val_fraction,
                    ood_tasks=args.ood_tasks, samples_per_episode=args.samples_per_episode,
                    families=args.families, scheme=args.scheme, camera=args.camera,
                    progress_bar=True)
    files = sorted(p.name for p in Path(out).glob("*.jsonl"))
    print(f"ProcVQA written to {out}: {', '.join(files)} (+ images/, dataset_info.json)")
    return 0
