"""Scoring throughput of the VLM progress model: greedy text vs the token-probability readout.

Prints frames/s and generated tokens/s for (a) greedy text + parser, (b) greedy text with the
digit expectation read from its logits, (c) the teacher-forced readout (answer prefix given, only
the number decoded). On CPU it uses a tiny random-weight Qwen3-VL; with a GPU it also measures
random weights at Qwen3-VL-2B size and peak GPU memory.

    python benchmarks/vlm.py [--frames 16] [--window 4] [--batch 8]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from procvlm.models.vlm.modeling_vlm import VLMProgressModel
from procvlm.models.vlm.tiny import build_tiny_vlm
from procvlm.models.vlm.processor_vlm import progress_answer

TASK = "place the puck onto the goal"


def _time(fn) -> tuple[float, object]:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t, out


def bench(model: VLMProgressModel, frames: np.ndarray, window: int, label: str) -> None:
    """Run the three readouts on ``frames`` and print their throughput."""
    n = len(frames)
    tok = model.tokenizer
    for readout in ("text", "probs"):
        model.config = model.config.__class__(**{**model.config.__dict__, "readout": readout})
        model.predict(frames[:2], TASK, window=window)  # warm-up
        secs, pred = _time(lambda: model.predict(frames, TASK, window=window))
        tokens = sum(len(tok.encode(t, add_special_tokens=False)) for t in pred.text)
        print(f"{label:28s} {'greedy+' + readout:16s} {n / secs:9.2f} frames/s "
              f"{tokens / secs:10.1f} tokens/s")
    prefix = progress_answer(["Place the puck onto the goal"], 0.0).split("<progress>")[0]
    images = [[frames[j] for j in range(max(0, i - window + 1), i + 1)] for i in range(n)]
    secs, _ = _time(lambda: model.progress_after_prefix(images, [TASK] * n,
                                                        [prefix + "<progress>"] * n))
    print(f"{label:28s} {'teacher-forced':16s} {n / secs:9.2f} frames/s "
          f"{'(<= 8 new tokens/frame)':>26s}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = build_tiny_vlm(Path(tmp) / "tiny", "qwen3_vl")
        model = VLMProgressModel.from_pretrained(base, batch_size=args.batch, image_size=32,
                                                 max_new_tokens=args.max_new_tokens, device="cpu")
        frames = rng.integers(0, 255, (args.frames, 32, 32, 3), np.uint8)
        bench(model, frames, args.window, "tiny qwen3-vl (cpu)")
        if torch.cuda.is_available():
            gpu_bench(Path(tmp), args, rng)


def gpu_bench(tmp: Path, args: argparse.Namespace, rng: np.random.Generator) -> None:
    """Random weights at Qwen3-VL-2B size (28 layers, hidden 2048, 24-layer vision tower)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from procvlm.models.vlm.modeling_vlm import load_processor

    tiny = load_processor(build_tiny_vlm(tmp / "proc", "qwen3_vl", patch=16, image_size=224))
    ids = {k: tiny.tokenizer.convert_tokens_to_ids(k) for k in
           ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    cfg = Qwen3VLConfig(
        vision_config=dict(depth=24, hidden_size=1024, intermediate_size=4096, num_heads=16,
                           patch_size=16, out_hidden_size=2048, num_position_embeddings=2304,
                           deepstack_visual_indexes=[5, 11, 17]),
        text_config=dict(vocab_size=151936, hidden_size=2048, intermediate_size=6144,
                         num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8,
                         head_dim=128, rope_parameters={"rope_type": "default",
                                                        "rope_theta": 5e6,
                                                        "mrope_section": [24, 20, 20],
                                                        "mrope_interleaved": True}),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True)
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration(cfg).to(torch.bfloat16).eval()
    torch.cuda.reset_peak_memory_stats()
    vlm = VLMProgressModel(model, tiny)
    vlm.config = vlm.config.__class__(base="random-2b", batch_size=args.batch, image_size=224,
                                      max_new_tokens=args.max_new_tokens)
    frames = rng.integers(0, 255, (args.frames, 224, 224, 3), np.uint8)
    bench(vlm, frames, args.window, "qwen3-vl-2b size (gpu)")
    print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
