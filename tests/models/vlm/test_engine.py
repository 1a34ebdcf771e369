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
    pa = a.predict(frames, task="push the puck", window=3)
    pb = b.predict(frames, task="push the puck", window=3)
    assert pa.text == pb.text


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
