"""CompactProgressModel: windows, heads, predict on any plan, save/load, pinned outputs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from procvlm.models.compact.text import hash_embeddings
from procvlm.data.episode import ArrayFrames
from procvlm.errors import ProcvlmError
from procvlm.models import load_model
from procvlm.models.compact import CompactConfig, CompactProgressModel, TextEncoder
from procvlm.models.compact.modeling_compact import (CompactNet, ensemble, read_frames,
                                                     resize_frames, uniform_bounds,
                                                     window_indices)

torch.set_num_threads(1)  # tiny nets: threads only add contention on a shared machine
PINNED = Path(__file__).with_name("regression_tiny.json")
PLAN = ["Move to the puck", "Grasp the puck", "Place the puck onto the goal"]


def tiny_model(seed=0, **kw):
    torch.manual_seed(seed)
    cfg = CompactConfig(image_size=16, channels=(4, 8), hidden=16, key_dim=8, **kw)
    budgets = {"Push the puck": [0.0, 0.2, 0.7, 1.0]}
    return CompactProgressModel(cfg, budgets, {"Push the puck": PLAN},
                                TextEncoder(encode_fn=hash_embeddings)).eval()


def fixed_frames(n=10, size=24):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_window_indices_clamp_at_the_first_frame():
    idx = window_indices(6, 3, 2)
    assert idx.shape == (6, 3)
    assert idx[0].tolist() == [0, 0, 0] and idx[3].tolist() == [0, 1, 3]
    assert idx[5].tolist() == [1, 3, 5]


def test_resize_frames_shape_and_identity():
    f = fixed_frames(3, 32)
    assert resize_frames(f, 16).shape == (3, 16, 16, 3)
    assert np.array_equal(resize_frames(f, 32), f)
    flat = np.full((2, 32, 32, 3), 77, np.uint8)
    assert (resize_frames(flat, 8) == 77).all()
    assert read_frames(ArrayFrames(f), 16).shape == (3, 16, 16, 3)


def test_uniform_bounds():
    np.testing.assert_allclose(uniform_bounds(4), [0, 0.25, 0.5, 0.75, 1.0])


def test_predict_plans_of_any_length_and_unseen_tasks():
    model = tiny_model()
    frames = fixed_frames()
    for plan in (PLAN, PLAN[:1], PLAN + ["Press the button", "Open the door"]):
        pred = model.predict(frames, "Something never seen", plan)
        assert len(pred) == len(frames)
        assert ((pred.progress >= 0) & (pred.progress <= 1)).all()
        assert ((pred.stage >= 0) & (pred.stage <= len(plan))).all()
        for s, rem in zip(pred.stage, pred.remaining):
            assert rem == plan[s:]
    known = model.predict(frames, "Push the puck")  # training plan from the model
    assert len(known) == len(frames)


def test_batch_size_does_not_change_predictions():
    model = tiny_model()
    a = model.predict(fixed_frames(), "Push the puck", batch_size=3)
    b = model.predict(fixed_frames(), "Push the puck", batch_size=256)
    np.testing.assert_allclose(a.progress, b.progress, atol=1e-6)
    assert np.array_equal(a.stage, b.stage)


def test_argmax_mode_composes_from_the_chosen_stage():
    model = tiny_model(stage_mode="argmax")
    frames = torch.from_numpy(resize_frames(fixed_frames(4), 16))[window_indices(4, 4, 4)]
    inputs = model.plan_inputs(["Push the puck"] * 4, [PLAN] * 4)
    with torch.no_grad():
        out = model(frames, inputs)
    stage, progress, _ = model._decode(out, inputs.lengths)
    for i, s in enumerate(stage):
        col = 3 if s == 3 else s
        assert progress[i] == pytest.approx(float(out.composed[i, col].clamp(0, 1)))
    lo, hi = inputs.bounds[:, :-1], inputs.bounds[:, 1:]
    assert ((out.composed[:, :3] >= lo - 1e-6) & (out.composed[:, :3] <= hi + 1e-6)).all()


def test_done_is_the_probability_of_the_done_stage():
    model = tiny_model()
    frames = fixed_frames(8)
    pred = model.predict(frames, "Push the puck")
    windows = torch.from_numpy(resize_frames(frames, 16))[window_indices(8, 4, 4)]
    inputs = model.plan_inputs(["Push the puck"] * 8, [PLAN] * 8)
    with torch.no_grad():
        logits = model(windows, inputs).stage_logits
    want = torch.softmax(logits, 1)[:, len(PLAN)].numpy()
    np.testing.assert_allclose(pred.done, want, atol=1e-6)
    assert pred.done.shape == (8,) and ((pred.done >= 0) & (pred.done <= 1)).all()
    # the stage is "done" exactly where the done column wins the argmax
    assert ((pred.stage == len(PLAN)) == (logits.argmax(1) == len(PLAN)).numpy()).all()
    assert tiny_model(head="direct").predict(frames, "Push the puck").done is None


def test_bad_inputs_name_the_fix():
    model = tiny_model()
    with pytest.raises(ProcvlmError, match="needs task="):
        model.predict(fixed_frames())
    with pytest.raises(ProcvlmError, match="no plan for task 'Unknown'"):
        model.predict(fixed_frames(), "Unknown")
    with pytest.raises(ProcvlmError, match="at most 32"):
        model.predict(fixed_frames(), "Unknown", [f"Step {i}" for i in range(40)])


def test_save_load_round_trip_is_identical(tmp_path):
    model = tiny_model()
    before = model.predict(fixed_frames(), "Push the puck")
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors",
                                                    "budgets.json", "text_cache.safetensors"}
    assert json.loads((tmp_path / "config.json").read_text())["type"] == "compact"

    def no_encoder(texts):
        raise AssertionError(f"cache miss for {texts}: the saved text cache should cover them")

    loaded = load_model(tmp_path, text_encoder=TextEncoder(encode_fn=no_encoder))
    assert isinstance(loaded, CompactProgressModel) and not loaded.training
    after = loaded.predict(fixed_frames(), "Push the puck")
    np.testing.assert_array_equal(before.progress, after.progress)
    assert np.array_equal(before.stage, after.stage) and before.remaining == after.remaining


def test_from_pretrained_missing_files(tmp_path):
    with pytest.raises(ProcvlmError, match="no config.json"):
        CompactProgressModel.from_pretrained(tmp_path)


def test_default_model_is_small(tmp_path):
    torch.manual_seed(0)
    CompactProgressModel(CompactConfig(), text_encoder=TextEncoder(encode_fn=hash_embeddings)
                         ).save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").stat().st_size < 20e6


def pinned_outputs():
    pred = tiny_model().predict(fixed_frames(), "Push the puck")
    return {"progress": [round(float(x), 6) for x in pred.progress],
            "stage": pred.stage.tolist()}


def test_pinned_outputs_of_a_tiny_seeded_model():
    """Refactors must not silently change numbers. Regenerate only on purpose:
    python -c "from tests.models.compact.test_modeling_compact import *; write_pinned()"."""
    want = json.loads(PINNED.read_text())
    got = pinned_outputs()
    np.testing.assert_allclose(got["progress"], want["progress"], atol=1e-5)
    assert got["stage"] == want["stage"]


def write_pinned():
    PINNED.write_text(json.dumps(pinned_outputs(), indent=1) + "\n")


def test_predict_last_batches_clips_and_matches_predict():
    model = tiny_model()
    assert model.history == model.config.window_span == 13
    frames = fixed_frames(n=20)
    clips = [(ArrayFrames(frames[:n]), "Push the puck", None) for n in (1, 5, 20)]
    clips.append((ArrayFrames(frames[7:20]), "Something never seen", PLAN[:2]))
    got = model.predict_last(clips)
    want = [model.predict(f, t, p).progress[-1] for f, t, p in clips]
    np.testing.assert_allclose(got, want, atol=1e-5)
    # the last 13 frames are all a window needs
    np.testing.assert_allclose(got[3], model.predict(frames[:20], "Something never seen",
                                                     PLAN[:2]).progress[-1], atol=1e-5)
    # score_last also gives each clip's P(done), as predict gives it at the clip's last frame
    scores = model.score_last(clips)
    np.testing.assert_allclose(scores.progress, got, atol=1e-6)
    want_done = [model.predict(f, t, p).done[-1] for f, t, p in clips]
    np.testing.assert_allclose(scores.done, want_done, atol=1e-5)
    direct = tiny_model(head="direct")
    assert direct.score_last(clips).done is None and direct.score_last([]).done is None
    assert len(model.score_last([]).done) == 0


def test_anchored_model_sees_the_episode_start_and_streams_with_it():
    model = tiny_model(anchor=True)
    assert model.anchored and not tiny_model().anchored
    assert model.net.encoder[0].in_channels == 3 * 5 + 3 * 4  # the anchor and a 4-frame window
    frames = fixed_frames(n=30)
    whole = model.predict(frames, "Push the puck").progress
    # the episode's first frame changes every later estimate; a plain model ignores it
    other = frames.copy()
    other[0] = 255 - other[0]
    assert np.abs(model.predict(other, "Push the puck").progress[20:] - whole[20:]).min() > 0
    plain = tiny_model()
    np.testing.assert_allclose(plain.predict(other, "Push the puck").progress[20:],
                               plain.predict(frames, "Push the puck").progress[20:], atol=1e-6)
    # a live clip: the first frame in front of the last `history` frames gives the same answer
    clip = np.concatenate([frames[:1], frames[30 - model.history:]])
    got = model.predict_last([(ArrayFrames(clip), "Push the puck", None),
                              (ArrayFrames(frames[:5]), "Push the puck", None)])
    np.testing.assert_allclose(got, [whole[-1], whole[4]], atol=1e-5)


def test_predict_batch_shares_forward_passes_and_matches_predict():
    """Items of different lengths and plan lengths, batched across items, give what predict
    gives item by item, in fewer forward passes."""
    model = tiny_model()
    items = [(fixed_frames(7), "Push the puck", None),
             (fixed_frames(12)[::-1].copy(), "Something never seen", PLAN[:1]),
             (fixed_frames(3), "Other", PLAN + ["Open the door"])]
    calls = []
    hook = model.net.register_forward_hook(lambda *a: calls.append(1))
    batched = model.predict_batch(items, batch_size=16)
    hook.remove()
    assert len(calls) == 2  # 22 windows, 16 per pass
    for (frames, task, plan), got in zip(items, batched):
        want = model.predict(frames, task, plan)
        np.testing.assert_allclose(got.progress, want.progress, atol=1e-5)
        assert got.stage.tolist() == want.stage.tolist() and got.remaining == want.remaining
    assert model.predict_batch([]) == []


@pytest.mark.parametrize("flip", [(2,), (1,), (1, 2)])
def test_flip_average_gives_the_same_answer_for_any_flip_of_the_images(flip):
    """Mirrored, upside-down and rotated footage gets exactly the as-given answer; without
    flip averaging it does not."""
    frames = fixed_frames(12)
    turned = np.ascontiguousarray(np.flip(frames, axis=flip))
    plain = tiny_model()
    a, b = (plain.predict(f, "Push the puck") for f in (frames, turned))
    assert np.abs(a.progress - b.progress).max() > 1e-3
    model = tiny_model(flip_average=True)
    a, b = (model.predict(f, "Push the puck") for f in (frames, turned))
    np.testing.assert_allclose(a.progress, b.progress, atol=1e-4)  # float sums, reordered
    assert a.stage.tolist() == b.stage.tolist() and a.remaining == b.remaining
    last = model.predict_last([(ArrayFrames(turned), "Push the puck", None)])
    np.testing.assert_allclose(last, a.progress[-1:], atol=1e-5)


def test_flip_average_takes_the_median_progress_and_the_most_common_stage():
    model = tiny_model(flip_average=True)
    frames = torch.from_numpy(resize_frames(fixed_frames(6), 16))[window_indices(6, 4, 4)]
    inputs = model.plan_inputs(["Push the puck"] * 6, [PLAN] * 6)
    runs = [model._decode(model(frames.flip(d) if d else frames, inputs), inputs.lengths)
            for d in ((), (3,), (2,), (2, 3))]
    stage, progress, done = model.score_windows(frames, inputs)
    np.testing.assert_allclose(progress, np.median([r.progress for r in runs], axis=0), atol=1e-6)
    np.testing.assert_allclose(done, np.median([r.done for r in runs], axis=0), atol=1e-6)
    for i, s in enumerate(stage):
        votes = [int(r[0][i]) for r in runs]
        assert votes.count(int(s)) == max(votes.count(v) for v in votes)
        if votes.count(votes[0]) == max(votes.count(v) for v in votes):
            assert s == votes[0]  # ties go to the window as given


def test_meanmax_pool_sees_what_not_where():
    """With ``pool="meanmax"`` the image vector is the same wherever in the frame a pattern
    sits (moved by whole cells of the last feature map); with ``flatten`` it is not."""
    torch.manual_seed(0)
    frames = torch.zeros(1, 2, 64, 64, 3, dtype=torch.uint8)
    frames[:, 1, 16:24, 16:24] = 255  # a square appears in the newest frame, away from edges
    moved = torch.roll(frames, shifts=(16, 8), dims=(2, 3))  # by whole cells of the 8x8 map
    outs = {}
    for pool in ("flatten", "meanmax"):
        net = CompactNet(CompactConfig(window=2, image_size=64, channels=(4, 8, 8), hidden=16,
                                       key_dim=8, pool=pool)).eval()
        with torch.no_grad():
            outs[pool] = (net.encode_frames(frames), net.encode_frames(moved))
    torch.testing.assert_close(*outs["meanmax"])
    assert not torch.allclose(*outs["flatten"])
    assert net.image_proj.in_features == 2 * 8  # mean and max of each channel


def test_keypoints_pool_reads_where_a_pattern_is():
    """With ``pool="keypoints"`` a channel's expected position follows a pattern across the
    frame: a square moved right and down moves the soft-argmax of the channels it lights up
    right and down, and the vector is each channel's mean plus its x and y."""
    torch.manual_seed(0)
    net = CompactNet(CompactConfig(window=1, image_size=32, channels=(4, 8), hidden=16,
                                   key_dim=8, pool="keypoints")).eval()
    assert net.image_proj.in_features == 3 * 8
    positions = {}
    for name, (r, c) in {"top-left": (2, 2), "bottom-right": (22, 22)}.items():
        frames = torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8)
        frames[:, 0, r:r + 8, c:c + 8] = 255
        x = frames.permute(0, 1, 4, 2, 3).float().div(255.0).flatten(1, 2) - 0.5
        cells = net.encoder(x).flatten(2)
        attention = torch.softmax(cells * net.log_temperature.exp(), dim=2)
        positions[name] = attention @ net.cell_xy  # (1, C, 2)
    lit = (positions["bottom-right"] - positions["top-left"]).abs().sum(-1) > 0.05
    assert lit.any()
    moved = positions["bottom-right"][lit] - positions["top-left"][lit]  # (n, 2)
    assert (moved > 0).all(), moved  # every channel that moved went right and down
    with torch.no_grad():
        a = net.encode_frames(torch.zeros(1, 1, 32, 32, 3, dtype=torch.uint8))
    assert a.shape == (1, 16)


def test_keypoints_model_round_trips(tmp_path):
    model = tiny_model(pool="keypoints")
    with torch.no_grad():
        model.net.log_temperature.fill_(0.7)  # a trained temperature is saved and loaded
    before = model.predict(fixed_frames(), "Push the puck")
    model.save_pretrained(tmp_path)
    after = load_model(tmp_path).predict(fixed_frames(), "Push the puck")
    np.testing.assert_array_equal(before.progress, after.progress)


def test_window_input_norm_ignores_exposure_contrast_and_tint():
    """With ``input_norm="window"`` a window rendered with half the contrast and a tint (one
    gain and an offset per colour channel) gives the same image vector; without it, not.
    A change inside the window still reaches the model."""
    gen = torch.Generator().manual_seed(0)
    frames = 2 * torch.randint(30, 90, (2, 3, 32, 32, 3), generator=gen, dtype=torch.uint8)
    dim = frames // 2 + torch.tensor([30, 10, 20], dtype=torch.uint8)  # exact: even values
    changed = frames.clone()
    changed[:, -1, 8:16, 8:16] = 255  # something moved in the newest frame
    outs = {}
    for norm in ("none", "window"):
        torch.manual_seed(0)
        net = CompactNet(CompactConfig(window=3, image_size=32, channels=(4, 8), hidden=16,
                                       key_dim=8, input_norm=norm)).eval()
        with torch.no_grad():
            outs[norm] = [net.encode_frames(x) for x in (frames, dim, changed)]
    plain, dimmed, moved = outs["window"]
    torch.testing.assert_close(plain, dimmed, atol=1e-4, rtol=1e-4)
    assert (plain - moved).abs().max() > 0.05
    assert (outs["none"][0] - outs["none"][1]).abs().max() > 0.05


def test_window_input_norm_keeps_a_flat_window_finite():
    net = CompactNet(CompactConfig(window=2, image_size=32, channels=(4, 8), hidden=16,
                                   key_dim=8, input_norm="window")).eval()
    black = torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8)
    with torch.no_grad():
        assert torch.isfinite(net.encode_frames(black)).all()


def test_meanmax_model_round_trips(tmp_path):
    model = tiny_model(pool="meanmax")
    before = model.predict(fixed_frames(), "Push the puck")
    model.save_pretrained(tmp_path)
    after = load_model(tmp_path).predict(fixed_frames(), "Push the puck")
    np.testing.assert_array_equal(before.progress, after.progress)


def _window_outputs(model, frames):
    windows = torch.from_numpy(resize_frames(frames, 16))[window_indices(len(frames), 4, 4)]
    inputs = model.plan_inputs(["Push the puck"] * len(frames), [PLAN] * len(frames))
    with torch.no_grad():
        return model(windows, inputs)


def test_ensemble_averages_its_members():
    a, b = tiny_model(seed=0), tiny_model(seed=1)
    joined = ensemble([a, b])
    assert joined.config.members == 2 and not joined.training
    frames = fixed_frames(8)
    oa, ob, oj = (_window_outputs(m, frames) for m in (a, b, joined))
    assert not torch.allclose(oa.progress, ob.progress)  # two different members
    torch.testing.assert_close(oj.progress, (oa.progress + ob.progress) / 2)
    probs = (torch.softmax(oa.stage_logits, 1) + torch.softmax(ob.stage_logits, 1)) / 2
    torch.testing.assert_close(torch.softmax(oj.stage_logits, 1), probs)
    pa, pb, pj = (m.predict(frames, "Push the puck") for m in (a, b, joined))
    np.testing.assert_allclose(pj.done, (pa.done + pb.done) / 2, atol=1e-6)
    np.testing.assert_allclose(pj.progress, (pa.progress + pb.progress) / 2, atol=1e-6)
    # a padded step stays impossible: a batch with a longer plan beside this one
    inputs = joined.plan_inputs(["Push the puck", "Other"], [PLAN, PLAN + ["Press it"]])
    windows = torch.from_numpy(resize_frames(frames[:2], 16))[window_indices(2, 4, 4)]
    with torch.no_grad():
        logits = joined(windows, inputs).stage_logits
    assert logits[0, len(PLAN)] == -1e9 and logits[1, len(PLAN)] > -100


def test_ensemble_of_an_ensemble_flattens_and_averages_budgets():
    a, b, c = tiny_model(seed=0), tiny_model(seed=1), tiny_model(seed=2)
    c.budgets["Push the puck"] = [0.0, 0.4, 0.9, 1.0]
    c.budgets["Only c"] = [0.0, 1.0]
    joined = ensemble([ensemble([a, b]), c])
    assert joined.config.members == 3 and len(joined.net.members) == 3
    np.testing.assert_allclose(joined.budgets["Push the puck"],
                               [0.0, (0.2 * 2 + 0.4) / 3, (0.7 * 2 + 0.9) / 3, 1.0])
    assert joined.budgets["Only c"] == [0.0, 1.0]


def test_ensemble_refuses_what_it_cannot_join():
    with pytest.raises(ProcvlmError, match="at least two"):
        ensemble([tiny_model()])
    with pytest.raises(ProcvlmError, match="model 1 has window=2"):
        ensemble([tiny_model(), tiny_model(window=2)])
    other = tiny_model(seed=1)
    other.plans["Push the puck"] = PLAN[:2]
    with pytest.raises(ProcvlmError, match="different plans for task 'Push the puck'"):
        ensemble([tiny_model(), other])


def test_ensemble_round_trips(tmp_path):
    joined = ensemble([tiny_model(seed=0, flip_average=True),
                       tiny_model(seed=1, flip_average=True)])
    before = joined.predict(fixed_frames(), "Push the puck")
    joined.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["members"] == 2
    after = load_model(tmp_path).predict(fixed_frames(), "Push the puck")
    np.testing.assert_array_equal(before.progress, after.progress)
    np.testing.assert_array_equal(before.done, after.done)
    assert before.remaining == after.remaining


def test_ensemble_streams_like_any_model():
    """``score_last`` (the reward wrappers' and the server's path) averages the members too."""
    a, b = tiny_model(seed=0, anchor=True), tiny_model(seed=1, anchor=True)
    joined = ensemble([a, b])
    assert joined.anchored and joined.history == a.history
    clips = [(fixed_frames(n), "Push the puck", None) for n in (3, 9)]
    got = joined.score_last(clips)
    want = [m.score_last(clips) for m in (a, b)]
    np.testing.assert_allclose(got.progress, (want[0].progress + want[1].progress) / 2,
                               atol=1e-6)
    np.testing.assert_allclose(got.done, (want[0].done + want[1].done) / 2, atol=1e-6)
