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


def test_quick_run_compares_encoding_threads_and_processes(load_benchmark, tmp_path):
    bench = load_benchmark("vlm")
    out = tmp_path / "vlm.json"
    assert bench.main(["--quick", "--sections", "readout,score", "--workers", "2",
                       "--encodings", "threads,processes", "--score-runs", "fixed",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    got = [(r["encoding"], r["workers"]) for r in rows if r["section"] == "readout"]
    assert got == [("threads", 2), ("processes", 2)]
    assert [r["encoding"] for r in rows if r["section"] == "score"] == ["threads", "processes"]
    with pytest.raises(SystemExit, match="--encodings: unknown 'forks'"):
        bench.main(["--quick", "--encodings", "forks"])


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


def test_timeline_traces_a_readout_call_and_restores_the_model(load_benchmark, tmp_path):
    bench = load_benchmark("vlm")
    out = tmp_path / "vlm.json"
    assert bench.main(["--quick", "--sections", "timeline,readout", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    timeline = [r for r in rows if r["section"] == "timeline"]
    assert [r["variant"] for r in timeline] == ["plain", "plain", "plain", "profiled"]
    stages = timeline[-1]["host_stage_s"]  # the CPU has no kernels: the labelled stages only
    assert {"next batch", "vision tower", "generate", "prompt pass", "decoding step",
            "copy results"} <= set(stages)
    assert (tmp_path / "vlm.trace.json.gz").stat().st_size > 0
    # the readout section after it ran on the unwrapped model
    assert [r["frames_per_s"] > 0 for r in rows if r["section"] == "readout"] == [True]


def test_analyse_trace_on_a_made_up_trace(load_benchmark):
    bench = load_benchmark("vlm")
    k = {"cat": "kernel", "ph": "X"}
    events = [
        {**k, "name": "sm90_xmma_gemm_bf16", "ts": 0, "dur": 4000},
        {**k, "name": "flash_fwd_kernel", "ts": 4000, "dur": 1000},
        {**k, "name": "vectorized_elementwise_kernel", "ts": 9000, "dur": 1000},  # 4 ms gap
        {**k, "name": "argmax_reduce", "ts": 10200, "dur": 100},  # 0.2 ms: not a gap
        {"cat": "user_annotation", "name": "next batch", "ts": 5000, "dur": 3000, "tid": 1},
        {"cat": "cuda_runtime", "name": "cudaLaunchKernel", "ts": 8500, "dur": 10, "tid": 1},
        {"cat": "cpu_op", "name": "aten::nonzero", "ts": 4500, "dur": 1500, "tid": 2},
    ]
    got = bench.analyse_trace(events)
    assert got["kernels"] == 4 and got["gaps"] == 1 and got["gap_s"] == 0.004
    assert got["device_busy_s"] == pytest.approx(0.0061)
    assert got["window_s"] == pytest.approx(0.0103)
    assert got["kernel_s_by_kind"] == {"attention": 0.001, "elementwise/other": 0.001,
                                       "gemm": 0.004, "reduce": 0.0001}
    assert got["host_stage_s"] == {"next batch": 0.003}
    # thread 1 launched the kernels (main); the worker's operator overlaps the gap by 1 ms
    assert got["host_in_gaps_ms"] == {"main:user:next batch": 3.0,
                                      "worker:cpu_:aten::nonzero": 1.0}
