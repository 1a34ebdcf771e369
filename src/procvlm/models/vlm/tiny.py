"""Tiny random-weight VLMs of real architectures (Qwen3-VL, Qwen2.5-VL, SmolVLM / Idefics3),
built from config objects with a byte-level BPE tokenizer trained on the spot.

Nothing is downloaded: tests and benchmarks call :func:`build_tiny_vlm` to write a folder that
``AutoProcessor`` / ``AutoModelForImageTextToText`` load like any hub checkpoint. The vision
towers and image processors are cut down to a few patches per image, and the processors are
built without a video processor, so everything runs on a CPU-only torch without torchvision.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from procvlm.data import vocab
from procvlm.errors import ProcvlmError
from procvlm.models.vlm.processor_vlm import progress_answer, progress_prompt

log = logging.getLogger(__name__)

ARCHITECTURES = ("qwen3_vl", "qwen2_5_vl", "smolvlm")

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
IDEFICS_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<image>",
                    "<fake_token_around_image>", "<global-img>"]

# Qwen2's pre-tokenizer pattern: digits are split one by one, which the digit readout relies on.
_SPLIT_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                  r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' or 'image' in part or 'image_url' in part %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

IDEFICS_CHAT_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def vocabulary_corpus() -> list[str]:
    """Sentences covering the ProcVQA prompts and answers (tasks, atomic actions, numbers)."""
    objects = ["puck", "goal", "drawer", "door", "button", "handle", "window", "peg", "hole",
               "lever", "block", "shelf", "bin", "cup", "plate", "faucet", "box", "lid"]
    actions = [f(o) for o in objects for f in (vocab.grasp, vocab.open_, vocab.close,
                                               vocab.press, vocab.lift)]
    actions += [vocab.place(a, b) for a in objects[:6] for b in objects[6:12]]
    actions += [vocab.push(o, "goal") for o in objects[:6]] + [vocab.insert("peg", "hole")]
    lines = []
    for i in range(60):
        task = f"{actions[i % len(actions)].lower()} and {actions[(3 * i) % len(actions)].lower()}"
        lines.append(progress_prompt(task))
        lines.append(progress_answer(actions[i % 7:i % 7 + 1 + i % 3], (i * 7 % 101) / 100.0))
    lines.append(progress_answer([], 1.0))
    lines.extend(f"{n}.{m:02d}% 0.{n} {n}/{m}" for n in range(0, 100, 7) for m in (0, 25, 50))
    lines.append("User: Assistant: system user assistant The task has been completed.")
    return lines


def train_tokenizer(specials: list[str], corpus: Iterable[str] | None = None,
                    vocab_size: int = 600):
    """A byte-level BPE tokenizer (Qwen2's pre-tokenizer, digits one by one) over ``corpus``.

    Returns:
        A ``PreTrainedTokenizerFast`` with ``<|endoftext|>`` as pad/eos token and ``specials``
        as special tokens.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLIT_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(list(corpus or vocabulary_corpus()), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>",
                                   additional_special_tokens=specials[1:])


def _write_processor(processor, directory: Path) -> None:
    """Save the processor's parts and a ``processor_config.json`` naming the real class, so a
    machine with torchvision loads it with ``AutoProcessor`` like a hub checkpoint."""
    from procvlm.models.vlm.modeling_vlm import save_processor

    save_processor(processor, directory)


def _qwen_text(tok, hidden: int, layers: int, mrope: list[int], interleaved: bool) -> dict:
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope}
    if interleaved:
        rope["mrope_interleaved"] = True
    return dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                head_dim=hidden // 4, max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                rope_parameters=rope)


def _qwen_ids(tok) -> dict:
    ids = {k: tok.convert_tokens_to_ids(k) for k in QWEN_SPECIALS}
    return dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                vision_start_token_id=ids["<|vision_start|>"],
                vision_end_token_id=ids["<|vision_end|>"])


def _qwen_image_processor(image_size: int, patch: int):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(patch_size=patch, temporal_patch_size=2, merge_size=2,
                                    size={"shortest_edge": (2 * patch) ** 2,
                                          "longest_edge": image_size ** 2})


def _mrope(hidden: int) -> list[int]:
    """mrope sections (t, h, w) over the head_dim / 2 rotary pairs, e.g. [2, 3, 3] for 8."""
    pairs = hidden // 8
    return [pairs - 2 * (3 * pairs // 8), 3 * pairs // 8, 3 * pairs // 8]


def _build_qwen3_vl(tok, hidden: int, layers: int, image_size: int, patch: int):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from procvlm.models.vlm.modeling_vlm import image_only_processor_class

    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=patch,
                  temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=hidden,
                  num_position_embeddings=(image_size // patch) ** 2, deepstack_visual_indexes=[0])
    cfg = Qwen3VLConfig(vision_config=vision, tie_word_embeddings=True, **_qwen_ids(tok),
                        text_config=_qwen_text(tok, hidden, layers, _mrope(hidden), True))
    cls = image_only_processor_class("Qwen3VLProcessor")
    proc = cls(image_processor=_qwen_image_processor(image_size, patch), tokenizer=tok,
               chat_template=QWEN_CHAT_TEMPLATE)
    return Qwen3VLForConditionalGeneration(cfg), proc, "Qwen3VLProcessor"


def _build_qwen2_5_vl(tok, hidden: int, layers: int, image_size: int, patch: int):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from procvlm.models.vlm.modeling_vlm import image_only_processor_class

    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=patch,
                  temporal_patch_size=2, spatial_merge_size=2, out_hidden_size=hidden,
                  window_size=2 * patch * 2, fullatt_block_indexes=[1])
    text = _qwen_text(tok, hidden, layers, _mrope(hidden), False)
    text.pop("head_dim")
    cfg = Qwen2_5_VLConfig(vision_config=vision, text_config=text, tie_word_embeddings=True,
                           **_qwen_ids(tok))
    cls = image_only_processor_class("Qwen2_5_VLProcessor")
    proc = cls(image_processor=_qwen_image_processor(image_size, patch), tokenizer=tok,
               chat_template=QWEN_CHAT_TEMPLATE)
    return Qwen2_5_VLForConditionalGeneration(cfg), proc, "Qwen2_5_VLProcessor"


def _build_smolvlm(tok, hidden: int, layers: int, image_size: int, patch: int):
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    scale = 2
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=2, image_size=image_size, patch_size=patch)
    text = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=4096, pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id,
                tie_word_embeddings=True)
    cfg = Idefics3Config(vision_config=vision, text_config=text, scale_factor=scale,
                         image_token_id=tok.convert_tokens_to_ids("<image>"),
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    ip = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": image_size},
                                   max_image_size={"longest_edge": image_size})
    seq_len = (image_size // patch) ** 2 // scale ** 2
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=seq_len,
                             chat_template=IDEFICS_CHAT_TEMPLATE)
    return Idefics3ForConditionalGeneration(cfg), proc, "Idefics3Processor"


_BUILDERS = {"qwen3_vl": _build_qwen3_vl, "qwen2_5_vl": _build_qwen2_5_vl,
             "smolvlm": _build_smolvlm}


def build_tiny_vlm(directory: str | Path, arch: str = "qwen3_vl", *, hidden: int = 64,
                   layers: int = 2, image_size: int = 32, patch: int = 8, seed: int = 0) -> Path:
    """Write a tiny random-weight VLM + processor folder that ``VLMProgressModel`` can load.

    Args:
        directory: output folder (created).
        arch: one of ``ARCHITECTURES``.
        hidden: text hidden size (a multiple of 32).
        layers: text decoder layers.
        image_size: the largest image side the processor keeps (a multiple of 2 * patch).
        patch: vision patch size.
        seed: torch seed for the random weights.

    Returns:
        The folder.
    """
    import torch

    if arch not in _BUILDERS:
        raise ProcvlmError(f"unknown tiny VLM architecture {arch!r}: choose one of "
                           f"{', '.join(ARCHITECTURES)}")
    if hidden % 32 or image_size % (2 * patch):
        raise ProcvlmError(f"tiny VLM needs hidden % 32 == 0 and image_size % (2 * patch) == 0, "
                           f"got hidden={hidden}, image_size={image_size}, patch={patch}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(IDEFICS_SPECIALS if arch == "smolvlm" else QWEN_SPECIALS)
    torch.manual_seed(seed)
    model, processor, _ = _BUILDERS[arch](tok, hidden, layers, image_size, patch)
    model.generation_config.pad_token_id = tok.pad_token_id
    end = "<end_of_utterance>" if arch == "smolvlm" else "<|im_end|>"
    model.generation_config.eos_token_id = [tok.eos_token_id, tok.convert_tokens_to_ids(end)]
    model.save_pretrained(directory)
    _write_processor(processor, directory)
    log.info("wrote a tiny %s VLM (%d parameters) to %s", arch,
             sum(p.numel() for p in model.parameters()), directory)
    return directory


def write_tiny_vqa(directory: str | Path, samples: int = 6, *, frames: int = 2,
                   image_size: int = 32, progress: float | None = None, seed: int = 0) -> Path:
    """Write a tiny ProcVQA folder (``train.jsonl``, ``val.jsonl``, ``images/``) of progress
    samples over random images, in the layout ``procvlm vqa`` writes.

    Args:
        directory: output folder.
        samples: training samples (val gets 2).
        frames: images per sample.
        image_size: image side in pixels.
        progress: the answer's progress for every sample (None: varied per sample).
        seed: numpy seed for the images.
    """
    import json

    import numpy as np
    from PIL import Image

    from procvlm._io import atomic_path, write_text

    directory = Path(directory)
    rng = np.random.default_rng(seed)
    plan = [vocab.grasp("puck"), vocab.place("puck", "goal")]
    splits = {"train": samples, "val": 2}
    for split, n in splits.items():
        rows = []
        for i in range(n):
            rels = []
            for k in range(frames):
                rel = f"images/{split}{i:04d}/{k:06d}.jpg"
                (directory / rel).parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(directory / rel) as tmp:
                    Image.fromarray(rng.integers(0, 255, (image_size, image_size, 3), np.uint8)
                                    ).save(tmp, format="JPEG")
                rels.append(rel)
            p = progress if progress is not None else (i % 5) / 4.0
            remaining = plan[int(p * len(plan)):] if p < 1.0 else []
            user = "<image>" * frames + progress_prompt("place the puck onto the goal")
            rows.append(json.dumps({"messages": [{"role": "user", "content": user},
                                                 {"role": "assistant",
                                                  "content": progress_answer(remaining, p)}],
                                    "images": rels, "family": "progress"}))
        write_text(directory / f"{split}.jsonl", "\n".join(rows) + "\n")
    return directory
