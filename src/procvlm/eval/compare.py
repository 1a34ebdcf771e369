"""Side-by-side evaluation of progress models and label schemes on held-out episodes.

For every split (a labelled dataset: same tasks with new seeds, or held-out tasks), every model
predicts every episode, and the label schemes themselves are scored as references. Each
episode carries what the simulator knows about it (success, injected stalls and regressions,
oracle sub-step boundaries), so the table shows where time-based supervision goes wrong.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from procvlm.eval.metrics import EpisodeResult, summarize
from procvlm.labels.schemes import SCHEMES
from procvlm.eval.report import write_report

logger = logging.getLogger(__name__)

KINDS = ("success", "failure", "stall", "regression")


@dataclass
class EpisodeTruth:
    """What is known about a held-out episode, independent of any model."""

    episode: int
    task: str
    success: bool
    kind: str
    stalls: list[tuple[int, int]] = field(default_factory=list)
    regressions: list[int] = field(default_factory=list)
    reference: np.ndarray | None = None
    boundaries: list[int] | None = None


def _kind(success: bool, meta: Mapping[str, Any]) -> str:
    failure = meta.get("failure")
    if failure in ("stall", "regression"):
        return str(failure)
    return "success" if success else "failure"


def episode_truth(ds: Any, table: Any, i: int) -> EpisodeTruth:
    """Ground truth of episode ``i`` of dataset ``ds`` with labels ``table``."""
    from procvlm.labels import episode_labels

    ep = ds.episode(i)
    events = ep.meta.get("events") or []
    success = bool(ep.success)
    reference = episode_labels(table, i, "procvlm").progress
    boundaries = [s.start for s in (ep.subtasks or [])[1:]]
    return EpisodeTruth(
        episode=i, task=ep.task, success=success, kind=_kind(success, ep.meta),
        stalls=[(int(e["start"]), int(e["end"])) for e in events if e.get("type") == "stall"],
        regressions=[int(e["frame"]) for e in events if e.get("type") == "regression"],
        reference=np.asarray(reference, dtype=np.float64),
        boundaries=boundaries if ep.subtasks else None)


def stage_boundaries(stage: np.ndarray) -> list[int]:
    """Frames where a predicted stage sequence changes value."""
    stage = np.asarray(stage)
    return [int(t) for t in np.flatnonzero(stage[1:] != stage[:-1]) + 1]


def _result(truth: EpisodeTruth, progress: np.ndarray, stage: np.ndarray | None) -> EpisodeResult:
    pred_b = stage_boundaries(stage) if stage is not None and truth.boundaries is not None else None
    return EpisodeResult(
        episode=truth.episode, progress=np.asarray(progress, dtype=np.float64),
        success=truth.success, reference=truth.reference, stalls=truth.stalls,
        regressions=truth.regressions, pred_boundaries=pred_b,
        true_boundaries=truth.boundaries if pred_b is not None else None)


@dataclass
class Series:
    """One predictor's output on one split: progress and stage per episode."""

    progress: dict[int, np.ndarray]
    stage: dict[int, np.ndarray]


def model_series(model: Any, ds: Any, episodes: Sequence[int], window: int | None = None,
                 show_progress: bool = False) -> Series:
    """Run ``model.predict`` on every episode."""
    from tqdm.auto import tqdm

    prog, stage = {}, {}
    for i in tqdm(episodes, desc="predict", disable=not show_progress, leave=False):
        kwargs = {} if window is None else {"window": window}
        pred = model.predict(ds.episode(i), **kwargs)
        prog[i], stage[i] = pred.progress, pred.stage
    return Series(prog, stage)


def label_series(table: Any, episodes: Sequence[int], scheme: str) -> Series:
    """A label scheme's progress and stages, read from the stored labels."""
    from procvlm.labels import episode_labels

    prog, stage = {}, {}
    for i in episodes:
        lab = episode_labels(table, i, scheme)
        prog[i], stage[i] = lab.progress, lab.stage
    return Series(prog, stage)


def score_series(series: Series, truths: Sequence[EpisodeTruth]) -> dict[str, float]:
    """The metric summary of one predictor over the episodes in ``truths``."""
    results = [_result(t, series.progress[t.episode], series.stage.get(t.episode))
               for t in truths]
    return summarize(results)


def pick_curves(truths: Sequence[EpisodeTruth], per_kind: int = 1) -> list[EpisodeTruth]:
    """The first ``per_kind`` episodes of each kind (success, failure, stall, regression)."""
    chosen = []
    for kind in KINDS:
        chosen += [t for t in truths if t.kind == kind][:per_kind]
    return chosen


@dataclass
class Comparison:
    """Rows of the comparison table and the curve sets to plot."""

    rows: list[dict[str, Any]]
    curves: list[dict[str, Any]]


def compare_split(split: str, root: str | Path, models: Mapping[str, Any],
                  references: Sequence[str], window: int | None = None,
                  curves_per_kind: int = 1, show_progress: bool = False) -> Comparison:
    """Evaluate every model and every reference label scheme on one labelled dataset."""
    from procvlm.data import open_dataset
    from procvlm.labels import read_labels

    ds = open_dataset(root)
    table = read_labels(ds.root)
    episodes = list(ds.episode_indices)
    truths = [episode_truth(ds, table, i) for i in episodes]
    predictors: dict[str, tuple[str, Series]] = {}
    for name, model in models.items():
        logger.info("%s: scoring %d episodes with %s", split, len(episodes), name)
        predictors[name] = ("model", model_series(model, ds, episodes, window, show_progress))
    for scheme in references:
        predictors[f"labels:{scheme}"] = ("labels", label_series(table, episodes, scheme))
    rows = [{"split": split, "name": name, "source": source, **score_series(series, truths)}
            for name, (source, series) in predictors.items()]
    curves = [{"episode": f"{split}/{t.episode}", "kind": t.kind,
               "series": {n: s.progress[t.episode] for n, (_, s) in predictors.items()},
               "reference": t.reference,
               "events": [{"type": "stall", "start": a, "end": b} for a, b in t.stalls]
               + [{"type": "regression", "frame": f} for f in t.regressions]}
              for t in pick_curves(truths, curves_per_kind)]
    return Comparison(rows, curves)


def run_eval(models: Mapping[str, str | Path], splits: Mapping[str, str | Path],
             out: str | Path, references: Sequence[str] = SCHEMES,
             window: int | None = None, title: str = "procvlm: progress models compared",
             show_progress: bool = False) -> Path:
    """Load the models, compare them on every split, and write the report.

    Args:
        models: display name -> run or model folder.
        splits: split name -> labelled dataset folder.
        out: report folder (``index.html``, ``results.md``, ``results.json``, PNGs).
        references: label schemes scored as references.
        window: frames the models see (their own default when None).
        title: the report's title.
        show_progress: tqdm bars.

    Returns:
        The path of ``index.html``.
    """
    from procvlm.models import load_model

    loaded = {name: load_model(path) for name, path in models.items()}
    rows, curves = [], []
    for split, root in splits.items():
        part = compare_split(split, root, loaded, references, window,
                             show_progress=show_progress)
        rows += part.rows
        curves += part.curves
    rows = [{k: _round(v) for k, v in r.items()} for r in rows]
    return write_report(out, title, rows, curves)


def _round(v: Any) -> Any:
    if isinstance(v, float) and not math.isnan(v):
        return round(v, 4)
    return v
