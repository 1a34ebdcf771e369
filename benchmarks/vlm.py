"""Throughput of the VLM progress model: answers, digit readout, `procvlm score`, LoRA SFT.

Every figure is measured here, nothing is projected:

- ``preprocess``: window prompts encoded per second, the processor as it is vs procvlm's
  per-frame encoding (``engine.encode``).
- ``generate``: whole answers (reasoning + progress), a fixed ``--tokens`` generated per
  answer (random weights never end an answer where a trained model would), at several batch
  sizes; tokens counted from the generated ids.
- ``readout``: the digit readout with a known answer prefix (reasoning teacher-forced); the
  random weights are made to write ``READOUT_NUMBER`` there, as a trained model would.
- ``score``: ``score_dataset`` end to end on an image-mode LeRobot dataset (decoding, prompts,
  generation, parsing, writing): every frame answered whole; then a model forced to write one
  fixed answer (so its reasoning never changes: the case reasoning reuse is built for), whole
  answers vs ``reasoning="reuse"``.
- ``sft``: LoRA fine-tuning samples/s (TRL ``SFTTrainer``, no activation checkpointing),
  timed after the first steps.
- ``static``: the static KV cache in batch and length buckets (transformers compiles the
  decoding step on a GPU): whole answers and the digit readout per batch size, the first call
  (compiling and capturing the step) timed apart, compiled graphs counted; one decoding step
  with the static vs the dynamic cache; ``score_dataset`` end to end with either cache.
- ``breakdown``: where one readout batch's time goes (encoding, position ids on the device vs
  the CPU, vision tower, prompt pass, one decoding step).
- ``timeline``: one readout call traced by torch.profiler: the device's busy time against the
  wall-clock, the kernels by kind, the idle gaps on the device and what the host did in them
  (labelled stages: next batch, vision tower, prompt pass, decoding step, reading); the trace
  is kept (gzip) beside ``--json``.
- ``accuracy`` (CPU, tiny model trained here): progress with reasoning reuse vs whole answers,
  and its P(done) against the frames that are truly finished.

On a GPU each row also reports GPU utilisation (sampled every 0.1 s through NVML) and peak
memory. ``--workers 2,4`` repeats the ``generate``, ``readout`` and ``static`` rows with each
number of encoding workers (one run compares them on the same card); ``--encodings
threads,processes`` repeats the ``readout`` and ``score`` rows with the workers in threads and in
forked processes. ``--size 2b`` builds random weights at Qwen3-VL-2B size (28 text layers,
hidden 2048, 24-layer vision tower) offline, with the tiny processor at 224 px; ``--size tiny`` the tiny random model on the CPU. ``--quick`` runs
every CPU section on tiny sizes (a test does).

    python benchmarks/vlm.py --size 2b --json out.json          # GPU
    python benchmarks/vlm.py --quick                             # CPU, seconds
"""

from __future__ import annotations

import argparse
import functools
import json
import tempfile
import threading
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from procvlm.models.vlm.engine import encode, shared_image_features, shares_image_features
from procvlm.models.vlm.modeling_vlm import VLMProgressModel, load_processor, save_processor
from procvlm.models.vlm.processor_vlm import (TAG, answer_prefix, progress_answer,
                                              window_indices)
from procvlm.models.vlm.readout import MAX_NUMBER_TOKENS
from procvlm.models.vlm.tiny import build_tiny_vlm

TASK = "place the puck onto the goal"
PLAN = ["Grasp the puck", "Place the puck onto the goal"]
SECTIONS = ("preprocess", "generate", "readout", "score", "sft", "static", "accuracy", "profile",
            "breakdown", "timeline")


@dataclass(frozen=True)
class Settings:
    """Sizes of one run."""

    size: str = "tiny"
    frames: int = 256
    window: int = 4
    batches: tuple[int, ...] = (64, 128, 256)
    tokens: int = 40
    episodes: int = 4
    length: int = 143
    sft_samples: int = 512
    sft_steps: int = 64
    sft_batches: tuple[int, ...] = (8,)  # LoRA SFT runs once per batch size
    workers: tuple[int | None, ...] = (None,)  # encoding workers (None: the model's default)
    encodings: tuple[str, ...] = ("threads",)  # where they run (VLMConfig.encoding)
    score_runs: tuple[str, ...] = ()  # of SCORE_RUNS (empty: all in score, whole in static)
    score_caches: tuple[str, ...] = ("dynamic", "static")  # the static section's score runs


SCORE_RUNS = ("whole", "fixed", "reuse")
"""``score_dataset`` runs: whole answers of the random weights; whole answers forced to one
fixed answer (a model whose reasoning never changes); reasoning reuse with that answer."""


QUICK = Settings(frames=6, batches=(3,), tokens=6, episodes=2, length=5, sft_samples=4,
                 sft_steps=3, sft_batches=(2,))


# ----------------------------------------------------------------------------- measuring
class Sampler:
    """GPU utilisation sampled every 0.1 s (NVML) and peak memory while a block runs, with
    its wall-clock and CPU seconds (all threads of this process: on a shared CPU the CPU
    seconds move less with other processes' load than the wall-clock)."""

    def __init__(self) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._handle = None
        if torch.cuda.is_available():
            try:
                import pynvml

                pynvml.nvmlInit()
                self._handle = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
                self._nvml = pynvml
            except Exception:  # no NVML: utilisation is not reported
                self._handle = None

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            self.samples.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)

    def __enter__(self) -> Sampler:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        if self._handle is not None:
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        return self

    def __exit__(self, *exc: Any) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
        self._stop.set()
        if self._handle is not None:
            self._thread.join()

    def row(self, **figures: Any) -> dict[str, Any]:
        """The figures with the time, utilisation and peak memory."""
        out = {**figures, "seconds": round(self.seconds, 3),
               "cpu_seconds": round(self.cpu_seconds, 3)}
        if self.samples:
            out["gpu_util_mean"] = round(float(np.mean(self.samples)), 1)
            out["gpu_util_max"] = int(max(self.samples))
        if torch.cuda.is_available():
            out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return out


def report(rows: list[dict], row: dict, json_path: Path | None) -> None:
    """Print a row and rewrite the JSON file (so a run cut short keeps what it measured)."""
    rows.append(row)
    print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if json_path is not None:
        json_path.write_text(json.dumps({"device": device_name(), "rows": rows}, indent=1))


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"cpu ({torch.get_num_threads()} threads)"


# ----------------------------------------------------------------------------- models
def build(size: str, tmp: Path) -> VLMProgressModel:
    """The tiny random model on the CPU, or random weights at Qwen3-VL-2B size on the GPU."""
    if size == "tiny":
        return VLMProgressModel.from_pretrained(build_tiny_vlm(tmp / "tiny", "qwen3_vl"),
                                                image_size=32, device="cpu")
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    proc = load_processor(build_tiny_vlm(tmp / "proc", "qwen3_vl", patch=16, image_size=224))
    ids = {k: proc.tokenizer.convert_tokens_to_ids(k) for k in
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
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen3VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16,
                                                             attn_implementation="sdpa")
    model.generation_config.pad_token_id = proc.tokenizer.pad_token_id
    model.generation_config.eos_token_id = [proc.tokenizer.eos_token_id,
                                            proc.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    from procvlm.models.vlm.configuration_vlm import VLMConfig

    return VLMProgressModel(model.eval(), proc, VLMConfig(base="random-2b", image_size=224))


def prompts_of(model: VLMProgressModel, frames: np.ndarray, window: int, suffix: str = ""
               ) -> tuple[list[str], list[list]]:
    """Window prompts of every frame (shared PIL images, as the scorer builds them)."""
    pil = [model_image(model, f) for f in frames]
    images = [[pil[i] for i in window_indices(t, window, 1)] for t in range(len(frames))]
    return [model.chat_prompt(model.messages(len(ims), TASK)) + suffix for ims in images], images


def model_image(model: VLMProgressModel, frame: np.ndarray):
    from procvlm.models.vlm.processor_vlm import to_pil

    return to_pil(frame, model.config.image_size)


# ----------------------------------------------------------------------------- sections
def bench_preprocess(model, frames, s: Settings, rows, out) -> None:
    prompts, images = prompts_of(model, frames, s.window)
    bs = s.batches[0]
    for name, fn in (("processor", lambda p, i: model.processor(
            text=p, images=i, return_tensors="pt", padding=True, padding_side="left")),
                     ("procvlm", lambda p, i: encode(model.processor, p, i))):
        with Sampler() as m:
            for k in range(0, len(prompts), bs):
                fn(prompts[k:k + bs], images[k:k + bs])
        report(rows, m.row(section="preprocess", variant=name, window=s.window,
                           frames_per_s=round(len(prompts) / m.seconds, 1)), out)


def bench_generate(model, frames, s: Settings, rows, out) -> None:
    prompts, images = prompts_of(model, frames, s.window)
    base = model.config
    for workers in s.workers:
        for bs in s.batches:
            model.config = replace(base, batch_size=bs, workers=workers)
            model.generate_prompts(prompts[:bs], images[:bs], s.tokens, min_new_tokens=s.tokens)
            with Sampler() as m:
                gen = model.generate_prompts(prompts, images, s.tokens, min_new_tokens=s.tokens)
            report(rows, m.row(section="generate", batch=bs, window=s.window,
                               workers=model._workers(), new_tokens=s.tokens,
                               frames_per_s=round(len(prompts) / m.seconds, 2),
                               generated_tokens_per_s=round(sum(gen.tokens) / m.seconds, 1),
                               prompt_tokens=int(np.mean(gen.prompt_tokens))), out)
    model.config = base


def readout_inputs(frames, s: Settings) -> tuple[list, list[str], list[str]]:
    """Windows, tasks and answer prefixes of the digit readout over ``frames``."""
    images = [[frames[i] for i in window_indices(t, s.window, 1)] for t in range(len(frames))]
    return images, [TASK] * len(frames), [answer_prefix(PLAN[1:])] * len(frames)


def bench_readout(model, frames, s: Settings, rows, out) -> None:
    images, tasks, prefixes = readout_inputs(frames, s)
    base = model.config
    for encoding in s.encodings:
        for workers in s.workers:
            for bs in s.batches:
                model.config = replace(base, batch_size=bs, workers=workers, encoding=encoding)
                model.progress_after_prefix(images[:bs], tasks[:bs], prefixes[:bs])
                with Sampler() as m:
                    model.progress_after_prefix(images, tasks, prefixes)
                report(rows, m.row(section="readout", batch=bs, window=s.window,
                                   workers=model._workers(), encoding=encoding,
                                   frames_per_s=round(len(frames) / m.seconds, 2)), out)
    model.config = base


def compiled_graphs() -> int:
    """Graphs torch.compile (dynamo) has built in this process so far."""
    import torch._dynamo.utils

    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def bench_static(model, frames, s: Settings, tmp: Path, rows, out) -> None:
    """The static cache in buckets: per batch size, whole answers and the digit readout (the
    first call, which compiles and captures the decoding step, timed apart); one decoding step
    static vs dynamic; ``score_dataset`` end to end."""
    prompts, images = prompts_of(model, frames, s.window)
    r_images, tasks, prefixes = readout_inputs(frames, s)
    base = model.config
    for workers in s.workers:
        for bs in s.batches:
            model.config = replace(base, batch_size=bs, workers=workers, cache="static")
            for variant, call in (
                    ("generate", lambda n: model.generate_prompts(
                        prompts[:n], images[:n], s.tokens, min_new_tokens=s.tokens)),
                    ("readout", lambda n: model.progress_after_prefix(
                        r_images[:n], tasks[:n], prefixes[:n]))):
                with Sampler() as first:
                    call(bs)
                with Sampler() as m:
                    call(len(frames))
                report(rows, m.row(section="static", variant=variant, batch=bs,
                                   window=s.window, workers=model._workers(),
                                   frames_per_s=round(len(frames) / m.seconds, 2),
                                   first_call_s=round(first.seconds, 2),
                                   graphs=compiled_graphs(), caches=len(model._static)), out)
    bs = max(s.batches)
    for cache in ("dynamic", "static"):
        model.config = replace(base, batch_size=bs, cache=cache)
        report(rows, {"section": "static", "variant": "decoding step", "cache": cache,
                      "batch": bs, **decode_step(model, prompts[:bs], images[:bs], s.tokens)},
               out)
    try:
        for cache in s.score_caches:
            model.config = replace(base, cache=cache, workers=s.workers[-1])
            bench_score(model, s, tmp, rows, out, runs=s.score_runs or ("whole",),
                        section="static")
    finally:
        model.config = base


def decode_step(model, prompts, images, tokens: int) -> dict[str, float]:
    """Milliseconds per decoding step: ``1 + tokens`` generated tokens vs 1, one batch."""
    model.generate_prompts(prompts, images, 1 + tokens, min_new_tokens=1 + tokens)
    with Sampler() as one:
        model.generate_prompts(prompts, images, 1, min_new_tokens=1)
    with Sampler() as many:
        model.generate_prompts(prompts, images, 1 + tokens, min_new_tokens=1 + tokens)
    return {"prompt_pass_s": round(one.seconds, 3),
            "decode_step_ms": round(1000 * (many.seconds - one.seconds) / tokens, 2)}


class ForceAnswer:
    """A logits processor that makes a model write ``ids`` (then keep writing the last id)."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self.start: int | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.start = input_ids.shape[1] if self.start is None else self.start
        tok = self.ids[min(input_ids.shape[1] - self.start, len(self.ids) - 1)]
        forced = torch.full_like(scores, float("-inf"))
        forced[:, tok] = 0.0
        return forced


READOUT_NUMBER = "42.17%</progress>"
"""What the benchmark's models write after ``<progress>`` in every digit readout: random
weights would end the number at its first token (``readout.NumberEnd``), a trained model
writes a two-digit percentage like this one."""


def force_answer(model: VLMProgressModel, text: str | None, number: str = READOUT_NUMBER):
    """Make every whole answer ``text`` (a model whose reasoning never changes; None: as the
    weights write it) and every digit readout ``number`` (benchmark harness). Returns a
    function that undoes it."""
    from transformers import LogitsProcessorList

    tok = model.tokenizer
    end = [tok.convert_tokens_to_ids("<|im_end|>")]
    whole = None if text is None else tok.encode(text, add_special_tokens=False) + end
    digits = tok.encode(number, add_special_tokens=False) + end
    original = model.model.generate

    def generate(*args, **kwargs):
        ids = whole if kwargs.get("max_new_tokens", 0) > MAX_NUMBER_TOKENS else None
        if "stopping_criteria" in kwargs:  # the digit readout (VLMProgressModel._readout)
            ids = digits
        if ids is not None:
            kwargs["logits_processor"] = LogitsProcessorList([ForceAnswer(ids)])
        return original(*args, **kwargs)

    model.model.generate = generate
    return lambda: setattr(model.model, "generate", original)


def bench_score(model, s: Settings, tmp: Path, rows, out,
                runs: tuple[str, ...] = SCORE_RUNS, section: str = "score") -> None:
    """``score_dataset`` end to end for each of ``runs`` (see ``SCORE_RUNS``); with a static
    cache a first, untimed call compiles the shapes the timed one uses (``first_call_s``)."""
    from procvlm.data import write_dataset
    from procvlm.reward.score import score_dataset
    from procvlm.training.data import synthetic_episodes

    size = model.config.image_size
    root = tmp / "ds"
    if not root.is_dir():
        eps, _ = synthetic_episodes(s.episodes, s.length, size, seed=0, failure_rate=0.0)
        write_dataset(root, eps, video=False)
    n = s.episodes * s.length
    base = replace(model.config, batch_size=max(s.batches), window=s.window,
                   max_new_tokens=s.tokens)
    fixed = progress_answer(PLAN[1:], 0.5)
    variants = {"whole": ("whole answers, random weights", base, None),
                "fixed": ("whole answers, fixed answer", base, fixed),
                "reuse": ("reasoning reuse, fixed answer", replace(base, reasoning="reuse"),
                          fixed)}
    for encoding, key in [(e, k) for e in s.encodings for k in runs]:
        name, cfg, forced = variants[key]
        model.config = cfg = replace(cfg, encoding=encoding)
        undo = (force_answer(model, forced, forced.split(TAG)[1]) if forced
                else (lambda: None))
        first = None
        try:
            if cfg.cache == "static":
                with Sampler() as first:
                    score_dataset(model, root, tmp / "scores.parquet", show_progress=False)
            with Sampler() as m:
                score_dataset(model, root, tmp / "scores.parquet", show_progress=False)
        finally:
            undo()
        variant = name if section == "score" else f"score_dataset, {name}"
        extra = {"first_call_s": round(first.seconds, 2)} if first else {}
        report(rows, m.row(section=section, variant=variant, frames=n,
                           window=s.window, cache=cfg.cache, workers=model._workers(),
                           encoding=encoding,
                           frames_per_s=round(n / m.seconds, 2), **extra), out)


def bench_sft(model, s: Settings, tmp: Path, rows, out) -> None:
    from procvlm.models.vlm.tiny import write_tiny_vqa
    from procvlm.training.vlm_sft import VLMTrainConfig

    size = model.config.image_size
    base = tmp / "base"
    if s.size == "tiny":
        base = Path(model.config.base)
    else:
        model.model.save_pretrained(base)
        save_processor(model.processor, base)
    data = write_tiny_vqa(tmp / "vqa", s.sft_samples, frames=s.window, image_size=size)
    for batch in s.sft_batches:
        _sft_run(VLMTrainConfig(data=str(data), out=str(tmp / f"sft{batch}"), base=str(base),
                                lora_r=16, max_steps=s.sft_steps, batch_size=batch,
                                image_size=size, max_frames=s.window, save_steps=10_000,
                                logging_steps=10_000), s, rows, out)


def _sft_run(cfg, s: Settings, rows, out) -> None:
    from transformers import TrainerCallback

    from procvlm.training.vlm_sft import build_trainer

    trainer = build_trainer(cfg)
    skip = min(8, s.sft_steps - 1)  # warm-up: first shapes, allocator, kernel choice
    marks: dict[str, float] = {}

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == skip:
                if torch.cuda.is_available():
                    torch.cuda.synchronize()
                marks["t"] = time.perf_counter()

    trainer.add_callback(Clock())
    with Sampler() as m:
        trainer.train()
    steps = s.sft_steps - skip
    secs = time.perf_counter() - marks["t"]
    report(rows, m.row(section="sft", variant="lora r16", batch=cfg.batch_size, window=s.window,
                       timed_steps=steps,
                       samples_per_s=round(steps * cfg.batch_size / secs, 2),
                       samples_per_s_all_steps=round(s.sft_steps * cfg.batch_size / m.seconds,
                                                     2)),
           out)
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bench_accuracy(tmp: Path, rows, out, quick: bool, steps: int = 300) -> None:
    """Train a tiny model on synthetic episodes (the square's band is the step), then score
    held-out episodes with whole answers and with reasoning reuse; ``done_auroc`` and
    ``done_accuracy`` judge the model's P(done) against the frames that are truly finished."""
    from procvlm.eval.metrics import auroc
    from procvlm.training.vlm_sft import VLMTrainConfig, train_vlm
    from procvlm.training.data import synthetic_episodes

    data = write_synthetic_vqa(tmp / "acc_vqa", 6 if quick else 48)
    base = build_tiny_vlm(tmp / "acc_base", "qwen3_vl", hidden=64, layers=2)
    run = train_vlm(VLMTrainConfig(data=str(data), out=str(tmp / "acc_run"), base=str(base),
                                   full=True, max_steps=4 if quick else steps, lr=3e-3,
                                   batch_size=4, image_size=32, max_frames=2,
                                   save_steps=10_000, logging_steps=50))
    eps, targets = synthetic_episodes(2, 6 if quick else 40, 32, seed=99, failure_rate=0.0)
    preds = {}
    for mode in ("every", "reuse"):
        model = VLMProgressModel.from_pretrained(run, reasoning=mode, refresh=8, window=2,
                                                 readout="probs",
                                                 max_new_tokens=8 if quick else 48,
                                                 batch_size=16, device="cpu")
        with Sampler() as m:
            preds[mode] = model.predict_batch([(e, None, None) for e in eps])
        truth = np.concatenate([t.progress for t in targets])
        got = np.concatenate([p.progress for p in preds[mode]])
        gen = np.concatenate([p.extra["generated"] for p in preds[mode]])
        finished = np.concatenate([t.stage == len(e.plan) for e, t in zip(eps, targets)])
        p_done = np.concatenate([p.done for p in preds[mode]])
        both = 0 < finished.sum() < len(finished)
        report(rows, m.row(section="accuracy", reasoning=mode,
                           frames_per_s=round(len(got) / m.seconds, 2),
                           generated_fraction=round(float(gen.mean()), 3),
                           mae_vs_truth=round(float(np.abs(got - truth).mean()), 4),
                           done_auroc=round(auroc(p_done, finished), 4) if both else None,
                           done_accuracy=round(float(((p_done > 0.5) == finished).mean()), 4)),
               out)
    a = np.concatenate([p.progress for p in preds["every"]])
    b = np.concatenate([p.progress for p in preds["reuse"]])
    same = np.mean([x == y for p, q in zip(preds["every"], preds["reuse"])
                    for x, y in zip(p.remaining, q.remaining)])
    report(rows, {"section": "accuracy", "reuse_vs_whole_mae": round(float(np.abs(a - b).mean()),
                                                                     4),
                  "reuse_vs_whole_max": round(float(np.abs(a - b).max()), 4),
                  "same_remaining_fraction": round(float(same), 3)}, out)


def write_synthetic_vqa(directory: Path, episodes: int) -> Path:
    """ProcVQA progress samples (2-frame windows) of synthetic episodes, every 2nd frame."""
    from PIL import Image

    from procvlm._io import write_text
    from procvlm.models.vlm.processor_vlm import progress_prompt
    from procvlm.training.data import synthetic_episodes

    eps, targets = synthetic_episodes(episodes, 40, 32, seed=1, failure_rate=0.0)
    for split, chosen in (("train", range(len(eps))), ("val", range(1))):
        rows = []
        for e in chosen:
            ep, tg = eps[e], targets[e]
            frames = ep.main_frames()
            for t in range(0, len(frames), 2):
                rels = []
                for i in window_indices(t, 2, 1):
                    rel = f"images/{e:03d}_{i:03d}.png"
                    if not (directory / rel).is_file():
                        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(frames[i]).save(directory / rel)
                    rels.append(rel)
                stage = int(tg.stage[t])
                answer = progress_answer(list(ep.plan[stage:]), float(tg.progress[t]))
                user = "<image>" * len(rels) + progress_prompt(ep.task)
                rows.append(json.dumps({"messages": [{"role": "user", "content": user},
                                                     {"role": "assistant", "content": answer}],
                                        "images": rels}))
        write_text(directory / f"{split}.jsonl", "\n".join(rows) + "\n")
    return directory


def bench_profile(model, frames, s: Settings, rows, out) -> None:
    """Where one batch's generation spends its time: torch.profiler's top operators, and the
    time of the prompt pass vs the decoding steps."""
    from torch.profiler import ProfilerActivity, profile

    bs = s.batches[0]
    prompts, images = prompts_of(model, frames[:bs], s.window)
    model.config = replace(model.config, batch_size=bs)
    model.generate_prompts(prompts, images, 2, min_new_tokens=2)
    with Sampler() as one:
        model.generate_prompts(prompts, images, 1, min_new_tokens=1)
    with Sampler() as many:
        model.generate_prompts(prompts, images, 1 + s.tokens, min_new_tokens=1 + s.tokens)
    step_ms = 1000 * (many.seconds - one.seconds) / s.tokens
    report(rows, {"section": "profile", "batch": bs, "prompt_pass_s": round(one.seconds, 3),
                  "decode_step_ms": round(step_ms, 2)}, out)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    with profile(activities=acts) as prof:
        model.generate_prompts(prompts, images, 8, min_new_tokens=8)
    key = "self_device_time_total" if torch.cuda.is_available() else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), flush=True)
    print(prof.key_averages().table(sort_by=key, row_limit=12), flush=True)


def bench_breakdown(model, frames, s: Settings, rows, out) -> None:
    """Where one readout batch's time goes: encoding on the CPU (one thread), the rotary
    position ids on the device vs on the CPU, the vision tower on every shown image vs once per
    frame, the prompt pass (every shown image encoded), one decoding step."""
    bs = max(s.batches)
    prompts, images = prompts_of(model, frames[:bs], s.window, answer_prefix(PLAN[1:]))
    vlm, dev = model.model, model.device

    def timed(fn, repeat: int = 2) -> float:
        fn()
        with Sampler() as m:
            for _ in range(repeat):
                fn()
        return m.seconds / repeat

    cpu = encode(model.processor, prompts, images)
    figures: dict[str, Any] = {"encode_s": timed(lambda: encode(model.processor, prompts,
                                                                images))}
    figures["positions_cpu_s"] = timed(lambda: model._with_positions(cpu))
    on_dev = {k: v.to(dev) for k, v in cpu.items()}
    prepare = getattr(vlm, "_prepare_position_ids_for_generation", None)
    if prepare is not None and "mm_token_type_ids" in on_dev:
        kw = {k: v for k, v in on_dev.items() if k not in ("input_ids", "pixel_values")}
        figures["positions_device_s"] = timed(lambda: prepare(on_dev["input_ids"], kw))
    inputs = {k: v.to(dev) for k, v in model._with_positions(cpu).items()}
    with torch.no_grad():
        if hasattr(vlm, "model") and hasattr(vlm.model, "get_image_features"):
            figures["vision_s"] = timed(lambda: vlm.model.get_image_features(
                inputs["pixel_values"], inputs["image_grid_thw"]))
            if shares_image_features(vlm):
                once = {k: (v.to(dev) if k != "image_order" else v) for k, v in
                        encode(model.processor, prompts, images, distinct=True).items()}
                figures["vision_once_per_frame_s"] = timed(
                    lambda: shared_image_features(vlm, once))
        figures["prompt_pass_s"] = timed(lambda: vlm(**inputs, logits_to_keep=1))
        gen = dict(do_sample=False, pad_token_id=model.tokenizer.pad_token_id)
        one = timed(lambda: vlm.generate(**inputs, max_new_tokens=1, min_new_tokens=1, **gen))
        many = timed(lambda: vlm.generate(**inputs, max_new_tokens=MAX_NUMBER_TOKENS,
                                          min_new_tokens=MAX_NUMBER_TOKENS, **gen))
    figures["decode_step_ms"] = 1000 * (many - one) / (MAX_NUMBER_TOKENS - 1)
    report(rows, {"section": "breakdown", "batch": bs, "window": s.window,
                  "prompt_tokens": int(cpu["attention_mask"].sum(-1).float().mean()),
                  **{k: round(v, 4) for k, v in figures.items()}}, out)


KERNEL_KINDS = (("gemm", ("gemm", "nvjet", "cutlass", "cublas", "sm90_xmma", "matmul")),
                ("attention", ("flash", "fmha", "attention", "efficient")),
                ("copy", ("copy", "memcpy", "memset", "cat", "index", "gather", "scatter")),
                ("reduce", ("reduce", "norm", "softmax", "argmax", "max")))


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(k in low for k in keys)),
                "elementwise/other")


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    merged: list[list[float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def _overlap(a: float, b: float, spans: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(b, y) - max(a, x)) for x, y in spans)


def analyse_trace(events: list[dict], min_gap_us: float = 1000.0) -> dict[str, Any]:
    """The device's busy time, kernels by kind and the idle gaps of a chrome trace's events
    (torch.profiler's export), with the host's labelled stages (``user_annotation``) and the
    operators that overlap the gaps most."""
    kernels = [e for e in events if e.get("cat") == "kernel" and "dur" in e]
    host = [e for e in events if e.get("cat") in ("cpu_op", "user_annotation", "cuda_runtime")
            and "dur" in e]
    stages: dict[str, float] = {}
    for e in host:
        if e["cat"] == "user_annotation":
            stages[e["name"]] = stages.get(e["name"], 0.0) + e["dur"]
    stage_s = {k: round(v / 1e6, 4) for k, v in sorted(stages.items(), key=lambda kv: -kv[1])}
    if not kernels:
        return {"kernels": 0, "host_stage_s": stage_s}
    busy = _union([(e["ts"], e["ts"] + e["dur"]) for e in kernels])
    start = min(e["ts"] for e in host + kernels)
    end = max(e["ts"] + e["dur"] for e in kernels)
    gaps = [(b, c) for (_, b), (c, _) in zip(busy, busy[1:]) if c - b >= min_gap_us]
    gaps += [(start, busy[0][0])] if busy[0][0] - start >= min_gap_us else []
    kinds: dict[str, float] = {}
    for e in kernels:
        kinds[kernel_kind(e["name"])] = kinds.get(kernel_kind(e["name"]), 0.0) + e["dur"]
    launches: dict[Any, int] = {}
    for e in host:
        if e["cat"] == "cuda_runtime":
            launches[e.get("tid")] = launches.get(e.get("tid"), 0) + 1
    main_tid = max(launches, key=launches.get) if launches else None
    in_gaps: dict[str, float] = {}
    for e in host:
        a, b = e["ts"], e["ts"] + e["dur"]
        where = "main" if e.get("tid") == main_tid else "worker"
        key = f"{where}:{e['cat'][:4]}:{e['name'][:60]}"
        o = _overlap(a, b, gaps)
        if o > 0:
            in_gaps[key] = in_gaps.get(key, 0.0) + o
    top = sorted(((k, v) for k, v in in_gaps.items() if v >= 100),  # >= 0.1 ms
                 key=lambda kv: -kv[1])[:15]
    return {"kernels": len(kernels), "window_s": round((end - start) / 1e6, 4),
            "device_busy_s": round(sum(b - a for a, b in busy) / 1e6, 4),
            "kernel_s_by_kind": {k: round(v / 1e6, 4) for k, v in sorted(kinds.items())},
            "gaps": len(gaps), "gap_s": round(sum(b - a for a, b in gaps) / 1e6, 4),
            "longest_gaps_ms": [round((b - a) / 1e3, 1) for a, b in
                                sorted(gaps, key=lambda g: g[0] - g[1])[:8]],
            "host_stage_s": stage_s,
            "host_in_gaps_ms": {k: round(v / 1e3, 1) for k, v in top}}


def _labelled(fn, name):
    """``fn`` inside a profiler label (``name`` or ``name(*args, **kwargs)``), with ``fn``'s
    signature (``generate`` inspects the forward's)."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        label = name(*args, **kwargs) if callable(name) else name
        with torch.profiler.record_function(label):
            return fn(*args, **kwargs)
    return run


def bench_timeline(model, frames, s: Settings, rows, out) -> None:
    """One readout call of ``2 * max(batches)`` frames under torch.profiler (see the module
    docstring); the stages are labelled by wrapping the model's methods on this instance."""
    import gzip
    import sys

    from torch.profiler import ProfilerActivity, profile

    from procvlm.models.vlm import modeling_vlm

    bs = max(s.batches)
    n = min(len(frames), 2 * bs)
    images, tasks, prefixes = readout_inputs(frames[:n], s)
    base = model.config
    vlm = model.model
    model.config = replace(base, batch_size=bs)
    saved = (vlm.forward, vlm.generate, model._generated, model._batches,
             modeling_vlm.shared_image_features)
    vlm.forward = _labelled(vlm.forward, lambda *a, **k: "prompt pass" if k.get(
        "input_ids") is None or k["input_ids"].shape[1] > 1 else "decoding step")
    vlm.generate = _labelled(vlm.generate, "generate")
    model._generated = _labelled(model._generated, "copy results")
    modeling_vlm.shared_image_features = _labelled(saved[4], "vision tower")

    def batches(*args: Any):
        it = saved[3](*args)
        while True:
            with torch.profiler.record_function("next batch"):
                item = next(it, None)
            if item is None:
                return
            yield item

    model._batches = batches
    try:
        for interval in (sys.getswitchinterval(), 0.05, sys.getswitchinterval()):
            old = sys.getswitchinterval()
            sys.setswitchinterval(interval)
            try:
                model.progress_after_prefix(images[:bs], tasks[:bs], prefixes[:bs])
                with Sampler() as m:
                    model.progress_after_prefix(images, tasks, prefixes)
            finally:
                sys.setswitchinterval(old)
            report(rows, m.row(section="timeline", variant="plain", batch=bs,
                               switch_interval_s=interval,
                               frames_per_s=round(n / m.seconds, 2)), out)
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available()
                                         else [])
        with Sampler() as m, profile(activities=acts) as prof:
            model.progress_after_prefix(images, tasks, prefixes)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "trace.json"
            prof.export_chrome_trace(str(path))
            text = path.read_text()
        events = json.loads(text).get("traceEvents", [])
        if out is not None:
            with gzip.open(out.with_suffix(".trace.json.gz"), "wt") as f:
                f.write(text)
        report(rows, m.row(section="timeline", variant="profiled", batch=bs,
                           frames_per_s=round(n / m.seconds, 2), **analyse_trace(events)), out)
    finally:
        vlm.forward, vlm.generate, model._generated, model._batches = saved[:4]
        modeling_vlm.shared_image_features = saved[4]
        model.config = base


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=["tiny", "2b"], default=None,
                    help="tiny (CPU) or random weights at Qwen3-VL-2B size (GPU; the default "
                         "with a GPU)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes, CPU, seconds")
    ap.add_argument("--accuracy-steps", type=int, default=300,
                    help="training steps of the accuracy section's tiny model")
    ap.add_argument("--sections", default=None,
                    help=f"comma list of {','.join(SECTIONS)} (default: all but static, "
                         "profile, breakdown and, on a GPU, accuracy)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--window", type=int, default=4)
    ap.add_argument("--batches", default=None, help="comma list of batch sizes")
    ap.add_argument("--tokens", type=int, default=40, help="generated tokens per answer")
    ap.add_argument("--sft-steps", type=int, default=None, help="LoRA SFT steps")
    ap.add_argument("--sft-batch", default=None,
                    help="comma list of LoRA SFT batch sizes, one run each (default 8)")
    ap.add_argument("--workers", default=None,
                    help="comma list of encoding worker counts; generate, readout and static "
                         "run with each (default: the model's, 2 on a GPU, 0 on the CPU)")
    ap.add_argument("--score-runs", default=None,
                    help=f"comma list of {','.join(SCORE_RUNS)}: the score_dataset runs "
                         "(default: all in score, whole in static)")
    ap.add_argument("--score-caches", default=None,
                    help="comma list of dynamic,static: the static section's score_dataset "
                         "runs (default both)")
    ap.add_argument("--compile-layers", choices=("on", "off"), default="off",
                    help="the model's compile_layers: the text layers' pointwise parts compiled")
    ap.add_argument("--encodings", default=None,
                    help="comma list of threads,processes: where the encoding workers run "
                         "(VLMConfig.encoding); readout and score run with each (default "
                         "threads)")
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    size = args.size or ("2b" if cuda and not args.quick else "tiny")
    s = QUICK if args.quick else Settings(size=size, window=args.window, tokens=args.tokens)
    s = replace(s, size=size, window=args.window if not args.quick else 2)
    if args.frames:
        s = replace(s, frames=args.frames)
    if args.batches:
        s = replace(s, batches=tuple(int(b) for b in args.batches.split(",")))
    if args.sft_steps:
        s = replace(s, sft_steps=args.sft_steps)
    if args.sft_batch:
        s = replace(s, sft_batches=tuple(int(b) for b in args.sft_batch.split(",")))
    if args.score_runs:
        s = replace(s, score_runs=_choices(args.score_runs, SCORE_RUNS, "--score-runs"))
    if args.score_caches:
        s = replace(s, score_caches=_choices(args.score_caches, ("dynamic", "static"),
                                             "--score-caches"))
    if args.encodings:
        s = replace(s, encodings=_choices(args.encodings, ("threads", "processes"),
                                          "--encodings"))
    if args.workers:
        s = replace(s, workers=tuple(int(w) for w in args.workers.split(",")))
    default = [x for x in SECTIONS if x not in ("static", "profile", "breakdown", "timeline")
               and (x != "accuracy" or size == "tiny")]
    sections = args.sections.split(",") if args.sections else default
    rows: list[dict] = []
    report(rows, {"section": "settings", "device": device_name(), "size": size,
                  "torch": torch.__version__, "transformers": _version("transformers"),
                  "compile_layers": args.compile_layers,
                  **{k: v for k, v in asdict(s).items() if k != "size"}}, args.json)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build(size, tmp) if set(sections) - {"accuracy"} else None
        if model is not None:
            model.config = replace(model.config, compile_layers=args.compile_layers == "on")
            force_answer(model, None)  # every readout writes READOUT_NUMBER
        frames = np.random.default_rng(0).integers(
            0, 255, (s.frames, 224 if size == "2b" else 32, 224 if size == "2b" else 32, 3),
            np.uint8)
        runs = {"preprocess": lambda: bench_preprocess(model, frames, s, rows, args.json),
                "generate": lambda: bench_generate(model, frames, s, rows, args.json),
                "readout": lambda: bench_readout(model, frames, s, rows, args.json),
                "score": lambda: bench_score(model, s, tmp, rows, args.json,
                                             runs=s.score_runs or SCORE_RUNS),
                "sft": lambda: bench_sft(model, s, tmp, rows, args.json),
                "static": lambda: bench_static(model, frames, s, tmp, rows, args.json),
                "accuracy": lambda: bench_accuracy(tmp, rows, args.json, args.quick,
                                                   args.accuracy_steps),
                "profile": lambda: bench_profile(model, frames, s, rows, args.json),
                "breakdown": lambda: bench_breakdown(model, frames, s, rows, args.json),
                "timeline": lambda: bench_timeline(model, frames, s, rows, args.json)}
        for name in sections:
            if name not in runs:
                raise SystemExit(f"unknown section {name!r}: choose from {', '.join(SECTIONS)}")
        failed = 0
        for name in sections:
            try:
                runs[name]()
            except Exception as e:  # one section failing must not lose the others' figures
                if args.quick:
                    raise
                failed += 1
                traceback.print_exc()
                report(rows, {"section": name, "error": f"{type(e).__name__}: {e}"[:500]},
                       args.json)
    return 1 if failed else 0


def _choices(text: str, allowed: tuple[str, ...], flag: str) -> tuple[str, ...]:
    picked = tuple(text.split(","))
    for x in picked:
        if x not in allowed:
            raise SystemExit(f"{flag}: unknown {x!r}; choose from {','.join(allowed)}")
    return picked


def _version(name: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(name)


if __name__ == "__main__":
    raise SystemExit(main())
