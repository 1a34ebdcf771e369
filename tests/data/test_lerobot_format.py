"""LeRobot v3 format helpers: SARM's temporal proportions as LeRobot computes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from procvlm.data import lerobot_format as fmt

SPEC = Path(__file__).parent.parent / "labels" / "sarm_lerobot_examples.json"


def test_repeated_stage_counts_its_last_occurrence() -> None:
    """A stage undone and done again (a regression) counts with its last length, as LeRobot's
    ``compute_temporal_proportions``; the episode's total still counts every occurrence."""
    ep = (["A", "B", "A", "B"], [0, 10, 14, 20], [10, 14, 20, 30])   # A: 10 then 6, B: 4 then 10
    shares = fmt.stage_shares([ep])
    assert shares == pytest.approx({"A": 6 / 16, "B": 10 / 16})  # 6/30 and 10/30, renormalised
    assert fmt.temporal_proportions([ep], ["B", "A", "C"]) == pytest.approx(
        {"B": 10 / 16, "A": 6 / 16})


def test_empty_and_zero_length_stages() -> None:
    assert fmt.stage_shares([]) == {}
    assert fmt.stage_shares([(["A"], [5], [5])]) == {}


def test_json_proportions_match_lerobot() -> None:
    """The proportions a procvlm dataset ships in ``meta/temporal_proportions_sparse.json`` are
    LeRobot 0.4.4's own for the spec's episodes (per task, exact frame counts)."""
    by_task: dict[str, list[dict]] = {}
    for ep in json.loads(SPEC.read_text())["episodes"]:
        by_task.setdefault(ep["task"], []).append(ep)
    for eps in by_task.values():
        stages = [(e["subtask_names"], e["subtask_start_frames"], e["subtask_end_frames"])
                  for e in eps]
        props = fmt.temporal_proportions(stages, eps[0]["plan"])
        np.testing.assert_allclose([props.get(p, 0.0) for p in eps[0]["plan"]],
                                   eps[0]["temporal_proportions"], rtol=0, atol=1e-15)
