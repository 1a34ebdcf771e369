"""``procvlm train``: train a progress model, compact (CPU) or vlm (transformers)."""

from __future__ import annotations

import argparse
import importlib

MODELS = {"compact": "procvlm.cli.train_compact", "vlm": "procvlm.cli.train_vlm"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="?", help="labelled LeRobot v3 dataset (compact model)")
    p.add_argument("--model", choices=sorted(MODELS), default="compact",
                   help="which progress model to train (default: compact)")
    p.add_argument("--out", required=True, help="run folder: checkpoints, metrics, final model")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--epochs", type=float, default=None,
                   help="passes over the data (VLM, default 1; the compact model takes --steps)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="samples per step (default: compact 64, VLM 1)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (default: compact 2e-3; VLM 2e-4 LoRA, 1e-5 --full)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest checkpoint in --out")
    for name, module in MODELS.items():
        group = p.add_argument_group(f"{name} model options")
        importlib.import_module(module).add_arguments(group)


def run(args: argparse.Namespace) -> int:
    return importlib.import_module(MODELS[args.model]).run(args)
