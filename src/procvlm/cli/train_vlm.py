"""``procvlm train --model vlm``: the VLM's own options, and the call into ``training.vlm_sft``.

Shared options (--out --seed --batch-size --lr --image-size --resume) come from
``cli/train.py``.
"""

from __future__ import annotations

import argparse


def _add(group, flag: str, **kwargs) -> None:
    # Another model's group may already define the same flag (e.g. --max-steps): share it.
    if flag not in group._option_string_actions:
        group.add_argument(flag, **kwargs)


def add_arguments(group) -> None:
    _add(group, "--base", default=None,
         help="VLM base: local folder or hub id (default: Qwen/Qwen3-VL-2B-Instruct)")
    _add(group, "--data", default=None,
         help="ProcVQA folder from `procvlm vqa` (train.jsonl + val.jsonl + images/; "
              "default: the DATASET argument)")
    _add(group, "--lora-r", type=int, default=16, help="LoRA rank (default: 16)")
    _add(group, "--full", action="store_true", help="full fine-tuning instead of LoRA")
    _add(group, "--max-steps", type=int, default=None,
         help="optimizer steps (default: run --epochs)")
    _add(group, "--epochs", type=float, default=None, help="passes over the data (default: 1)")
    _add(group, "--max-frames", type=int, default=8,
         help="most images per sample, the most recent kept (default: 8)")
    _add(group, "--merge-lora", action="store_true",
         help="write LoRA merged into the weights (model/) instead of adapter/")


def run(args: argparse.Namespace) -> int:
    from procvlm.errors import ProcvlmError
    from procvlm.models.vlm.configuration_vlm import DEFAULT_BASE
    from procvlm.training.vlm_sft import VLMTrainConfig, train_vlm

    data = args.data or args.dataset
    if not data:
        raise ProcvlmError("--model vlm needs --data VQA_DIR: the folder `procvlm vqa` wrote")
    config = VLMTrainConfig(
        data=data, out=args.out, base=args.base or DEFAULT_BASE, lora_r=args.lora_r,
        full=args.full, max_steps=args.max_steps if args.max_steps is not None else -1,
        epochs=args.epochs if args.epochs is not None else 1.0,
        batch_size=args.batch_size or 1, lr=args.lr,
        **({} if args.image_size is None else {"image_size": args.image_size}),
        max_frames=args.max_frames, seed=args.seed, merge_lora=args.merge_lora,
        resume=args.resume)
    out = train_vlm(config)
    print(f"procvlm train: VLM progress model written to {out}")
    return 0
