"""``VLMProgressModel``: a progress model over any ``AutoModelForImageTextToText`` (Qwen3-VL by
default, Qwen2.5-VL, SmolVLM / Idefics3) and its processor.

At every frame the model sees a window of recent frames and the task, asked exactly as in
training (``processor_vlm.progress_messages``, images first, through the processor's chat
template), and answers with the remaining actions, then ``<progress>XX.XX%</progress>``. Prompts
of many frames and episodes are generated together, left padded. The progress is either parsed
from the greedy text (``readout="text"``) or is the expected value of the digits inside the tag
under the model's token probabilities (``readout="probs"``, see ``readout.py``).

A run folder holds ``config.json`` (``"type": "vlm"``, the base and adapter, see
``VLMConfig``) next to ``model/`` (full or merged weights + processor) or ``adapter/`` (peft
LoRA + processor). Plain transformers and peft folders load too.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from procvlm._io import write_json, write_text
from procvlm.data.episode import Episode, Frames
from procvlm.errors import ProcvlmError
from procvlm.models.base import LastScores, ProgressModel, ProgressPrediction, TrainedOn
from procvlm.models.vlm.configuration_vlm import VLMConfig
from procvlm.models.vlm.engine import (
    Generation,
    PendingImage,
    Prefetcher,
    StaticCachePool,
    batch_bucket,
    batch_vision_attention,
    compile_everywhere,
    compiled_layers,
    count_generated,
    encode,
    length_sorted_batches,
    shared_image_features,
    shares_image_features,
)
from procvlm.models.vlm.parsing import parse_answer, parse_answers, stage_of
from procvlm.models.vlm.processor_vlm import (
    answer_prefix,
    progress_answer,
    progress_messages,
    to_pil,
    window_indices,
)
from procvlm.models.vlm.reasoning import anchor_frames, frames_to_split, reuse_sources
from procvlm.models.vlm.readout import (
    MAX_NUMBER_TOKENS,
    TAG,
    DoneProbe,
    NumberEnd,
    digit_columns,
    digit_token_ids,
    done_branch,
    expected_digits,
    number_token_kinds,
    read_expectations,
)

log = logging.getLogger(__name__)

Shown = list[list[Image.Image | PendingImage]]
"""The images each prompt shows (PIL images, or frames the encoding workers resize)."""


# ----------------------------------------------------------------------------- processors
@functools.cache
def image_only_processor_class(name: str) -> type:
    """The transformers processor class ``name`` without its video processor.

    Qwen-VL processors require a video processor, which needs torchvision; procvlm only shows
    images, so on a CPU-only torch it builds the processor without one.
    """
    import transformers

    base = getattr(transformers, name, None)
    if base is None:
        raise ProcvlmError(f"transformers has no processor class {name!r}: upgrade transformers")
    if "video_processor" not in base.get_attributes():
        return base

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        base.__init__(self, image_processor=image_processor, tokenizer=tokenizer,
                      video_processor=None, chat_template=chat_template, **kwargs)

    return type(f"{name}ImageOnly", (base,), {"__init__": __init__, "_procvlm_base": name})


def _processor_class_name(path: str) -> str:
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    for fname in ("processor_config.json", "preprocessor_config.json"):
        f = Path(path) / fname
        if f.is_file():
            data = json.loads(f.read_text())
            if "processor_class" in data:
                return str(data["processor_class"]).removesuffix("ImageOnly")
    model_type = AutoConfig.from_pretrained(path).model_type
    if model_type not in PROCESSOR_MAPPING_NAMES:
        raise ProcvlmError(f"{path}: no processor known for model type {model_type!r}")
    return PROCESSOR_MAPPING_NAMES[model_type]


def load_processor(path: str | Path):
    """``AutoProcessor`` for ``path``, or the image-only variant when loading the video
    processor fails (no torchvision)."""
    from transformers import AutoProcessor

    path = str(path)
    try:
        proc = AutoProcessor.from_pretrained(path)
        if hasattr(proc, "image_processor"):
            return proc
    except (OSError, ImportError, ValueError, AttributeError, TypeError) as e:
        log.debug("AutoProcessor failed for %s (%s); building an image-only processor", path, e)
    try:
        return image_only_processor_class(_processor_class_name(path)).from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ProcvlmError(f"cannot load a processor from {path}: {e}; pass a folder or hub id "
                           "of an image-text-to-text model") from e


def save_processor(processor, directory: str | Path) -> None:
    """Save ``processor`` so ``AutoProcessor`` (or :func:`load_processor`) reads it back."""
    directory = Path(directory)
    name = getattr(processor, "_procvlm_base", None)
    if name is None:
        processor.save_pretrained(directory)
        return
    processor.tokenizer.save_pretrained(directory)
    processor.image_processor.save_pretrained(directory)
    if processor.chat_template:
        write_text(directory / "chat_template.jinja", processor.chat_template)
    write_json(directory / "processor_config.json", {"processor_class": name})


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; swap it in place of ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = path.parent / f".{path.name}.old-{os.getpid()}"
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------- loading
def resolve_device(device: str | None) -> torch.device:
    """``device``, or cuda when available, else cpu."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``"auto"`` is bfloat16 on a GPU that supports it, float32 otherwise."""
    if name == "auto":
        ok = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else torch.float32
    return getattr(torch, name)


def load_vlm(base: str, adapter: str | None = None, *, dtype: torch.dtype = torch.float32,
             device: torch.device | str = "cpu", merge: bool = True, attn: str = "sdpa"):
    """Load the base model (and LoRA adapter, merged unless ``merge`` is False), eval mode,
    with the attention implementation ``attn``."""
    from transformers import AutoModelForImageTextToText

    try:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=dtype,
                                                            attn_implementation=attn)
    except (OSError, ValueError) as e:
        raise ProcvlmError(f"cannot load the VLM {base!r}: {e}; pass a local model folder or a "
                           "hub id cached on this machine") from e
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
        if merge:
            model = model.merge_and_unload()
    return model.to(device).eval()


def _read_run_config(directory: Path) -> VLMConfig:
    data = json.loads((directory / "config.json").read_text())
    if data.get("type") == "vlm":
        for key in ("base", "adapter", "processor"):
            if data.get(key) and (directory / data[key]).exists():
                data[key] = str(directory / data[key])
        return VLMConfig.from_dict(data)
    if (directory / "adapter_config.json").is_file():
        adapter = json.loads((directory / "adapter_config.json").read_text())
        return VLMConfig(base=adapter["base_model_name_or_path"], adapter=str(directory),
                         processor=str(directory))
    return VLMConfig(base=str(directory))


# ----------------------------------------------------------------------------- the model
class VLMProgressModel(ProgressModel):
    """Progress from a vision-language model's answers.

    Args:
        model: an ``AutoModelForImageTextToText`` (or a peft model over one).
        processor: its processor.
        config: a ``VLMConfig``.
    """

    model_type = "vlm"

    def __init__(self, model, processor, config: VLMConfig | None = None) -> None:
        self.model = model
        self.processor = processor
        self.config = config or VLMConfig(base=getattr(model, "name_or_path", "") or "unknown")
        self.tokenizer = processor.tokenizer
        self._static: StaticCachePool | None = None  # built on the first static-cache batch
        batch_vision_attention(model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def trained_on(self) -> TrainedOn:
        """Camera, image size, window and scheme as the config records them."""
        c = self.config
        return TrainedOn(camera=c.camera, image_size=c.image_size, window=c.window,
                         scheme=c.scheme)

    @classmethod
    def from_base(cls, base: str, adapter: str | None = None, **overrides: Any) -> VLMProgressModel:
        """Load ``base`` (a local folder or hub id) and an optional LoRA adapter."""
        return cls.from_config(VLMConfig(base=str(base), adapter=adapter, **overrides))

    @classmethod
    def from_config(cls, config: VLMConfig) -> VLMProgressModel:
        """Load the model and processor a ``VLMConfig`` names."""
        device = resolve_device(config.device)
        model = load_vlm(config.base, config.adapter, dtype=resolve_dtype(config.dtype, device),
                         device=device, attn=config.attn)
        processor = load_processor(config.processor or config.adapter or config.base)
        return cls(model, processor, config)

    @classmethod
    def from_pretrained(cls, directory: str | Path, **overrides: Any) -> VLMProgressModel:
        """Load a procvlm VLM run folder, a transformers model folder or a peft adapter folder.

        Args:
            directory: the folder.
            **overrides: ``VLMConfig`` fields to change (e.g. ``readout="probs"``, ``window=4``).
        """
        directory = Path(directory)
        if not (directory / "config.json").is_file():
            if (directory / "adapter_config.json").is_file():
                return cls.from_config(replace(_read_run_config(directory), **overrides))
            raise ProcvlmError(f"{directory} is not a VLM checkpoint (no config.json): pass the "
                               "folder written by `procvlm train --model vlm`")
        return cls.from_config(replace(_read_run_config(directory), **overrides))

    def save_pretrained(self, directory: str | Path, merge: bool = False) -> None:
        """Write a run folder: ``config.json`` + ``model/`` (full or merged) or ``adapter/``.

        Args:
            directory: the folder.
            merge: merge a LoRA adapter into the weights (``model/``) instead of ``adapter/``.
        """
        directory = Path(directory)
        is_peft = hasattr(self.model, "peft_config")
        sub = "adapter" if is_peft and not merge else "model"
        model = self.model.merge_and_unload() if is_peft and merge else self.model
        with atomic_dir(directory / sub) as tmp:
            model.save_pretrained(tmp)
            save_processor(self.processor, tmp)
        base = self.config.base if sub == "adapter" else sub
        cfg = replace(self.config, base=base, adapter=sub if sub == "adapter" else None,
                      processor=sub, device=None)
        write_json(directory / "config.json", cfg.to_dict())

    # ------------------------------------------------------------------ prompts
    def messages(self, num_images: int, task: str) -> list[dict]:
        """The progress question as chat messages: the images first, then the prompt."""
        return progress_messages(num_images, task)

    def chat_prompt(self, messages: list[dict]) -> str:
        """The processor's chat template applied to ``messages`` with the generation prompt."""
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)

    def encode(self, prompts: list[str], images: Shown) -> dict:
        """Processor outputs for a batch, left padded, on the model device."""
        batch = encode(self.processor, prompts, images)
        return {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v)
                for k, v in batch.items()}

    def _workers(self) -> int:
        if self.config.workers is not None:
            return self.config.workers
        return 2 if self.device.type == "cuda" else 0

    def _batches(self, prompts: list[str], images: Shown
                 ) -> Iterator[tuple[list[int], dict, Prefetcher]]:
        """(prompt indices, inputs on the model device, the prefetcher) per length-sorted batch,
        encoded ahead by workers (threads, or processes with ``config.encoding``; threads also
        take the batches' post-processing: ``Prefetcher.submit``).

        The text decoder layers run compiled meanwhile where ``config.compile_layers`` says so
        (``engine.compiled_layers``).

        With a static cache a short batch is padded by repeating its first prompt (the extra
        rows' answers are dropped): to the full batch size when the call has full batches (one
        compiled shape for the whole call; a new shape costs a compilation, about 50 s for a 2B
        model on an H200, while the padding costs at most one batch), else to
        :func:`batch_bucket` rows."""
        lengths = [len(p) + 1000 * len(ims) for p, ims in zip(prompts, images)]
        batches = length_sorted_batches(lengths, self.config.batch_size)
        sizes = [len(b) for b in batches]
        if self.config.cache == "static" and batches:
            size = self.config.batch_size
            rows = size if len(batches) > 1 else batch_bucket(len(batches[0]), size)
            batches = [b + b[:1] * (rows - len(b)) for b in batches]
        cuda = self.device.type == "cuda"
        share = shares_image_features(self.model)
        fetch = Prefetcher(lambda idx: self._with_positions(encode(
            self.processor, [prompts[i] for i in idx], [images[i] for i in idx],
            distinct=share)), self._workers(), cuda,
            processes=self.config.encoding == "processes")
        with compiled_layers(self.model, self.config.compile_layers):
            for (idx, batch), size in zip(fetch(batches), sizes):
                batch = {k: (v.to(self.device, non_blocking=cuda)
                             if torch.is_tensor(v) and k != "image_order" else v)
                         for k, v in batch.items()}
                yield idx[:size], (shared_image_features(self.model, batch)
                                   if "image_order" in batch else batch), fetch

    def _cache_kwargs(self, inputs: dict, new_tokens: int) -> dict:
        """``generate`` arguments for the configured KV cache: with ``cache="static"`` a reset
        static cache of this batch's bucket (see ``engine.StaticCachePool``) and the compile
        choice; nothing with a dynamic cache."""
        if self.config.cache != "static":
            return {}
        if self._static is None:
            self._static = StaticCachePool(self.model.config)
        ids = inputs["input_ids"]
        kwargs: dict[str, Any] = {"cache": self._static.get(ids.shape[0],
                                                            ids.shape[1] + new_tokens)}
        if self.config.compile is False:
            kwargs["disable_compile"] = True
        elif self.config.compile:
            kwargs["compile_config"] = compile_everywhere()
        return kwargs

    def _with_positions(self, batch: dict) -> dict:
        """``batch`` with the position ids ``generate`` would compute, computed here on the CPU.

        Qwen-VL models place image tokens with 3-D rotary positions; computed inside
        ``generate`` on the GPU, that is a Python loop over prompts and images with several
        device synchronisations each. Done by the prefetch workers on the CPU tensors, it is off
        the accelerator's critical path. The model's own method computes them, so the result is
        identical; models without it are left as they are. Rows laid out alike (the same token
        types after the padding and the same image grids: a window's prompts differ only in
        their text) get the same positions, so each layout is computed once (a Python loop per
        row that holds the GIL while the main thread launches kernels).
        """
        prepare = getattr(self.model, "_prepare_position_ids_for_generation", None)
        if (prepare is None or "mm_token_type_ids" not in batch
                or "image_grid_thw" not in batch or "position_ids" in batch):
            return batch
        kwargs = {k: v for k, v in batch.items()
                  if k not in ("input_ids", "pixel_values", "image_order")}
        reps, rows_of, grids = _position_groups(batch)
        if len(reps) == batch["input_ids"].shape[0]:
            return {**batch, "position_ids": prepare(batch["input_ids"], kwargs)}
        sub = {k: (v[reps] if k in ("attention_mask", "mm_token_type_ids") else v)
               for k, v in kwargs.items()}
        sub["image_grid_thw"] = torch.cat([grids[r] for r in reps])
        positions = prepare(batch["input_ids"][reps], sub)
        return {**batch, "position_ids": positions[:, rows_of]}

    @functools.cached_property
    def _done_branch(self) -> tuple[list[int], int, int] | None:
        """``readout.done_branch`` of the tokenizer (None when it has none: no P(done))."""
        try:
            return done_branch(self.tokenizer)
        except ProcvlmError as err:
            log.warning("%s", err)
            return None

    @functools.cached_property
    def _number_kinds(self) -> torch.Tensor:
        """``readout.number_token_kinds`` of the tokenizer, on the model's device."""
        return number_token_kinds(self.tokenizer).to(self.device)

    def _end_ids(self) -> set[int]:
        eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        eos = self.tokenizer.eos_token_id if eos is None else eos
        return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])
                if e is not None}

    @torch.no_grad()
    def generate_prompts(self, prompts: list[str], images: Shown,
                         max_new_tokens: int | None = None, with_logits: bool = False,
                         min_new_tokens: int | None = None, with_done: bool = False
                         ) -> Generation:
        """Greedy answers to rendered prompts, in length-sorted batches of
        ``config.batch_size``, returned in the order given.

        Args:
            prompts: rendered chat prompts.
            images: the images each prompt shows.
            max_new_tokens: longest answer (default ``config.max_new_tokens``).
            with_logits: also read the expected progress from the digit probabilities.
            min_new_tokens: generate at least this many tokens (benchmarks of random weights,
                which never write an end token at a trained model's length).
            with_done: also read the probability that the task is finished
                (``Generation.done``).
        """
        from transformers import LogitsProcessorList

        n = len(prompts)
        text: list[str] = [""] * n
        expected: list[float | None] = [None] * n
        tokens, prompt_tokens, finished = [0] * n, [0] * n, [False] * n
        p_done: list[float | None] = [None] * n
        limit = max_new_tokens or self.config.max_new_tokens
        extra = {"min_new_tokens": min(min_new_tokens, limit)} if min_new_tokens else {}
        branch = self._done_branch if with_done else None
        jobs = []
        for idx, inputs, fetch in self._batches(prompts, images):
            probe = DoneProbe(branch, inputs["input_ids"].shape[1]) if branch else None
            out = self.model.generate(**inputs, max_new_tokens=limit, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      output_logits=with_logits, return_dict_in_generate=True,
                                      logits_processor=LogitsProcessorList([probe] if probe
                                                                           else []),
                                      **extra, **self._cache_kwargs(inputs, limit))
            new, digits, lens = self._generated(idx, inputs, out, with_logits)
            if probe is not None:
                for i, p in zip(idx, probe.read(new)):
                    p_done[i] = p
            jobs.append((idx, fetch.submit(self._read_batch, new, digits, lens)))
        for idx, job in jobs:
            read = job.result()
            for k, i in enumerate(idx):
                text[i], tokens[i], finished[i], prompt_tokens[i], expected[i] = read[k]
        return Generation(text, expected if with_logits else None, tokens, prompt_tokens,
                          finished, p_done if branch else None)

    def _generated(self, idx: list[int], inputs: dict, out, with_logits: bool
                   ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The generated ids, the digit columns of their logits (or None) and the prompt
        lengths of a batch's real rows, copied to the CPU (the device work of reading a batch;
        the rest is :meth:`_read_batch`, on a worker)."""
        rows = len(idx)
        new = out.sequences[:rows, inputs["input_ids"].shape[1]:]
        digits = None
        if with_logits:
            digits = digit_columns([lg[:rows] for lg in out.logits],
                                   digit_token_ids(self.tokenizer)).float().cpu()
        return new.cpu(), digits, inputs["attention_mask"][:rows].sum(-1).cpu()

    def _read_batch(self, new: torch.Tensor, digits: torch.Tensor | None, lens: torch.Tensor
                    ) -> list[tuple[str, int, bool, int, float | None]]:
        """(text, generated tokens, ended by itself, prompt tokens, expected progress) per row
        of a generated batch: tokens decoded, end tokens found, the digit readout (CPU only)."""
        counts, ended = count_generated(new, self._end_ids())
        decoded = self.processor.batch_decode(new, skip_special_tokens=True)
        exp: list[float | None] = [None] * len(decoded)
        if digits is not None:
            exp = read_expectations(new.tolist(), expected_digits(digits), self.tokenizer)
        return list(zip(decoded, counts, ended, lens.tolist(), exp))

    def _read_numbers(self, new: torch.Tensor, digits: torch.Tensor) -> list[float | None]:
        """The expected progress per row of a batch generated after ``<progress>``."""
        return read_expectations(new.tolist(), expected_digits(digits), self.tokenizer,
                                 after_tag=True)

    def chat(self, conversations: list[list[dict]], images: list[list[Image.Image]],
             max_new_tokens: int | None = None) -> Generation:
        """Answers to chat conversations (typed content, ``{"type": "image"}`` placeholders),
        with their token counts and whether each ended by itself or at ``max_new_tokens``."""
        prompts = [self.chat_prompt(c) for c in conversations]
        imgs = [[to_pil(im, self.config.image_size) for im in ims] for ims in images]
        return self.generate_prompts(prompts, imgs, max_new_tokens)

    # ------------------------------------------------------------------ progress
    def progress_prompts(self, items: Sequence[tuple[Episode | Frames, str | None, list[str] | None]],
                  window: int) -> tuple[list[str], Shown, list[tuple]]:
        """Prompts and images of every frame of every item, and (frames, task, plan) each
        (the input of ``assemble``).

        A frame shown in several windows is one ``PendingImage``: resized by the encoding
        workers, preprocessed once per batch.
        """
        prompts, images, resolved = [], [], []
        for source, task, plan in items:
            frames, task, plan = _resolve(source, task, plan)
            resolved.append((len(frames), task, plan))
            cache: dict[int, PendingImage] = {}
            rendered: dict[int, str] = {}
            for t in range(len(frames)):
                idx = window_indices(t, window, self.config.stride)
                for i in idx:
                    if i not in cache:
                        cache[i] = PendingImage(frames[i], self.config.image_size)
                images.append([cache[i] for i in idx])
                if len(idx) not in rendered:
                    rendered[len(idx)] = self.chat_prompt(self.messages(len(idx), task))
                prompts.append(rendered[len(idx)])
                cache = {i: cache[i] for i in idx}  # keep only what the next window can reuse
        return prompts, images, resolved

    def predict_batch(self, items: Sequence[tuple[Episode | Frames, str | None, list[str] | None]],
                      *, window: int | None = None, batch_size: int | None = None
                      ) -> list[ProgressPrediction]:
        """``predict`` for many episodes at once: all their frames share generation batches.

        With ``config.reasoning="reuse"`` the whole answer is generated on a sparse set of
        frames only (see ``reasoning.py``); ``extra["generated"]`` marks them.

        ``done`` is the model's probability that the task is finished at each frame: how much
        more likely the answer goes on as the finished reasoning ("The task has been
        completed") than as the list of remaining actions, at the token where they part
        (``readout.DoneProbe``). A frame whose reasoning is reused takes its source frame's;
        an answer that does not open as trained answers do counts 1 when its reasoning is the
        finished sentence, else 0.

        Args:
            items: (episode or frames, task, plan) triples, as ``predict`` takes them.
            window: frames per prompt (defaults to ``config.window``).
            batch_size: unused; prompts per generation batch are ``config.batch_size``, set
                when the model is loaded.
        """
        prompts, images, resolved = self.progress_prompts(items, window or self.config.window)
        if self.config.reasoning == "reuse":
            texts, progress, generated, done = self._answers_reusing(prompts, images, resolved)
        else:
            gen = self.generate_prompts(prompts, images, with_done=True,
                                        with_logits=self.config.readout == "probs")
            texts, progress, generated = gen.text, gen.expected, [True] * len(prompts)
            done = gen.done
        return self.assemble(texts, progress, resolved, generated, done)

    def assemble(self, texts: list[str], expected: Sequence[float | None] | None,
                 resolved: list[tuple], generated: Sequence[bool] | None = None,
                 done: Sequence[float | None] | None = None) -> list[ProgressPrediction]:
        """Predictions from the answers to ``progress_prompts``' prompts, in their order.

        Args:
            texts: one answer per prompt.
            expected: the digit-probability progress per prompt (None: parse the text).
            resolved: ``progress_prompts``' (frames, task, plan) per item.
            generated: which answers were generated whole (default: all).
            done: P(done) per prompt (``Generation.done``; None: predictions without it).
        """
        out, start = [], 0
        expected = expected if expected is not None else [None] * len(texts)
        generated = generated if generated is not None else [True] * len(texts)
        for n, _task, plan in resolved:
            parsed = parse_answers(texts[start:start + n])
            values = [p.progress for p in parsed]
            for k, e in enumerate(expected[start:start + n]):
                if e is not None:
                    values[k] = e
            remaining = [p.remaining for p in parsed]
            p_done = None
            if done is not None:   # unreadable openings: what the answer says
                p_done = [float(not p.remaining and "no_actions" not in p.flag) if d is None
                          else d
                          for d, p in zip(done[start:start + n], parsed)]
            out.append(ProgressPrediction(
                progress=np.asarray(values, np.float32),
                stage=np.asarray([stage_of(r, plan) for r in remaining], np.int64),
                remaining=remaining, text=list(texts[start:start + n]),
                flags=[p.flag for p in parsed], done=p_done,
                extra={"readout": self.config.readout, "reasoning": self.config.reasoning,
                       "generated": np.asarray(generated[start:start + n], bool)}))
            start += n
        return out

    def _answers_reusing(self, prompts: list[str], images: Shown,
                         resolved: list[tuple]
                         ) -> tuple[list[str], list, list[bool], list[float | None] | None]:
        """Answers with reasoning reuse: generated on anchor and split frames (all episodes in
        shared batches per round), digit readout after the reused reasoning elsewhere; the
        texts, progress, which were generated, and P(done) (a reused frame takes its source
        frame's)."""
        probs = self.config.readout == "probs"
        starts = np.cumsum([0] + [n for n, *_ in resolved]).tolist()
        keys: list[dict[int, Any]] = [{} for _ in resolved]
        texts: list[str] = [""] * len(prompts)
        progress: list[float | None] = [None] * len(prompts)
        done: list[float | None] = [None] * len(prompts)
        known = True
        todo = [[s + t for t in anchor_frames(n, self.config.refresh)]
                for s, (n, *_) in zip(starts, resolved)]
        while any(todo):
            flat = [i for frames in todo for i in frames]
            gen = self.generate_prompts([prompts[i] for i in flat], [images[i] for i in flat],
                                        with_logits=probs, with_done=True)
            known = gen.done is not None
            for k, i in enumerate(flat):
                texts[i] = gen.text[k]
                progress[i] = gen.expected[k] if gen.expected is not None else None
                done[i] = gen.done[k] if known else None
            for e, frames in enumerate(todo):
                for i in frames:
                    keys[e][i - starts[e]] = _reasoning_key(texts[i])
            todo = [[starts[e] + t for t in frames_to_split(keys[e])] for e in range(len(keys))]
        reuse = [(starts[e] + t, starts[e] + src)
                 for e, (n, *_) in enumerate(resolved)
                 for t, src in enumerate(reuse_sources(n, keys[e])) if src != t]
        remaining = [parse_answer(texts[src]).remaining for _, src in reuse]
        values = self._readout([prompts[i] + answer_prefix(r) for (i, _), r in
                                zip(reuse, remaining)], [images[i] for i, _ in reuse])
        generated = [True] * len(prompts)
        for (i, src), r, v in zip(reuse, remaining, values):
            generated[i] = False
            texts[i] = answer_prefix(r) if v is None else progress_answer(r, v)
            progress[i] = v
            done[i] = done[src]
        return texts, progress, generated, done if known else None

    @torch.no_grad()
    def _readout(self, prompts: list[str], images: Shown
                 ) -> list[float | None]:
        """Expected progress after rendered prompts that end with the answer up to the tag
        (at most ``MAX_NUMBER_TOKENS`` generated, each row until its number ends:
        ``readout.NumberEnd``; the digits read on the workers)."""
        from transformers import StoppingCriteriaList

        out: list[float | None] = [None] * len(prompts)
        done = []
        for idx, inputs, fetch in self._batches(prompts, images):
            stop = NumberEnd(self._number_kinds)
            gen = self.model.generate(**inputs, max_new_tokens=MAX_NUMBER_TOKENS,
                                      do_sample=False, output_logits=True,
                                      return_dict_in_generate=True,
                                      stopping_criteria=StoppingCriteriaList([stop]),
                                      **self._cache_kwargs(inputs, MAX_NUMBER_TOKENS))
            new, digits, _ = self._generated(idx, inputs, gen, True)
            done.append((idx, fetch.submit(self._read_numbers, new, digits)))
        for idx, job in done:
            for i, value in zip(idx, job.result()):
                out[i] = value
        return out

    def score_last(self, clips: Sequence[tuple[Frames, str, list[str] | None]]
                   ) -> LastScores:
        """Progress and P(done) at the newest frame of each clip, all clips in shared batches,
        shape (B,) each (``done`` as ``predict_batch`` reads it).

        Args:
            clips: (frames, task, plan) triples (see ``ProgressModel.score_last``).
        """
        prompts, images, resolved = [], [], []
        for frames, task, plan in clips:
            frames, task, plan = _resolve(frames, task, plan)
            idx = window_indices(len(frames) - 1, self.config.window, self.config.stride)
            images.append([PendingImage(frames[i], self.config.image_size) for i in idx])
            prompts.append(self.chat_prompt(self.messages(len(idx), task)))
            resolved.append((1, task, plan))
        gen = self.generate_prompts(prompts, images, with_done=True,
                                    with_logits=self.config.readout == "probs")
        preds = self.assemble(gen.text, gen.expected, resolved, done=gen.done)
        return LastScores.collect([p.progress[0] for p in preds],
                                  [None if p.done is None else p.done[0] for p in preds])

    def predict(self, episode: Episode | Frames, task: str | None = None,
                plan: list[str] | None = None, *, window: int | None = None
                ) -> ProgressPrediction:
        """Estimate progress at every frame (see ``ProgressModel.predict``); ``window``
        defaults to the one the model was trained with (``config.window``)."""
        return self.predict_batch([(episode, task, plan)], window=window)[0]

    def progress_after_prefix(self, images: list[list[Image.Image]], tasks: list[str],
                              answer_prefixes: list[str]) -> list[float | None]:
        """Expected progress with the answer teacher-forced up to ``<progress>``.

        With the reasoning known (e.g. the labelled remaining actions), only the number's
        few tokens are decoded: much cheaper than generating the whole answer.

        Args:
            images: frames shown per prompt.
            tasks: the task per prompt.
            answer_prefixes: the answer text up to and including ``<progress>``.
        """
        for p in answer_prefixes:
            if not p.rstrip().endswith(TAG):
                raise ProcvlmError(f"answer prefix {p[-40:]!r} does not end with {TAG}")
        pil: dict[tuple, PendingImage] = {}  # a frame shown in several windows: one image
        for ims in images:
            for im in ims:
                if _frame_key(im) not in pil:
                    pil[_frame_key(im)] = PendingImage(im, self.config.image_size)
        imgs = [[pil[_frame_key(im)] for im in ims] for ims in images]
        rendered: dict[tuple[int, str], str] = {}  # the chat template once per shape
        for ims, task in zip(imgs, tasks):
            if (len(ims), task) not in rendered:
                rendered[len(ims), task] = self.chat_prompt(self.messages(len(ims), task))
        prompts = [rendered[len(ims), task] + prefix
                   for ims, task, prefix in zip(imgs, tasks, answer_prefixes)]
        return self._readout(prompts, imgs)


def _position_groups(batch: dict) -> tuple[list[int], torch.Tensor, list[torch.Tensor]]:
    """Rows of a batch grouped by layout (token types after the left padding, image grids):
    one representative row per layout, each row's layout index, and each row's image grids."""
    types, mask = batch["mm_token_type_ids"], batch["attention_mask"]
    shown = types != 0
    starts = shown & ~torch.nn.functional.pad(shown, (1, 0))[:, :-1]  # first token of an image
    counts = starts.sum(1).tolist()
    n = types.shape[0]
    if sum(counts) != batch["image_grid_thw"].shape[0]:  # a layout this does not read
        return list(range(n)), torch.arange(n), []
    grids = list(torch.split(batch["image_grid_thw"], counts))
    layouts: dict[tuple[bytes, bytes], int] = {}
    reps: list[int] = []
    rows_of = []
    for r in range(n):
        key = (types[r][mask[r].bool()].numpy().tobytes(), grids[r].numpy().tobytes())
        if key not in layouts:
            layouts[key] = len(reps)
            reps.append(r)
        rows_of.append(layouts[key])
    return reps, torch.tensor(rows_of), grids


def _frame_key(image: Any) -> tuple:
    """Identity of a frame: views of the same array memory are the same frame."""
    if isinstance(image, np.ndarray):
        return (image.__array_interface__["data"][0], image.shape, image.strides)
    return (id(image),)


def _reasoning_key(text: str) -> tuple[str, ...] | None:
    """The remaining actions of an answer as a comparable key; None when unreadable."""
    parsed = parse_answer(text)
    return None if "no_actions" in parsed.flag else tuple(parsed.remaining)


def _resolve(source: Episode | Frames, task: str | None, plan: list[str] | None
             ) -> tuple[Frames, str, list[str] | None]:
    if isinstance(source, Episode):
        return source.main_frames(), task or source.task, plan or source.plan
    if task is None:
        raise ProcvlmError("predict() with bare frames needs the task: pass task='...'")
    if len(source) == 0:
        raise ProcvlmError("predict() got no frames: pass at least one (H, W, 3) uint8 frame")
    return source, task, plan
