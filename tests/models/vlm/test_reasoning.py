import pytest

from procvlm.models.vlm.reasoning import anchor_frames, frames_to_split, reuse_sources


def test_anchor_frames():
    assert anchor_frames(10, 4) == [0, 4, 8, 9]
    assert anchor_frames(1, 8) == [0]
    with pytest.raises(ValueError):
        anchor_frames(0, 8)


def test_split_only_where_neighbours_disagree_or_are_unreadable():
    assert frames_to_split({0: "a", 4: "a", 8: "b", 9: "b"}) == [6]
    assert frames_to_split({0: None, 4: None}) == [2]
    assert frames_to_split({0: "a", 1: "b"}) == []  # adjacent: nothing between


def _run(truth, refresh):
    keys = {t: truth[t] for t in anchor_frames(len(truth), refresh)}
    while todo := frames_to_split(keys):
        keys.update({t: truth[t] for t in todo})
    return keys


def test_bisection_finds_every_boundary_exactly():
    truth = ["a"] * 13 + ["b"] * 9 + ["c"] * 19 + [None] * 3
    keys = _run(truth, 8)
    sources = reuse_sources(len(truth), keys)
    assert [truth[s] for s in sources] == truth
    assert len(keys) < len(truth) / 2  # far fewer generated answers than frames


def test_reuse_sources_refuses_unsplit_intervals():
    with pytest.raises(ValueError, match="disagree"):
        reuse_sources(5, {0: "a", 4: "b"})
    assert reuse_sources(5, {0: "a", 4: "a"}) == [0, 0, 0, 0, 4]
