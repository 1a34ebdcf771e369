"""benchmarks/seeds.py: quality.py figures of several training seeds, lined up and counted."""

import json

import pytest


def _run(tmp_path, seed, rows, targets, train_seed=True):
    config = {"seed": 0, "train_seed": seed if train_seed else None}
    path = tmp_path / f"seed_{seed}.json"
    path.write_text(json.dumps({"config": config, "rows": rows, "targets": targets}))
    return str(path)


def _row(name, ccc, auroc, split="test_id"):
    return {"split": split, "name": name, "ccc_truth": ccc, "auroc": auroc}


def _target(met):
    return {"target": "compact[procvlm] AUROC", "op": ">=", "value": 0.95, "met": met}


def test_seeds_line_up_with_mean_spread_and_target_counts(load_benchmark, tmp_path, capsys):
    seeds = load_benchmark("seeds")
    files = [
        _run(tmp_path, 1, [_row("m", 0.8, 0.90), _row("d", 0.7, None)], [_target(False)]),
        _run(tmp_path, 0, [_row("m", 0.6, 0.96), _row("m", 0.1, 0.1, split="val")],
             [_target(True)], train_seed=False),  # seed 0 = the data's seed
    ]
    assert seeds.main([*files, "--json", str(tmp_path / "s.json")]) == 0
    figures = json.loads((tmp_path / "s.json").read_text())
    assert figures["seeds"] == [0, 1]  # sorted by seed
    ccc = figures["models"]["m"]["ccc_truth"]
    assert ccc["values"] == [0.6, 0.8] and ccc["mean"] == pytest.approx(0.7)
    assert ccc["std"] == pytest.approx(0.1414, abs=1e-4) and ccc["n"] == 2
    # a model a run did not train: its values are None and the mean uses the others
    assert figures["models"]["d"]["ccc_truth"] == {"values": [None, 0.7], "mean": 0.7,
                                                   "std": None, "n": 1}
    assert "auroc" not in figures["models"]["d"]  # no seed measured it
    (count,) = figures["targets"]
    assert (count["met"], count["measured"], count["seeds_met"]) == (1, 2, [0])
    assert "1 of 2" in capsys.readouterr().out


def test_bad_inputs_are_one_line_errors(load_benchmark, tmp_path):
    seeds = load_benchmark("seeds")
    a = _run(tmp_path, 1, [_row("m", 0.8, 0.9)], [])
    with pytest.raises(SystemExit, match="repeat"):
        seeds.main([a, a])
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit, match="no 'rows' and 'config'"):
        seeds.main([str(bad)])
    with pytest.raises(SystemExit, match="no row of split 'test_ood'"):
        seeds.main([a, "--split", "test_ood"])
