"""The report folder: every file exists, the HTML embeds the PNGs, NaN stays valid JSON."""

import json
import re

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
from procvlm.eval.findings import findings
from procvlm.eval.report import curve_filename, markdown_table, write_report

TABLE = [{"model": "compact", "voc": 0.91234, "auroc": float("nan"), "n_episodes": 4},
         {"model": "time", "voc": 1.0, "mcc@95": 0.5}]


def curves():
    t = np.linspace(0, 1, 30)
    return [
        {"episode": 3, "kind": "stall", "series": {"compact": t, "time": t ** 2},
         "reference": np.clip(t, 0, 0.6), "events": [{"type": "stall", "start": 10, "end": 20}]},
        {"episode": "b/7", "kind": "regression", "series": {"compact": t[::-1]},
         "events": [{"type": "regression", "frame": 12}, {"type": "other"}]},
    ]


def test_write_report_files_and_links(tmp_path):
    index = write_report(tmp_path / "rep", "ProcVLM <eval>", TABLE, curves())
    out = tmp_path / "rep"
    assert index == out / "index.html"
    page = index.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == ["plots/00_stall_ep3.png", "plots/01_regression_epb_7.png"]
    for src in srcs:
        png = out / src
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "ProcVLM &lt;eval&gt;" in page and "<td>0.912</td>" in page and "n/a" in page
    md = (out / "results.md").read_text()
    assert "## Findings" in md and "| model | auroc |" in md and "| model | voc | mcc@95 |" in md
    assert "| model | n_episodes |" in md
    data = json.loads((out / "results.json").read_text())
    assert data["table"][0]["auroc"] is None and data["curves"][1]["png"] == srcs[1]
    assert [f["verdict"] for f in data["findings"]] == ["not measured"] * 3
    assert not list(out.rglob(".*tmp"))


def test_report_without_curves(tmp_path):
    index = write_report(tmp_path, "t", TABLE, [])
    assert "<img" not in index.read_text() and (tmp_path / "results.json").is_file()


def test_markdown_table_missing_cells():
    md = markdown_table(TABLE).splitlines()
    assert md[1] == "|---|---|---|---|---|"
    assert md[3] == "| time | 1.000 | n/a | n/a | 0.500 |"
    assert markdown_table([]) == "_no results_\n"


def test_bad_curves(tmp_path):
    with pytest.raises(ProcvlmError, match="kind"):
        write_report(tmp_path, "t", TABLE, [{"episode": 0, "kind": "odd", "series": {"a": [0]}}])
    with pytest.raises(ProcvlmError, match="lacks"):
        write_report(tmp_path, "t", TABLE, [{"episode": 0, "kind": "success"}])
    with pytest.raises(ProcvlmError, match="1-D"):
        write_report(tmp_path, "t", TABLE,
                     [{"episode": 0, "kind": "success", "series": {"a": np.zeros((2, 2))}}])
    assert not (tmp_path / "index.html").exists()


def test_curve_filename_is_safe():
    name = curve_filename(5, {"episode": "a b/c", "kind": "failure"})
    assert name == "plots/05_failure_epa_b_c.png"


ROWS = [
    {"split": "test", "name": "compact[procvlm]", "steps": 300, "ccc_truth": 0.9, "auroc": 0.97,
     "stall_drift": 0.01, "plan_exact": 0.85, "voc": 0.9},
    {"split": "test", "name": "compact-direct[procvlm]", "steps": 300, "ccc_truth": 0.8,
     "auroc": 0.9, "stall_drift": 0.02, "plan_exact": float("nan"), "voc": 0.95},
    {"split": "test", "name": "compact[time]", "steps": 300, "ccc_truth": 0.6, "auroc": 0.5,
     "stall_drift": 0.2, "voc": 0.99},
    {"split": "test", "name": "labels:procvlm", "steps": None, "ccc_truth": 0.95,
     "auroc": 1.0, "stall_drift": 0.0},
    {"split": "test", "name": "labels:time", "steps": None, "ccc_truth": 0.7, "auroc": 0.5,
     "stall_drift": 0.25},
]


def test_findings_read_off_the_table():
    one, two, three = findings(ROWS)
    assert one.verdict == "reproduced"
    assert one.evidence == ["test: compact[procvlm] vs compact-direct[procvlm]: ccc_truth 0.900 "
                            "vs 0.800; auroc 0.970 vs 0.900 (holds); plan_exact 0.850"]
    assert two.verdict == "reproduced" and len(two.evidence) == 2
    assert three.verdict == "not measured"
    # time ahead on one figure: the comparison fails, so the finding is partly reproduced
    worse = [dict(r, stall_drift=0.5) if r["name"] == "compact[procvlm]" else r for r in ROWS]
    assert findings(worse)[1].verdict == "partly reproduced"
    assert "(fails)" in findings(worse)[1].evidence[1]
    missing = [r for r in ROWS if "direct" not in r["name"]]
    assert findings(missing)[0].verdict == "not measured"
    assert findings([dict(r, ccc_truth=float("nan")) for r in ROWS])[0].verdict == "not measured"


def test_report_leads_with_findings_and_defines_metrics(tmp_path):
    page = write_report(tmp_path, "t", ROWS, []).read_text()
    assert page.index("Findings") < page.index("Against simulator truth")
    assert page.index("Against simulator truth") < page.index("For comparison with the literature")
    assert "<th>CCC vs truth ↑</th>" in page and "<th>still drift ↓</th>" in page
    assert "<b>CCC vs truth ↑</b> (<code>ccc_truth</code>, against simulator truth)" in page
    assert "<td>300</td>" in page and "<td>–</td>" in page  # steps; none for label rows


def test_plot_has_a_labels_panel_and_a_strip(tmp_path):
    from procvlm.data import ArrayFrames, Episode, Subtask

    t = np.linspace(0, 1, 30)
    frames = np.zeros((30, 16, 16, 3), np.uint8)
    ep = Episode(0, "put the puck on the goal", 10.0, {"corner": ArrayFrames(frames)},
                 np.zeros((30, 2), np.float32), np.zeros((30, 2), np.float32), success=True,
                 subtasks=[Subtask("Grasp the puck", 0, 30)], plan=["Grasp the puck"])
    curve = {"episode": "test/0", "kind": "hesitation", "title": "puck | failure: none",
             "series": {"compact[procvlm]": t}, "labels": {"procvlm": t, "time": t},
             "truth": t, "events": [{"type": "hesitation", "start": 5, "end": 9}],
             "episode_data": ep}
    page = write_report(tmp_path, "t", ROWS, [curve]).read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == ["plots/00_hesitation_eptest_0.png", "plots/00_hesitation_eptest_0_strip.png"]
    from PIL import Image

    w, h = Image.open(tmp_path / srcs[0]).size
    assert h > 400  # two panels
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["curves"][0]["labels"] == ["procvlm", "time"]
