"""``procvlm generate``: a tiny corpus, resuming without redoing episodes, helpful errors."""

import dataclasses

import pytest

import procvlm.sim.corpus as gen
from procvlm.cli.main import main
from procvlm.data import open_dataset
from procvlm.errors import ProcvlmError
from procvlm.sim import TASKS, episode_plans, parse_tasks

pytestmark = [pytest.mark.sim]


def args(out, episodes):
    return ["generate", "--env", "metaworld", "--tasks", "pick-place,assembly", "--episodes",
            str(episodes), "--failure-rate", "0.5", "--seed", "0", "--width", "64", "--height",
            "64", "--max-steps", "60", "--out", str(out)]


@pytest.mark.slow
def test_generate_writes_a_dataset_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "ds"
    assert main(args(out, 2)) == 0
    assert str(out) in capsys.readouterr().out
    ds = open_dataset(out)
    assert ds.num_episodes == 2 and ds.cameras == ["corner", "gripper"]
    plans = episode_plans(2, parse_tasks("pick-place,assembly"), 0.5, 0)
    for i, (spec, seed, failure) in enumerate(plans):
        ep = ds.episode(i)
        assert ep.task == spec.instruction and ep.plan == spec.plan
        assert ep.meta["seed"] == seed and ep.meta["failure"] == failure
        assert ep.meta["env"] == "metaworld" and ep.subtasks[0].start == 0
        assert ep.frames["corner"][0].shape == (64, 64, 3)
        assert ep.meta["pacing"] == "human", "human pacing is the default"
        assert ep.true_progress.shape == (len(ep),) and ep.true_progress.dtype == "float32"

    calls = []
    real = gen.rollout
    monkeypatch.setattr(gen, "rollout", lambda *a, **k: calls.append(k["episode_index"])
                        or real(*a, **k))
    assert main(args(out, 3)) == 0
    assert calls == [2], "episodes 0 and 1 are not redone"
    assert open_dataset(out).num_episodes == 3


def test_unknown_task_lists_the_known_ones(tmp_path, capsys):
    assert main(args(tmp_path / "x", 1)[:4] + ["pick-place,flying"]
                + args(tmp_path / "x", 1)[5:]) == 2
    err = capsys.readouterr().err
    assert "unknown MetaWorld task 'flying'" in err and "pick-place" in err
    with pytest.raises(ProcvlmError, match="choose from " + ", ".join(list(TASKS)[:3])):
        gen.generate(tmp_path / "y", "nope", 1, 0.0, 0)


def test_bad_counts_and_env(tmp_path, capsys):
    with pytest.raises(ProcvlmError, match="--episodes 0"):
        gen.generate(tmp_path / "y", "pick-place", 0, 0.0, 0)
    with pytest.raises(ProcvlmError, match=r"--failure-rate 1.5 is outside \[0, 1\]"):
        gen.generate(tmp_path / "y", "pick-place", 1, 1.5, 0)
    assert main(["generate", "--env", "robosuite", "--out", str(tmp_path / "z")]) == 2
    assert "--env metaworld" in capsys.readouterr().err


TINY = ["generate", "--tasks", "pick-place,assembly", "--width", "32", "--height", "32",
        "--cameras", "corner", "--max-steps", "20", "--failure-rate", "0.5"]


def _one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("procvlm generate: error: "), captured.err
    assert not captured.out
    return lines[0]


@pytest.mark.parametrize("bad, named", [
    (["--cameras", "top"], "--cameras top"), (["--cameras", "corner,corner"], "--cameras"),
    (["--width", "8"], "--width 8"), (["--height", "15"], "--height 15"),
    (["--max-steps", "0"], "--max-steps 0"), (["--max-steps", "501"], "--max-steps 501"),
    (["--episodes", "0"], "--episodes 0"), (["--failure-rate", "2"], "--failure-rate 2"),
    (["--tasks", "pick-place,nope"], "'nope'"), (["--env", "robosuite"], "--env"),
    (["--redo-episode", "0"], "--redo-episode 0"), (["--seed", "x"], "--seed"),
])
def test_a_bad_option_leaves_the_folder_untouched(tmp_path, capsys, bad, named):
    out = tmp_path / "ds"
    assert main(TINY + ["--out", str(out)] + bad) == 2
    assert named in _one_line_error(capsys)
    assert not out.exists()
    out.mkdir()
    assert main(TINY + ["--out", str(out)] + bad) == 2
    assert list(out.iterdir()) == []


def test_damaged_or_foreign_out_folders_are_one_line_errors(tmp_path, capsys):
    corrupt = tmp_path / "corrupt"
    (corrupt / "meta").mkdir(parents=True)
    (corrupt / "meta" / "info.json").write_bytes(b"\xff\xfe\x00garbage")
    assert main(TINY + ["--out", str(corrupt)]) == 2
    assert "info.json is not readable JSON" in _one_line_error(capsys)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert main(TINY + ["--out", str(a_file)]) == 2
    assert "is a file" in _one_line_error(capsys)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert main(TINY + ["--out", str(other)]) == 2
    assert "not empty" in _one_line_error(capsys)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_settings_round_trip_and_name_their_differences():
    a = gen.CorpusSettings(tasks=("pick-place", "assembly-v3"), seed=0, max_steps=30)
    assert a.tasks == ("pick-place", "assembly")
    assert gen.CorpusSettings.from_dict(a.to_dict(), "x") == a
    b = gen.CorpusSettings(tasks=("Pick up the puck and place it onto the goal", "assembly"),
                           seed=1, max_steps=30, video=False)
    assert a.differences(b) == ["--seed 0 (given: 1)", "--images True (given: False)"]
    with pytest.raises(ProcvlmError, match="does not know"):
        gen.CorpusSettings.from_dict({**a.to_dict(), "colour": "red"}, "x")
    assert a.pacing == "human"
    before_pacing = {k: v for k, v in a.to_dict().items() if k != "pacing"}
    assert gen.CorpusSettings.from_dict(before_pacing, "x").pacing == "scripted"
    assert not a.antialias
    before_antialias = {k: v for k, v in a.to_dict().items() if k != "antialias"}
    assert gen.CorpusSettings.from_dict(before_antialias, "x").antialias  # rendered with MSAA
    assert a.differences(dataclasses.replace(a, antialias=True)) == [
        "--antialias False (given: True)"]
    with pytest.raises(ProcvlmError, match="--pacing robotic: choose from human, scripted"):
        gen.CorpusSettings(pacing="robotic")


def test_help_shows_pacing(capsys):
    assert main(["generate", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--pacing {human,scripted}" in text and "(default: human)" in text


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus") / "ds"
    assert main(TINY + ["--episodes", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.slow
def test_resuming_with_other_settings_names_them_and_writes_nothing(tiny_corpus, capsys):
    capsys.readouterr()
    before = sorted(p.stat().st_mtime_ns for p in tiny_corpus.rglob("*") if p.is_file())
    for bad, named in ((["--seed", "1"], "--seed 0 (given: 1)"),
                       (["--tasks", "assembly"], "--tasks pick-place,assembly (given: assembly)"),
                       (["--failure-rate", "0.1"], "--failure-rate 0.5 (given: 0.1)"),
                       (["--max-steps", "21"], "--max-steps 20 (given: 21)"),
                       (["--images"], "--images"),
                       (["--pacing", "scripted"], "--pacing human (given: scripted)")):
        assert main(TINY + ["--episodes", "3", "--out", str(tiny_corpus)] + bad) == 2
        assert named in _one_line_error(capsys)
    after = sorted(p.stat().st_mtime_ns for p in tiny_corpus.rglob("*") if p.is_file())
    assert before == after and open_dataset(tiny_corpus).num_episodes == 2


@pytest.mark.slow
def test_fewer_episodes_than_held_says_nothing_to_do(tiny_corpus, capsys):
    capsys.readouterr()
    assert main(TINY + ["--episodes", "1", "--out", str(tiny_corpus)]) == 0
    out = capsys.readouterr().out
    assert "already holds 2 episodes" in out and "nothing to do" in out and "wrote" not in out
    assert open_dataset(tiny_corpus).num_episodes == 2


@pytest.mark.slow
def test_a_corrupt_video_names_redo_episode_which_repairs_it(tiny_corpus, tmp_path, capsys):
    import shutil

    import numpy as np

    ds_dir = tmp_path / "ds"
    shutil.copytree(tiny_corpus, ds_dir)
    good = np.asarray(open_dataset(ds_dir).episode(1).frames["corner"][:])
    video = next(ds_dir.glob("videos/*/chunk-000/file-001.mp4"))
    video.write_bytes(video.read_bytes()[:200])
    with pytest.raises(ProcvlmError, match="--redo-episode 1"):
        np.asarray(open_dataset(ds_dir).episode(1).frames["corner"][:])
    assert main(TINY + ["--out", str(ds_dir), "--redo-episode", "1"]) == 0
    assert "episode(s) 1" in capsys.readouterr().out
    ds = open_dataset(ds_dir)
    assert ds.num_episodes == 2
    np.testing.assert_array_equal(np.asarray(ds.episode(1).frames["corner"][:]), good)
