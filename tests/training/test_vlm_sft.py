import json

import numpy as np
import pytest
import torch

from procvlm.errors import ProcvlmError
from procvlm.models.base import load_model
from procvlm.models.vlm.tiny import build_tiny_vlm, write_tiny_vqa
from procvlm.training.vlm_sft import (
    ProcVQADataset,
    VLMTrainConfig,
    to_prompt_completion,
    train_vlm,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("sft")
    return build_tiny_vlm(root / "base", "qwen3_vl"), write_tiny_vqa(root / "vqa", 3, frames=3)


def test_prompt_completion_keeps_last_frames():
    sample = {"messages": [{"role": "user", "content": "<image><image><image>How far?"},
                           {"role": "assistant", "content": "done"}], "images": ["a", "b", "c"]}
    example, drop = to_prompt_completion(sample, max_frames=2)
    kinds = [p["type"] for p in example["prompt"][0]["content"]]
    assert drop == 1 and kinds == ["image", "image", "text"]
    assert example["completion"][0]["content"][0]["text"] == "done"


def test_dataset_reads_images(setup):
    _, vqa = setup
    ds = ProcVQADataset(vqa, "train", image_size=16, max_frames=2)
    item = ds[0]
    assert len(item["images"]) == 2 and max(item["images"][0].size) == 16


@pytest.mark.parametrize("kwargs,match", [({"lora_r": 0}, "lora_r"), ({"max_steps": 0}, "max_steps"),
                                          ({"image_size": 2}, "image_size")])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ProcvlmError, match=match):
        VLMTrainConfig(data="d", out="o", **kwargs)


def test_bad_data_is_named(tmp_path, setup):
    (tmp_path / "train.jsonl").write_text("{not json\n")
    with pytest.raises(ProcvlmError, match="train.jsonl:1 is not JSON"):
        ProcVQADataset(tmp_path, "train", 32, 8)
    with pytest.raises(ProcvlmError, match="not found"):
        ProcVQADataset(tmp_path / "missing", "train", 32, 8)


@pytest.mark.slow
def test_full_training_changes_every_weight_and_lowers_loss(setup, tmp_path):
    base, vqa = setup
    before = {k: v.clone() for k, v in load_model(base).model.state_dict().items()}
    (vqa / "manifest.json").write_text(json.dumps({"camera": "corner", "scheme": "time"}))
    cfg = VLMTrainConfig(data=str(vqa), out=str(tmp_path / "run"), base=str(base), full=True,
                         max_steps=8, lr=1e-2, batch_size=2, image_size=32, logging_steps=2,
                         save_steps=4)
    train_vlm(cfg)
    losses = [h["loss"] for h in json.loads((tmp_path / "run" / "metrics.json").read_text())
              ["loss_history"]]
    assert losses[-1] < losses[0]
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["camera"], saved["scheme"], saved["image_size"]) == ("corner", "time", 32)
    after = load_model(tmp_path / "run").model.state_dict()
    changed = [k for k in before if "layers" in k and not torch.equal(before[k], after[k])]
    assert len(changed) == len([k for k in before if "layers" in k])
    with pytest.raises(ProcvlmError, match="--resume"):
        train_vlm(cfg)
    resumed = VLMTrainConfig(**{**cfg.__dict__, "max_steps": 10, "resume": True})
    train_vlm(resumed)
    assert (tmp_path / "run" / "checkpoints" / "checkpoint-10").is_dir()


@pytest.mark.slow
def test_lora_adapter_and_merge_round_trip(setup, tmp_path):
    base, vqa = setup
    kw = dict(data=str(vqa), base=str(base), lora_r=4, max_steps=3, lr=1e-2, batch_size=1,
              image_size=32, logging_steps=1)
    train_vlm(VLMTrainConfig(out=str(tmp_path / "lora"), **kw))
    cfg = json.loads((tmp_path / "lora" / "config.json").read_text())
    assert cfg["adapter"] == "adapter" and (tmp_path / "lora/adapter/adapter_config.json").is_file()
    train_vlm(VLMTrainConfig(out=str(tmp_path / "merged"), merge_lora=True, **kw))
    assert json.loads((tmp_path / "merged" / "config.json").read_text())["base"] == "model"
    frames = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), np.uint8)
    a = load_model(tmp_path / "lora", max_new_tokens=6).predict(frames, "push", window=2)
    b = load_model(tmp_path / "merged", max_new_tokens=6).predict(frames, "push", window=2)
    assert a.text == b.text  # same seed, same data: merged weights answer like the adapter


def test_batches_group_samples_of_similar_length(setup, tmp_path):
    from transformers.trainer_pt_utils import LengthGroupedSampler

    from procvlm.training.vlm_sft import build_trainer

    base, vqa = setup
    data = ProcVQADataset(vqa, "train", 32, 8)
    lengths = data.lengths()
    assert len(lengths) == len(data) and all(n > 0 for n in lengths)
    grouped = build_trainer(VLMTrainConfig(data=str(vqa), out=str(tmp_path / "g"),
                                           base=str(base), batch_size=2, image_size=32))
    sampler = grouped._get_train_sampler()
    assert isinstance(sampler, LengthGroupedSampler) and sampler.lengths == lengths
    assert sorted(sampler) == list(range(len(data)))
    plain = build_trainer(VLMTrainConfig(data=str(vqa), out=str(tmp_path / "p"),
                                         base=str(base), batch_size=2, image_size=32,
                                         group_by_length=False))
    assert not isinstance(plain._get_train_sampler(), LengthGroupedSampler)
