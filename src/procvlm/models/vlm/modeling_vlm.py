"""``VLMProgressModel``: a progress model over any ``AutoModelForImageTextToText`` (Qwen3-VL by
default, Qwen2.5-VL, SmolVLM / Idefics3) and its processor.

At every frame the model sees a window of recent frames and the task, asked exactly as in
training (``procvlm.vqa.templates.progress_prompt``, images first, through the processor's chat
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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from procvlm._io import write_json, write_text
from procvlm.data.episode import Episode, Frames
from procvlm.errors import ProcvlmError
from procvlm.models.base import ProgressModel, ProgressPrediction
from procvlm.models.vlm.configuration_vlm import VLMConfig
from procvlm.models.vlm.parsing import parse_answers, stage_of
from procvlm.models.vlm.readout import TAG, tag_expectations, teacher_forced_progress
from procvlm.vqa.templates import progress_prompt

log = logging.getLogger(__name__)


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
             device: torch.device | str = "cpu", merge: bool = True):
    """Load the base model (and LoRA adapter, merged unless ``merge`` is False), eval mode."""
    from transformers import AutoModelForImageTextToText

    try:
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=dtype)
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


def to_pil(frame: np.ndarray | Image.Image, image_size: int | None) -> Image.Image:
    """An RGB PIL image whose longest side is at most ``image_size``."""
    img = frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, np.uint8))
    img = img.convert("RGB")
    if image_size is not None and max(img.size) > image_size:
        scale = image_size / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.BICUBIC)
    return img


def window_indices(t: int, window: int, stride: int) -> list[int]:
    """Frame indices shown at step ``t``: up to ``window`` frames ending at ``t``."""
    return sorted({max(t - k * stride, 0) for k in range(window)})


@dataclass
class Generation:
    """Answers of one generation batch: ``text`` and, with the probability readout,
    ``expected`` progress (None where the answer has no readable number)."""

    text: list[str]
    expected: list[float | None] | None = None


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
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @classmethod
    def from_base(cls, base: str, adapter: str | None = None, **overrides: Any) -> VLMProgressModel:
        """Load ``base`` (a local folder or hub id) and an optional LoRA adapter."""
        return cls.from_config(VLMConfig(base=str(base), adapter=adapter, **overrides))

    @classmethod
    def from_config(cls, config: VLMConfig) -> VLMProgressModel:
        """Load the model and processor a ``VLMConfig`` names."""
        device = resolve_device(config.device)
        model = load_vlm(config.base, config.adapter, dtype=resolve_dtype(config.dtype, device),
                         device=device)
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
        content = [{"type": "image"} for _ in range(num_images)]
        return [{"role": "user", "content": [*content,
                                             {"type": "text", "text": progress_prompt(task)}]}]

    def chat_prompt(self, messages: list[dict]) -> str:
        """The processor's chat template applied to ``messages`` with the generation prompt."""
        return self.processor.apply_chat_template(messages, add_generation_prompt=True,
                                                  tokenize=False)

    def encode(self, prompts: list[str], images: list[list[Image.Image]]) -> dict:
        """Processor outputs for a batch, left padded, on the model device."""
        has_images = any(images)
        batch = self.processor(text=prompts, images=images if has_images else None,
                               return_tensors="pt", padding=True, padding_side="left")
        return {k: (v.to(self.device) if torch.is_tensor(v) else v) for k, v in batch.items()}

    @torch.no_grad()
    def generate_prompts(self, prompts: list[str], images: list[list[Image.Image]],
                         max_new_tokens: int | None = None, with_logits: bool = False
                         ) -> Generation:
        """Greedy answers to rendered prompts, batched by ``config.batch_size``."""
        texts: list[str] = []
        expected: list[float | None] = []
        n = max_new_tokens or self.config.max_new_tokens
        for i in range(0, len(prompts), self.config.batch_size):
            inputs = self.encode(prompts[i:i + self.config.batch_size],
                                 images[i:i + self.config.batch_size])
            out = self.model.generate(**inputs, max_new_tokens=n, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id,
                                      output_logits=with_logits, return_dict_in_generate=True)
            new = out.sequences[:, inputs["input_ids"].shape[1]:]
            texts += self.processor.batch_decode(new, skip_special_tokens=True)
            if with_logits:
                expected += tag_expectations(new, out.logits, self.tokenizer)
        return Generation(texts, expected if with_logits else None)

    def chat(self, conversations: list[list[dict]], images: list[list[Image.Image]],
             max_new_tokens: int | None = None) -> list[str]:
        """Answers to chat conversations (typed content, ``{"type": "image"}`` placeholders)."""
        prompts = [self.chat_prompt(c) for c in conversations]
        imgs = [[to_pil(im, self.config.image_size) for im in ims] for ims in images]
        return self.generate_prompts(prompts, imgs, max_new_tokens).text

    # ------------------------------------------------------------------ progress
    def _requests(self, items: Sequence[tuple[Episode | Frames, str | None, list[str] | None]],
                  window: int) -> tuple[list[str], list[list[Image.Image]], list[tuple]]:
        """Prompts and images of every frame of every item, and (frames, task, plan) each."""
        prompts, images, resolved = [], [], []
        for source, task, plan in items:
            frames, task, plan = _resolve(source, task, plan)
            resolved.append((len(frames), task, plan))
            cache: dict[int, Image.Image] = {}
            for t in range(len(frames)):
                idx = window_indices(t, window, self.config.stride)
                for i in idx:
                    if i not in cache:
                        cache[i] = to_pil(frames[i], self.config.image_size)
                images.append([cache[i] for i in idx])
                prompts.append(self.chat_prompt(self.messages(len(idx), task)))
                cache = {i: cache[i] for i in idx}  # keep only what the next window can reuse
        return prompts, images, resolved

    def predict_batch(self, items: Sequence[tuple[Episode | Frames, str | None, list[str] | None]],
                      *, window: int | None = None) -> list[ProgressPrediction]:
        """``predict`` for many episodes at once: all their frames share generation batches.

        Args:
            items: (episode or frames, task, plan) triples, as ``predict`` takes them.
            window: frames per prompt (defaults to ``config.window``).
        """
        prompts, images, resolved = self._requests(items, window or self.config.window)
        gen = self.generate_prompts(prompts, images, with_logits=self.config.readout == "probs")
        out, start = [], 0
        for n, _task, plan in resolved:
            texts = gen.text[start:start + n]
            parsed = parse_answers(texts)
            progress = [p.progress for p in parsed]
            flags = [p.flag for p in parsed]
            if gen.expected is not None:
                for k, e in enumerate(gen.expected[start:start + n]):
                    if e is not None:
                        progress[k] = e
            remaining = [p.remaining for p in parsed]
            out.append(ProgressPrediction(
                progress=np.asarray(progress, np.float32),
                stage=np.asarray([stage_of(r, plan) for r in remaining], np.int64),
                remaining=remaining, text=texts, flags=flags,
                extra={"readout": self.config.readout}))
            start += n
        return out

    def predict(self, episode: Episode | Frames, task: str | None = None,
                plan: list[str] | None = None, *, window: int | None = 8) -> ProgressPrediction:
        """Estimate progress at every frame (see ``ProgressModel.predict``)."""
        return self.predict_batch([(episode, task, plan)], window=window)[0]

    @torch.no_grad()
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
        out: list[float | None] = []
        bs = self.config.batch_size
        for i in range(0, len(tasks), bs):
            imgs = [[to_pil(im, self.config.image_size) for im in ims] for ims in images[i:i + bs]]
            prompts = [self.chat_prompt(self.messages(len(ims), task)) + prefix
                       for ims, task, prefix in zip(imgs, tasks[i:i + bs],
                                                    answer_prefixes[i:i + bs])]
            out += teacher_forced_progress(self.model, self.tokenizer, self.encode(prompts, imgs))
        return out


def _resolve(source: Episode | Frames, task: str | None, plan: list[str] | None
             ) -> tuple[Frames, str, list[str] | None]:
    if isinstance(source, Episode):
        return source.main_frames(), task or source.task, plan or source.plan
    if task is None:
        raise ProcvlmError("predict() with bare frames needs the task: pass task='...'")
    if len(source) == 0:
        raise ProcvlmError("predict() got no frames: pass at least one (H, W, 3) uint8 frame")
    return source, task, plan
