"""``procvlm score RUN DATASET``: per-frame progress, stage and remaining actions of a dataset,
or LeRobot's RA-BC progress file with ``--format lerobot-rabc``."""

from __future__ import annotations

import argparse
from pathlib import Path

from procvlm.errors import ProcvlmError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run folder (with model/), a model folder, or the name of a "
                                "shipped model (metaworld)")
    p.add_argument("dataset", help="LeRobot v3 dataset (or .hdf5 file) to score")
    p.add_argument("--out", default=None,
                   help="output parquet (default: DATASET/meta/procvlm/scores.parquet, or "
                        "DATASET/sarm_progress.parquet with --format lerobot-rabc)")
    p.add_argument("--format", choices=["procvlm", "lerobot-rabc"], default="procvlm",
                   help="procvlm: index, episode_index, frame_index, progress, remaining, "
                        "stage, done (P(task finished), null for models without it); "
                        "lerobot-rabc: index, episode_index, frame_index, "
                        "progress_sparse, progress_dense (default: procvlm)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="windows per forward pass of the compact model (default: 256), or "
                        "prompts per generation batch of a VLM (default: its config's)")
    vlm = p.add_argument_group("VLM runs (defaults: the run's config.json)")
    vlm.add_argument("--cache", choices=["dynamic", "static"], default=None,
                     help="KV cache; static compiles the decoding step once per batch shape "
                          "(about a minute for a 2B model on a GPU), then decodes faster "
                          "(default: the run's, dynamic unless set)")
    vlm.add_argument("--workers", type=int, default=None,
                     help="threads encoding the next batches (default: the run's, else 2 on a "
                          "GPU and 0 on the CPU)")
    vlm.add_argument("--reasoning", choices=["every", "reuse"], default=None,
                     help="whole answers at every frame, or reuse the reasoning between "
                          "regenerated frames and read the progress after it (default: the "
                          "run's, every unless set)")
    p.add_argument("--camera", default=None,
                   help="camera to score (default: the one the model was trained on, else the "
                        "dataset's first)")
    p.add_argument("--plan", default=None, metavar="STEPS",
                   help="the task's atomic actions for every episode: \"step 1; step 2; ...\", "
                        "a JSON list, or a file holding either (default: the episode's plan, "
                        "else meta/procvlm/plans.json, else the model's, else the dataset's "
                        "sub-step names, else one whole-task step)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice)")


def run(args: argparse.Namespace) -> int:
    from procvlm.models import load_model
    from procvlm.reward.score import parse_plan, score_dataset

    plan = parse_plan(args.plan) if args.plan is not None else None
    if args.batch_size is not None and args.batch_size < 1:
        raise ProcvlmError(f"--batch-size {args.batch_size}: need >= 1")
    if args.workers is not None and args.workers < 0:
        raise ProcvlmError(f"--workers {args.workers}: need >= 0")
    if not Path(args.dataset).exists():
        raise ProcvlmError(f"dataset {args.dataset} does not exist: pass a LeRobot v3 folder")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    model = load_model(args.run, **_vlm_overrides(args))
    path = score_dataset(model, args.dataset, args.out, args.format, args.batch_size,
                         args.camera, plan=plan)
    print(f"scores: {path}")
    if args.format == "procvlm":
        line = finished_line(path)
        if line:
            print(line)
    return 0


def finished_line(path: Path, shown: int = 20) -> str | None:
    """The episodes the model calls finished (``procvlm.reward.rabc.success_filter``: P(done)
    over the last frames above one half), as one line; None when the scores carry no P(done)."""
    import pyarrow.parquet as pq

    from procvlm.eval.metrics import DONE_FRAMES
    from procvlm.reward.rabc import done_from_scores, success_filter

    try:
        done = done_from_scores(pq.read_table(path))
    except ProcvlmError:
        return None
    kept = sorted(k for k, v in success_filter(done).items() if v)
    names = ", ".join(map(str, kept[:shown])) + (", ..." if len(kept) > shown else "")
    return (f"finished by the model's P(done) (mean of the last {DONE_FRAMES} frames > 0.5): "
            f"{len(kept)} of {len(done)} episodes" + (f" ({names})" if kept else ""))


def _vlm_overrides(args: argparse.Namespace) -> dict:
    """``VLMConfig`` fields the command line sets; an error when they are given for a
    compact model."""
    from procvlm.models.base import model_type_of, resolve_model_dir

    given = {k: getattr(args, k) for k in ("cache", "workers", "reasoning")
             if getattr(args, k) is not None}
    if model_type_of(resolve_model_dir(args.run)) != "vlm":
        if given:
            flag = "--" + next(iter(given))
            raise ProcvlmError(f"{flag} applies to a VLM run; {args.run} is a compact model: "
                               "drop it")
        return {}
    if args.batch_size is not None:
        given["batch_size"] = args.batch_size
    return given
