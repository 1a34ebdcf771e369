"""The whole pipeline, end to end, on a corpus small enough for the test suite."""

import dataclasses
import json

import pytest

from procvlm.demo import SCHEMES, DemoConfig, run_demo

pytestmark = [pytest.mark.slow, pytest.mark.sim]

TINY = DemoConfig(train_tasks=("pick-place", "assembly"), ood_tasks=("hammer",),
                  train_episodes=4, test_episodes=2, size=32, cameras=("corner",),
                  max_steps=120, train_steps=3)


def test_demo_runs_every_stage_and_resumes(tmp_path):
    result = run_demo(tmp_path / "demo", TINY)
    assert result.report.is_file() and result.strip.is_file()
    assert (result.report.parent / "failed_episode_strip.png").is_file()
    rows = json.loads((result.report.parent / "results.json").read_text())["table"]
    names = {(r["split"], r["name"]) for r in rows}
    for split in ("test_id", "test_ood"):
        for scheme in SCHEMES:
            assert (split, f"compact[{scheme}]") in names
            assert (split, f"labels:{scheme}") in names
        assert (split, "compact-direct[procvlm]") in names
    assert (tmp_path / "demo" / "scores" / "test_id_rabc.parquet").is_file()
    assert (tmp_path / "demo" / "vqa" / "train.jsonl").is_file()
    policy = tmp_path / "demo" / "policy"
    assert (policy / "policy.png").is_file() and "| plain BC |" in (policy / "policy.md").read_text()
    assert any(c.startswith("procvlm train --model compact") for c in result.commands)
    assert len(result.command_cpu_seconds) == len(result.commands)
    assert 0 < sum(result.command_cpu_seconds) <= result.cpu_seconds
    # a second run finds every stage finished: no model is trained again
    again = run_demo(tmp_path / "demo", TINY)
    assert not any(c.startswith("procvlm train") for c in again.commands)


def test_demo_config_validates():
    with pytest.raises(ValueError, match="train_steps=0"):
        DemoConfig(train_steps=0)


def test_a_demo_folder_resumes_only_with_its_own_settings(tmp_path, capsys):
    from procvlm.cli.main import main
    from procvlm.demo import record_settings
    from procvlm.errors import ProcvlmError

    out = tmp_path / "demo"
    record_settings(out, TINY)
    record_settings(out, TINY)  # the same settings: fine
    with pytest.raises(ProcvlmError, match=r"seed 0 \(given: 1\)"):
        record_settings(out, dataclasses.replace(TINY, seed=1))
    assert main(["demo", "--out", str(out), "--seed", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "another --out" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["demo.json"]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(ProcvlmError, match="holds no procvlm demo"):
        record_settings(tmp_path / "mine", TINY)


def test_the_demo_says_first_how_long_it_will_take(tmp_path, monkeypatch, capsys):
    import procvlm.demo as demo
    from procvlm.cli.main import main

    def no_work(out, cfg):
        print("work starts")
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "run_demo", no_work)
    assert main(["demo", "--out", str(tmp_path / "d")]) == 130
    lines = capsys.readouterr().out.splitlines()
    minutes = DemoConfig().estimated_minutes()
    assert lines[-1] == "work starts" and f"about {minutes:.0f} min" in lines[1]
    cpu = DemoConfig().estimated_cpu_minutes()
    assert f"({cpu:.0f} CPU min)" in lines[1] and cpu >= minutes
    assert 5 <= minutes <= 15, "the default demo is sized for 15 minutes on 2 cores"
    bigger = dataclasses.replace(DemoConfig(), train_episodes=80, train_steps=400)
    assert bigger.estimated_minutes() > minutes > demo.QUICK.estimated_minutes()
