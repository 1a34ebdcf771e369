"""Side-by-side evaluation of progress models and label schemes on held-out episodes.

For every split (a labelled dataset: same tasks with new seeds, or held-out tasks), every model
predicts every episode, and the label schemes themselves are scored as references. Each
episode carries what the simulator knows about it, independent of any label scheme: its
simulator-truth progress (``Episode.true_progress``), success, still stretches (``stall`` and
``hesitation`` events), regressions, and the annotation's sub-steps and remaining actions. The
table (``procvlm.eval.metrics.METRICS``) leads with agreement to that truth; the report picks
example episodes that really contain the event they illustrate.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from procvlm.eval.metrics import EpisodeResult, summarize
from procvlm.eval.report import write_report
from procvlm.labels.schemes import SCHEMES

logger = logging.getLogger(__name__)

KINDS = ("success", "failure", "stall", "hesitation", "regression")
STILL_EVENTS = ("stall", "hesitation")
"""Event types whose ``[start, end)`` range is a still stretch: nothing in the scene changes."""


@dataclass
class EpisodeTruth:
    """What is known about a held-out episode, independent of any model.

    Attributes:
        episode: episode index.
        task: the instruction.
        success: whether the task was achieved.
        failure: the injected failure mode, or None.
        stills: ``(start, end, type)`` still stretches (stall and hesitation events).
        regressions: frames where a finished step is undone.
        truth: (T,) simulator-truth progress, or None when the dataset has none.
        reference: (T,) labels of the reference scheme (``procvlm`` by default).
        boundaries: the annotation's sub-step boundaries, or None.
        stage: (T,) the annotation's current step (plan index, K = done).
        remaining: T lists of the annotation's remaining actions.
    """

    episode: int
    task: str
    success: bool
    failure: str | None = None
    stills: list[tuple[int, int, str]] = field(default_factory=list)
    regressions: list[int] = field(default_factory=list)
    truth: np.ndarray | None = None
    reference: np.ndarray | None = None
    boundaries: list[int] | None = None
    stage: np.ndarray | None = None
    remaining: list[list[str]] | None = None

    @property
    def stalls(self) -> list[tuple[int, int]]:
        """The still stretches as ``[start, end)`` ranges."""
        return [(a, b) for a, b, _ in self.stills]

    @property
    def kind(self) -> str:
        """``regression``, ``stall``, ``hesitation``, ``failure`` or ``success``: the most
        specific event the episode holds."""
        types = {t for _, _, t in self.stills}
        if self.regressions:
            return "regression"
        for kind in ("stall", "hesitation"):
            if kind in types:
                return kind
        return "success" if self.success else "failure"

    def shows(self, kind: str) -> bool:
        """Whether the episode holds what a ``kind`` example must show: a success with no
        injected failure, a failed episode, a stall or hesitation stretch, a regression."""
        if kind == "success":
            return self.success and not self.failure
        if kind == "failure":
            return not self.success
        if kind == "regression":
            return bool(self.regressions)
        return any(t == kind for _, _, t in self.stills)


def episode_truth(ds: Any, table: Any, i: int, scheme: str = "procvlm") -> EpisodeTruth:
    """Ground truth of episode ``i`` of dataset ``ds`` with labels ``table``; ``scheme`` picks
    the label columns of the reference curve (``ccc_labels``); the current step and remaining
    actions are the annotation's."""
    from procvlm.labels import episode_labels

    ep = ds.episode(i, cameras=ds.cameras[:1])
    events = ep.meta.get("events") or []
    n = len(ep)
    labels = episode_labels(table, i, scheme)
    # the current step and remaining actions come from the annotation's timeline, whatever
    # the reference scheme (time and sarm labels have stages of their own)
    steps = labels if scheme == "procvlm" else episode_labels(table, i, "procvlm")
    truth = getattr(ep, "true_progress", None)
    stills = [(int(e["start"]), min(int(e["end"]), n), str(e["type"])) for e in events
              if e.get("type") in STILL_EVENTS and "start" in e and "end" in e
              and int(e["start"]) < min(int(e["end"]), n)]
    return EpisodeTruth(
        episode=i, task=ep.task, success=bool(ep.success), failure=ep.meta.get("failure"),
        stills=stills,
        regressions=[int(e["frame"]) for e in events
                     if e.get("type") == "regression" and 0 <= int(e["frame"]) < n],
        truth=None if truth is None else np.asarray(truth, dtype=np.float64),
        reference=np.asarray(labels.progress, dtype=np.float64),
        boundaries=[s.start for s in ep.subtasks[1:]] if ep.subtasks else None,
        stage=np.asarray(steps.stage), remaining=steps.remaining)


def stage_boundaries(stage: np.ndarray) -> list[int]:
    """Frames where a predicted stage sequence changes value."""
    stage = np.asarray(stage)
    return [int(t) for t in np.flatnonzero(stage[1:] != stage[:-1]) + 1]


@dataclass
class Series:
    """One predictor's output on one split: progress, stage and (models) remaining actions."""

    progress: dict[int, np.ndarray]
    stage: dict[int, np.ndarray]
    remaining: dict[int, list[list[str]]] | None = None
    done: dict[int, np.ndarray] | None = None
    """Per-frame P(done) of models that give it (``ProgressPrediction.done``)."""


def _result(truth: EpisodeTruth, series: Series) -> EpisodeResult:
    i = truth.episode
    stage = series.stage.get(i)
    pred_b = stage_boundaries(stage) if stage is not None and truth.boundaries is not None else None
    remaining = series.remaining.get(i) if series.remaining is not None else None
    return EpisodeResult(
        episode=i, progress=np.asarray(series.progress[i], dtype=np.float64),
        success=truth.success, reference=truth.reference, truth=truth.truth,
        stalls=truth.stalls, regressions=truth.regressions, pred_boundaries=pred_b,
        true_boundaries=truth.boundaries if pred_b is not None else None,
        pred_stage=stage if remaining is not None else None, true_stage=truth.stage,
        pred_remaining=remaining, true_remaining=truth.remaining,
        done=series.done.get(i) if series.done is not None else None)


def model_series(model: Any, ds: Any, episodes: Sequence[int], window: int | None = None,
                 show_progress: bool = False, camera: str | None = None) -> Series:
    """Run the model on every episode, on ``camera`` (default: the model's recorded camera,
    else the dataset's first; ``procvlm.data.choose_camera``) with each episode's plan
    (``procvlm.reward.score.PlanSource``)."""
    from tqdm.auto import tqdm

    from procvlm.data import choose_camera
    from procvlm.reward.score import PlanSource

    camera = choose_camera(ds.cameras, camera, model.trained_on.camera)
    plans = PlanSource(model, ds.root)
    prog, stage, remaining, done = {}, {}, {}, {}
    for i in tqdm(episodes, desc="predict", disable=not show_progress, leave=False):
        ep = ds.episode(i, cameras=[camera])
        pred = model.predict_batch([(ep, ep.task, plans(ep))], window=window)[0]
        prog[i], stage[i], remaining[i] = pred.progress, pred.stage, pred.remaining
        if pred.done is not None:
            done[i] = pred.done
    return Series(prog, stage, remaining, done or None)


def reference_scheme(models: Mapping[str, Any], scheme: str | None = None) -> str:
    """The label scheme the models are judged against: ``scheme`` when given, else the one
    every model records having trained on, else ``procvlm``."""
    if scheme is not None:
        return scheme
    recorded = {m.trained_on.scheme for m in models.values()} - {None}
    if len(recorded) > 1:
        logger.warning("the models were trained on different schemes (%s): the reference is "
                       "procvlm; pass --scheme to choose", ", ".join(sorted(recorded)))
    return recorded.pop() if len(recorded) == 1 else "procvlm"


def label_series(table: Any, episodes: Sequence[int], scheme: str) -> Series:
    """A label scheme's progress and stages, read from the stored labels."""
    from procvlm.labels import episode_labels

    prog, stage = {}, {}
    for i in episodes:
        lab = episode_labels(table, i, scheme)
        prog[i], stage[i] = lab.progress, lab.stage
    return Series(prog, stage)


def score_series(series: Series, truths: Sequence[EpisodeTruth], **options: Any
                 ) -> dict[str, float]:
    """The metric summary of one predictor over the episodes in ``truths``; ``options`` go to
    ``summarize`` (e.g. ``done_frames``)."""
    return summarize([_result(t, series) for t in truths], **options)


def pick_curves(truths: Sequence[EpisodeTruth], per_kind: int = 1
                ) -> list[tuple[str, EpisodeTruth]]:
    """Up to ``per_kind`` (kind, episode) examples of each kind (``KINDS``), each episode really
    holding what it illustrates (``EpisodeTruth.shows``), no episode twice; episodes whose most
    specific event is the kind come first."""
    chosen: list[tuple[str, EpisodeTruth]] = []
    for kind in ("regression", "stall", "failure", "hesitation", "success"):  # rarest first
        free = [t for t in truths if t.shows(kind) and all(t is not c for _, c in chosen)]
        free.sort(key=lambda t: t.kind != kind)  # stable: dataset order otherwise
        chosen += [(kind, t) for t in free[:per_kind]]
    return sorted(chosen, key=lambda kt: KINDS.index(kt[0]))


def _events(truth: EpisodeTruth) -> list[dict[str, Any]]:
    return ([{"type": t, "start": a, "end": b} for a, b, t in truth.stills]
            + [{"type": "regression", "frame": f} for f in truth.regressions])


@dataclass
class Comparison:
    """Rows of the comparison table and the curve sets to plot."""

    rows: list[dict[str, Any]]
    curves: list[dict[str, Any]]


def _curve(split: str, ds: Any, kind: str, truth: EpisodeTruth,
           predictors: Mapping[str, tuple[str, Series]]) -> dict[str, Any]:
    outcome = "success" if truth.success else "failure"
    events = [f"{t} {a}-{b}" for a, b, t in truth.stills]
    events += [f"regression at {f}" for f in truth.regressions]
    title = (f"{truth.task} | {outcome}, failure mode: {truth.failure or 'none'}"
             f"{' | ' + ', '.join(events) if events else ''} | {split} episode {truth.episode}")
    return {"episode": f"{split}/{truth.episode}", "kind": kind, "title": title,
            "series": {n: s.progress[truth.episode] for n, (src, s) in predictors.items()
                       if src == "model"},
            "labels": {n.removeprefix("labels:"): s.progress[truth.episode]
                       for n, (src, s) in predictors.items() if src == "labels"},
            "truth": truth.truth, "reference": None if truth.truth is not None
            else truth.reference, "events": _events(truth),
            "episode_data": ds.episode(truth.episode)}


def compare_split(split: str, root: str | Path, models: Mapping[str, Any],
                  references: Sequence[str], window: int | None = None,
                  curves_per_kind: int = 1, show_progress: bool = False,
                  steps: Mapping[str, int | None] | None = None, camera: str | None = None,
                  scheme: str | None = None) -> Comparison:
    """Evaluate every model and every reference label scheme on one labelled dataset.

    Args:
        split: the split's name.
        root: the labelled dataset.
        models: display name -> loaded model.
        references: label schemes scored as references.
        window: frames the models see (their own default when None).
        curves_per_kind: example episodes per kind to plot.
        show_progress: tqdm bars.
        steps: display name -> optimiser steps the model trained for (a ``steps`` column, None
            for label schemes; no column when not given).
        camera: the camera the models read (default: each model's recorded one, else the
            dataset's first).
        scheme: the labels of the reference curve and stages (default: ``reference_scheme``).

    Returns:
        The rows (one per model and scheme) and the curve sets.
    """
    from procvlm.data import open_dataset
    from procvlm.labels import read_labels

    ds = open_dataset(root)
    table = read_labels(ds.root)
    episodes = list(ds.episode_indices)
    scheme = reference_scheme(models, scheme)
    truths = [episode_truth(ds, table, i, scheme) for i in episodes]
    if any(t.truth is None for t in truths):
        logger.warning("%s: %d of %d episodes have no simulator-truth progress; the truth "
                       "metrics use the others", split, sum(t.truth is None for t in truths),
                       len(truths))
    predictors: dict[str, tuple[str, Series]] = {}
    for name, model in models.items():
        logger.info("%s: scoring %d episodes with %s", split, len(episodes), name)
        predictors[name] = ("model", model_series(model, ds, episodes, window, show_progress,
                                                  camera))
    for scheme in references:
        predictors[f"labels:{scheme}"] = ("labels", label_series(table, episodes, scheme))
    rows = [{"split": split, "name": name, "source": source,
             **({} if steps is None else {"steps": steps.get(name)}),
             **score_series(series, truths)}
            for name, (source, series) in predictors.items()]
    curves = [_curve(split, ds, kind, t, predictors)
              for kind, t in pick_curves(truths, curves_per_kind)]
    return Comparison(rows, curves)


def training_steps(path: str | Path) -> int | None:
    """Optimiser steps a model trained for, from its run (``metrics.json``) or model folder
    (``training.json``); None when neither records them (e.g. a shipped checkpoint)."""
    from procvlm.models.base import resolve_model_dir

    path = Path(path)
    model_dir = resolve_model_dir(path)
    for f in (path / "metrics.json", model_dir / "training.json",
              model_dir.parent / "metrics.json"):
        try:
            steps = json.loads(f.read_text()).get("steps")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(steps, int):
            return steps
    return None


def run_eval(models: Mapping[str, str | Path], splits: Mapping[str, str | Path],
             out: str | Path, references: Sequence[str] = SCHEMES,
             window: int | None = None, title: str = "procvlm: progress models compared",
             show_progress: bool = False, camera: str | None = None,
             scheme: str | None = None) -> Path:
    """Load the models, compare them on every split, and write the report.

    Args:
        models: display name -> run or model folder.
        splits: split name -> labelled dataset folder.
        out: report folder (``index.html``, ``results.md``, ``results.json``, PNGs).
        references: label schemes scored as references.
        window: frames the models see (their own default when None).
        title: the report's title.
        show_progress: tqdm bars.
        camera: the camera the models read (default: each model's recorded one).
        scheme: the reference labels (default: the models' recorded scheme, else procvlm).

    Returns:
        The path of ``index.html``.
    """
    from procvlm.models import load_model

    loaded = {name: load_model(path) for name, path in models.items()}
    steps = {name: training_steps(path) for name, path in models.items()}
    rows, curves = [], []
    for split, root in splits.items():
        part = compare_split(split, root, loaded, references, window,
                             show_progress=show_progress, steps=steps, camera=camera,
                             scheme=scheme)
        rows += part.rows
        curves += part.curves
    rows = [{k: _round(v) for k, v in r.items()} for r in rows]
    return write_report(out, title, rows, curves)


def _round(v: Any) -> Any:
    if isinstance(v, float) and not math.isnan(v):
        return round(v, 4)
    return v
