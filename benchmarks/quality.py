"""Quality of the compact progress model against simulator truth (issue 8's targets).

Fixed seeds throughout. Every stage resumes from what is already in ``--out``:

1. data: ``procvlm generate`` (human-like pacing, the default) + ``procvlm label`` for the
   training corpus, held-out episodes of the training tasks (``test_id``, new seeds) and
   held-out tasks (``test_ood``), and with ``--val`` a validation split (``val``: the training
   tasks, seeds used nowhere else) on which changes to the defaults are decided; the MiniLM
   embeddings of every task and plan step are cached in ``OUT/text_cache.safetensors`` (so the later stages run without the MiniLM package);
2. train: every label scheme's compact model (``compact[procvlm]``, ``compact[procvlm-paper]``,
   ``compact[time]``, ``compact[sarm]``, reasoning head) and ``compact-direct[procvlm]`` (the
   same backbone regressing progress directly): the same data, seed and number of steps;
3. eval: ``procvlm.eval.compare_split`` on both held-out splits, the label schemes scored as
   references; the table is printed with the targets next to the measured figures, and
   ``--json PATH`` writes every figure.

    python benchmarks/quality.py [--out /tmp/bench_quality] [--json quality.json] [--quick]

The default size is 96 training episodes of 7 tasks, 24 held-out episodes per split and 1000
steps per model (every model was still improving at 500: on the validation split the five
models' mean CCC vs truth rose from 0.728 to 0.781), sized for 2 cores (the run prints its own
time); ``--jobs`` makes the datasets and trains the models in parallel processes (``--threads``
each) where there are more cores. ``--augment-ablation`` adds ``compact-noaug[procvlm]`` (the
same run without training augmentation). ``--data DIR`` reads and makes the datasets in ``DIR``
(default ``OUT/data``): another run's ``OUT/data`` compares, say, step counts on the same
episodes in a new ``--out``, and with ``--train-seed N`` the models of another training seed on
them. ``--image-size`` and ``--stride`` change the models' input (frame side, frames between
window frames) and ``--models`` trains and scores only the named models (say the reasoning
ablation's two), each in a new ``--out``. ``--small`` is a reduced run for a loaded machine
(``SMALL``); ``--quick`` is a tiny smoke run for the test suite (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from procvlm.labels import SCHEMES

logger = logging.getLogger("quality")

SPLITS = ("test_id", "test_ood")
VAL = "val"
"""The validation split (``--val``): decisions about defaults are taken there, never on the
test splits, whose figures the targets judge."""
COLUMNS = ("steps", "ccc_truth", "mae_truth", "stall_drift", "auroc", "plan_exact", "step_acc",
           "regression_recall", "voc")


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Sizes of the benchmark: corpus, held-out splits and training."""

    train_tasks: tuple[str, ...] = ("pick-place", "assembly", "disassemble", "hammer",
                                    "shelf-place", "bin-picking", "basketball")
    ood_tasks: tuple[str, ...] = ("peg-insert-side", "stick-pull")
    train_episodes: int = 96
    test_episodes: int = 24
    render_size: int = 128
    max_steps: int = 300  # human-paced successes take 210-245 frames
    failure_rate: float = 0.5
    steps: int = 1000
    image_size: int = 64
    stride: int = 4  # frames between two frames of a model's window (CompactConfig.stride)
    seed: int = 0
    train_seed: int | None = None  # None: ``seed``; another value retrains on the same data

    def __post_init__(self) -> None:
        if self.train_episodes < 2 or self.test_episodes < 1 or self.steps < 1:
            raise ValueError(f"train_episodes={self.train_episodes}, test_episodes="
                             f"{self.test_episodes}, steps={self.steps}: need >= 2, 1, 1")


SMALL = QualityConfig(train_tasks=("pick-place", "assembly", "hammer"),
                      ood_tasks=("shelf-place",), train_episodes=24, test_episodes=8,
                      render_size=64, max_steps=300, steps=300, image_size=32)

QUICK = QualityConfig(train_tasks=("pick-place", "assembly"), ood_tasks=("hammer",),
                      train_episodes=4, test_episodes=2, render_size=32, max_steps=100,
                      steps=3, image_size=32)


def model_runs(augment_ablation: bool = False) -> dict[str, tuple[str, str, bool]]:
    """Model name -> (label scheme, head, augment): every scheme's reasoning model, the
    direct-regression ablation and, if asked, the model trained without augmentation."""
    runs = {f"compact[{s}]": (s, "reason", True) for s in SCHEMES}
    runs["compact-direct[procvlm]"] = ("procvlm", "direct", True)
    if augment_ablation:
        runs["compact-noaug[procvlm]"] = ("procvlm", "reason", False)
    return runs


# ---------------------------------------------------------------- data


def _log_setup() -> None:
    """Log INFO lines with times (spawned workers start without the parent's set-up)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def _cli(*argv: str) -> None:
    from procvlm.cli.main import main

    logger.info("$ procvlm %s", " ".join(argv))
    if main(list(argv)) != 0:
        sys.exit(f"procvlm {' '.join(argv)} failed")


def _make_split(job: tuple[str, tuple[str, ...], int, int, dict]) -> None:
    """Generate and label one dataset (in a worker process when ``--jobs`` > 1)."""
    root, tasks, episodes, seed, cfg_dict = job
    _log_setup()
    cfg = QualityConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
    _cli("generate", "--env", "metaworld", "--tasks", ",".join(tasks), "--episodes",
         str(episodes), "--failure-rate", str(cfg.failure_rate), "--seed", str(seed),
         "--width", str(cfg.render_size), "--height", str(cfg.render_size),
         "--cameras", "corner", "--max-steps", str(cfg.max_steps), "--out", root)
    _cli("label", root, "--annotator", "oracle")


def make_data(data: Path, cfg: QualityConfig, jobs: int = 1,
              val: bool = False) -> dict[str, Path]:
    """Generate and label the datasets in the folder ``data`` (skipped when labelled already):
    train, test_id, test_ood and, with ``val``, the validation split; ``jobs`` > 1 makes them in
    parallel processes."""
    specs = {"train": (cfg.train_tasks, cfg.train_episodes, cfg.seed),
             "test_id": (cfg.train_tasks, cfg.test_episodes, cfg.seed + 1000),
             "test_ood": (cfg.ood_tasks, cfg.test_episodes, cfg.seed + 2000)}
    if val:
        specs[VAL] = (cfg.train_tasks, cfg.test_episodes, cfg.seed + 3000)
    roots = {name: data / name for name in specs}
    todo = [(str(roots[name]), tasks, episodes, seed, dataclasses.asdict(cfg))
            for name, (tasks, episodes, seed) in specs.items()
            if not (roots[name] / "meta" / "procvlm" / "labels.parquet").is_file()]
    _run_jobs(_make_split, todo, jobs)
    return roots


def _run_jobs(fn, todo: list, jobs: int) -> None:
    """``fn`` over ``todo``, in ``jobs`` spawned processes when there is more than one."""
    if jobs > 1 and len(todo) > 1:
        import multiprocessing

        with ProcessPoolExecutor(min(jobs, len(todo)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(fn, todo))
    else:
        for job in todo:
            fn(job)


def cache_texts(out: Path, cfg: QualityConfig, roots: dict[str, Path] | None = None) -> Path:
    """Encode every task and plan step once into ``OUT/text_cache.safetensors``: the
    simulator's task instructions and plans, and the plans stored with the datasets."""
    from procvlm.labels import read_plans
    from procvlm.models.compact.text import TextEncoder
    from procvlm.sim.tasks import get_task

    path = out / "text_cache.safetensors"
    encoder = TextEncoder(path)
    for name in (*cfg.train_tasks, *cfg.ood_tasks):
        spec = get_task(name)
        encoder.encode([spec.instruction, *spec.plan])
    for root in (roots or {}).values():
        for task, plan in read_plans(root).items():
            encoder.encode([task, *plan])
    encoder.flush()
    return path


# ---------------------------------------------------------------- training


def _train_one(job: tuple[str, str, str, str, str, bool, dict, int]) -> int:
    """Train one model (in a worker process); returns the steps reached."""
    name, data, run, text_cache, scheme_head, augment, cfg_dict, threads = job
    _log_setup()
    from procvlm.models.compact import CompactConfig
    from procvlm.models.compact.text import TextEncoder
    from procvlm.training.compact import TrainConfig, train_compact
    from procvlm.training.data import load_corpus

    cfg = QualityConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg_dict.items()})
    scheme, head = scheme_head.split("/")
    corpus = load_corpus(data, scheme, cfg.image_size, "corner", show_progress=False)
    mcfg = CompactConfig(image_size=cfg.image_size, stride=cfg.stride, head=head)
    seed = cfg.seed if cfg.train_seed is None else cfg.train_seed
    tcfg = TrainConfig(scheme=scheme, steps=cfg.steps, seed=seed, threads=threads,
                       augment=augment)
    result = train_compact(corpus, run, mcfg, tcfg, resume=True, show_progress=False,
                           text_encoder=TextEncoder(text_cache), dataset=data)
    logger.info("%s: %d steps, validation %s", name, result.metrics["steps"],
                result.metrics["val"])
    return int(result.metrics["steps"])


def train_models(out: Path, data: Path, text_cache: Path, cfg: QualityConfig, jobs: int,
                 threads: int, augment_ablation: bool = False,
                 only: Sequence[str] | None = None) -> dict[str, Path]:
    """Train every model of ``model_runs``, or those named in ``only`` (skipped when its
    ``model/`` exists)."""
    runs, todo = {}, []
    for name, (scheme, head, augment) in model_runs(augment_ablation).items():
        if only is not None and name not in only:
            continue
        folder = scheme + ("" if head == "reason" else f"-{head}") + ("" if augment else "-noaug")
        run = out / "runs" / folder
        runs[name] = run
        if not (run / "model" / "config.json").is_file():
            todo.append((name, str(data), str(run), str(text_cache), f"{scheme}/{head}",
                         augment, dataclasses.asdict(cfg), threads))
    _run_jobs(_train_one, todo, jobs)
    return runs


# ---------------------------------------------------------------- evaluation


def evaluate(runs: dict[str, Path], roots: dict[str, Path], text_cache: Path) -> list[dict]:
    """One row per (split, model or label scheme) with every metric of ``procvlm.eval``."""
    from procvlm.eval.compare import compare_split
    from procvlm.models.compact import CompactProgressModel
    from procvlm.models.compact.text import TextEncoder

    encoder = TextEncoder(text_cache)
    models = {name: CompactProgressModel.from_pretrained(run / "model", text_encoder=encoder)
              for name, run in runs.items()}
    steps = {name: m.training_record.get("steps") for name, m in models.items()}
    rows = []
    for split, root in roots.items():
        rows += compare_split(split, root, models, SCHEMES, steps=steps).rows
    return rows


# ---------------------------------------------------------------- the report


def _value(rows: dict, split: str, name: str, metric: str) -> float:
    v = rows.get((split, name), {}).get(metric)
    return float(v) if isinstance(v, (int, float)) and v is not None else math.nan


def targets(rows: list[dict]) -> list[dict]:
    """Issue 8's targets on ``test_id``, each with the measured figure (nan: not measured)."""
    by = {(r["split"], r["name"]): r for r in rows}

    def v(name: str, metric: str) -> float:
        return _value(by, "test_id", name, metric)

    ours, time_, direct = "compact[procvlm]", "compact[time]", "compact-direct[procvlm]"
    checks = [
        ("labels:procvlm CCC vs truth", v("labels:procvlm", "ccc_truth"), ">=", 0.9),
        # drift is signed (progress gained or lost while nothing moves); flat means |drift| small
        ("labels:procvlm |still drift|", abs(v("labels:procvlm", "stall_drift")), "<=", 0.02),
        ("compact procvlm - time, CCC vs truth", v(ours, "ccc_truth") - v(time_, "ccc_truth"),
         ">=", 0.15),
        ("compact[procvlm] |still drift|", abs(v(ours, "stall_drift")), "<=", 0.02),
        ("compact[procvlm] AUROC", v(ours, "auroc"), ">=", 0.95),
        ("compact procvlm - time, AUROC", v(ours, "auroc") - v(time_, "auroc"), ">", 0.0),
        ("reason - direct, CCC vs truth", v(ours, "ccc_truth") - v(direct, "ccc_truth"),
         ">", 0.0),
        ("reason - direct, AUROC", v(ours, "auroc") - v(direct, "auroc"), ">", 0.0),
        ("compact[procvlm] remaining-action exact match", v(ours, "plan_exact"), ">=", 0.8),
    ]
    out = []
    for what, value, op, target in checks:
        ok = (None if math.isnan(value) else
              value >= target if op == ">=" else value <= target if op == "<=" else value > target)
        out.append({"target": what, "op": op, "value": target, "measured": value, "met": ok})
    return out


def _no_nan(obj: object) -> object:
    """``obj`` with NaN floats as None (JSON has no NaN)."""
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _no_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_no_nan(v) for v in obj]
    return obj


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.3f}"
    return "n/a" if v is None else str(v)


def outcome_line(rows: list[dict], split: str) -> str:
    """How many episodes of ``split`` succeeded and failed: AUROC ranks every success against
    every failure, so with few failures one episode moves it a lot."""
    row = next((r for r in rows if r["split"] == split and "n_episodes" in r), None)
    if row is None:
        return f"{split}: no episode scored"
    n, ok = int(row["n_episodes"]), int(row["n_success"])
    return (f"{n} episodes, {ok} successful, {n - ok} failed: AUROC ranks {ok * (n - ok)} "
            "success/failure pairs")


def print_report(rows: list[dict], checks: list[dict]) -> None:
    """The table per split (with its outcome counts), then the targets."""
    for split in dict.fromkeys(r["split"] for r in rows):
        print(f"\n== {split}: {outcome_line(rows, split)}")
        print(f"{'':<24}" + "".join(f"{c[:11]:>12}" for c in COLUMNS))
        for r in (r for r in rows if r["split"] == split):
            print(f"{r['name']:<24}" + "".join(f"{_fmt(r.get(c)):>12}" for c in COLUMNS))
    print("\n== targets (test_id)")
    for c in checks:
        verdict = {True: "ok", False: "MISSED", None: "not measured"}[c["met"]]
        print(f"{c['target']:<48} {c['op']} {c['value']:<5} measured {_fmt(c['measured']):>7}"
              f"  {verdict}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench_quality", help="work folder (resumed)")
    p.add_argument("--json", default=None, help="write every figure to this JSON file")
    p.add_argument("--quick", action="store_true", help="tiny smoke run for the test suite")
    p.add_argument("--small", action="store_true",
                   help="a small run for a loaded machine: 3 tasks, 24 training episodes, 8 "
                        "held-out per split, 32x32 model input, 300 steps")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps of every model")
    p.add_argument("--train-episodes", type=int, default=None,
                   help="training episodes (default: the size's; a new --out folder when "
                        "changed)")
    p.add_argument("--image-size", type=int, default=None,
                   help="side of the models' input frames (default: the size's, 64)")
    p.add_argument("--stride", type=int, default=None,
                   help="frames between two frames of a model's window (default 4)")
    p.add_argument("--models", default=None,
                   help="comma-separated model names to train and score (default: all; e.g. "
                        "'compact[procvlm],compact-direct[procvlm]' for the reasoning ablation)")
    p.add_argument("--train-seed", type=int, default=None,
                   help="seed of the models' training only (default: the data's seed, 0); "
                        "with --data, another seed's models on the same episodes")
    p.add_argument("--jobs", type=int, default=1,
                   help="datasets made and models trained in parallel processes (default 1)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per model (default 2)")
    p.add_argument("--augment-ablation", action="store_true",
                   help="also train compact-noaug[procvlm] (no training augmentation)")
    p.add_argument("--until", choices=("data", "train", "eval"), default="eval",
                   help="stop after this stage (default: eval, the whole benchmark)")
    p.add_argument("--val", action="store_true",
                   help="also make and score the validation split (seeds used nowhere else), "
                        "on which changes to the defaults are decided")
    p.add_argument("--data", default=None,
                   help="folder of the datasets (default: OUT/data); another run's OUT/data "
                        "reuses its episodes")
    args = p.parse_args(argv)
    _log_setup()
    cfg = QUICK if args.quick else SMALL if args.small else QualityConfig()
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.train_episodes is not None:
        cfg = dataclasses.replace(cfg, train_episodes=args.train_episodes)
    if args.train_seed is not None:
        cfg = dataclasses.replace(cfg, train_seed=args.train_seed)
    for name in ("image_size", "stride"):
        if getattr(args, name) is not None:
            cfg = dataclasses.replace(cfg, **{name: getattr(args, name)})
    from procvlm.errors import ProcvlmError
    from procvlm.models.compact import CompactConfig

    try:
        CompactConfig(image_size=cfg.image_size, stride=cfg.stride)
    except ProcvlmError as e:
        p.error(f"--image-size {cfg.image_size} / --stride {cfg.stride}: {e}")
    only = None
    if args.models is not None:
        only = [m.strip() for m in args.models.split(",") if m.strip()]
        known = model_runs(args.augment_ablation)
        unknown = [m for m in only if m not in known]
        if unknown or not only:
            p.error(f"--models {args.models!r}: choose among {', '.join(known)}")
    out, start = Path(args.out), time.monotonic()
    cache_texts(out, cfg)
    roots = make_data(Path(args.data) if args.data else out / "data", cfg, args.jobs,
                      args.val)
    text_cache = cache_texts(out, cfg, roots)
    if args.until == "data":
        return 0
    runs = train_models(out, roots["train"], text_cache, cfg, args.jobs, args.threads,
                        args.augment_ablation, only)
    if args.until == "train":
        return 0
    rows = evaluate(runs, {s: roots[s] for s in (*SPLITS, VAL) if s in roots}, text_cache)
    checks = targets(rows)
    print_report(rows, checks)
    seconds = time.monotonic() - start
    print(f"\n{len(runs)} models, {cfg.steps} steps each; {seconds / 60:.1f} min")
    if args.json:
        from procvlm._io import write_json

        figures = {"config": dataclasses.asdict(cfg), "data": str(roots["train"].parent),
                   "rows": rows, "targets": checks,
                   "seconds": round(seconds, 1), "cpus": os.cpu_count(), "jobs": args.jobs,
                   "threads": args.threads}
        write_json(Path(args.json), _no_nan(figures))
        print(f"figures: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
