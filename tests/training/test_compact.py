"""Compact trainer: budgets, loss, every parameter learns, determinism, resume, metrics."""

import json

import numpy as np
import pytest
import torch

from procvlm.models.compact.text import hash_embeddings
from procvlm.errors import ProcvlmError
from procvlm.models import load_model
from procvlm.models.compact import CompactConfig, TextEncoder
from procvlm.training.compact import (TrainConfig, build_model, compute_budgets,
                                      compute_loss, end_weights, evaluate,
                                      latest_checkpoint, lr_at,
                                      make_batch, stage_class_weights, stage_classes,
                                      train_compact, train_step)
from procvlm.training.data import corpus_from_episodes, split_episodes, synthetic_episodes

torch.set_num_threads(1)  # tiny nets: threads only add contention on a shared machine
MCFG = CompactConfig(image_size=16, channels=(8, 16), hidden=32, key_dim=16, window=3, stride=2)


@pytest.fixture(scope="module")
def corpus():
    eps, targets = synthetic_episodes(10, 24, 16, seed=0, failure_rate=0.4)
    return corpus_from_episodes(eps, targets, 16)


def encoder():
    return TextEncoder(encode_fn=hash_embeddings)


def test_budgets_follow_stage_starts(corpus):
    table = compute_budgets(corpus, list(range(corpus.num_episodes)))
    assert set(table) == set(corpus.tasks)
    for task, b in table.items():
        k = len(corpus.plans[corpus.tasks.index(task)])
        assert len(b) == k + 1 and b[0] == 0.0 and b[-1] == 1.0
        assert np.all(np.diff(b) >= 0)
        # uniform synthetic labels: stage j starts near j / K
        np.testing.assert_allclose(b, np.linspace(0, 1, k + 1), atol=0.1)


def test_targets_and_loss(corpus):
    torch.manual_seed(0)
    model = build_model(corpus, [0, 1, 2], MCFG, encoder())
    ids = np.arange(len(corpus.frames))
    frames, inputs, tg = make_batch(model, corpus, ids)
    assert frames.shape == (len(ids), 3, 16, 16, 3) and frames.dtype == torch.uint8
    done = tg["stage"] == inputs.lengths
    assert (tg["column"][done] == inputs.step_mask.shape[1]).all()
    assert ((tg["within"] >= 0) & (tg["within"] <= 1)).all()
    loss, parts = compute_loss(model(frames, inputs), tg, TrainConfig())
    assert loss.item() > 0 and set(parts) == {"loss", "stage_ce", "within_l1", "progress_l1"}


def test_end_weights_weigh_each_episodes_last_frames(corpus):
    ids = np.arange(len(corpus.frames))
    w = end_weights(corpus, ids, 2.0, 3)
    for e in range(corpus.num_episodes):
        lo, hi = corpus.offsets[e], corpus.offsets[e + 1]
        assert w[lo:hi - 3].tolist() == [1.0] * (hi - 3 - lo)
        assert w[hi - 3:hi].tolist() == [3.0] * 3
    with pytest.raises(ProcvlmError, match="end_frames=0"):
        TrainConfig(end_weight=1.0, end_frames=0)


def test_frame_weights_make_every_loss_term_a_weighted_mean(corpus):
    torch.manual_seed(0)
    model = build_model(corpus, [0, 1, 2], MCFG, encoder()).eval()
    ids = np.arange(len(corpus.frames))
    cw = stage_class_weights(corpus, [0, 1, 2], MCFG.max_plan_len, 0.5)

    def loss(batch_ids, weights=None):
        frames, inputs, tg = make_batch(model, corpus, batch_ids, class_weights=cw,
                                        frame_weights=weights)
        with torch.no_grad():
            return compute_loss(model(frames, inputs), tg, TrainConfig())[1]

    plain, ones = loss(ids), loss(ids, np.ones(len(ids), np.float32))
    for k in plain:
        assert ones[k] == pytest.approx(plain[k], rel=1e-5)
    # weight 0 outside a subset: the loss of the subset alone
    subset = ids[corpus.offsets[1]:corpus.offsets[3]]
    only = loss(ids, np.isin(ids, subset).astype(np.float32))
    alone = loss(subset)
    for k in alone:
        assert only[k] == pytest.approx(alone[k], rel=1e-4)
    assert only["progress_l1"] != pytest.approx(plain["progress_l1"], rel=1e-3)


def test_stage_weights_lift_the_rare_done_class(corpus):
    eps = list(range(corpus.num_episodes))
    kmax = MCFG.max_plan_len
    cls = stage_classes(corpus, corpus.frame_ids(eps), kmax)
    counts = np.bincount(cls[cls >= 0], minlength=kmax + 1)
    assert 0 < counts[kmax] < counts[:kmax].max()  # done is rarer than the commonest step
    w = stage_class_weights(corpus, eps, kmax, 0.5)
    assert w.shape == (kmax + 1,)
    assert w[kmax] > w[int(np.argmax(counts[:kmax]))]
    np.testing.assert_allclose(w[cls[cls >= 0]].mean(), 1.0, rtol=1e-5)  # average frame: 1
    full = stage_class_weights(corpus, eps, kmax, 1.0)  # inverse frequency: classes weigh alike
    seen = counts > 0
    np.testing.assert_allclose(full[seen] * counts[seen], (full[seen] * counts[seen])[0],
                               rtol=1e-5)
    np.testing.assert_array_equal(stage_class_weights(corpus, eps, kmax, 0.0), 1.0)
    with pytest.raises(ProcvlmError, match="stage_balance"):
        TrainConfig(stage_balance=1.5)


def test_stage_loss_is_the_weighted_mean_cross_entropy(corpus):
    torch.manual_seed(0)
    model = build_model(corpus, [0, 1, 2], MCFG, encoder())
    ids = np.arange(len(corpus.frames))
    weights = stage_class_weights(corpus, list(range(corpus.num_episodes)), MCFG.max_plan_len,
                                  0.5)
    frames, inputs, plain = make_batch(model, corpus, ids)
    _, _, balanced = make_batch(model, corpus, ids, class_weights=weights)
    with torch.no_grad():
        out = model(frames, inputs)
    assert (plain["stage_weight"] == 1).all()
    lab = balanced["stage"] >= 0
    per = torch.nn.functional.cross_entropy(out.stage_logits[lab], balanced["column"][lab],
                                            reduction="none")
    w = balanced["stage_weight"][lab]
    _, parts = compute_loss(out, balanced, TrainConfig())
    assert parts["stage_ce"] == pytest.approx(float((per * w).sum() / w.sum()), rel=1e-5)
    _, parts = compute_loss(out, plain, TrainConfig())
    assert parts["stage_ce"] == pytest.approx(float(per.mean()), rel=1e-5)


def test_steps_change_every_parameter_and_loss_falls(corpus):
    torch.manual_seed(0)
    model = build_model(corpus, list(range(corpus.num_episodes)), MCFG, encoder())
    before = {k: v.detach().clone() for k, v in model.net.named_parameters()}
    opt = torch.optim.AdamW(model.net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    ids = np.arange(0, len(corpus.frames), 3)
    tcfg = TrainConfig(augment=False)
    first = train_step(model, opt, corpus, ids, 3e-3, tcfg, gen)["loss"]
    for _ in range(40):
        last = train_step(model, opt, corpus, ids, 3e-3, tcfg, gen)["loss"]
    assert last < 0.5 * first
    for name, p in model.net.named_parameters():
        assert not torch.equal(before[name], p.detach()), f"{name} did not change"


def test_lr_schedule_warms_up_then_decays():
    tcfg = TrainConfig(lr=1.0, warmup_steps=10)
    assert lr_at(0, 100, tcfg) == pytest.approx(0.1)
    assert lr_at(10, 100, tcfg) > lr_at(90, 100, tcfg) >= 0.1


def run(corpus, out, **kw):
    tcfg = TrainConfig(batch_size=16, val_fraction=0.3, augment=True, warmup_steps=2,
                       threads=1, **kw)
    return train_compact(corpus, out, MCFG, tcfg, text_encoder=encoder(), show_progress=False)


def run_interrupted(monkeypatch, corpus, out, after, **kw):
    """Start ``run(corpus, out, **kw)`` and interrupt it (Ctrl-C) after ``after`` steps."""
    import procvlm.training.compact as trainer

    real_step, calls = trainer.train_step, []

    def interrupted(*args, **kwargs):
        if len(calls) == after:
            raise KeyboardInterrupt
        calls.append(1)
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(corpus, out, **kw)
    monkeypatch.setattr(trainer, "train_step", real_step)


@pytest.mark.slow
def test_training_is_deterministic_and_resumes_exactly(corpus, tmp_path, monkeypatch):
    full = run(corpus, tmp_path / "a", steps=16)
    again = run(corpus, tmp_path / "b", steps=16)
    for (k, v), w in zip(full.model.net.state_dict().items(), again.model.net.state_dict().values()):
        assert torch.equal(v, w), k
    # interrupt after 8 of 16 steps, then resume: same weights as the uninterrupted run
    run_interrupted(monkeypatch, corpus, tmp_path / "c", 8, steps=16)
    ckpt = latest_checkpoint(tmp_path / "c")
    assert ckpt is not None and ckpt.name == "step_0000008.pt"
    tcfg = TrainConfig(batch_size=16, val_fraction=0.3, warmup_steps=2, steps=16, threads=1)
    resumed = train_compact(corpus, tmp_path / "c", MCFG, tcfg, resume=True,
                            text_encoder=encoder(), show_progress=False)
    assert resumed.metrics["steps"] == 16
    for (k, v), w in zip(full.model.net.state_dict().items(),
                         resumed.model.net.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k
    metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert {"mae", "voc", "auroc", "stall_drift", "stage_acc"} <= set(metrics["val"])
    assert metrics["history"] and metrics["steps"] == 16
    loaded = load_model(tmp_path / "a" / "model", text_encoder=encoder())
    np.testing.assert_allclose(evaluate(loaded, corpus, [0, 1])["mae"],
                               evaluate(full.model, corpus, [0, 1])["mae"], rtol=1e-6)


@pytest.mark.slow
def test_ema_saves_the_moving_average_and_resumes_exactly(corpus, tmp_path, monkeypatch):
    import procvlm.training.compact as trainer

    decay = 0.8
    trained, real_step = [], trainer.train_step

    def recording(model, *args, **kwargs):  # the trained weights after every step
        parts = real_step(model, *args, **kwargs)
        trained.append({k: v.clone() for k, v in model.net.state_dict().items()})
        return parts

    monkeypatch.setattr(trainer, "train_step", recording)
    full = run(corpus, tmp_path / "a", steps=12, ema=decay)
    monkeypatch.setattr(trainer, "train_step", real_step)
    assert len(trained) == 12
    # the saved model is the moving average of the trained weights, not the last of them
    ckpt = torch.load(latest_checkpoint(tmp_path / "a"), weights_only=False)
    saved = load_model(tmp_path / "a" / "model", text_encoder=encoder()).net.state_dict()
    for k, last in trained[-1].items():
        if not last.is_floating_point():
            continue
        expected = trained[0][k].clone()
        for weights in trained[1:]:
            expected = decay * expected + (1 - decay) * weights[k]
        torch.testing.assert_close(saved[k], expected, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ckpt["model"][k], last)  # the trained ones go on
    assert any(not torch.allclose(saved[k], v) for k, v in trained[-1].items())
    assert json.loads((tmp_path / "a" / "model" / "training.json").read_text())["ema"] == decay
    # validation scores the average too: the final metrics are the saved model's
    _, val_eps = split_episodes(corpus, 0.3, 0)
    val = json.loads((tmp_path / "a" / "metrics.json").read_text())["val"]
    loaded = load_model(tmp_path / "a" / "model", text_encoder=encoder())
    assert evaluate(loaded, corpus, val_eps)["mae"] == pytest.approx(val["mae"], rel=1e-6)
    loaded.net.load_state_dict(ckpt["model"])
    assert evaluate(loaded, corpus, val_eps)["mae"] != pytest.approx(val["mae"], rel=1e-6)
    # interrupted after 6 of 12 steps and resumed: the same average as the uninterrupted run
    run_interrupted(monkeypatch, corpus, tmp_path / "b", 6, steps=12, ema=decay)
    tcfg = TrainConfig(batch_size=16, val_fraction=0.3, augment=True, warmup_steps=2,
                       threads=1, steps=12, ema=decay)
    resumed = train_compact(corpus, tmp_path / "b", MCFG, tcfg, resume=True,
                            text_encoder=encoder(), show_progress=False)
    for (k, v), w in zip(full.model.net.state_dict().items(),
                         resumed.model.net.state_dict().values()):
        torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6, msg=k)
    # resuming without --ema (or with it on a run trained without) is refused
    plain = TrainConfig(batch_size=16, val_fraction=0.3, augment=True, warmup_steps=2,
                        threads=1, steps=14)
    with pytest.raises(ProcvlmError, match="trained with a moving average.*same options"):
        train_compact(corpus, tmp_path / "b", MCFG, plain, resume=True,
                      text_encoder=encoder(), show_progress=False)


def test_bad_train_config():
    with pytest.raises(ProcvlmError, match="unknown label scheme 'paper'"):
        TrainConfig(scheme="paper")
    with pytest.raises(ProcvlmError, match="val_fraction=1.0"):
        TrainConfig(val_fraction=1.0)
    with pytest.raises(ProcvlmError, match="ema=1.0: need 0 .off. <= ema < 1"):
        TrainConfig(ema=1.0)


def test_image_size_must_match_corpus(corpus, tmp_path):
    with pytest.raises(ProcvlmError, match="image_size 32 != corpus frames 16"):
        train_compact(corpus, tmp_path, CompactConfig(image_size=32), TrainConfig(steps=1, threads=1),
                      text_encoder=encoder(), show_progress=False)


def test_augmentation_shifts_and_stills_windows(corpus):
    from procvlm.models.compact.processor_compact import AugmentConfig, augment_windows

    frames = torch.from_numpy(corpus.frames[corpus.windows(np.arange(40, 48), 3, 2)])
    gen = torch.Generator().manual_seed(0)
    out = augment_windows(frames, gen)
    assert out.shape == frames.shape and out.dtype == torch.uint8
    still = augment_windows(frames, gen, AugmentConfig(still=1.0))
    assert (still == still[:, -1:]).all()


DIRECT = CompactConfig(image_size=16, channels=(8, 16), hidden=32, key_dim=16, window=3,
                       stride=2, head="direct")


def test_direct_head_steps_change_every_parameter_and_loss_is_progress_only(corpus):
    torch.manual_seed(0)
    model = build_model(corpus, list(range(corpus.num_episodes)), DIRECT, encoder())
    names = {n for n, _ in model.net.named_parameters()}
    assert "progress_head.weight" in names and not any(n.startswith("query") for n in names)
    before = {k: v.detach().clone() for k, v in model.net.named_parameters()}
    opt = torch.optim.AdamW(model.net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    ids = np.arange(0, len(corpus.frames), 3)
    parts = train_step(model, opt, corpus, ids, 3e-3, TrainConfig(augment=False), gen)
    assert set(parts) == {"loss", "progress_l1"}
    assert parts["loss"] == pytest.approx(2.0 * parts["progress_l1"])
    for name, p in model.net.named_parameters():
        assert not torch.equal(before[name], p.detach()), f"{name} did not change"


def test_run_records_settings_and_steps_reached(corpus, tmp_path):
    result = run(corpus, tmp_path / "r", steps=5)
    cfg = json.loads((tmp_path / "r" / "model" / "config.json").read_text())
    assert (cfg["camera"], cfg["scheme"], cfg["image_size"], cfg["window"]) == ("main", "procvlm",
                                                                                16, 3)
    record = json.loads((tmp_path / "r" / "model" / "training.json").read_text())
    assert record["steps"] == 5 and record["scheme"] == "procvlm" and record["head"] == "reason"
    assert result.metrics["steps"] == 5 and result.metrics["history"][-1]["step"] == 5
    loaded = load_model(tmp_path / "r", text_encoder=encoder())
    assert loaded.config.camera == "main" and loaded.training_record["steps"] == 5


def test_step_budget_is_exact_across_epochs_and_resumes(corpus, tmp_path):
    # 16-window batches over ~170 training frames: 10 batches an epoch, so 23 steps cross two
    # epoch ends (validation + checkpoint) and stop mid-epoch
    result = run(corpus, tmp_path / "r", steps=23)
    assert result.metrics["steps"] == 23 and result.metrics["epochs"] == 3
    assert latest_checkpoint(tmp_path / "r").name == "step_0000023.pt"
    with pytest.raises(ProcvlmError, match="at step 23, past steps=10"):
        train_compact(corpus, tmp_path / "r", MCFG, TrainConfig(steps=10, threads=1),
                      resume=True, text_encoder=encoder(), show_progress=False)


def test_direct_run_predicts_no_stage_and_no_remaining_actions(corpus, tmp_path):
    tcfg = TrainConfig(batch_size=16, val_fraction=0.3, steps=2, threads=1)
    result = train_compact(corpus, tmp_path / "d", DIRECT, tcfg, text_encoder=encoder(),
                           show_progress=False)
    assert result.metrics["val"]["stage_acc"] is None and result.metrics["head"] == "direct"
    eps, _ = synthetic_episodes(1, 12, 16, seed=3)
    pred = load_model(tmp_path / "d", text_encoder=encoder()).predict(eps[0])
    assert len(pred) == 12 and (pred.stage == -1).all()
    assert pred.remaining == [[] for _ in range(12)]
    assert ((pred.progress >= 0) & (pred.progress <= 1)).all()


def test_torch_settings_are_restored(corpus, tmp_path):
    torch.set_num_threads(1)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    tcfg = TrainConfig(batch_size=16, val_fraction=0.3, steps=1, threads=2)
    train_compact(corpus, tmp_path / "t", MCFG, tcfg, text_encoder=encoder(),
                  show_progress=False)
    assert torch.get_num_threads() == 1
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.equal(torch.get_rng_state(), rng)


def test_settings_restored_when_training_fails(corpus, tmp_path, monkeypatch):
    import procvlm.training.compact as trainer

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(trainer, "train_step", boom)
    torch.set_num_threads(1)
    with pytest.raises(RuntimeError, match="boom"):
        train_compact(corpus, tmp_path / "f", MCFG, TrainConfig(steps=3, threads=2),
                      text_encoder=encoder(), show_progress=False)
    assert torch.get_num_threads() == 1 and not torch.are_deterministic_algorithms_enabled()


def test_recorded_settings_must_agree(corpus, tmp_path):
    with pytest.raises(ProcvlmError, match="scheme 'time' but the run learns 'procvlm'"):
        train_compact(corpus, tmp_path, CompactConfig(image_size=16, scheme="time"),
                      TrainConfig(steps=1, threads=1), text_encoder=encoder(),
                      show_progress=False)
    with pytest.raises(ProcvlmError, match="steps=0"):
        TrainConfig(steps=0)


def test_an_ensemble_is_joined_after_training_not_trained(corpus):
    from dataclasses import replace

    with pytest.raises(ProcvlmError, match="procvlm ensemble"):
        build_model(corpus, [0, 1], replace(MCFG, members=2), encoder())
