"""``procvlm train``: train a progress model, compact (CPU) or vlm (transformers).

``--help`` shows three groups: the options of both models, the compact model's, and the VLM's.
An option of the model not chosen is refused with a one-line error rather than ignored.
"""

from __future__ import annotations

import argparse
import importlib

MODELS = {"compact": "procvlm.cli.train_compact", "vlm": "procvlm.cli.train_vlm"}
GROUPS = {"compact": "compact model (--model compact, the default)", "vlm": "VLM (--model vlm)"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", nargs="?", help="labelled LeRobot v3 dataset (compact model)")
    p.add_argument("--model", choices=sorted(MODELS), default="compact",
                   help="which progress model to train")
    both = p.add_argument_group("both models")
    both.add_argument("--out", required=True, help="run folder: checkpoints, metrics, final model")
    both.add_argument("--seed", type=int, default=0, help="random seed")
    both.add_argument("--batch-size", type=int, default=None,
                      help="samples per step (default: compact 64, VLM 1)")
    both.add_argument("--lr", type=float, default=None,
                      help="learning rate (default: compact 2e-3; VLM 2e-4 LoRA, 1e-5 --full)")
    both.add_argument("--image-size", type=int, default=None,
                      help="frame size in pixels (default: compact 64, a square; VLM 224, the "
                           "longest side)")
    both.add_argument("--resume", action="store_true",
                      help="continue from the newest checkpoint in --out")
    own = {}
    for name, module in MODELS.items():
        group = p.add_argument_group(GROUPS[name])
        importlib.import_module(module).add_arguments(group)
        own[name] = [a for a in group._group_actions]
    p.set_defaults(_model_options=own)


def check_model_options(args: argparse.Namespace) -> None:
    """Refuse an option of the model not chosen that was set (it would be ignored).

    Raises:
        ProcvlmError: names the option and the model it belongs to.
    """
    from procvlm.errors import ProcvlmError

    for name, actions in args._model_options.items():
        if name == args.model:
            continue
        for action in actions:
            if getattr(args, action.dest) != action.default:
                raise ProcvlmError(f"{action.option_strings[0]} is an option of --model {name}, "
                                   f"not of --model {args.model}: drop it, or pass --model {name}")


def run(args: argparse.Namespace) -> int:
    check_model_options(args)
    return importlib.import_module(MODELS[args.model]).run(args)
