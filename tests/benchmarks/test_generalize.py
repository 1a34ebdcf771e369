"""benchmarks/generalize.py on tiny evaluation sets: the three splits, the targets, the JSON."""

import json

import numpy as np
import pytest


@pytest.mark.slow
@pytest.mark.sim
def test_tiny_run_scores_the_three_splits_and_writes_json(load_benchmark, tmp_path, capsys):
    bench = load_benchmark("generalize")
    argv = ["--model", "metaworld", "--out", str(tmp_path / "sets"), "--episodes", "2",
            "--size", "32", "--max-steps", "40", "--pacing", "scripted",
            "--heldout-tasks", "drawer-open", "--json", str(tmp_path / "g.json")]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    assert "heldout-tasks/plain" in printed and "target heldout-tasks/plain voc" in printed
    figures = json.loads((tmp_path / "g.json").read_text())
    assert figures["heldout_tasks"] == ["drawer-open"]
    trained = figures["trained_tasks"]
    assert "pick-place" in trained and "drawer-open" not in trained
    assert set(figures["splits"]) == {"train-tasks/plain", "train-tasks/heldout-render",
                                      "heldout-tasks/plain"}
    for split in figures["splits"].values():
        assert split["n_episodes"] == 2 and "ccc_truth" in split and "per_task" in split
        assert "voc_ci" in split and "auroc_ci" in split
    assert "95% bootstrap intervals" in printed and figures["done_frames"] == 3
    metrics = [t["metric"] for t in figures["targets"]]
    assert metrics[:3] == ["voc", "auroc", "auroc"] and set(metrics[3:]) <= {"auroc_done"}
    for split in figures["splits"].values():
        assert "auroc_done" in split and "auroc_done_ci" in split
    rows = figures["splits"]["train-tasks/heldout-render"]["render_factors"]
    assert {r["factor"] for r in rows} == set(bench.FACTORS) and len(rows) == 14
    assert figures["splits"]["train-tasks/plain"]["render_factors"] == []  # no draws
    held = tmp_path / "sets"
    rendered = [p for p in held.iterdir() if p.name.startswith("train_heldout_render")]
    from procvlm.data import open_dataset

    ds = open_dataset(rendered[0])
    assert ds.episode(0).meta["render"]["spec"] == "heldout"
    assert figures["flip_average"] is False  # as the shipped model's config says
    # a second run reuses the evaluation sets; --flip-average on overrides the model's config
    stamps = {p: p.stat().st_mtime_ns for p in held.iterdir()}
    assert bench.main([*argv[:-1], str(tmp_path / "f.json"), "--flip-average", "on"]) == 0
    assert {p: p.stat().st_mtime_ns for p in held.iterdir()} == stamps
    assert "flip averaging on" in capsys.readouterr().out
    assert json.loads((tmp_path / "f.json").read_text())["flip_average"] is True
    # --view: the same sets seen upside down and at a third of their resolution
    assert bench.main([*argv[:-1], str(tmp_path / "v.json"), "--view", "vflip,res0.3"]) == 0
    assert "frames seen as vflip,res0.3" in capsys.readouterr().out
    viewed = json.loads((tmp_path / "v.json").read_text())
    assert viewed["view"] == ["vflip", "res0.3"]
    assert viewed["splits"]["train-tasks/plain"] != figures["splits"]["train-tasks/plain"]
    # --train-tasks: a subset of the training tasks, in their own sets
    assert bench.main([*argv[:-1], str(tmp_path / "t.json"), "--train-tasks", "pick-place"]) == 0
    subset = json.loads((tmp_path / "t.json").read_text())
    assert subset["trained_tasks"] == ["pick-place"]
    assert {t for t in subset["splits"]["train-tasks/plain"]["per_task"]} == {
        "Pick up the puck and place it onto the goal"}
    # --other-cameras: the plain split's episodes seen from the top view
    assert bench.main([*argv[:-1], str(tmp_path / "c.json"), "--other-cameras", "topview"]) == 0
    other = json.loads((tmp_path / "c.json").read_text())["splits"]
    assert set(other) == {*figures["splits"], "train-tasks/camera-topview"}
    assert other["train-tasks/plain"] == figures["splits"]["train-tasks/plain"]
    assert other["train-tasks/camera-topview"]["n_episodes"] == 2
    assert other["train-tasks/camera-topview"] != other["train-tasks/plain"]
    # --factors: the held-out-rendering episodes with only the light outside training
    assert bench.main([*argv[:-1], str(tmp_path / "l.json"), "--factors", "light"]) == 0
    lit = json.loads((tmp_path / "l.json").read_text())["splits"]
    assert set(lit) == {*figures["splits"], "train-tasks/heldout-light",
                        "train-tasks/train-render"}
    lit_root = next(held.glob("train_heldout_light-*"))
    light = open_dataset(lit_root)
    render = open_dataset(held / lit_root.name.replace("train_heldout_light",
                                                        "train_heldout_render"))
    np.testing.assert_array_equal(light.episode(1).state, render.episode(1).state)
    assert light.episode(1).meta["render"]["spec"] == "heldout-light"
    inside = open_dataset(next(held.glob("train_train_render-*")))
    np.testing.assert_array_equal(inside.episode(1).state, render.episode(1).state)
    assert inside.episode(1).meta["render"]["spec"] == "train"
    top_root = next(held.glob("train_camera_topview-*"))   # named by the same tasks and options
    top = open_dataset(top_root)
    plain = open_dataset(held / top_root.name.replace("train_camera_topview", "train_plain"))
    assert top.cameras == ["topview"]
    np.testing.assert_array_equal(top.episode(1).state, plain.episode(1).state)


def test_view_frames_apply_the_operations_in_order(load_benchmark):
    from procvlm.data.episode import ArrayFrames
    from procvlm.sim.randomize import lower_resolution

    bench = load_benchmark("generalize")
    video = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    seen = bench.ViewFrames(ArrayFrames(video), ["vflip", "res0.5"])
    assert len(seen) == 3
    np.testing.assert_array_equal(seen[1], lower_resolution(video[1, ::-1], 0.5))
    np.testing.assert_array_equal(seen[np.arange(3)][2], seen[2])


def test_bad_done_frames_is_one_line(load_benchmark, tmp_path):
    with pytest.raises(SystemExit, match="--done-frames 0: average over at least 1 frame"):
        load_benchmark("generalize").main(["--out", str(tmp_path), "--done-frames", "0"])


@pytest.mark.parametrize("spec", ["upside", "res0", "res1.5", "resx"])
def test_bad_view_is_one_line(load_benchmark, spec):
    with pytest.raises(SystemExit, match=f"--view {spec}: unknown part"):
        load_benchmark("generalize").parse_view(spec)


@pytest.mark.slow
@pytest.mark.sim
def test_heldout_tasks_must_not_overlap_training_tasks(load_benchmark, tmp_path):
    bench = load_benchmark("generalize")
    with pytest.raises(SystemExit, match="need both, disjoint"):
        bench.main(["--out", str(tmp_path), "--heldout-tasks", "pick-place"])
    with pytest.raises(SystemExit, match=r"--train-tasks: \['drawer-open'\] were not trained"):
        bench.main(["--out", str(tmp_path), "--train-tasks", "pick-place,drawer-open"])


def test_factors_parse_and_a_bad_one_is_one_line(load_benchmark):
    bench = load_benchmark("generalize")
    assert bench.parse_factors("all") == ["camera", "orientation", "light", "colour",
                                          "resolution"]
    assert bench.parse_factors(" light, camera ") == ["light", "camera"]
    assert bench.parse_factors("") == []
    with pytest.raises(SystemExit, match="--factors pose: unknown factor 'pose'; give"):
        bench.parse_factors("pose")


def test_bad_other_camera_is_one_line(load_benchmark, tmp_path):
    with pytest.raises(SystemExit, match="--other-cameras gripper: choose from corner2, corner3"):
        load_benchmark("generalize").main(["--out", str(tmp_path), "--other-cameras", "gripper"])


def test_bootstrap_intervals_hold_the_estimate_and_shrink_with_more_episodes(load_benchmark):
    from procvlm.eval.metrics import auroc

    bench = load_benchmark("generalize")
    rng = np.random.default_rng(0)
    success = np.r_[np.ones(20, bool), np.zeros(16, bool)]
    finals = np.where(success, 0.8, 0.6) + rng.normal(0, 0.15, success.size)
    vocs = rng.uniform(0.5, 1.0, 20)
    ci = bench.intervals(finals, success, vocs)
    lo, hi = ci["auroc_ci"]
    assert lo < auroc(finals, success) < hi and hi - lo > 0.05
    assert ci["voc_ci"][0] < vocs.mean() < ci["voc_ci"][1]
    assert bench.intervals(finals, success, vocs) == ci  # seeded
    big = bench.intervals(np.tile(finals, 9), np.tile(success, 9), np.tile(vocs, 9))
    assert big["auroc_ci"][1] - big["auroc_ci"][0] < (hi - lo) / 2
    # perfectly separated outcomes: every replicate is 1; one outcome only: no interval
    sep = bench.intervals(np.where(success, 1.0, 0.0), success, vocs)
    assert sep["auroc_ci"] == [1.0, 1.0]
    assert bench.intervals(finals[:20], success[:20], [])["auroc_ci"] is None
    assert bench.intervals(finals[:20], success[:20], [])["voc_ci"] is None


def test_intervals_of_the_done_score_use_the_same_resampling(load_benchmark):
    bench = load_benchmark("generalize")
    success = np.r_[np.ones(12, bool), np.zeros(10, bool)]
    finals = np.tile([0.2, 0.8], 11)  # half of each outcome ends high: AUROC 0.5
    done = np.where(success, 0.9, 0.2)  # separates the outcomes perfectly
    ci = bench.intervals(finals, success, [0.5] * 12, done)
    assert ci["auroc_done_ci"] == [1.0, 1.0] and ci["auroc_ci"][0] < 0.5 < ci["auroc_ci"][1]
    # the done score does not move the other intervals
    assert {k: v for k, v in ci.items() if k != "auroc_done_ci"} == \
        {k: v for k, v in bench.intervals(finals, success, [0.5] * 12).items()
         if k != "auroc_done_ci"}
    assert bench.intervals(finals, success, [0.5] * 12)["auroc_done_ci"] is None


def test_render_factors_split_each_factor_at_its_median(load_benchmark):
    bench = load_benchmark("generalize")
    # 8 episodes: the far half of the azimuths holds all the mistakes of final progress
    az = [5, -8, 10, 12, 25, -28, 30, 31]
    draws = [{"azimuth": a, "elevation": 0.0, "distance": 1.0, "lookat": [0, 0, 0],
              "light": 1.0, "ambient": 0.3, "resolution": 0.5} for a in az]
    success = np.array([1, 0, 1, 0, 1, 0, 1, 0], bool)
    finals = np.array([.9, .1, .9, .1, .1, .9, .1, .9])  # right when near, reversed when far
    rows = bench.render_factors(draws, success, finals, done=np.where(success, .8, .2))
    by = {(r["factor"], r["half"]): r for r in rows}
    near, far = by[("|azimuth|", "below")], by[("|azimuth|", "above")]
    assert near["median"] == 18.5 and (near["n"], far["n"]) == (4, 4)
    assert (near["auroc"], far["auroc"]) == (1.0, 0.0)
    assert near["auroc_done"] == far["auroc_done"] == 1.0
    # every episode at the median of a constant factor: one half is empty (n/a)
    flat = by[("|elevation|", "below")]
    assert flat["n"] == 0 and np.isnan(flat["auroc"])
    assert bench.render_factors([None] * 8, success, finals) == []
