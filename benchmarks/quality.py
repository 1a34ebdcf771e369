"""Quality targets of the compact progress model on a fixed-seed held-out MetaWorld set.

Runs (or resumes) the demo pipeline at a larger size (96 training episodes of 7 tasks, 24
held-out episodes of the same tasks with new seeds and 24 of 2 held-out tasks, 5 minutes of
training per label scheme; about 30 minutes on 2 cores), then prints each target next to the
measured figure:
VOC >= 0.95 on successful episodes, success/failure AUROC >= 0.95, stall drift <= 0.02,
MCC@95 >= 0.9, and the procvlm-label model's AUROC at least 0.15 above the time-label model's.

    python benchmarks/quality.py [--out bench_quality] [--quick]

``--quick`` runs the 3-minute demo corpus instead (figures far below the targets).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from procvlm.demo import QUICK, DemoConfig, run_demo

QUALITY = DemoConfig(train_episodes=96, test_episodes=24, train_minutes=5.0, seed=0)
TARGETS = [("voc", ">=", 0.95), ("auroc", ">=", 0.95), ("stall_drift", "<=", 0.02),
           ("mcc@95", ">=", 0.9)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_quality")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    result = run_demo(args.out, QUICK if args.quick else QUALITY)
    rows = json.loads((Path(result.report).parent / "results.json").read_text())["table"]
    by = {(r["split"], r["name"]): r for r in rows}
    for split in sorted({r["split"] for r in rows}):
        print(f"\n== {split}")
        ours = by[(split, "compact[procvlm]")]
        for metric, op, target in TARGETS:
            value = ours[metric]
            ok = value >= target if op == ">=" else value <= target
            print(f"{metric:>14} {op} {target:<5} measured {value:.4f}  {'ok' if ok else 'MISSED'}")
        gap = ours["auroc"] - by[(split, "compact[time]")]["auroc"]
        print(f"{'auroc gap':>14} >= 0.15  measured {gap:.4f}  {'ok' if gap >= 0.15 else 'MISSED'}"
              "  (procvlm-label model minus time-label model)")
        for name in ("compact[procvlm-paper]", "compact[sarm]", "labels:procvlm", "labels:time"):
            r = by.get((split, name))
            if r:
                print(f"  {name:<24} voc {r['voc']:.3f} auroc {r['auroc']:.3f} "
                      f"stall_drift {r['stall_drift']:.3f} mcc@95 {r['mcc@95']:.3f}")
    print(f"\nreport: {result.report} ({result.seconds / 60:.1f} min)")


if __name__ == "__main__":
    main()
