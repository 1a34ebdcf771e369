import json

import numpy as np
import pytest

from procvlm.data.episode import ArrayFrames, Episode
from procvlm.errors import ProcvlmError
from procvlm.models.base import ProgressPrediction, load_model
from procvlm.models.vlm.configuration_vlm import VLMConfig
from procvlm.models.vlm.modeling_vlm import VLMProgressModel, window_indices
from procvlm.models.vlm.tiny import ARCHITECTURES

PLAN = ["Grasp the puck", "Place the puck onto the goal"]


def _episode(n=4):
    frames = np.random.default_rng(0).integers(0, 255, (n, 40, 48, 3), np.uint8)
    return Episode(episode_index=0, task="place the puck onto the goal", fps=10.0,
                   frames={"corner": ArrayFrames(frames)}, state=np.zeros((n, 2), np.float32),
                   action=np.zeros((n, 2), np.float32), plan=PLAN)


def test_window_indices():
    assert window_indices(0, 8, 1) == [0]
    assert window_indices(5, 3, 2) == [1, 3, 5]


@pytest.mark.parametrize("kwargs,match", [({"window": 0}, "window"),
                                          ({"readout": "beam"}, "readout"),
                                          ({"base": ""}, "base"),
                                          ({"encoding": "forks"}, "encoding=.*threads, "
                                                                  "processes")])
def test_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ProcvlmError, match=match):
        VLMConfig(**kwargs)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_architecture_predicts(tiny_dirs, arch):
    model = load_model(tiny_dirs[arch], max_new_tokens=6)
    assert isinstance(model, VLMProgressModel)
    prompt = model.chat_prompt(model.messages(2, "push"))
    assert "push" in prompt
    pred = model.predict(_episode(3), window=2)
    assert isinstance(pred, ProgressPrediction) and len(pred) == 3
    assert ((pred.progress >= 0) & (pred.progress <= 1)).all()
    assert len(pred.text) == 3 and len(pred.flags) == 3


def test_batch_of_episodes_matches_one_by_one(tiny_dirs):
    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], max_new_tokens=5,
                                             batch_size=3)
    a, b = _episode(2), _episode(3)
    both = model.predict_batch([(a, None, None), (b, None, None)], window=2)
    assert [len(p) for p in both] == [2, 3]
    assert both[1].text == model.predict(b, window=2).text


def test_bare_frames_need_a_task(tiny_dirs):
    model = VLMProgressModel.from_pretrained(tiny_dirs["smolvlm"], max_new_tokens=2)
    with pytest.raises(ProcvlmError, match="needs the task"):
        model.predict(np.zeros((2, 8, 8, 3), np.uint8))


def test_save_load_round_trip(tiny_dirs, tmp_path):
    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen2_5_vl"], max_new_tokens=4, window=3)
    model.save_pretrained(tmp_path / "run")
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["type"] == "vlm" and cfg["base"] == "model" and cfg["window"] == 3
    again = load_model(tmp_path / "run")
    ep = _episode(2)
    assert again.predict(ep, window=3).text == model.predict(ep, window=3).text


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(ProcvlmError, match="no config.json"):
        VLMProgressModel.from_pretrained(tmp_path)


def test_reasoning_reuse_generates_anchor_frames_only(fixed_run):
    frames = np.random.default_rng(2).integers(0, 255, (10, 32, 32, 3), np.uint8)
    every = VLMProgressModel.from_pretrained(fixed_run, max_new_tokens=48, readout="probs")
    reuse = VLMProgressModel.from_pretrained(fixed_run, max_new_tokens=48, readout="probs",
                                             reasoning="reuse", refresh=4)
    full = every.predict(frames, task="place the puck onto the goal", window=2)
    part = reuse.predict(frames, task="place the puck onto the goal", window=2)
    assert part.extra["generated"].tolist() == [t in (0, 4, 8, 9) for t in range(10)]
    assert part.remaining == full.remaining
    np.testing.assert_allclose(part.progress, full.progress, atol=0.01)
    np.testing.assert_allclose(part.done, full.done, atol=0.01)  # reused: the source's


def test_reasoning_reuse_generates_everywhere_when_answers_are_unreadable(tiny_dirs):
    frames = np.random.default_rng(3).integers(0, 255, (5, 32, 32, 3), np.uint8)
    kw = dict(max_new_tokens=4, batch_size=4, device="cpu")
    every = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], **kw)
    reuse = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], reasoning="reuse",
                                             refresh=4, **kw)
    a = every.predict(frames, task="push", window=2)
    b = reuse.predict(frames, task="push", window=2)
    assert b.extra["generated"].all() and a.text == b.text


def test_config_records_camera_and_scheme(tmp_path, tiny_dirs):
    model = VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], camera="corner",
                                             scheme="procvlm", window=4, image_size=32)
    model.save_pretrained(tmp_path / "run")
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (saved["camera"], saved["scheme"], saved["window"], saved["image_size"]) == \
        ("corner", "procvlm", 4, 32)
    assert VLMProgressModel.from_pretrained(tmp_path / "run").config.camera == "corner"
    with pytest.raises(ProcvlmError, match="scheme"):
        VLMConfig(scheme="nope")


def test_predict_last_scores_every_clip_in_one_batch(fixed_run):
    model = VLMProgressModel.from_pretrained(fixed_run, max_new_tokens=48, readout="probs",
                                             window=2, batch_size=4)
    rng = np.random.default_rng(4)
    clips = [(rng.integers(0, 255, (n, 32, 32, 3), np.uint8), "place the puck onto the goal",
              PLAN) for n in (1, 3, 2)]
    calls = []
    generate = model.generate_prompts
    model.generate_prompts = lambda *a, **k: calls.append(len(a[0])) or generate(*a, **k)
    last = model.predict_last(clips)
    assert calls == [3] and last.shape == (3,)
    for (frames, task, plan), value in zip(clips, last):
        assert value == pytest.approx(model.predict(frames, task, plan).progress[-1], abs=1e-3)
    scores = model.score_last(clips)
    np.testing.assert_allclose(scores.progress, last)
    for (frames, task, plan), p in zip(clips, scores.done):
        assert p == pytest.approx(model.predict(frames, task, plan).done[-1], abs=1e-3)


def test_p_done_is_the_models_belief_in_the_finished_answer(fixed_run, finished_run):
    import torch

    from procvlm.models.vlm.readout import done_branch

    frames = np.random.default_rng(5).integers(0, 255, (4, 32, 32, 3), np.uint8)
    task = "place the puck onto the goal"
    kw = dict(max_new_tokens=48, readout="probs", window=2)
    going_model = VLMProgressModel.from_pretrained(fixed_run, **kw)
    going = going_model.predict(frames, task, PLAN)
    finished = VLMProgressModel.from_pretrained(finished_run, **kw).predict(frames, task, PLAN)
    assert going.remaining[0] == ["Place the puck onto the goal"] and finished.remaining[0] == []
    assert going.done.max() < 0.2 and finished.done.min() > 0.8
    # the probability is read at the token after the shared opening: generate's own logits there
    shared, done_id, todo_id = done_branch(going_model.tokenizer)
    prompts, images, _ = going_model.progress_prompts([(frames, task, PLAN)], 2)
    (idx, inputs, _), = list(going_model._batches(prompts[-1:], images[-1:]))
    out = going_model.model.generate(**inputs, max_new_tokens=len(shared) + 1, do_sample=False,
                                     output_logits=True, return_dict_in_generate=True)
    branch = out.logits[len(shared)][0, [done_id, todo_id]]
    assert going.done[-1] == pytest.approx(float(torch.softmax(branch, -1)[0]), abs=1e-4)


def test_prefix_readout_converts_each_frame_once(tiny_dirs, monkeypatch):
    """Windows that show the same frame (views of one array) preprocess it once."""
    import procvlm.models.vlm.engine as engine
    import procvlm.models.vlm.modeling_vlm as m

    model = m.VLMProgressModel.from_pretrained(tiny_dirs["qwen3_vl"], device="cpu")
    frames = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), np.uint8)
    calls = []
    real = engine.to_pil
    monkeypatch.setattr(engine, "to_pil", lambda im, size: calls.append(1) or real(im, size))
    windows = [[frames[0]], [frames[0], frames[1]], [frames[0], frames[1], frames[2]]]
    out = model.progress_after_prefix(windows, ["push"] * 3, ["<progress>"] * 3)
    assert len(out) == 3 and len(calls) == 3
