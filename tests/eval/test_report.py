"""The report folder: every file exists, the HTML embeds the PNGs, NaN stays valid JSON."""

import json
import re

import numpy as np
import pytest

from procvlm.errors import ProcvlmError
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
    assert "| model | voc | auroc | n_episodes | mcc@95 |" in md
    data = json.loads((out / "results.json").read_text())
    assert data["table"][0]["auroc"] is None and data["curves"][1]["png"] == srcs[1]
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
