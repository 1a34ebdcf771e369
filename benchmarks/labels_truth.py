"""Label schemes against simulator truth on a small human-paced MetaWorld dataset (mp4).

For every label scheme (``procvlm.labels.SCHEMES``) it prints, with issue 8's targets for the
``procvlm`` labels next to them:

- CCC against simulator-truth progress over all frames and over the frames of successful
  episodes (target >= 0.9 on successes), and the mean absolute error;
- drift over still stretches (``stall`` and ``hesitation`` events: progress gained from their
  first to their last frame), mean and largest (target <= 0.02);
- success AUROC of the final label (as ``procvlm eval`` computes it).

``--anchor-measures phash,l1,embedding`` adds a row ``procvlm[<measure>]`` per measure: the
``procvlm`` labels recomputed with that measure's anchored change (``procvlm label
--anchor-measure``), the same sub-steps otherwise, to compare measures on one dataset (decide on
the quality benchmark's validation split, ``benchmarks/quality.py --val``).

The dataset is made by ``procvlm generate`` (human-like pacing, the default; mp4 video) and
``procvlm label`` unless ``--data`` already holds a labelled one; fixed seed. 16 episodes took
11 minutes on 2 shared cores (generation is nearly all of it).

    python benchmarks/labels_truth.py [--data /tmp/labels_truth] [--json labels_truth.json]
        [--anchor-measures phash,l1,embedding]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

TASKS = "pick-place,assembly,shelf-place,basketball"
TARGETS = {"ccc_truth_success": (">=", 0.9), "drift_max": ("<=", 0.02)}


def make_data(root: Path, tasks: str, episodes: int, failure_rate: float, seed: int) -> None:
    """``procvlm generate`` + ``procvlm label`` into ``root`` (skipped when labelled)."""
    from procvlm.cli.main import main

    if (root / "meta" / "procvlm" / "labels.parquet").is_file():
        return
    for argv in (["generate", "--tasks", tasks, "--episodes", str(episodes), "--failure-rate",
                  str(failure_rate), "--seed", str(seed), "--cameras", "corner", "--out",
                  str(root)], ["label", str(root)]):
        if main(argv) != 0:
            sys.exit(f"procvlm {' '.join(argv)} failed")


def _drifts(progress: np.ndarray, stills: list[tuple[int, int]]) -> list[float]:
    return [float(progress[b - 1] - progress[a]) for a, b in stills]


def _row(series: Any, truths: list) -> dict[str, float]:
    from procvlm.eval.compare import score_series

    summary = score_series(series, truths)
    drifts = [d for t in truths for d in _drifts(series.progress[t.episode], t.stalls)]
    return {"ccc_truth": summary["ccc_truth"], "ccc_truth_success": summary["ccc_truth_success"],
            "mae_truth": summary["mae_truth"],
            "drift_mean": float(np.mean(drifts)) if drifts else math.nan,
            "drift_max": float(np.max(drifts)) if drifts else math.nan,
            "auroc": summary["auroc"]}


def anchored_series(ds: Any, measure: str) -> Any:
    """The ``procvlm`` labels of every episode of ``ds`` with the anchored change of
    ``measure``, from the dataset's label cache (the sub-steps of its oracle annotation)."""
    from procvlm.eval.compare import Series
    from procvlm.labels import collect_records, compute_labels, labels_dir, read_provenance

    prov = read_provenance(ds.root)
    records = collect_records(ds, prov["annotator"], prov["measure"],
                              prov.get("annotator_kwargs") or {}, prov["camera"],
                              cache=labels_dir(ds.root) / ".cache", anchor_measure=measure)
    progress, stage = {}, {}
    for rec in records:
        lab = compute_labels(rec.timeline(), rec.plan, rec.num_frames, np.asarray(rec.change),
                             rec.success, anchored_change=np.asarray(rec.anchored))
        progress[rec.episode_index], stage[rec.episode_index] = lab.progress, lab.stage
    return Series(progress, stage)


def measure(root: str | Path, anchor_measures: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every scheme's agreement with truth and drift over still stretches on dataset ``root``,
    and the ``procvlm`` labels' with each of ``anchor_measures`` (rows ``procvlm[<measure>]``).

    Returns:
        ``{"episodes", "successes", "still_stretches", "still_frames", "schemes": {scheme:
        {"ccc_truth", "ccc_truth_success", "mae_truth", "drift_mean", "drift_max", "auroc"}}}``.
    """
    from procvlm.data import open_dataset
    from procvlm.eval.compare import episode_truth, label_series
    from procvlm.labels import SCHEMES, read_labels

    ds = open_dataset(root)
    table = read_labels(ds.root)
    episodes = list(ds.episode_indices)
    truths = [episode_truth(ds, table, i) for i in episodes]
    if any(t.truth is None for t in truths):
        sys.exit(f"{root} has episodes without simulator truth: generate it with procvlm "
                 "generate (true_progress column)")
    out: dict[str, Any] = {
        "episodes": len(truths), "successes": sum(t.success for t in truths),
        "still_stretches": sum(len(t.stalls) for t in truths),
        "still_frames": sum(b - a for t in truths for a, b in t.stalls), "schemes": {}}
    for scheme in SCHEMES:
        out["schemes"][scheme] = _row(label_series(table, episodes, scheme), truths)
    for m in anchor_measures:
        out["schemes"][f"procvlm[{m}]"] = _row(anchored_series(ds, m), truths)
    return out


def report(result: dict[str, Any]) -> str:
    """The figures as a text table, with the targets of the ``procvlm`` labels."""
    cols = ("ccc_truth", "ccc_truth_success", "mae_truth", "drift_mean", "drift_max", "auroc")
    lines = [f"{result['episodes']} episodes ({result['successes']} successful), "
             f"{result['still_stretches']} still stretches ({result['still_frames']} frames)",
             f"{'scheme':<20}" + "".join(f"{c:>19}" for c in cols)]
    for scheme, row in result["schemes"].items():
        lines.append(f"{scheme:<20}" + "".join(f"{row[c]:>19.4f}" for c in cols))
    ours = result["schemes"]["procvlm"]
    for key, (op, target) in TARGETS.items():
        value = ours[key]
        ok = value >= target if op == ">=" else value <= target
        lines.append(f"procvlm {key} {op} {target}: measured {value:.4f} "
                     f"{'ok' if ok else 'MISSED'}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/tmp/labels_truth", help="dataset folder (made if empty)")
    p.add_argument("--tasks", default=TASKS)
    p.add_argument("--episodes", type=int, default=24)
    p.add_argument("--failure-rate", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    p.add_argument("--anchor-measures", default="",
                   help="comma-separated measures (phash, l1, embedding): a procvlm row each")
    args = p.parse_args()
    root = Path(args.data)
    make_data(root, args.tasks, args.episodes, args.failure_rate, args.seed)
    measures = tuple(m for m in args.anchor_measures.split(",") if m)
    result = measure(root, measures)
    result["settings"] = {"data": str(root), "tasks": args.tasks, "episodes": args.episodes,
                          "failure_rate": args.failure_rate, "seed": args.seed}
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
        print(f"figures: {args.json}")


if __name__ == "__main__":
    main()
