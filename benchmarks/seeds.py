"""Several training seeds of ``benchmarks/quality.py`` side by side, with their mean and spread.

Each ``--json`` file of ``quality.py`` holds one training seed's figures (``--train-seed N``
on the same ``--data``). This script lines them up per model and metric, gives the mean and
the sample standard deviation over seeds, and counts the seeds that meet each of issue 8's
targets, so that a finding is read across seeds and not from one draw.

    python benchmarks/seeds.py seed_0.json seed_1.json ... [--split test_id] [--json PATH]

Runs made with ``--models`` hold some models only; a metric is averaged over the seeds that
have it, and the count says how many those were.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

METRICS = ("ccc_truth", "auroc", "stall_drift", "plan_exact", "regression_recall")


def load_runs(paths: list[str]) -> list[dict]:
    """The figures of each quality JSON, with its seed; one-line errors for a wrong file."""
    runs = []
    for path in paths:
        p = Path(path)
        try:
            figures = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"{p}: cannot read it as JSON ({e}); pass files written by "
                             "benchmarks/quality.py --json")
        if not isinstance(figures, dict) or "rows" not in figures or "config" not in figures:
            raise SystemExit(f"{p} has no 'rows' and 'config': pass files written by "
                             "benchmarks/quality.py --json")
        cfg = figures["config"]
        seed = cfg.get("train_seed")
        figures["seed"] = cfg.get("seed", 0) if seed is None else seed
        runs.append(figures)
    seeds = [r["seed"] for r in runs]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"training seeds {seeds} repeat: pass each seed's JSON once")
    return runs


def per_seed(runs: list[dict], split: str) -> dict[str, dict[str, list[float | None]]]:
    """Model or label scheme -> metric -> one value per run (None where the run lacks it)."""
    names = list(dict.fromkeys(r["name"] for run in runs for r in run["rows"]
                               if r["split"] == split))
    table: dict[str, dict[str, list[float | None]]] = {}
    for name in names:
        table[name] = {}
        for metric in METRICS:
            values = []
            for run in runs:
                row = next((r for r in run["rows"] if r["split"] == split and r["name"] == name),
                           None)
                v = None if row is None else row.get(metric)
                values.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v)
                              else None)
            table[name][metric] = values
    return table


def summary(values: list[float | None]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation and count of the values that exist."""
    have = np.array([v for v in values if v is not None], dtype=np.float64)
    if not have.size:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(have.mean()), "std": float(have.std(ddof=1)) if have.size > 1 else None,
            "n": int(have.size)}


def target_counts(runs: list[dict]) -> list[dict]:
    """Per target of ``quality.targets``: in how many seeds it was measured and met."""
    out: dict[str, dict] = {}
    for run in runs:
        for t in run.get("targets", []):
            row = out.setdefault(t["target"], {"target": t["target"], "op": t["op"],
                                               "value": t["value"], "met": 0, "measured": 0,
                                               "seeds_met": []})
            if t.get("met") is not None:
                row["measured"] += 1
                if t["met"]:
                    row["met"] += 1
                    row["seeds_met"].append(run["seed"])
    return list(out.values())


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", help="quality.py --json files, one per training seed")
    p.add_argument("--split", default="test_id", help="split to line up (default test_id)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = p.parse_args(argv)
    runs = sorted(load_runs(args.files), key=lambda r: r["seed"])
    table = per_seed(runs, args.split)
    if not table:
        raise SystemExit(f"no row of split {args.split!r} in {args.files}: pick a split the "
                         "runs scored (test_id, test_ood, val)")
    seeds = [r["seed"] for r in runs]
    print(f"== {args.split}, training seeds {' / '.join(map(str, seeds))}")
    figures: dict = {"split": args.split, "seeds": seeds, "models": {}}
    for name, metrics in table.items():
        figures["models"][name] = {}
        print(f"\n{name}")
        for metric, values in metrics.items():
            if all(v is None for v in values):
                continue
            s = summary(values)
            figures["models"][name][metric] = {"values": values, **s}
            print(f"  {metric:<18} {' / '.join(_fmt(v) for v in values):<44} mean "
                  f"{_fmt(s['mean'])} sd {_fmt(s['std'])} (n={s['n']})")
    counts = target_counts(runs)
    figures["targets"] = counts
    print("\n== targets: seeds meeting each (of those that measured it)")
    for c in counts:
        print(f"{c['target']:<48} {c['op']} {c['value']:<5} {c['met']} of {c['measured']}"
              f"  {c['seeds_met']}")
    if args.json:
        from procvlm._io import write_json

        write_json(Path(args.json), figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
