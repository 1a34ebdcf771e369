"""benchmarks/vlm.py --quick: every section runs on the CPU with tiny sizes and writes JSON."""

import json

import pytest

pytestmark = pytest.mark.slow


def test_quick_run_measures_every_section(load_benchmark, tmp_path, capsys):
    bench = load_benchmark("vlm")
    out = tmp_path / "vlm.json"
    assert bench.main(["--quick", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    by_section = {}
    for r in rows:
        by_section.setdefault(r["section"], []).append(r)
    assert set(by_section) == {"settings", "preprocess", "generate", "readout", "score", "sft",
                               "accuracy"}
    gen = by_section["generate"][0]
    # tokens are counted from the generated ids: exactly the forced number per answer
    assert gen["generated_tokens_per_s"] == pytest.approx(
        gen["frames_per_s"] * bench.QUICK.tokens, rel=0.02)
    assert all(r["frames_per_s"] > 0 for s in ("preprocess", "readout", "score")
               for r in by_section[s])
    assert by_section["sft"][0]["samples_per_s"] > 0
    reuse = [r for r in by_section["accuracy"] if r.get("reasoning") == "reuse"][0]
    assert 0 < reuse["generated_fraction"] <= 1
    assert 0 <= reuse["done_accuracy"] <= 1 and "done_auroc" in reuse
    assert "frames_per_s=" in capsys.readouterr().out


def test_quick_run_compares_workers_and_the_static_cache(load_benchmark, tmp_path):
    bench = load_benchmark("vlm")
    out = tmp_path / "vlm.json"
    assert bench.main(["--quick", "--sections", "generate,readout,static", "--workers", "0,1",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    for section in ("generate", "readout"):
        assert sorted(r["workers"] for r in rows if r["section"] == section) == [0, 1]
    static = [r for r in rows if r["section"] == "static"]
    variants = [r["variant"] for r in static]
    assert variants.count("generate") == variants.count("readout") == 2  # per worker count
    # whole answers (6 new tokens) and the readout (8) share one cache bucket of 128 tokens
    assert all(r["caches"] == 1 for r in static if "caches" in r)
    steps = {r["cache"]: r["decode_step_ms"] for r in static if r["variant"] == "decoding step"}
    assert set(steps) == {"dynamic", "static"}
    scored = [r["cache"] for r in static if r["variant"].startswith("score_dataset")]
    assert scored == ["dynamic", "static"]
    assert all(r["frames_per_s"] > 0 for r in static if "frames_per_s" in r)


def test_quick_run_picks_score_runs_caches_and_sft_batches(load_benchmark, tmp_path):
    bench = load_benchmark("vlm")
    out = tmp_path / "vlm.json"
    assert bench.main(["--quick", "--sections", "static,sft", "--score-runs", "fixed,reuse",
                       "--score-caches", "static", "--sft-batch", "1,2", "--json",
                       str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    scored = [r for r in rows if str(r.get("variant", "")).startswith("score_dataset")]
    assert [r["variant"] for r in scored] == ["score_dataset, whole answers, fixed answer",
                                              "score_dataset, reasoning reuse, fixed answer"]
    assert all(r["cache"] == "static" and r["first_call_s"] > 0 for r in scored)
    assert [r["batch"] for r in rows if r["section"] == "sft"] == [1, 2]
    with pytest.raises(SystemExit, match="--score-runs: unknown 'all'"):
        bench.main(["--quick", "--score-runs", "all"])
