"""``procvlm ensemble RUN RUN ... --out DIR``: one compact model that averages the outputs of
several trained ones (training seeds of one recipe, say)."""

from __future__ import annotations

import argparse
from pathlib import Path

from procvlm.errors import ProcvlmError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="two or more compact models trained with the same configuration: run "
                        "folders (with model/), model folders or shipped model names")
    p.add_argument("--out", required=True,
                   help="model folder to write (config.json, weights, budgets); must not "
                        "hold a model already")


def run(args: argparse.Namespace) -> int:
    from procvlm.models.base import load_model, model_type_of, resolve_model_dir
    from procvlm.models.compact.modeling_compact import ensemble

    out = Path(args.out)
    if (out / "config.json").exists():
        raise ProcvlmError(f"{out} already holds a model: pass another --out or remove it")
    models = []
    for run in args.runs:
        kind = model_type_of(resolve_model_dir(run))
        if kind != "compact":
            raise ProcvlmError(f"{run} is a {kind} model: only compact models can be joined")
        models.append(load_model(run))
    joined = ensemble(models)
    joined.save_pretrained(out)
    print(f"wrote {out}: {joined.config.members} networks averaged "
          f"(score it like any model: procvlm score {out} DATASET)")
    return 0
