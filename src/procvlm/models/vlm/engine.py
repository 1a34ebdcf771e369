"""Batched generation for the VLM progress model: prompts from many frames and episodes go
through the model in large batches while worker threads prepare the next batches.

Three things keep the accelerator busy:

- **Each frame preprocessed and encoded once.** A window of ``w`` frames shows each frame in
  ``w`` prompts; with a processor that reports ``image_grid_thw`` (the Qwen-VL family) every
  distinct image of a batch is preprocessed once and its patches are reused by every prompt that
  shows it (:func:`encode`, equal to the processor's own output); with Qwen3-VL the vision tower
  also runs once per distinct image (:func:`shared_image_features`). Other processors run as
  they are.
- **Preprocessing off the critical path.** :class:`Prefetcher` encodes the next batches in
  worker threads (PIL and the tokenizer release the GIL) and pins their tensors, while the model
  runs the current batch.
- **Length-sorted batches.** Prompts are sorted by length (the first frames of an episode show
  fewer images), so little padding is computed; results come back in the callers' order.

- **A decoding step captured once** (``cache="static"``). With a dynamic cache every decoding
  step launches each kernel from Python (the step costs the same at any batch size). A static
  KV cache has fixed shapes, so transformers compiles the step (``torch.compile``, CUDA graphs)
  on a GPU. Its shapes are the batch and the cache length, never the prompt length (the 4-D
  mask is built outside the compiled step): :class:`StaticCachePool` rounds the batch up to a
  power of two (at most the configured batch, by repeating a prompt) and the cache length up to
  a multiple of :data:`CACHE_STEP`, and keeps one transformers ``StaticCache`` per bucket, reset
  and passed back to ``generate`` each batch, so the compiled step and its CUDA graph are reused
  at the same memory addresses instead of recorded again for every new cache.

transformers' continuous-batching manager (``generate_batch``, ``init_continuous_batching``) takes
token ids only, no ``pixel_values``, so it cannot serve an image-text model; generation here is
``model.generate`` with SDPA attention.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from procvlm.models.vlm.processor_vlm import to_pil

log = logging.getLogger(__name__)


@dataclass
class Generation:
    """Answers to a list of prompts, in the order given.

    Attributes:
        text: the decoded answers.
        expected: with the probability readout, the expected progress per answer (None where
            the answer has no readable number); None otherwise.
        tokens: generated tokens per answer, counted from the generated ids up to and including
            the first end token.
        prompt_tokens: prompt tokens per answer (padding excluded).
        finished: True where the answer ended with an end token, False where ``max_new_tokens``
            cut it.
        done: asked for (``with_done``), the model's probability that the task is finished
            per answer (``readout.DoneProbe``; None where the answer does not open as a
            trained answer does); None otherwise.
    """

    text: list[str]
    expected: list[float | None] | None = None
    tokens: list[int] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)
    done: list[float | None] | None = None


class PendingImage:
    """A frame to show, resized to a PIL image (``processor_vlm.to_pil``) by whoever encodes
    it: a prefetch worker, off the main thread. The same object in several windows is one
    image (converted once, preprocessed once per batch).

    Args:
        frame: an (H, W, 3) uint8 array or a PIL image.
        image_size: the longest side to keep (None: as is).
    """

    __slots__ = ("frame", "image_size", "_pil")

    def __init__(self, frame: Any, image_size: int | None) -> None:
        self.frame = frame
        self.image_size = image_size
        self._pil: Image.Image | None = None

    def pil(self) -> Image.Image:
        """The PIL image (converted on the first call; two workers asking at once may both
        convert it, to equal images)."""
        pil = self._pil
        if pil is None:
            pil = self._pil = to_pil(self.frame, self.image_size)
        return pil


def as_pil(image: Image.Image | PendingImage) -> Image.Image:
    """``image`` as a PIL image."""
    return image.pil() if isinstance(image, PendingImage) else image


def fast_path(processor) -> bool:
    """Whether :func:`encode` can preprocess each distinct image once for ``processor``."""
    return (hasattr(processor, "replace_image_token") and hasattr(processor, "image_token")
            and getattr(getattr(processor, "image_processor", None), "merge_size", None)
            is not None)


def _encode_images(processor, images: list[list[Image.Image]], distinct: bool = False) -> dict:
    """Preprocess each distinct image object of ``images`` once; the patches of every shown
    image in prompt order, with their grids.

    With ``distinct=True`` the patches of each distinct image appear once, and ``image_order``
    (one index per shown image, in prompt order) says which distinct image each shown image is
    (see :func:`shared_image_features`)."""
    unique: dict[int, int] = {}
    pictures: list[Image.Image] = []
    for ims in images:
        for im in ims:
            if id(im) not in unique:
                unique[id(im)] = len(pictures)
                pictures.append(as_pil(im))
    out = processor.image_processor(images=pictures, return_tensors="pt")
    grid = out["image_grid_thw"]
    order = [unique[id(im)] for ims in images for im in ims]
    if distinct:
        return {"pixel_values": out["pixel_values"], "image_grid_thw": grid[order],
                "image_order": torch.tensor(order)}
    chunks = torch.split(out["pixel_values"], grid.prod(-1).tolist())
    return {"pixel_values": torch.cat([chunks[k] for k in order]),
            "image_grid_thw": grid[order]}


def encode(processor, prompts: list[str], images: list[list[Image.Image]],
           distinct: bool = False) -> dict:
    """Processor outputs for a batch of prompts, left padded, on the CPU.

    Args:
        processor: the model's processor.
        prompts: rendered chat prompts, one image placeholder per shown image.
        images: the images each prompt shows, PIL images or :class:`PendingImage` (the same
            object may appear in many prompts).
        distinct: the patches of each distinct image once, with ``image_order`` (Qwen-VL
            processors only; others ignore it): the input of :func:`shared_image_features`.
    """
    has_images = any(images)
    if not has_images or not fast_path(processor):
        shown = [[as_pil(im) for im in ims] for ims in images] if has_images else None
        return dict(processor(text=prompts, images=shown, return_tensors="pt", padding=True,
                              padding_side="left"))
    vision = _encode_images(processor, images, distinct)
    token, marker, k = processor.image_token, "\x00procvlm-image\x00", 0
    texts = []
    for prompt in prompts:
        text = prompt
        while token in text:
            text = text.replace(token, marker * processor.replace_image_token(vision, k)
                                .count(token), 1)
            k += 1
        texts.append(text.replace(marker, token))
    batch = dict(processor.tokenizer(texts, return_tensors="pt", padding=True,
                                     padding_side="left"))
    if getattr(processor, "return_mm_token_type_ids", False):
        ids = batch["input_ids"].tolist()
        batch["mm_token_type_ids"] = torch.tensor(processor.create_mm_token_type_ids(ids))
    return {**batch, **vision}


def shares_image_features(model) -> bool:
    """Whether :func:`shared_image_features` can encode ``model``'s images (Qwen3-VL: its
    ``generate`` takes pre-encoded ``mm_encoder_outputs``)."""
    config = getattr(model, "config", None)
    supports = getattr(model, "_supports_mm_encoder_outputs", None)
    return (getattr(config, "model_type", "") == "qwen3_vl" and supports is not None
            and supports() and hasattr(getattr(model, "model", None), "get_image_features"))


def shared_image_features(model, batch: dict) -> dict:
    """Run the vision tower once per distinct image of a ``distinct=True`` batch.

    A window of ``w`` frames shows each frame in ``w`` prompts; the tower encodes it once and
    its features are repeated for every prompt that shows it, passed to ``generate`` as
    ``mm_encoder_outputs`` instead of ``pixel_values``. The same features as encoding every
    shown image (tested), at ``1/w`` of the tower's cost.

    Args:
        model: a model for which :func:`shares_image_features` holds.
        batch: ``encode(..., distinct=True)`` outputs on the model's device (``image_order``
            may stay on the CPU).
    """
    batch = dict(batch)
    order = batch.pop("image_order").tolist()
    grid = batch["image_grid_thw"]
    first: dict[int, int] = {}
    for shown, k in enumerate(order):
        first.setdefault(k, shown)
    index = torch.tensor([first[k] for k in range(len(first))], device=grid.device)
    out = model.model.get_image_features(batch.pop("pixel_values"), grid[index],
                                         return_dict=True)
    out.pooler_output = tuple(out.pooler_output[k] for k in order)
    if getattr(out, "deepstack_features", None) is not None:
        out.deepstack_features = [tuple(f[k] for k in order) for f in out.deepstack_features]
    return {**batch, "mm_encoder_outputs": {"image": out}}


_FORKED: dict[int, Callable[[list[int]], dict]] = {}
"""The encoding functions of the running process-mode prefetchers, by key: a forked child
inherits this table and runs its entry (a closure over the prompts and frames cannot be
pickled, so only the key and the prompt indices travel)."""


def _forked_job(key: int, idx: list[int]) -> dict:
    torch.set_num_threads(1)  # each child one core, as a thread would be
    return _FORKED[key](idx)


class Prefetcher:
    """Encode batches in workers ahead of the model.

    Args:
        encode_fn: builds one batch's inputs (CPU tensors) from its prompt indices.
        workers: workers; 0 encodes inline, in the caller's thread.
        pin: pin the tensors' memory (for asynchronous copies to a GPU).
        processes: encode in forked worker processes instead of threads. Encoding is partly
            Python (the chat text, token types, rotary positions) and holds the GIL; in
            threads it competes with the main thread, which launches every kernel. Children
            hand their tensors back through shared memory (torch's reductions); pinning and
            :meth:`submit` stay on threads of this process. The encoding function must not
            touch the GPU (it does not: the inputs are built on the CPU).
    """

    def __init__(self, encode_fn: Callable[[list[int]], dict], workers: int, pin: bool,
                 processes: bool = False) -> None:
        self.encode_fn = encode_fn
        self.workers = workers
        self.pin = pin
        self.processes = processes
        self._pool: ThreadPoolExecutor | None = None
        self._children: ProcessPoolExecutor | None = None
        self._key = id(self)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` on the workers while batches are being fetched (after the batches
        already queued), inline otherwise; its future."""
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        done: Future = Future()
        done.set_result(fn(*args))
        return done

    def _job(self, idx: list[int]) -> dict:
        if self._children is not None:
            batch = self._children.submit(_forked_job, self._key, idx).result()
        else:
            batch = self.encode_fn(idx)
        if self.pin:
            batch = {k: (v.pin_memory() if torch.is_tensor(v) else v) for k, v in batch.items()}
        return batch

    def __call__(self, batches: Sequence[list[int]]) -> Iterator[tuple[list[int], dict]]:
        """Yield (prompt indices, encoded inputs) per batch, in order."""
        if self.workers == 0:
            for idx in batches:
                yield idx, self._job(idx)
            return
        with contextlib.ExitStack() as stack:
            if self.processes:
                _FORKED[self._key] = self.encode_fn
                stack.callback(_FORKED.pop, self._key, None)
                self._children = stack.enter_context(ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("fork")))
                stack.callback(setattr, self, "_children", None)
            pool = stack.enter_context(ThreadPoolExecutor(
                self.workers, thread_name_prefix="procvlm-encode"))
            self._pool = pool
            try:
                pending: list[tuple[list[int], Future]] = []
                it = iter(batches)
                for idx in it:
                    pending.append((idx, pool.submit(self._job, idx)))
                    if len(pending) > self.workers:
                        break
                while pending:
                    idx, fut = pending.pop(0)
                    nxt = next(it, None)
                    if nxt is not None:
                        pending.append((nxt, pool.submit(self._job, nxt)))
                    yield idx, fut.result()
            finally:
                self._pool = None  # queued jobs still finish before the pool closes


# ----------------------------------------------------------------------------- static caches
CACHE_STEP = 64
"""Static cache lengths are multiples of this many tokens (a prompt of 259 tokens and 40 new
ones share the 320 bucket with a 286-token prompt and 8 new ones)."""


def batch_bucket(n: int, batch_size: int) -> int:
    """Rows a batch of ``n`` prompts is padded to: the next power of two, at most
    ``batch_size`` (full batches are never padded)."""
    if n >= batch_size:
        return n
    return min(1 << max(n - 1, 0).bit_length(), batch_size)


def cache_bucket(needed: int, limit: int | None = None, step: int = CACHE_STEP) -> int:
    """The static cache length for ``needed`` tokens (prompt + new): a multiple of ``step``,
    at most ``limit`` (the model's longest sequence) unless ``needed`` itself is longer."""
    length = -(-needed // step) * step
    return max(needed, min(length, limit)) if limit else length


class StaticCachePool:
    """transformers ``StaticCache`` objects kept per (batch rows, cache length) bucket.

    ``generate`` given ``cache=`` uses it as it is (its ``cache_implementation="static"`` would
    allocate a new cache per call: new addresses, so the CUDA graph of the compiled step would be
    recorded again for every batch). A request for ``needed`` tokens takes the shortest kept
    cache of the same batch that holds them, else a new one of :func:`cache_bucket` length; the
    least recently used caches beyond ``keep`` are dropped (each holds batch x length x layers
    of keys and values).

    Args:
        config: the model's config (its text config sizes the cache).
        keep: caches kept at most.
    """

    def __init__(self, config, keep: int = 4) -> None:
        self.config = config
        self.keep = keep
        text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") \
            else config
        self.limit = getattr(text, "max_position_embeddings", None)
        self._caches: dict[tuple[int, int], Any] = {}

    def get(self, batch: int, needed: int):
        """An empty static cache for ``batch`` rows of up to ``needed`` tokens."""
        from transformers import StaticCache

        fits = [length for b, length in self._caches if b == batch and length >= needed]
        key = (batch, min(fits) if fits else cache_bucket(needed, self.limit))
        cache = self._caches.pop(key, None)
        if cache is None:
            cache = StaticCache(config=self.config, max_cache_len=key[1])
            log.debug("static cache for %d rows x %d tokens", *key)
        else:
            cache.reset()
        self._caches[key] = cache  # most recently used last
        while len(self._caches) > self.keep:
            self._caches.pop(next(iter(self._caches)))
        return cache

    def __len__(self) -> int:
        return len(self._caches)


def compile_everywhere():
    """transformers' default compile settings for the decoding step (``CompileConfig()``:
    inductor, ``mode="reduce-overhead"``, i.e. CUDA graphs on a GPU), also on devices where
    ``generate`` would not compile by itself (the CPU)."""
    from transformers import CompileConfig

    config = CompileConfig()
    config._compile_all_devices = True  # transformers' own switch for compiling off a GPU
    return config


def decoder_layers(model) -> list[torch.nn.Module]:
    """The text decoder's layers of ``model`` (peft-wrapped or not): the modules whose class
    name ends in ``DecoderLayer`` (``Qwen3VLTextDecoderLayer``; the vision blocks are not)."""
    return [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]


_COMPILED: dict[Callable, Callable] = {}  # each library function compiled once per process


def _compiled(fn: Callable) -> Callable:
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, dynamic=True)
    return _COMPILED[fn]


@contextlib.contextmanager
def compiled_layers(model, on: bool) -> Iterator[int]:
    """Run the pointwise parts of ``model``'s text decoder layers compiled
    (``torch.compile(dynamic=True)``) inside the block, as they were after it; yields how many
    parts are compiled.

    The prompt pass of a readout batch spends as long in pointwise kernels as in its matrix
    products (measured on an H200, ``benchmarks/vlm.py --sections timeline``): the rotary
    embedding on strided query and key tensors, RMSNorm's float32 round trips and the MLP's
    SiLU-times-up run one kernel per operation in eager mode. Compiled, inductor fuses each
    into one or two kernels. What is compiled is what holds no KV cache (the whole layer would
    recompile on the cache's state): the layers' RMSNorm and MLP modules, and the rotary
    function of the model's module (``apply_rotary_pos_emb``, swapped for its compiled form
    while the block runs, as Liger-Kernel swaps its kernels in). Shapes stay symbolic, so new
    batch sizes and prompt lengths do not recompile; a decoding step (one token) is one more
    graph. Not tried together with the static cache's compiled decoding step.
    """
    layers = decoder_layers(model) if on else []
    parts = [m for layer in layers for m in layer.modules()
             if type(m).__name__.endswith(("RMSNorm", "MLP"))]
    saved = [m._compiled_call_impl for m in parts]
    module = sys.modules[type(layers[0]).__module__] if layers else None
    rotary = getattr(module, "apply_rotary_pos_emb", None)
    for m in parts:
        m.compile(dynamic=True)
    if rotary is not None:
        setattr(module, "apply_rotary_pos_emb", _compiled(rotary))
    try:
        yield len(parts) + (rotary is not None)
    finally:
        for m, impl in zip(parts, saved):
            m._compiled_call_impl = impl
        if rotary is not None:
            setattr(module, "apply_rotary_pos_emb", rotary)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices ``0..n-1`` sorted by ``lengths`` (longest first: memory peaks early) and cut
    into batches of ``batch_size``."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def count_generated(new: torch.Tensor, end_ids: set[int]) -> tuple[list[int], list[bool]]:
    """Generated tokens per row (up to and including the first end token) and whether an end
    token came.

    Args:
        new: (B, n) generated ids (prompt removed; rows that ended early are padded after it).
        end_ids: the end-of-answer token ids.
    """
    if not end_ids or new.shape[1] == 0:
        return [int(new.shape[1])] * new.shape[0], [False] * new.shape[0]
    ends = torch.isin(new, torch.tensor(sorted(end_ids), device=new.device)).cpu()
    hit = ends.any(dim=1)
    first = ends.to(torch.int8).argmax(dim=1)  # the first maximum: the first end token
    tokens = torch.where(hit, first + 1, torch.full_like(first, new.shape[1]))
    return tokens.tolist(), hit.tolist()


# ----------------------------------------------------------------------------- vision attention
EQUAL_IMAGES_ATTENTION = "procvlm_flash_equal_images"
"""Name of :func:`equal_images_attention` in transformers' attention registry. Qwen-VL vision
towers run a Python loop of one attention call per image unless the implementation's name says
"flash" (then they pass the packed sequence with ``cu_seqlens``), so the name says so."""


def equal_images_attention(module, query, key, value, attention_mask=None, scaling=None,
                           dropout=0.0, cu_seq_lens_q=None, is_causal=False, **kwargs):
    """Attention within each image of a packed vision sequence, as one batched SDPA call when
    all images have the same number of patches (a window of frames of one camera), else one
    call per image.

    Args:
        query, key, value: (1, heads, N, d), the images' patches one after another.
        cu_seq_lens_q: (images + 1,) cumulative patch counts.

    Returns:
        ((1, N, heads, d), None), the layout transformers' attention functions return.
    """
    import torch.nn.functional as F

    lengths = (cu_seq_lens_q[1:] - cu_seq_lens_q[:-1]).tolist()
    heads, total, dim = query.shape[1], query.shape[2], query.shape[3]
    if len(set(lengths)) == 1:
        n, size = len(lengths), lengths[0]

        def split(x: torch.Tensor) -> torch.Tensor:  # (1, h, n * L, d) -> (n, h, L, d)
            return x[0].reshape(heads, n, size, dim).transpose(0, 1)

        out = F.scaled_dot_product_attention(split(query), split(key), split(value),
                                             dropout_p=dropout, scale=scaling)
        return out.transpose(1, 2).reshape(1, total, heads, dim), None
    outs = [F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling)
            for q, k, v in zip(*(torch.split(x, lengths, dim=2) for x in (query, key, value)))]
    return torch.cat(outs, dim=2).transpose(1, 2), None


def batch_vision_attention(model) -> bool:
    """Run the model's vision tower with :func:`equal_images_attention` (Qwen-VL towers that
    pack images with ``cu_seqlens``). Returns whether it was switched."""
    from transformers import AttentionInterface

    config = getattr(getattr(model, "config", None), "vision_config", None)
    if config is None or getattr(config, "_attn_implementation", None) not in ("sdpa", "eager"):
        return False
    if getattr(config, "model_type", "") != "qwen3_vl_vision":
        return False
    AttentionInterface.register(EQUAL_IMAGES_ATTENTION, equal_images_attention)
    config._attn_implementation = EQUAL_IMAGES_ATTENTION
    return True
