"""Label a whole dataset and read the labels back.

``label_dataset`` annotates every episode (``procvlm.annotate``), measures the visual change of
its main camera, and writes, under the dataset's ``meta/procvlm/`` (for an HDF5 file, under
``<file>.procvlm/meta/procvlm/``):

- ``labels.parquet``: one row per frame, ``index, episode_index, frame_index, subtask_index,
  subtask, completed, stage_progress, progress, remaining (list<str>), done`` for the chosen
  scheme, and ``progress_<s>, stage_<s>, stage_progress_<s>`` for every scheme ``s`` of
  ``SCHEMES`` (``-`` written ``_``). The schema metadata key ``procvlm`` holds the scheme and
  each episode's task, plan and success;
- ``plans.json``: task -> plan (the most frequent plan of the task's episodes);
- ``provenance.json``: annotator, scheme, measures, parameters, package version, time.

The expensive part (annotation and visual change) is cached per episode under
``meta/procvlm/.cache/<key>/``, where the key hashes everything that part depends on (annotator
and its arguments, measures, camera, package version); an interrupted run skips the episodes
already cached, and a run with other settings uses another key. Label schemes and their
parameters are cheap and recomputed on every run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from procvlm import __version__
from procvlm._io import write_json, write_parquet
from procvlm.data.dataset import choose_camera
from procvlm.data.episode import DONE, Episode, Subtask
from procvlm.errors import ProcvlmError
from procvlm.labels.change import (ANCHOR_MEASURE, ANCHOR_THRESHOLD, check_measure,
                                   visual_changes)
from procvlm.labels.schemes import (SCHEMES, EpisodeLabels, LabelParams, compute_labels,
                                    get_scheme, sarm_proportions)

logger = logging.getLogger(__name__)

LABELS_FILE = "labels.parquet"
PLANS_FILE = "plans.json"
PROVENANCE_FILE = "provenance.json"
CACHE_DIR = ".cache"
ANNOTATE_BATCH = 8
"""Episodes handed to ``Annotator.annotate_many`` at once (a VLM annotator overlaps them)."""


def scheme_suffix(scheme: str) -> str:
    """Column suffix of a scheme (``procvlm-paper`` -> ``procvlm_paper``)."""
    return scheme.replace("-", "_")


def labels_dir(root: str | Path) -> Path:
    """Where a dataset's labels live: ``<root>/meta/procvlm`` (``<file>.procvlm/meta/procvlm``
    for an HDF5 file)."""
    root = Path(root)
    if root.is_file():
        root = root.parent / f"{root.name}.procvlm"
    return root / "meta" / "procvlm"


@dataclass
class EpisodeRecord:
    """What labelling needs from one episode: its annotation and visual change (cached)."""

    episode_index: int
    task: str
    num_frames: int
    success: bool | None
    plan: list[str]
    subtasks: list[list]  # [name, start, end, completed]
    change: list[float]
    anchored: list[float]  # change against the last frame that counted (procvlm)
    index: list[int]  # dataset-wide frame index of each frame

    def timeline(self) -> list[Subtask]:
        return [Subtask(n, int(s), int(e), bool(c)) for n, s, e, c in self.subtasks]


def _record(ep: Episode, annotation: Any, change: np.ndarray, anchored: np.ndarray,
            index: np.ndarray) -> EpisodeRecord:
    return EpisodeRecord(
        episode_index=int(ep.episode_index), task=ep.task, num_frames=len(ep),
        success=None if ep.success is None else bool(ep.success),
        plan=list(annotation.plan),
        subtasks=[[s.name, int(s.start), int(s.end), bool(s.completed)]
                  for s in annotation.subtasks],
        change=[float(x) for x in change], anchored=[float(x) for x in anchored],
        index=[int(x) for x in index])


def _cache_key(annotator: str, annotator_kwargs: dict, measure: str, anchor_measure: str,
               camera: str) -> str:
    blob = json.dumps({"annotator": annotator, "kwargs": annotator_kwargs, "measure": measure,
                       "anchor_measure": anchor_measure, "camera": camera,
                       "anchor": ANCHOR_THRESHOLD.get(anchor_measure),
                       "version": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _load_cached(path: Path, num_frames: int) -> EpisodeRecord | None:
    try:
        rec = EpisodeRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    ok = rec.num_frames == num_frames and len(rec.change) == len(rec.anchored) == num_frames
    return rec if ok else None


def _global_index(ds: Any, i: int, n: int) -> np.ndarray:
    index = np.asarray(ds.global_index(i), dtype=np.int64)
    if index.shape != (n,):
        raise ProcvlmError(f"episode {i} of {ds.root} has {n} frames but {index.shape} global "
                           "indices: the dataset's metadata is inconsistent; rewrite it")
    return index


def _annotate_batch(ds: Any, indices: Sequence[int], annotator: Any, measure: str,
                    anchor_measure: str, camera: str) -> list[EpisodeRecord]:
    episodes = [ds.episode(i, cameras=[camera]) for i in indices]
    annotations = annotator.annotate_many(episodes)
    out = []
    for i, ep, ann in zip(indices, episodes, annotations):
        change, anchored = visual_changes(ep.frames[camera], measure,
                                          anchor_measure=anchor_measure)
        out.append(_record(ep, ann, change, anchored, _global_index(ds, i, len(ep))))
    return out


def collect_records(ds: Any, annotator: str = "oracle", measure: str = "phash",
                    annotator_kwargs: dict | None = None, camera: str | None = None,
                    cache: Path | None = None, progress_bar: bool = False,
                    anchor_measure: str = ANCHOR_MEASURE) -> list[EpisodeRecord]:
    """Annotate every episode of ``ds`` and measure its visual change, resuming from ``cache``.

    Args:
        ds: a ``procvlm.data`` Dataset (or any object with its API).
        annotator: name for ``procvlm.annotate.get_annotator``.
        measure: measure of the frame-to-frame change (``procvlm-paper``).
        annotator_kwargs: arguments of the annotator.
        camera: camera whose frames give the visual change (default: the dataset's first).
        cache: folder of per-episode results (None: no cache).
        progress_bar: show a tqdm bar.
        anchor_measure: measure of the anchored change (``procvlm``).

    Returns:
        One record per episode, in ``ds.episode_indices`` order.
    """
    from tqdm.auto import tqdm

    from procvlm.annotate import get_annotator

    kwargs = dict(annotator_kwargs or {})
    camera = choose_camera(ds.cameras, camera)
    try:
        ann = get_annotator(annotator, **kwargs)
    except TypeError as e:
        raise ProcvlmError(f"annotator {annotator!r} does not take {sorted(kwargs)} ({e}): "
                           "check the annotator arguments (--annotator-arg)") from e
    folder = cache / _cache_key(annotator, kwargs, measure, anchor_measure, camera) \
        if cache else None
    records: dict[int, EpisodeRecord] = {}
    todo = []
    for i in ds.episode_indices:
        rec = _load_cached(folder / f"episode_{i:06d}.json", ds.episode_length(i)) \
            if folder else None
        if rec is None:
            todo.append(i)
        else:
            records[i] = rec
    if records:
        logger.info("resuming: %d of %d episodes cached", len(records), len(ds.episode_indices))
    bar = tqdm(total=len(todo), desc="label", unit="ep", disable=not progress_bar)
    for b in range(0, len(todo), ANNOTATE_BATCH):
        for rec in _annotate_batch(ds, todo[b:b + ANNOTATE_BATCH], ann, measure,
                                   anchor_measure, camera):
            if folder:
                write_json(folder / f"episode_{rec.episode_index:06d}.json", asdict(rec),
                           indent=None)
            records[rec.episode_index] = rec
            bar.update(1)
    bar.close()
    return [records[i] for i in ds.episode_indices]


def sarm_stage_proportions(records: Sequence[EpisodeRecord]
                           ) -> dict[tuple[str, tuple[str, ...]], list[float]]:
    """SARM's stage proportions (``sarm_proportions``) over the episodes of each (task, plan)."""
    groups: dict[tuple[str, tuple[str, ...]], list[list[Subtask]]] = {}
    for r in records:
        groups.setdefault((r.task, tuple(r.plan)), []).append(r.timeline())
    return {key: sarm_proportions(timelines, list(key[1])).tolist()
            for key, timelines in groups.items()}


def episode_all_schemes(rec: EpisodeRecord, params: LabelParams,
                        proportions: Sequence[float] | None = None) -> dict[str, EpisodeLabels]:
    """Labels of one record under every scheme (``proportions``: SARM's, for ``sarm``)."""
    change = np.asarray(rec.change, dtype=np.float64)
    anchored = np.asarray(rec.anchored, dtype=np.float64)
    return {s: compute_labels(rec.timeline(), rec.plan, rec.num_frames, change, rec.success,
                              scheme=s, params=params,
                              stage_proportions=proportions if s == "sarm" else None,
                              anchored_change=anchored if s == "procvlm" else None)
            for s in SCHEMES}


def _episode_columns(rec: EpisodeRecord, labels: dict[str, EpisodeLabels], scheme: str
                     ) -> dict[str, Any]:
    main, n = labels[scheme], rec.num_frames
    cols: dict[str, Any] = {
        "index": np.asarray(rec.index, dtype=np.int64),
        "episode_index": np.full(n, rec.episode_index, dtype=np.int64),
        "frame_index": np.arange(n, dtype=np.int64),
        "subtask_index": main.stage, "subtask": main.subtask.tolist(),
        "completed": main.completed, "stage_progress": main.stage_progress,
        "progress": main.progress, "remaining": main.remaining, "done": main.done}
    for s, lab in labels.items():
        x = scheme_suffix(s)
        cols[f"progress_{x}"] = lab.progress
        cols[f"stage_{x}"] = lab.stage
        cols[f"stage_progress_{x}"] = lab.stage_progress
    return cols


def _schema() -> pa.Schema:
    fields = [("index", pa.int64()), ("episode_index", pa.int64()), ("frame_index", pa.int64()),
              ("subtask_index", pa.int64()), ("subtask", pa.string()), ("completed", pa.bool_()),
              ("stage_progress", pa.float64()), ("progress", pa.float64()),
              ("remaining", pa.list_(pa.string())), ("done", pa.bool_())]
    for s in SCHEMES:
        x = scheme_suffix(s)
        fields += [(f"progress_{x}", pa.float64()), (f"stage_{x}", pa.int64()),
                   (f"stage_progress_{x}", pa.float64())]
    return pa.schema(fields)


def build_table(records: Sequence[EpisodeRecord], scheme: str = "procvlm",
                params: LabelParams | None = None) -> pa.Table:
    """The labels table of ``records`` (see the module docstring for its columns)."""
    params = params or LabelParams()
    proportions = sarm_stage_proportions(records)
    schema = _schema()
    batches = []
    for rec in records:
        labels = episode_all_schemes(rec, params, proportions[(rec.task, tuple(rec.plan))])
        cols = _episode_columns(rec, labels, scheme)
        batches.append(pa.record_batch([pa.array(cols[f.name], type=f.type) for f in schema],
                                       schema=schema))
    meta = {"scheme": scheme,
            "episodes": {str(r.episode_index): {"task": r.task, "plan": r.plan,
                                                "success": r.success} for r in records}}
    schema = schema.with_metadata({"procvlm": json.dumps(meta)})
    return pa.Table.from_batches(batches, schema=schema)


def _plans(records: Sequence[EpisodeRecord]) -> dict[str, list[str]]:
    by_task: dict[str, Counter] = {}
    for r in records:
        by_task.setdefault(r.task, Counter())[tuple(r.plan)] += 1
    return {t: list(c.most_common(1)[0][0]) for t, c in by_task.items()}


def _check_choices(scheme: str, *measures: str) -> None:
    get_scheme(scheme)
    for measure in measures:
        check_measure(measure)


def label_dataset(root: str | Path, annotator: str = "oracle", scheme: str = "procvlm",
                  measure: str = "phash", params: LabelParams | None = None,
                  annotator_kwargs: dict | None = None, *, camera: str | None = None,
                  progress_bar: bool = False, anchor_measure: str = ANCHOR_MEASURE) -> Path:
    """Label every frame of a dataset and write ``meta/procvlm/`` (see the module docstring).

    Args:
        root: a dataset ``procvlm.data.open_dataset`` reads.
        annotator: ``oracle``, ``dataset``, ``gripper`` or ``vlm``.
        scheme: the scheme of the main columns (all four are written as ``progress_<s>``...).
        measure: frame-to-frame visual change of ``procvlm-paper``, ``phash`` (paper), ``l1``
            or ``embedding``.
        params: label parameters (default ``LabelParams()``).
        annotator_kwargs: arguments of the annotator (e.g. a VLM endpoint).
        camera: camera of the visual change (default: the dataset's first).
        progress_bar: show a tqdm bar over episodes.
        anchor_measure: measure of the ``procvlm`` scheme's anchored change (default
            ``phash``, see ``procvlm.labels.change``).

    Returns:
        The path of ``labels.parquet``.
    """
    from procvlm.data import open_dataset

    _check_choices(scheme, measure, anchor_measure)
    params = params or LabelParams()
    ds = open_dataset(root)
    out = labels_dir(ds.root)
    camera = choose_camera(ds.cameras, camera)
    records = collect_records(ds, annotator, measure, annotator_kwargs, camera,
                              cache=out / CACHE_DIR, progress_bar=progress_bar,
                              anchor_measure=anchor_measure)
    if not records:
        raise ProcvlmError(f"{ds.root} has no episodes to label: write some episodes first")
    table = build_table(records, scheme, params)
    write_parquet(out / LABELS_FILE, table)
    write_json(out / PLANS_FILE, _plans(records))
    write_json(out / PROVENANCE_FILE, {
        "annotator": annotator, "annotator_kwargs": annotator_kwargs or {}, "scheme": scheme,
        "measure": measure, "anchor_measure": anchor_measure, "camera": camera,
        "params": params.to_dict(scheme),
        "params_by_scheme": {s: params.to_dict(s) for s in SCHEMES},
        "package": "procvlm", "version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "num_episodes": len(records), "num_frames": int(table.num_rows)})
    logger.info("labelled %d episodes (%d frames) with %s/%s into %s", len(records),
                table.num_rows, annotator, scheme, out)
    return out / LABELS_FILE


def _need(root: str | Path, name: str) -> Path:
    path = labels_dir(root) / name
    if not path.is_file():
        raise ProcvlmError(f"{root} has no labels ({path} is missing): run `procvlm label "
                           f"{root}` first")
    return path


def read_labels(root: str | Path) -> pa.Table:
    """The labels table written by ``label_dataset`` (ProcvlmError if the dataset has none)."""
    return pq.read_table(_need(root, LABELS_FILE))


def read_plans(root: str | Path) -> dict[str, list[str]]:
    """Task -> plan written by ``label_dataset`` (ProcvlmError if the dataset has none)."""
    return json.loads(_need(root, PLANS_FILE).read_text())


def read_provenance(root: str | Path) -> dict[str, Any]:
    """The provenance written by ``label_dataset``."""
    return json.loads(_need(root, PROVENANCE_FILE).read_text())


def _table_meta(table: pa.Table) -> dict[str, Any]:
    raw = (table.schema.metadata or {}).get(b"procvlm")
    return json.loads(raw) if raw else {}


def _episode_rows(table: pa.Table, episode_index: int) -> pa.Table:
    rows = table.filter(pc.equal(table["episode_index"], int(episode_index)))
    if rows.num_rows == 0:
        raise ProcvlmError(f"episode {episode_index} has no labels: pass a labelled episode or "
                           "run `procvlm label` again")
    return rows.sort_by("frame_index")


def _column(rows: pa.Table, name: str) -> np.ndarray:
    if name not in rows.column_names:
        raise ProcvlmError(f"labels have no column {name!r}: relabel the dataset with "
                           "`procvlm label`")
    return rows[name].to_numpy(zero_copy_only=False)


def _episode_plan(table: pa.Table, rows: pa.Table, episode_index: int) -> list[str]:
    info = _table_meta(table).get("episodes", {}).get(str(int(episode_index)))
    if info:
        return list(info["plan"])
    return max(rows["remaining"].to_pylist(), key=len)



def episode_labels(table: pa.Table, episode_index: int, scheme: str | None = None,
                   plan: Sequence[str] | None = None) -> EpisodeLabels:
    """One episode's labels under ``scheme``, rebuilt from the stored columns.

    Args:
        table: ``read_labels(root)``.
        episode_index: the episode.
        scheme: a scheme of ``SCHEMES`` (default: the scheme of the main columns).
        plan: the episode's plan (default: from the table's metadata).

    Returns:
        The labels; for a scheme other than the main one, ``subtask`` and ``remaining`` follow
        that scheme's stages and ``completed`` is the annotation's.
    """
    main = _table_meta(table).get("scheme", "procvlm")
    scheme = scheme or main
    get_scheme(scheme)
    rows = _episode_rows(table, episode_index)
    plan = list(plan) if plan is not None else _episode_plan(table, rows, episode_index)
    x = scheme_suffix(scheme)
    stage = _column(rows, f"stage_{x}").astype(np.int64)
    completed = _column(rows, "completed").astype(bool)
    common = dict(stage=stage, completed=completed,
                  stage_progress=_column(rows, f"stage_progress_{x}").astype(np.float64),
                  progress=_column(rows, f"progress_{x}").astype(np.float64),
                  scheme=scheme, plan=plan)
    if scheme == main:
        return EpisodeLabels(subtask=_column(rows, "subtask").astype(str),
                             remaining=[list(r) for r in rows["remaining"].to_pylist()],
                             done=_column(rows, "done").astype(bool), **common)
    k = len(plan)
    names = [plan[s] if 0 <= s < k else DONE if s == k else "" for s in stage.tolist()]
    return EpisodeLabels(subtask=np.array(names, dtype=str).reshape(len(stage)),
                         remaining=[list(plan) if s < 0 else list(plan[s:]) for s in
                                    stage.tolist()], done=stage == k, **common)


def scheme_curves(root: str | Path, episode_index: int) -> dict[str, np.ndarray]:
    """Progress per frame of one episode under every scheme, from ``labels.parquet``.

    Args:
        root: a labelled dataset.
        episode_index: the episode.

    Returns:
        scheme -> (T,) float64 progress.
    """
    cols = ["episode_index", "frame_index"] + [f"progress_{scheme_suffix(s)}" for s in SCHEMES]
    path = _need(root, LABELS_FILE)
    try:
        table = pq.read_table(path, columns=cols)
    except (KeyError, pa.ArrowInvalid) as e:
        raise ProcvlmError(f"{path} lacks per-scheme progress columns ({e}): relabel the "
                           "dataset with `procvlm label`") from e
    rows = _episode_rows(table, episode_index)
    return {s: _column(rows, f"progress_{scheme_suffix(s)}").astype(np.float64) for s in SCHEMES}
