import os

import numpy as np
import pytest
import torch
from PIL import Image

from procvlm.models.vlm.engine import (
    Prefetcher,
    count_generated,
    encode,
    fast_path,
    length_sorted_batches,
)
from procvlm.models.vlm.modeling_vlm import VLMProgressModel, load_processor


def _images(n, size=32):
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (size, size, 3), np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("arch", ["qwen3_vl", "qwen2_5_vl"])
def test_encode_equals_the_processor(tiny_dirs, arch):
    proc = load_processor(tiny_dirs[arch])
    assert fast_path(proc)
    ims = _images(4)
    # sliding windows share image objects; the first prompt shows fewer images
    shown = [[ims[0]], [ims[0], ims[1]], [ims[1], ims[2], ims[3]]]
    model = VLMProgressModel.from_pretrained(tiny_dirs[arch], device="cpu")
    prompts = [model.chat_prompt(model.messages(len(s), "push the puck")) for s in shown]
    ours = encode(proc, prompts, shown)
    theirs = proc(text=prompts, images=shown, return_tensors="pt", padding=True,
                  padding_side="left")
    assert set(ours) == set(theirs)
    for k in theirs:
        assert torch.equal(ours[k], theirs[k]), k


def test_encode_without_images_and_other_processors(tiny_dirs):
    proc = load_processor(tiny_dirs["smolvlm"])
    assert not fast_path(proc)
    out = encode(proc, ["hello", "hello there"], [[], []])
    assert out["input_ids"].shape[0] == 2 and "pixel_values" not in out


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_prefetcher_keeps_order(workers):
    batches = [[0, 1], [2], [3, 4, 5], [6]]
    fetch = Prefetcher(lambda idx: {"x": torch.tensor(idx)}, workers, pin=False)
    got = list(fetch(batches))
    assert [idx for idx, _ in got] == batches
    assert all(b["x"].tolist() == idx for idx, b in got)


def test_prefetcher_in_processes_keeps_order_and_cleans_up():
    from procvlm.models.vlm import engine

    data = {i: torch.full((3, 2), float(i)) for i in range(7)}  # a closure over local data
    batches = [[0, 1], [2], [3, 4, 5], [6]]
    fetch = Prefetcher(lambda idx: {"x": torch.stack([data[i] for i in idx]),
                                    "pid": os.getpid()}, 2, pin=False, processes=True)
    got = list(fetch(batches))
    assert [idx for idx, _ in got] == batches
    assert all(b["x"][:, 0, 0].tolist() == idx for idx, b in got)
    assert all(b["pid"] != os.getpid() for _, b in got)  # encoded in the children
    assert fetch._children is None and not engine._FORKED


def test_length_sorted_batches():
    assert length_sorted_batches([1, 5, 3, 5, 2], 2) == [[1, 3], [2, 4], [0]]


def test_count_generated_stops_at_the_first_end_token():
    new = torch.tensor([[5, 6, 9, 9], [5, 6, 7, 8], [9, 5, 5, 5]])
    tokens, finished = count_generated(new, {9})
    assert tokens == [3, 4, 1]
    assert finished == [True, False, True]


def test_generation_is_the_same_with_workers_and_batches(tiny_dirs):
    frames = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), np.uint8)
    a = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], max_new_tokens=6, batch_size=5,
                                         workers=0, device="cpu")
    b = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], max_new_tokens=6, batch_size=2,
                                         workers=2, device="cpu")
    c = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], max_new_tokens=6, batch_size=2,
                                         workers=2, encoding="processes", device="cpu")
    pa = a.predict(frames, task="push the puck", window=3)
    pb = b.predict(frames, task="push the puck", window=3)
    pc = c.predict(frames, task="push the puck", window=3)
    assert pa.text == pb.text == pc.text


def test_generation_counts_tokens_from_ids(tiny_dirs):
    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], device="cpu")
    ims = _images(2)
    prompts = [model.chat_prompt(model.messages(1, "push"))] * 2
    gen = model.generate_prompts(prompts, [[ims[0]], [ims[1]]], max_new_tokens=7,
                                 min_new_tokens=7)
    assert gen.tokens == [7, 7] and gen.finished == [False, False]
    assert all(p > 10 for p in gen.prompt_tokens)


def test_batched_vision_attention_equals_the_per_image_loop(tiny_dirs):
    from transformers import AutoModelForImageTextToText

    from procvlm.models.vlm.engine import EQUAL_IMAGES_ATTENTION, batch_vision_attention

    model = AutoModelForImageTextToText.from_pretrained(tiny_dirs["qwen3_vl"],
                                                        attn_implementation="sdpa").eval()
    proc = load_processor(tiny_dirs["qwen3_vl"])
    shown = [_images(3), _images(1, size=16)]  # equal images in one call, then a smaller one
    prompts = ["<|vision_start|><|image_pad|><|vision_end|>" * len(s) + "go" for s in shown]
    batch = proc(text=prompts, images=shown, return_tensors="pt", padding=True,
                 padding_side="left")
    equal = {k: v for k, v in proc(text=prompts[:1], images=shown[:1], return_tensors="pt").items()}
    with torch.no_grad():
        before, before_equal = model(**batch).logits, model(**equal).logits
        assert batch_vision_attention(model)
        assert model.config.vision_config._attn_implementation == EQUAL_IMAGES_ATTENTION
        after, after_equal = model(**batch).logits, model(**equal).logits
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(after_equal, before_equal, atol=1e-5, rtol=1e-4)
    assert not batch_vision_attention(model)  # already switched: nothing to do


def _assert_same_generation(model, a: dict, b: dict) -> None:
    """Greedy generation from inputs ``a`` and ``b``: the same tokens and logits."""
    kw = dict(max_new_tokens=5, min_new_tokens=5, do_sample=False, output_logits=True,
              return_dict_in_generate=True, pad_token_id=model.tokenizer.pad_token_id)
    with torch.no_grad():
        ga = model.model.generate(**a, **kw)
        gb = model.model.generate(**b, **kw)
    assert torch.equal(ga.sequences, gb.sequences)
    for la, lb in zip(ga.logits, gb.logits):
        torch.testing.assert_close(la, lb)


@pytest.mark.parametrize("arch", ["qwen3_vl", "qwen2_5_vl"])
def test_positions_from_the_workers_give_the_same_answers(tiny_dirs, arch):
    """Position ids computed on the CPU by the prefetch workers: the same logits and tokens as
    the positions generate computes itself, on left-padded prompts with several images."""
    model = VLMProgressModel.from_pretrained(tiny_dirs[arch], device="cpu")
    ims = _images(3)
    shown = [[ims[0]], [ims[0], ims[1], ims[2]]]
    prompts = [model.chat_prompt(model.messages(len(s), "push the puck")) for s in shown]
    plain = encode(model.processor, prompts, shown)
    ours = model._with_positions(plain)
    assert ours["position_ids"].shape[-1] == plain["input_ids"].shape[1]
    _assert_same_generation(model, plain, ours)


@pytest.mark.parametrize("arch", ["qwen3_vl", "qwen2_5_vl"])
def test_positions_are_computed_once_per_layout(tiny_dirs, arch):
    """Rows laid out alike share one computation of their positions: the same position ids as
    the model computes for every row, for rows with other texts, image counts and sizes."""
    from procvlm.models.vlm.modeling_vlm import _position_groups

    model = VLMProgressModel.from_pretrained(tiny_dirs[arch], device="cpu")
    ims = _images(3)
    big = Image.fromarray(np.zeros((32, 96, 3), np.uint8))  # another grid
    shown = [[ims[0], ims[1]], [ims[1], ims[2]], [ims[0]], [ims[2], ims[0]], [big, ims[0]],
             [ims[1], ims[2]]]
    tasks = ["push the puck", "push the puck", "push the puck", "open the drawer slowly",
             "push the puck", "push the puck"]
    prompts = [model.chat_prompt(model.messages(len(s), t)) for s, t in zip(shown, tasks)]
    batch = encode(model.processor, prompts, shown)
    reps, rows_of, _ = _position_groups(batch)
    assert reps == [0, 2, 3, 4] and rows_of.tolist() == [0, 0, 1, 2, 3, 0]
    prepare = model.model._prepare_position_ids_for_generation
    every = prepare(batch["input_ids"], {k: v for k, v in batch.items()
                                         if k not in ("input_ids", "pixel_values")})
    assert torch.equal(model._with_positions(batch)["position_ids"], every)


def test_vision_tower_once_per_frame_gives_the_same_answers(tiny_dirs):
    """Windows that share frames: the vision tower encodes each frame once and generate gets
    the repeated features; the same tokens and logits as encoding every shown image."""
    from procvlm.models.vlm.engine import shared_image_features, shares_image_features

    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], device="cpu")
    assert shares_image_features(model.model)
    ims = _images(3)
    shown = [[ims[0]], [ims[0], ims[1]], [ims[0], ims[1], ims[2]]]
    prompts = [model.chat_prompt(model.messages(len(s), "push the puck")) for s in shown]
    plain = model._with_positions(encode(model.processor, prompts, shown))
    distinct = model._with_positions(encode(model.processor, prompts, shown, distinct=True))
    assert distinct["pixel_values"].shape[0] * 2 == plain["pixel_values"].shape[0]  # 3 of 6
    assert distinct["image_order"].tolist() == [0, 0, 1, 0, 1, 2]
    shared = shared_image_features(model.model, distinct)
    assert "pixel_values" not in shared and "image_order" not in shared
    _assert_same_generation(model, plain, shared)
    assert not shares_image_features(
        VLMProgressModel.from_pretrained(tiny_dirs["qwen2_5_vl"], device="cpu").model)


def test_buckets():
    from procvlm.models.vlm.engine import batch_bucket, cache_bucket

    assert [batch_bucket(n, 16) for n in (1, 2, 3, 5, 9, 16, 20)] == [1, 2, 4, 8, 16, 16, 20]
    assert [batch_bucket(n, 12) for n in (1, 7, 9, 12)] == [1, 8, 12, 12]
    assert [cache_bucket(n) for n in (1, 64, 65, 299, 294)] == [64, 64, 128, 320, 320]
    assert cache_bucket(299, limit=300) == 300 and cache_bucket(301, limit=300) == 301


def test_static_cache_pool_reuses_one_cache_per_bucket(tiny_dirs):
    from transformers import AutoConfig

    from procvlm.models.vlm.engine import StaticCachePool

    pool = StaticCachePool(AutoConfig.from_pretrained(tiny_dirs["qwen3_vl"]), keep=2)
    a = pool.get(4, 70)
    assert a.get_max_length() == 128
    assert pool.get(4, 100) is a  # the same bucket: the same tensors (a CUDA graph replays)
    b = pool.get(2, 70)
    assert b is not a and pool.get(4, 20) is a  # the shortest kept cache that holds it
    c = pool.get(8, 300)
    assert c.get_max_length() == 320 and len(pool) == 2
    assert pool.get(2, 70) is not b  # the least recently used was dropped


def _captured_generate(model):
    """Record each ``generate`` call's real rows (sequences, logits) of a VLMProgressModel."""
    calls, original = [], model.model.generate

    def generate(**kwargs):
        out = original(**kwargs)
        calls.append(out)
        return out

    model.model.generate = generate
    return calls


@pytest.mark.parametrize("arch", ["qwen3_vl", "qwen2_5_vl", "smolvlm"])
def test_static_cache_generates_what_the_dynamic_cache_does(tiny_dirs, arch):
    """Prompts of several lengths (windows of 1 to 3 frames) in batches of 4, the short last
    batch padded to 4 rows: the same tokens and logits as the dynamic cache, per real row."""
    frames = np.random.default_rng(0).integers(0, 255, (7, 32, 32, 3), np.uint8)
    got = {}
    for cache in ("dynamic", "static"):
        model = VLMProgressModel.from_pretrained(tiny_dirs[arch], max_new_tokens=6,
                                                 batch_size=4, cache=cache, device="cpu",
                                                 readout="probs")
        calls = _captured_generate(model)
        pred = model.predict(frames, task="push the puck", window=3)
        got[cache] = (pred, calls)
    (dyn, dyn_calls), (sta, sta_calls) = got["dynamic"], got["static"]
    assert dyn.text == sta.text
    np.testing.assert_array_equal(dyn.progress, sta.progress)
    assert [c.sequences.shape[0] for c in sta_calls] == [4, 4]  # 3 prompts padded to 4
    assert [c.sequences.shape[0] for c in dyn_calls] == [4, 3]
    for d, s in zip(dyn_calls, sta_calls):
        rows = d.sequences.shape[0]
        assert torch.equal(d.sequences, s.sequences[:rows])
        for ld, ls in zip(d.logits, s.logits):
            torch.testing.assert_close(ld, ls[:rows], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("frames, batch, rows", [(9, 4, [4, 4, 4]), (3, 8, [4])])
def test_static_cache_pads_a_short_batch_to_one_shape_per_call(tiny_dirs, frames, batch, rows):
    """A call with full batches pads its short batch to the full size (no second compiled
    shape); a call of one short batch pads to its power-of-two bucket."""
    images = np.random.default_rng(0).integers(0, 255, (frames, 32, 32, 3), np.uint8)
    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], max_new_tokens=4,
                                             batch_size=batch, cache="static", compile=False,
                                             device="cpu")
    calls = _captured_generate(model)
    model.predict(images, task="push the puck", window=1)
    assert [c.sequences.shape[0] for c in calls] == rows


def test_static_cache_reads_the_same_progress(fixed_run):
    """A model trained to answer 0.5: whole answers with the digit readout and the readout
    after a known prefix read the same values with either cache."""
    frames = np.random.default_rng(1).integers(0, 255, (5, 32, 32, 3), np.uint8)
    task = "place the puck onto the goal"
    out = {}
    for cache in ("dynamic", "static"):
        model = VLMProgressModel.from_pretrained(fixed_run, max_new_tokens=48, readout="probs",
                                                 batch_size=2, cache=cache, device="cpu")
        pred = model.predict(frames, task=task, window=2)
        prefix = pred.text[0].split("<progress>")[0] + "<progress>"
        forced = model.progress_after_prefix([[f] for f in frames], [task] * 5, [prefix] * 5)
        out[cache] = (pred, forced)
    (dyn, dyn_forced), (sta, sta_forced) = out["dynamic"], out["static"]
    assert dyn.text == sta.text and dyn.flags == ["ok"] * 5
    np.testing.assert_allclose(sta.progress, dyn.progress, atol=1e-6)
    assert all(v is not None for v in sta_forced)
    np.testing.assert_allclose(sta_forced, dyn_forced, atol=1e-6)


def test_static_cache_compiles_the_decoding_step_once_per_bucket(tiny_dirs, monkeypatch):
    """Compiled (dynamo, eager backend on the CPU): a longer prompt in the same length bucket
    and a padded last batch reuse the one compiled decoding step; a new batch bucket compiles
    once more, with a dynamic batch size that later buckets reuse (a batch of one aside)."""
    from transformers import CompileConfig

    import procvlm.models.vlm.modeling_vlm as modeling

    def eager_everywhere():
        config = CompileConfig(backend="eager")
        config._compile_all_devices = True
        return config

    monkeypatch.setattr(modeling, "compile_everywhere", eager_everywhere)
    torch._dynamo.reset()
    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], batch_size=4,
                                             cache="static", compile=True, device="cpu")
    ims = _images(3)

    def run(windows: list[int]) -> None:
        prompts = [model.chat_prompt(model.messages(w, "push the puck")) for w in windows]
        gen = model.generate_prompts(prompts, [ims[:w] for w in windows], 4, min_new_tokens=4)
        assert gen.tokens == [4] * len(windows)

    graphs = torch._dynamo.utils.counters["stats"]
    run([2, 2, 2, 2])  # 66 prompt tokens + 4 new: the 128 bucket
    assert graphs["unique_graphs"] == 1
    run([3, 3, 3, 3])  # 72 + 4: the same bucket, the same compiled step
    run([3, 2, 3, 2, 3, 3, 2])  # a last batch of 3 padded to 4 rows
    assert graphs["unique_graphs"] == 1
    run([2, 3])  # 2 rows: a new batch bucket, compiled with a dynamic batch size
    assert graphs["unique_graphs"] == 2
    run([3, 2, 3])  # 4 rows: covered by that dynamic graph
    assert graphs["unique_graphs"] == 2
    run([2])  # dynamo specialises a batch of one
    assert graphs["unique_graphs"] == 3
    torch._dynamo.reset()


def test_answers_read_on_the_workers_equal_the_inline_reading(fixed_run):
    """Decoding, token counts and the digit readout of each batch run on the prefetch workers
    (workers=2) or inline (workers=0): the same Generation, field by field, and the same
    readout after a prefix."""
    frames = np.random.default_rng(2).integers(0, 255, (5, 32, 32, 3), np.uint8)
    ims = [Image.fromarray(f) for f in frames]
    task = "place the puck onto the goal"
    out = {}
    for workers, batch in ((0, 5), (2, 2)):
        model = VLMProgressModel.from_pretrained(fixed_run, max_new_tokens=48, batch_size=batch,
                                                 workers=workers, device="cpu")
        shown = [ims[max(0, t - 1):t + 1] for t in range(5)]
        prompts = [model.chat_prompt(model.messages(len(s), task)) for s in shown]
        gen = model.generate_prompts(prompts, shown, with_logits=True)
        prefix = gen.text[0].split("<progress>")[0] + "<progress>"
        forced = model.progress_after_prefix([[f] for f in frames], [task] * 5, [prefix] * 5)
        out[workers] = (gen, forced)
    (inline, inline_forced), (pooled, pooled_forced) = out[0], out[2]
    assert inline.text == pooled.text and inline.tokens == pooled.tokens
    assert inline.finished == pooled.finished == [True] * 5
    assert inline.prompt_tokens == pooled.prompt_tokens
    assert all(e is not None for e in inline.expected)
    np.testing.assert_allclose(pooled.expected, inline.expected, atol=1e-9)
    np.testing.assert_allclose(pooled_forced, inline_forced, atol=1e-9)


def test_count_generated_without_end_tokens():
    tokens, finished = count_generated(torch.tensor([[5, 6], [7, 8]]), set())
    assert tokens == [2, 2] and finished == [False, False]


@pytest.mark.parametrize("arch", ["qwen3_vl", "smolvlm"])
def test_pending_images_encode_like_pil_images(tiny_dirs, arch):
    """Frames resized by the encoding workers (PendingImage): the same inputs as frames
    resized beforehand, on the per-frame fast path and through the processor."""
    from procvlm.models.vlm.engine import PendingImage
    from procvlm.models.vlm.processor_vlm import to_pil

    model = VLMProgressModel.from_pretrained(tiny_dirs[arch], device="cpu")
    arrays = np.random.default_rng(3).integers(0, 255, (3, 48, 48, 3), np.uint8)
    pil = [to_pil(a, 32) for a in arrays]
    pending = [PendingImage(a, 32) for a in arrays]
    windows = [[0], [0, 1], [1, 2]]
    prompts = [model.chat_prompt(model.messages(len(w), "push the puck")) for w in windows]
    want = encode(model.processor, prompts, [[pil[i] for i in w] for w in windows])
    got = encode(model.processor, prompts, [[pending[i] for i in w] for w in windows])
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    assert all(p.pil().size == (32, 32) for p in pending)


def test_progress_prompts_leave_the_resizing_to_the_workers(tiny_dirs):
    from procvlm.models.vlm.engine import PendingImage

    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], device="cpu")
    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), np.uint8)
    _, images, _ = model.progress_prompts([(frames, "push", None)], 2)
    assert all(isinstance(im, PendingImage) and im._pil is None for ims in images for im in ims)
    assert images[1][1] is images[2][0]  # one object per frame: converted once


def test_static_cache_keeps_its_memory_from_batch_to_batch(tiny_dirs):
    """The premise of capturing the decoding step once: every batch of a bucket writes into the
    same key/value tensors (a CUDA graph replays on fixed addresses)."""
    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], batch_size=2,
                                             cache="static", device="cpu")
    ims = _images(3)
    prompts = [model.chat_prompt(model.messages(w, "push")) for w in (1, 2, 3, 2)]
    shown = [ims[:1], ims[:2], ims[:3], ims[:2]]
    model.generate_prompts(prompts, shown, 3, min_new_tokens=3)  # two batches, one bucket
    (cache,) = model._static._caches.values()
    pointers = [layer.keys.data_ptr() for layer in cache.layers]
    model.generate_prompts(prompts[:2], shown[:2], 4, min_new_tokens=4)
    (again,) = model._static._caches.values()
    assert again is cache
    assert [layer.keys.data_ptr() for layer in again.layers] == pointers


@pytest.mark.slow
def test_compiled_layers_give_the_same_answers_and_are_undone(tiny_dirs):
    """engine.compiled_layers: the same logits and tokens as eager layers, new batch sizes and
    prompt lengths without recompiling, and the model (and the library's rotary function)
    exactly as before once the block ends."""
    import torch._dynamo.utils as dynamo_utils
    import transformers.models.qwen3_vl.modeling_qwen3_vl as qwen3_vl

    from procvlm.models.vlm.engine import compiled_layers, decoder_layers

    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], device="cpu")
    rotary = qwen3_vl.apply_rotary_pos_emb
    layers = decoder_layers(model.model)
    assert len(layers) == model.model.config.text_config.num_hidden_layers
    ims = _images(4)
    torch._dynamo.reset()
    graphs = []
    for rows, extra in ((3, ""), (5, " and then some more words")):
        shown = [[ims[i % 4], ims[(i + 1) % 4]] for i in range(rows)]
        prompts = [model.chat_prompt(model.messages(2, "push the puck" + extra * (i % 2)))
                   for i in range(rows)]
        batch = model._with_positions(encode(model.processor, prompts, shown))
        with torch.no_grad():
            eager = model.model(**batch).logits
            with compiled_layers(model.model, True) as parts:
                assert parts == 5 * len(layers) + 1  # 4 norms + MLP per layer, the rotary
                assert qwen3_vl.apply_rotary_pos_emb is not rotary
                fused = model.model(**batch).logits
        torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-4)
        with compiled_layers(model.model, True):
            compiled = model.model
            _assert_same_generation(model, batch, batch)  # prompt pass and decoding steps
        graphs.append(dynamo_utils.counters["stats"]["unique_graphs"])
        assert qwen3_vl.apply_rotary_pos_emb is rotary
        assert all(m._compiled_call_impl is None for m in compiled.modules())
    assert graphs[1] == graphs[0]  # another batch size and prompt length: no new graph
    with compiled_layers(model.model, False) as parts:
        assert parts == 0 and qwen3_vl.apply_rotary_pos_emb is rotary
