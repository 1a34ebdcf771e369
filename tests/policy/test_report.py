"""Success summaries: bootstrap intervals, the table and the chart."""

import numpy as np
import pytest

from procvlm.policy.report import (bootstrap_means, interval, markdown_table, method_colours,
                                   sizes_line, summarize, write_outputs)


def test_bootstrap_is_centred_and_widens_with_seed_spread():
    same = np.array([[1, 0] * 25] * 3, float)  # three seeds at 50%
    spread = np.array([[1] * 50, [0] * 50, [1, 0] * 25], float)  # 100%, 0%, 50%
    a, b = bootstrap_means(same), bootstrap_means(spread)
    assert a.mean() == pytest.approx(0.5, abs=0.02) and b.mean() == pytest.approx(0.5, abs=0.05)
    wa, wb = np.diff(interval(a))[0], np.diff(interval(b))[0]
    assert wb > 3 * wa
    assert interval(bootstrap_means(np.ones((3, 10)))) == [1.0, 1.0]


def test_summary_table_and_chart(tmp_path):
    success = {"t1": {"bc": np.zeros((2, 4)), "oracle": np.ones((2, 4))},
               "t2": {"bc": np.array([[1, 0, 0, 0], [0, 0, 0, 0.0]]), "oracle": np.ones((2, 4))}}
    outcomes = {t: {m: ["success" if v else "stuck: Grasp" for v in x.ravel()]
                    for m, x in d.items()} for t, d in success.items()}
    s = summarize(success, outcomes)
    assert s["average"]["bc"]["success"] == pytest.approx(0.0625)
    assert s["average"]["oracle"] == {"success": 1.0, "ci95": [1.0, 1.0]}
    assert s["tasks"]["t2"]["bc"]["per_seed"] == [0.25, 0.0]
    assert s["tasks"]["t1"]["bc"]["outcomes"] == {"stuck: Grasp": 8}
    table = markdown_table(s, {"bc": "plain BC"})
    assert "| plain BC | 0.0 [0.0, 0.0] | 12.5 [" in table and "| oracle | 100.0" in table
    paths = write_outputs(tmp_path, s, {"bc": "plain BC"}, {"config": {}})
    assert paths["chart"].stat().st_size > 5000 and paths["json"].is_file()


def test_markdown_names_references_and_shared_weights(tmp_path):
    s = summarize({"t": {"bc": np.zeros((1, 2)), "time": np.ones((1, 2)),
                         "top-time": np.ones((1, 2))}},
                  {"t": {m: ["success", "success"] for m in ("bc", "time", "top-time")}})
    names = {"bc": "plain BC", "time": "RA-BC, time", "top-time": "%BC x RA-BC, time"}
    write_outputs(tmp_path, s, names, {"references": {"RA-BC": "SARM eq. 8-9"},
                                       "same_weights": {"t": {"top-time": "time"}}})
    text = (tmp_path / "policy.md").read_text()
    assert "- RA-BC: SARM eq. 8-9" in text
    assert "- t: %BC x RA-BC, time has the same weights as RA-BC, time" in text


def test_every_method_gets_its_own_colour():
    from procvlm.errors import ProcvlmError
    from procvlm.policy.experiment import METHODS

    for n in (2, 10, len(METHODS), 20):
        assert len(set(method_colours(n))) == n
    assert len(METHODS) > 10  # the chart needs the wider palette today
    with pytest.raises(ProcvlmError, match="at most 20"):
        method_colours(21)


def test_table_and_chart_say_the_run_sizes(tmp_path):
    from procvlm.policy.experiment import QUICK, PolicyConfig

    assert sizes_line(PolicyConfig().to_dict()) == (
        "4 tasks, 24 training episodes per task, 3 training seeds per method, 50 evaluation "
        "rollouts per policy, 2000 BC steps")
    quick = sizes_line(QUICK.to_dict())
    assert quick.startswith("1 task, 4 training episodes per task, 1 training seed per method")
    s = summarize({"t": {"bc": np.zeros((1, 2))}}, {"t": {"bc": ["success"] * 2}})
    write_outputs(tmp_path, s, {"bc": "plain BC"}, {"config": QUICK.to_dict()})
    assert f"Sizes: {quick}." in (tmp_path / "policy.md").read_text()
    assert sizes_line({}) == ""

