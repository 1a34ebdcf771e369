"""``procvlm policy --quick``: corpus, labels, scores, every method trained and rolled out."""

import json
import shutil

import pytest

from procvlm.cli.main import main


@pytest.mark.sim
@pytest.mark.slow
def test_policy_quick_end_to_end_and_resume(tmp_path, capsys):
    out = tmp_path / "policy"
    assert main(["policy", "--quick", "--workers", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| plain BC |" in printed and "| RA-BC, procvlm labels |" in printed
    assert "| %BC x RA-BC, procvlm labels |" in printed
    summary = json.loads((out / "policy.json").read_text())
    methods = set(summary["tasks"]["pick-place"])
    assert {"bc", "time", "procvlm", "compact", "top-time", "top-procvlm", "top-compact",
            "done-compact", "oracle"} <= methods
    assert "| P(done)-filtered x RA-BC, compact model scores |" in printed
    # every time curve ends at 1: the return filter keeps every episode, same weights
    shared = summary["same_weights"]["pick-place"]
    assert shared["top-time"] == "time"
    assert summary["tasks"]["pick-place"]["top-time"] == summary["tasks"]["pick-place"]["time"]
    assert set(summary["references"]) == {"plain BC", "RA-BC", "%BC x RA-BC",
                                          "P(done)-filtered x RA-BC", "oracle"}
    corpus = summary["corpus"]["pick-place"]
    assert corpus["mean_weight"]["oracle"]["failed episodes"] == 0.0
    assert corpus["successful"] >= 1
    assert (out / "policy.png").stat().st_size > 5000
    cells = sorted((out / "results" / "pick-place").glob("*.json"))
    assert len(cells) == len(methods) - len(shared)
    stamp = [c.stat().st_mtime_ns for c in cells]
    assert main(["policy", "--quick", "--out", str(out)]) == 0  # resumes: nothing redone
    assert [c.stat().st_mtime_ns for c in cells] == stamp
    assert main(["policy", "--quick", "--seeds", "2", "--out", str(out)]) == 2
    assert "other settings" in capsys.readouterr().err
    # a run restricted to some methods, on the same corpus, reproduces their rollouts
    sub = tmp_path / "sub"
    shutil.copytree(out / "data", sub / "data")
    assert main(["policy", "--quick", "--methods", "bc,done-compact", "--out", str(sub)]) == 0
    capsys.readouterr()
    part = json.loads((sub / "policy.json").read_text())["tasks"]["pick-place"]
    assert set(part) == {"bc", "done-compact"}
    for m in part:
        assert json.loads((sub / "results" / "pick-place" / f"{m}_seed0.json").read_text()) == \
            json.loads((out / "results" / "pick-place" / f"{m}_seed0.json").read_text())


def test_worker_options_are_checked(tmp_path, capsys):
    out = str(tmp_path / "p")
    assert main(["policy", "--quick", "--out", out, "--only-task", "hammer"]) == 2
    assert "not one of the tasks" in capsys.readouterr().err
    assert main(["policy", "--quick", "--out", out, "--only-task", "pick-place",
                 "--part", "2/2"]) == 2
    assert "need 0 <= i < n" in capsys.readouterr().err
    assert main(["policy", "--quick", "--out", out, "--part", "x"]) == 2
    assert "I/N" in capsys.readouterr().err
    assert main(["policy", "--quick", "--out", out, "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err
    assert main(["policy", "--quick", "--out", out, "--methods", "bc,nope"]) == 2
    assert "unknown nope" in capsys.readouterr().err


def test_method_weights_by_source_filter_and_selection():
    import numpy as np

    from procvlm.errors import ProcvlmError
    from procvlm.policy.experiment import PolicyConfig, method_weights

    n = 10
    rise, half = np.linspace(0, 1, n), np.linspace(0, 0.5, n)
    sources = {"time": {0: rise, 1: rise}, "compact": {0: rise, 1: half}}
    done = {0: np.r_[np.zeros(n - 3), np.ones(3)], 1: np.zeros(n)}
    episodes = [(0, n, True), (1, n, False)]
    cfg = PolicyConfig(tasks=("pick-place",), chunk_size=3)
    w = method_weights(sources, done, episodes, cfg)
    assert list(w) == ["bc", "time", "compact", "top-time", "top-compact", "done-compact",
                       "oracle"]
    assert w["bc"] is None
    assert w["done-compact"][:n].tolist() == w["compact"][:n].tolist()  # called successful
    assert w["done-compact"][n:].max() == 0.0 and w["compact"][n:].max() > 0
    assert w["oracle"].tolist() == [1.0] * n + [0.0] * n
    picked = method_weights(sources, done, episodes,
                            PolicyConfig(tasks=("pick-place",), methods=("bc", "done-compact")))
    assert list(picked) == ["bc", "done-compact"]
    assert "done-compact" not in method_weights(sources, None, episodes, cfg)
    with pytest.raises(ProcvlmError, match="done-compact needs P\\(done\\)"):
        method_weights(sources, None, episodes,
                       PolicyConfig(tasks=("pick-place",), methods=("done-compact",)))


def test_cli_settings_reach_the_config():
    import argparse

    from procvlm.cli.policy import _config, add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = _config(p.parse_args(["--out", "x", "--corpus-seed", "7", "--methods",
                                "bc, done-compact", "--tasks", "hammer"]))
    assert (cfg.seed, cfg.methods, cfg.tasks) == (7, ("bc", "done-compact"), ("hammer",))
    assert _config(p.parse_args(["--out", "x"])).seed == 0
