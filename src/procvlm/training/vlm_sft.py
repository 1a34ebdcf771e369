"""Supervised fine-tuning of a VLM progress model on ProcVQA with TRL's ``SFTTrainer``.

ProcVQA JSONL samples (``{"messages": [user, assistant], "images": [...]}``, one ``<image>`` per
image in the user text, paths relative to the VQA folder) become TRL prompt-completion samples
with typed content, so TRL's vision collator computes the loss on the answer tokens only
(``completion_only_loss``). Images are read lazily, resized to ``image_size`` and cut to the last
``max_frames``. LoRA (peft) or full fine-tuning; checkpoints every ``save_steps`` so a run
resumes; the final model is written as a procvlm VLM run folder (``adapter/`` or, merged or
full, ``model/``), with ``metrics.json`` (loss history, validation loss).

Multi-GPU runs go through ``accelerate launch`` with the configs in ``configs/accelerate/``
(see ``docs/vlm.md``); nothing here depends on the number of devices.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from procvlm._io import write_json
from procvlm.errors import ProcvlmError
from procvlm.models.vlm.configuration_vlm import DEFAULT_BASE, VLMConfig
from procvlm.models.vlm.modeling_vlm import (
    VLMProgressModel,
    load_processor,
    load_vlm,
    resolve_device,
    resolve_dtype,
)
from procvlm.models.vlm.engine import batch_vision_attention
from procvlm.models.vlm.processor_vlm import to_pil

log = logging.getLogger(__name__)

IMAGE_TOKEN = "<image>"
LORA_TARGETS = (r".*(language_model|text_model).*\."
                r"(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")


@dataclass(frozen=True)
class VLMTrainConfig:
    """Options of ``procvlm train --model vlm``."""

    data: str = field(metadata={"help": "ProcVQA folder with train.jsonl (+ val.jsonl)"})
    out: str = field(metadata={"help": "run folder: checkpoints/, config.json, model/ or adapter/"})
    base: str = field(default=DEFAULT_BASE, metadata={"help": "base model folder or hub id"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (ignored with full=True)"})
    lora_alpha: int | None = field(default=None, metadata={"help": "LoRA alpha (2 * r)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    full: bool = field(default=False, metadata={"help": "full fine-tuning instead of LoRA"})
    max_steps: int = field(default=-1, metadata={"help": "optimizer steps (-1: use epochs)"})
    epochs: float = field(default=1.0, metadata={"help": "passes over train.jsonl"})
    batch_size: int = field(default=1, metadata={"help": "samples per device per step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    lr: float | None = field(default=None, metadata={"help": "learning rate (2e-4 LoRA, 1e-5 full)"})
    image_size: int = field(default=224, metadata={"help": "longest image side in pixels"})
    max_frames: int = field(default=8, metadata={"help": "most images per sample (the last ones)"})
    seed: int = field(default=0, metadata={"help": "random seed"})
    merge_lora: bool = field(default=False, metadata={"help": "write merged weights (model/)"})
    resume: bool = field(default=False, metadata={"help": "continue from the newest checkpoint"})
    save_steps: int = field(default=200, metadata={"help": "steps between checkpoints"})
    logging_steps: int = field(default=10, metadata={"help": "steps between loss logs"})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "recompute activations: less memory, ~30% slower"})
    group_by_length: bool = field(
        default=True, metadata={"help": "batch samples of similar length together (less "
                                        "padding; lengths estimated from the JSONL)"})
    workers: int | None = field(
        default=None, metadata={"help": "dataloader workers decoding images (None: half the "
                                        "CPU cores, at most 8, on a GPU; 0 on the CPU)"})

    def __post_init__(self) -> None:
        if not self.full and self.lora_r < 1:
            raise ProcvlmError(f"lora_r={self.lora_r}: need a rank >= 1, or --full")
        if self.workers is not None and self.workers < 0:
            raise ProcvlmError(f"workers={self.workers}: need >= 0")
        for name in ("batch_size", "grad_accum", "max_frames", "save_steps", "logging_steps"):
            if getattr(self, name) < 1:
                raise ProcvlmError(f"{name}={getattr(self, name)}: need at least 1")
        if self.image_size < 8:
            raise ProcvlmError(f"image_size={self.image_size}: need at least 8 pixels")
        if self.max_steps < 1 and self.max_steps != -1:
            raise ProcvlmError(f"max_steps={self.max_steps}: need >= 1, or -1 to use epochs")
        if self.epochs <= 0:
            raise ProcvlmError(f"epochs={self.epochs}: need > 0")
        if self.lr is not None and self.lr <= 0:
            raise ProcvlmError(f"lr={self.lr}: need > 0")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1e-5 if self.full else 2e-4)


def to_prompt_completion(sample: dict[str, Any], max_frames: int) -> tuple[dict, int]:
    """A ProcVQA sample as TRL prompt-completion with typed content.

    The user text is split at its ``<image>`` placeholders (images first for progress samples,
    interleaved for segmentation ones). Beyond ``max_frames`` the earliest images go.

    Returns:
        (``{"prompt": [user], "completion": [assistant]}``, index of the first image kept).
    """
    msgs = sample.get("messages")
    if (not isinstance(msgs, list) or len(msgs) < 2 or msgs[0].get("role") != "user"
            or msgs[-1].get("role") != "assistant"):
        raise ProcvlmError("a ProcVQA sample needs messages [user, assistant] with string content")
    chunks = str(msgs[0]["content"]).split(IMAGE_TOKEN)
    n_images = len(chunks) - 1
    if n_images != len(sample.get("images", [])):
        raise ProcvlmError(f"sample has {n_images} <image> placeholders but "
                           f"{len(sample.get('images', []))} images: rebuild it with `procvlm vqa`")
    drop = max(n_images - max_frames, 0)
    content: list[dict] = []
    for k, chunk in enumerate(chunks):
        if chunk:
            content.append({"type": "text", "text": chunk})
        if k < n_images and k >= drop:
            content.append({"type": "image"})
    answer = [{"type": "text", "text": str(msgs[-1]["content"])}]
    return {"prompt": [{"role": "user", "content": content}],
            "completion": [{"role": "assistant", "content": answer}]}, drop


class ProcVQADataset(torch.utils.data.Dataset):
    """One ProcVQA JSONL split, images read lazily (PIL, longest side ``image_size``)."""

    def __init__(self, root: str | Path, split: str, image_size: int, max_frames: int) -> None:
        self.root = Path(root)
        path = self.root / f"{split}.jsonl"
        if not path.is_file():
            raise ProcvlmError(f"{path} not found: pass the folder written by `procvlm vqa`")
        self.samples = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    self.samples.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ProcvlmError(f"{path}:{n} is not JSON ({e}): rebuild it with "
                                       "`procvlm vqa`") from e
        if not self.samples:
            raise ProcvlmError(f"{path} has no samples: rebuild it with `procvlm vqa`")
        self.image_size = image_size
        self.max_frames = max_frames
        first = self.samples[0].get("images", [])
        if first and not (self.root / first[0]).is_file():
            raise ProcvlmError(f"image {self.root / first[0]} not found: image paths are "
                               f"relative to {self.root}")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if i >= len(self.samples):
            raise IndexError(i)
        sample = self.samples[i]
        example, drop = to_prompt_completion(sample, self.max_frames)
        images = []
        for rel in sample.get("images", [])[drop:]:
            try:
                with Image.open(self.root / rel) as im:
                    images.append(to_pil(im, self.image_size))
            except OSError as e:
                raise ProcvlmError(f"cannot read image {self.root / rel}: {e}") from e
        return {**example, "images": images}

    def lengths(self) -> list[int]:
        """A rough token count per sample from the JSONL alone (text / 4, plus the image tokens
        of a Qwen-VL processor at ``image_size``: one per 32 x 32 pixels): what length-grouped
        batching sorts by, without reading an image."""
        per_image = max(1, (self.image_size // 32) ** 2)
        return [len(json.dumps(s.get("messages", ""))) // 4
                + per_image * min(len(s.get("images", [])), self.max_frames) for s in self.samples]

    def as_hf_dataset(self):
        """A ``datasets.Dataset`` of sample indices whose transform reads the samples, as TRL
        wants a ``Dataset`` but the images are only read when a batch needs them."""
        import datasets

        def transform(batch: dict[str, list]) -> dict[str, list]:
            items = [self[int(i)] for i in batch["index"]]
            return {k: [it[k] for it in items] for k in ("prompt", "completion", "images")}

        return datasets.Dataset.from_dict({"index": list(range(len(self)))}).with_transform(
            transform)


def recorded_settings(data: str | Path) -> dict[str, str]:
    """The camera and label scheme ``procvlm vqa`` recorded in ``manifest.json`` (those it
    knows), which the trained model's config carries."""
    path = Path(data) / "manifest.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    return {k: str(manifest[k]) for k in ("camera", "scheme") if manifest.get(k)}


def _checkpoints(out: Path) -> list[Path]:
    ckpt = out / "checkpoints"
    found = [p for p in ckpt.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def _sft_args(config: VLMTrainConfig, out: Path, has_val: bool):
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    workers = config.workers if config.workers is not None else (
        max(1, min(8, (os.cpu_count() or 2) // 2)) if cuda else 0)
    return SFTConfig(
        output_dir=str(out / "checkpoints"), max_steps=config.max_steps,
        num_train_epochs=config.epochs, per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum, learning_rate=config.learning_rate,
        lr_scheduler_type="constant_with_warmup" if config.max_steps < 50 else "cosine",
        warmup_steps=0 if config.max_steps < 50 else 10,
        seed=config.seed, logging_steps=config.logging_steps, save_steps=config.save_steps,
        save_total_limit=2, save_strategy="steps", eval_strategy="no",
        completion_only_loss=True, max_length=None, remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        activation_checkpointing=config.gradient_checkpointing,
        use_cpu=not cuda, bf16=cuda and torch.cuda.is_bf16_supported(),
        report_to="none", dataloader_num_workers=workers,
        dataloader_persistent_workers=workers > 0, dataloader_prefetch_factor=4 if workers else None,
        tf32=cuda or None, disable_tqdm=not cuda)


def _peft_config(config: VLMTrainConfig):
    if config.full:
        return None
    from peft import LoraConfig

    return LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha or 2 * config.lora_r,
                      lora_dropout=config.lora_dropout, target_modules=LORA_TARGETS,
                      task_type="CAUSAL_LM")


def _trainer_class(lengths: list[int] | None) -> type:
    """``SFTTrainer``, or a subclass whose batches group samples of similar ``lengths``.

    TRL packs and pads free only text datasets, and the Trainer's own length grouping would read
    every sample (its images) to measure it; this one takes lengths estimated from the JSONL.
    """
    from transformers.trainer_pt_utils import LengthGroupedSampler
    from trl import SFTTrainer

    if lengths is None:
        return SFTTrainer

    class LengthGroupedSFTTrainer(SFTTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return LengthGroupedSampler(
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                lengths=lengths, generator=torch.Generator().manual_seed(self.args.seed))

    return LengthGroupedSFTTrainer


def build_trainer(config: VLMTrainConfig):
    """The ``SFTTrainer`` for ``config`` (model, processor, datasets, LoRA) ready to train."""

    out = Path(config.out)
    train = ProcVQADataset(config.data, "train", config.image_size, config.max_frames)
    has_val = (Path(config.data) / "val.jsonl").is_file()
    val = ProcVQADataset(config.data, "val", config.image_size, config.max_frames) if has_val \
        else None
    device = resolve_device(None)
    model = load_vlm(config.base, dtype=resolve_dtype("auto", device), device=device)
    batch_vision_attention(model)
    model.train()
    processor = load_processor(config.base)
    grouped = config.group_by_length and config.batch_size > 1
    trainer_class = _trainer_class(train.lengths() if grouped else None)
    return trainer_class(model=model, args=_sft_args(config, out, has_val),
                      train_dataset=train.as_hf_dataset(),
                      eval_dataset=val.as_hf_dataset() if val is not None else None, processing_class=processor,
                      peft_config=_peft_config(config))


def train_vlm(config: VLMTrainConfig) -> Path:
    """Fine-tune, then write the run folder (``config.json`` + ``adapter/`` or ``model/``).

    Returns:
        The run folder.
    """
    out = Path(config.out)
    found = _checkpoints(out)
    if found and not config.resume:
        raise ProcvlmError(f"{out} already has checkpoints ({found[-1].name}): pass --resume to "
                           "continue them, or a new --out")
    if config.resume and not found:
        log.warning("no checkpoint in %s/checkpoints: starting from the base model", out)
    trainer = build_trainer(config)
    result = trainer.train(resume_from_checkpoint=str(found[-1]) if config.resume and found
                           else None)
    metrics: dict[str, Any] = {"train": result.metrics, "config": asdict(config),
                               "loss_history": [
                                   {"step": h["step"], "loss": h["loss"]}
                                   for h in trainer.state.log_history if "loss" in h]}
    if trainer.eval_dataset is not None:
        metrics["val"] = trainer.evaluate()
    if trainer.is_world_process_zero():
        window = min(config.max_frames, 8)
        vlm_cfg = VLMConfig(base=config.base, image_size=config.image_size, window=window,
                            **recorded_settings(config.data))
        processor = trainer.processing_class
        model = trainer.accelerator.unwrap_model(trainer.model).eval()
        VLMProgressModel(model, processor, vlm_cfg).save_pretrained(out, merge=config.merge_lora)
        write_json(out / "metrics.json", metrics)
        log.info("wrote the VLM progress model to %s", out)
    return out
