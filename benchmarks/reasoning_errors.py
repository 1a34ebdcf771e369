"""Where the reasoning model's error comes from, frame by frame, against the direct regressor.

The reasoning model (``compact[procvlm]``) decides the current step first and composes progress
from it; the direct regressor (``compact-direct[procvlm]``) has the same backbone and regresses
progress. This script groups the frames of a split by how far the reasoning model's step is
from the annotation's (right, one step off, two or more off) and gives both models' squared
error against simulator truth on the same frames, so that a difference in CCC can be traced to
the frames that make it.

    python benchmarks/reasoning_errors.py --out DIR [--data DIR/data] [--splits test_id,val]

``--out`` is a ``benchmarks/quality.py`` work folder (its ``runs/procvlm`` and
``runs/procvlm-direct``); ``--data`` the folder of its datasets (default ``OUT/data``).
``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

GROUPS = ("right step", "1 step off", ">= 2 steps off")


def error_groups(true_stage: Sequence[np.ndarray], pred_stage: Sequence[np.ndarray],
                 truth: Sequence[np.ndarray], reason: Sequence[np.ndarray],
                 direct: Sequence[np.ndarray]) -> list[dict]:
    """Squared errors against truth of both models, per group of frames (``GROUPS``).

    Args:
        true_stage / pred_stage: per episode, (T,) the annotation's and the reasoning model's
            current step (plan index, K = done).
        truth: per episode, (T,) simulator-truth progress.
        reason / direct: per episode, (T,) the two models' progress.

    Returns:
        One dict per group: ``group``, ``frames``, ``share`` (of all frames), ``mse_reason``,
        ``mse_direct`` (nan for an empty group) and ``sse_share_reason`` /
        ``sse_share_direct`` (each model's share of its own summed squared error).
    """
    arrays = [np.concatenate(x) for x in (true_stage, pred_stage, truth, reason, direct)]
    if len({a.size for a in arrays}) != 1 or not arrays[0].size:
        raise ValueError("error_groups needs one stage, truth and prediction per frame, and "
                         "at least one frame")
    true_s, pred_s, t, r, d = arrays
    off = np.abs(pred_s.astype(np.int64) - true_s.astype(np.int64))
    err = {"reason": (r - t) ** 2, "direct": (d - t) ** 2}
    masks = (off == 0, off == 1, off >= 2)
    rows = []
    for name, mask in zip(GROUPS, masks):
        n = int(mask.sum())
        row = {"group": name, "frames": n, "share": n / off.size}
        for model, e in err.items():
            row[f"mse_{model}"] = float(e[mask].mean()) if n else float("nan")
            row[f"sse_share_{model}"] = float(e[mask].sum() / e.sum()) if e.sum() else 0.0
        rows.append(row)
    return rows


def split_groups(out: Path, root: Path) -> list[dict]:
    """``error_groups`` of the quality run ``out`` on the dataset at ``root``."""
    from procvlm.data import open_dataset
    from procvlm.eval.compare import episode_truth, model_series
    from procvlm.labels import read_labels
    from procvlm.models.compact import CompactProgressModel
    from procvlm.models.compact.text import TextEncoder

    encoder = TextEncoder(out / "text_cache.safetensors")
    models = {name: CompactProgressModel.from_pretrained(out / "runs" / folder / "model",
                                                         text_encoder=encoder)
              for name, folder in (("reason", "procvlm"), ("direct", "procvlm-direct"))}
    ds, table = open_dataset(root), read_labels(root)
    episodes = list(range(ds.num_episodes))
    truths = [episode_truth(ds, table, i) for i in episodes]
    if any(t.truth is None for t in truths):
        raise SystemExit(f"{root} has no simulator truth: pass a split made by "
                         "benchmarks/quality.py")
    series = {name: model_series(m, ds, episodes) for name, m in models.items()}
    return error_groups([t.stage for t in truths], [series["reason"].stage[i] for i in episodes],
                        [t.truth for t in truths],
                        [series["reason"].progress[i] for i in episodes],
                        [series["direct"].progress[i] for i in episodes])


def print_groups(split: str, rows: list[dict]) -> None:
    print(f"\n== {split}: frames by the reasoning model's step; squared error vs truth")
    print(f"{'':<16}{'frames':>8}{'share':>8}{'MSE reason':>12}{'MSE direct':>12}"
          f"{'SSE% reason':>13}{'SSE% direct':>13}")
    for r in rows:
        print(f"{r['group']:<16}{r['frames']:>8}{r['share']:>8.3f}{r['mse_reason']:>12.4f}"
              f"{r['mse_direct']:>12.4f}{100 * r['sse_share_reason']:>12.1f}%"
              f"{100 * r['sse_share_direct']:>12.1f}%")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="a benchmarks/quality.py work folder")
    p.add_argument("--data", default=None, help="its datasets (default: OUT/data)")
    p.add_argument("--splits", default="test_id", help="comma-separated splits (default "
                   "test_id)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    out = Path(args.out)
    data = Path(args.data) if args.data else out / "data"
    for folder in ("procvlm", "procvlm-direct"):
        if not (out / "runs" / folder / "model" / "config.json").is_file():
            raise SystemExit(f"{out}/runs/{folder}/model is missing: run benchmarks/quality.py "
                             f"--out {out} first")
    figures = {}
    for split in filter(None, args.splits.split(",")):
        if not (data / split).is_dir():
            raise SystemExit(f"{data / split} is missing: pass --data with the run's datasets "
                             "(and --val for the val split)")
        figures[split] = split_groups(out, data / split)
        print_groups(split, figures[split])
    if args.json:
        from procvlm._io import write_json

        clean = {s: [{k: None if isinstance(v, float) and math.isnan(v) else v
                      for k, v in r.items()} for r in rows] for s, rows in figures.items()}
        write_json(Path(args.json), {"out": str(out), "data": str(data), "splits": clean})
    return 0


if __name__ == "__main__":
    sys.exit(main())
