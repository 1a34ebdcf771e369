"""MiniLM text encoder (bundled package, offline) and its embedding cache."""

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.models.compact.text import (EMBED_DIM, TextEncoder, encode_minilm, load_embeddings,
                                         save_embeddings)


@pytest.mark.slow
def test_minilm_embeddings_are_unit_norm_and_semantic():
    emb = encode_minilm(["Grasp the puck", "Grab the puck", "Open the drawer"])
    assert emb.shape == (3, EMBED_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]


def test_cache_encodes_each_text_once(tmp_path):
    calls = []

    def fake(texts):
        calls.append(list(texts))
        return np.ones((len(texts), EMBED_DIM), np.float32) * np.arange(len(texts))[:, None]

    enc = TextEncoder(tmp_path / "cache.safetensors", encode_fn=fake)
    a = enc.encode(["b", "a", "b"])
    enc.encode(["a", "b"])
    assert calls == [["a", "b"]]
    assert a.shape == (3, EMBED_DIM) and np.array_equal(a[0], a[2])
    enc.flush()
    again = TextEncoder(tmp_path / "cache.safetensors", encode_fn=fake)
    np.testing.assert_array_equal(again.encode(["b", "a"]), a[:2])
    assert len(calls) == 1


def test_wrong_encoder_shape_is_an_error():
    enc = TextEncoder(encode_fn=lambda t: np.zeros((len(t), 3), np.float32))
    with pytest.raises(ValueError, match="expected"):
        enc.encode(["x"])


def test_corrupt_cache_file_names_the_fix(tmp_path):
    path = tmp_path / "c.safetensors"
    save_embeddings(path, {"a": np.zeros(EMBED_DIM, np.float32)})
    from safetensors.numpy import save_file
    save_file({"embeddings": np.zeros((2, EMBED_DIM), np.float32)}, str(path),
              metadata={"texts": '["a"]'})
    with pytest.raises(ProcvlmError, match="delete the file"):
        load_embeddings(path)


def test_hash_embeddings_are_deterministic_unit_vectors():
    from procvlm.models.compact.text import hash_embeddings

    a = hash_embeddings(["Grasp the puck", "Lift the puck"])
    assert a.shape == (2, 384)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(a[0], hash_embeddings(["Grasp the puck"])[0])
    assert not np.allclose(a[0], a[1])
