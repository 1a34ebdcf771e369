"""benchmarks/quality.py --quick: every stage runs on tiny sizes and writes its figures."""

import json

import pytest

from procvlm.data import open_dataset

pytestmark = [pytest.mark.slow, pytest.mark.sim]


def test_quick_run_trains_every_model_the_same_steps_and_writes_json(load_benchmark, tmp_path,
                                                                     capsys):
    quality = load_benchmark("quality")
    out = tmp_path / "q"
    assert quality.main(["--quick", "--out", str(out), "--json", str(tmp_path / "q.json"),
                         "--val"]) == 0
    printed = capsys.readouterr().out
    assert "== targets (test_id)" in printed and "compact-direct[procvlm]" in printed
    assert "success/failure pairs" in printed  # the episodes that decide AUROC are counted
    figures = json.loads((tmp_path / "q.json").read_text())
    names = {(r["split"], r["name"]) for r in figures["rows"]}
    for split in ("test_id", "test_ood", "val"):
        for name in quality.model_runs():
            assert (split, name) in names
    assert "== val:" in printed and figures["data"] == str(out / "data")
    steps = {r["steps"] for r in figures["rows"] if r["name"].startswith("compact")}
    assert steps == {quality.QUICK.steps}
    assert {t["target"] for t in figures["targets"]} >= {"compact[procvlm] AUROC",
                                                         "reason - direct, AUROC"}
    # the seeds script reads the JSON the run wrote
    assert load_benchmark("seeds").main([str(tmp_path / "q.json")]) == 0
    assert "compact[procvlm]" in capsys.readouterr().out
    # the reasoning model's errors grouped by its step error, on the same run
    errors = load_benchmark("reasoning_errors")
    assert errors.main(["--out", str(out), "--splits", "test_id,val",
                        "--json", str(tmp_path / "e.json")]) == 0
    groups = json.loads((tmp_path / "e.json").read_text())["splits"]
    assert set(groups) == {"test_id", "val"}
    val = open_dataset(out / "data" / "val")
    assert sum(g["frames"] for g in groups["val"]) == sum(
        val.episode_length(i) for i in range(val.num_episodes))
    assert "== test_id: frames by the reasoning model's step" in capsys.readouterr().out
    # a second run finds every stage done and trains nothing again
    stamp = (out / "runs" / "procvlm" / "model" / "model.safetensors").stat().st_mtime_ns
    assert quality.main(["--quick", "--out", str(out)]) == 0
    assert (out / "runs" / "procvlm" / "model" / "model.safetensors").stat().st_mtime_ns == stamp
    # --data reuses another run's datasets: nothing is generated in the new folder
    again = tmp_path / "q2"
    assert quality.main(["--quick", "--out", str(again), "--data", str(out / "data"),
                         "--until", "data"]) == 0
    assert not (again / "data").exists() and (again / "text_cache.safetensors").is_file()
    # --train-seed retrains on the same episodes with another seed
    assert quality.main(["--quick", "--out", str(again), "--data", str(out / "data"),
                         "--train-seed", "1", "--until", "train"]) == 0
    for folder, seed in ((out, 0), (again, 1)):
        record = json.loads((folder / "runs" / "procvlm" / "model" / "training.json").read_text())
        assert record["seed"] == seed
    # --models trains only the named models, with the input --stride asks for
    third = tmp_path / "q3"
    assert quality.main(["--quick", "--out", str(third), "--data", str(out / "data"),
                         "--models", "compact-direct[procvlm]", "--stride", "2",
                         "--until", "train"]) == 0
    assert [p.name for p in (third / "runs").iterdir()] == ["procvlm-direct"]
    config = json.loads((third / "runs" / "procvlm-direct" / "model" / "config.json").read_text())
    assert config["stride"] == 2 and config["head"] == "direct"


@pytest.mark.parametrize("argv, message", [
    (["--models", "compact[nope]"], "choose among compact[procvlm]"),
    (["--image-size", "50"], "--image-size 50"),
    (["--stride", "0"], "--stride 0"),
])
def test_bad_options_are_one_line_errors(load_benchmark, tmp_path, capsys, argv, message):
    quality = load_benchmark("quality")
    with pytest.raises(SystemExit):
        quality.main(["--quick", "--out", str(tmp_path / "q"), *argv])
    assert message in capsys.readouterr().err
    assert not (tmp_path / "q").exists()  # refused before anything was written


def test_outcome_line_counts_the_pairs_auroc_ranks(load_benchmark):
    quality = load_benchmark("quality")
    rows = [{"split": "test_id", "name": "m", "n_episodes": 8, "n_success": 6},
            {"split": "test_id", "name": "labels:time", "n_episodes": 8, "n_success": 6}]
    assert quality.outcome_line(rows, "test_id") == (
        "8 episodes, 6 successful, 2 failed: AUROC ranks 12 success/failure pairs")
    assert quality.outcome_line(rows, "test_ood") == "test_ood: no episode scored"


def test_drift_targets_judge_the_size_of_the_drift(load_benchmark):
    """Progress that falls during pauses is not flat: a drift of -0.048 misses <= 0.02."""
    quality = load_benchmark("quality")
    rows = [{"split": "test_id", "name": "compact[procvlm]", "stall_drift": -0.048},
            {"split": "test_id", "name": "labels:procvlm", "stall_drift": 0.01}]
    met = {t["target"]: t["met"] for t in quality.targets(rows)}
    assert met["compact[procvlm] |still drift|"] is False
    assert met["labels:procvlm |still drift|"] is True
