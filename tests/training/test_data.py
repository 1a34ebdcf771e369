"""Windowed training corpus: synthetic episodes, dataset adapter, windows, splits."""

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.training.data import (corpus_from_episodes, load_corpus, scheme_suffix,
                                   split_episodes, synthetic_episodes)


@pytest.fixture(scope="module")
def episodes():
    return synthetic_episodes(9, 30, 16, seed=1, failure_rate=0.5)


def test_synthetic_corpus_has_failures_stalls_and_done(episodes):
    eps, targets = episodes
    modes = {e.meta["failure"] for e in eps}
    assert {"truncate", "stall"} <= modes and None in modes
    for ep, tg in zip(eps, targets):
        assert len(tg.progress) == len(ep) and 0 <= tg.progress.min() <= tg.progress.max() <= 1
        if not ep.success:
            assert (tg.stage < len(ep.plan)).all() and tg.progress[-1] < 1
        stall = [ev for ev in ep.meta["events"] if ev["type"] == "stall"]
        for ev in stall:  # frames identical and labels flat during a stall
            f = ep.main_frames()[np.arange(ev["start"], min(ev["end"], len(ep)))]
            assert (f == f[0]).all()


def test_corpus_windows_stay_inside_their_episode(episodes):
    c = corpus_from_episodes(*episodes, image_size=16)
    assert c.frames.shape == (9 * 30, 16, 16, 3) and c.num_episodes == 9
    ids = np.array([0, 29, 30, 31, 100])
    w = c.windows(ids, 3, 4)
    assert w.tolist()[2] == [30, 30, 30] and w.tolist()[3] == [30, 30, 31]
    assert (c.episode_of(w.ravel()) == np.repeat(c.episode_of(ids), 3)).all()
    assert c.frame_ids([1]).tolist() == list(range(30, 60))
    anchored = c.windows(ids, 3, 4, anchor=True)
    assert anchored[:, 1:].tolist() == w.tolist()
    assert anchored[:, 0].tolist() == [0, 0, 30, 30, 90]  # each window's episode start


def test_split_is_episode_level_stratified_and_seeded(episodes):
    c = corpus_from_episodes(*episodes, image_size=16)
    train, val = split_episodes(c, 0.34, seed=0)
    assert not set(train) & set(val) and sorted(train + val) == list(range(9))
    assert {int(c.success[e]) for e in val} == {0, 1}
    assert split_episodes(c, 0.34, seed=0) == (train, val)
    with pytest.raises(ProcvlmError, match="--val-fraction 1.5"):
        split_episodes(c, 1.5, 0)


def test_missing_plan_and_label_mismatch_are_errors(episodes):
    eps, targets = episodes
    eps[0].plan, plan = None, eps[0].plan
    try:
        with pytest.raises(ProcvlmError, match="has no plan"):
            corpus_from_episodes(eps[:1], targets[:1], 16)
        ok = corpus_from_episodes(eps[:1], targets[:1], 16, plans={eps[0].task: plan})
        assert ok.plans[0] == plan
    finally:
        eps[0].plan = plan
    with pytest.raises(ProcvlmError, match="labels for"):
        corpus_from_episodes(eps[:1], targets[1:2] if len(targets[1].progress) != 30 else
                             [type(targets[0])(targets[0].stage[:5], targets[0].progress[:5],
                                               targets[0].stage_progress[:5])], 16)


def test_scheme_suffix():
    assert scheme_suffix("procvlm-paper") == "procvlm_paper"
    with pytest.raises(ProcvlmError, match="unknown label scheme"):
        scheme_suffix("dense")


def test_load_corpus_from_a_labelled_lerobot_dataset(episodes, tmp_path):
    from procvlm.data import write_dataset
    from procvlm.labels import label_dataset

    eps, _ = episodes
    write_dataset(tmp_path / "ds", eps[:4], video=False)
    with pytest.raises(ProcvlmError, match="procvlm label"):
        load_corpus(tmp_path / "ds", image_size=16, show_progress=False)
    label_dataset(tmp_path / "ds")
    for scheme in ("procvlm", "time"):
        c = load_corpus(tmp_path / "ds", scheme, image_size=8, show_progress=False)
        assert c.frames.shape == (4 * 30, 8, 8, 3) and c.tasks == [e.task for e in eps[:4]]
        assert c.plans == [e.plan for e in eps[:4]]
        assert (c.stage >= -1).all() and (c.progress <= 1).all()
    with pytest.raises(ProcvlmError, match="camera 'wrist'"):
        load_corpus(tmp_path / "ds", image_size=8, camera="wrist", show_progress=False)


def test_corpus_from_a_dataset_lets_each_episode_go_once_decoded(episodes, tmp_path):
    """A corpus of thousands of image-mode episodes must not hold their encoded frames and
    decoded-frame caches (3840 MetaWorld episodes ran a 24 GB machine out of memory): each
    episode is released once its frames are resized, and the corpus is the same."""
    import gc
    import weakref

    from procvlm.data import open_dataset, write_dataset
    from procvlm.labels import label_dataset, read_labels, read_plans
    from procvlm.training.data import corpus_from_dataset

    eps, _ = episodes
    write_dataset(tmp_path / "ds", eps[:4], video=False)
    label_dataset(tmp_path / "ds")
    ds, alive = open_dataset(tmp_path / "ds"), []
    episode = ds.episode

    def tracked(i, **kw):
        gc.collect()
        alive.append(sum(r() is not None for r in refs))
        ep = episode(i, **kw)
        refs.append(weakref.ref(ep))
        return ep

    refs: list = []
    ds.episode = tracked
    table, plans = read_labels(tmp_path / "ds"), read_plans(tmp_path / "ds")
    streamed = corpus_from_dataset(ds, table, plans, "procvlm", 8, show_progress=False)
    assert max(alive) <= 1  # at most the previous episode (the loop's variable) when reading
    gc.collect()
    assert not any(r() is not None for r in refs)  # the corpus keeps none
    ds.episode = episode
    whole = load_corpus(tmp_path / "ds", image_size=8, show_progress=False)
    assert np.array_equal(streamed.frames, whole.frames)
    assert np.array_equal(streamed.offsets, whole.offsets) and streamed.camera == whole.camera


def test_corpus_frames_are_stacked_without_a_second_copy(episodes):
    import weakref

    from procvlm.training.data import _concat, read_frames

    eps, targets = episodes
    pieces = [read_frames(e.main_frames(), 8) for e in eps[:3]]
    refs = [weakref.ref(p) for p in pieces]
    expected = np.concatenate(pieces)
    corpus = corpus_from_episodes(eps[:3], targets[:3], 8)
    infos = [{"episode_index": i, "task": e.task, "plan": e.plan, "success": e.success}
             for i, e in enumerate(eps[:3])]
    stacked = _concat(pieces, list(targets[:3]), infos, None)
    assert pieces == [None, None, None] and all(r() is None for r in refs)  # released
    assert np.array_equal(stacked.frames, expected)
    assert np.array_equal(corpus.frames, expected)
