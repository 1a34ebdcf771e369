"""RA-BC sample weights (Reward-Aligned Behaviour Cloning, SARM paper eq. 8-9), computed the
way LeRobot's ``RABCWeights`` does from a progress file, so weights can be inspected offline,
and in-process from any progress source (labels of any scheme, a model's scores, simulator
truth): ``load_progress`` then ``episode_weights``.

For each frame, ``delta = p[min(t + chunk, end - 1)] - p[t]`` inside its episode. With the
global ``mu = max(mean(delta), 0)`` and ``sigma = max(std(delta), eps)``:
``soft = clip((delta - (mu - 2 sigma)) / (4 sigma + eps), 0, 1)`` and
``w = 1 if delta > kappa; soft if 0 <= delta <= kappa; 0 if delta < 0``; NaN -> fallback.

The per-frame rule cannot see that an episode never finishes: a failed episode climbs like a
successful one until its failure, and only the frames just before a drop lose weight.
``filtered_weights`` adds the episode-level view of filtered behaviour cloning (%BC, Chen et
al. 2021, "Decision Transformer", sec. 5.3): an episode's progress return is the sum of its
progress deltas from a start at 0, i.e. the progress it ended at, ``R = p[T-1]``; only the
episodes whose return is among the top ``keep`` fraction (ties with the cut kept) keep their
RA-BC weights, the others weigh 0. With ``time`` labels every episode ends at 1, so every
episode ties and nothing is filtered: time says nothing about how far an episode got.

``success_filtered_weights`` filters by a model's own success detector instead of a rank: an
episode keeps its RA-BC weights when the model's probability that the task is done
(``ProgressPrediction.done``, the ``done`` column of ``procvlm score``), averaged over its last
frames (``procvlm.eval.metrics.success_score``), exceeds a threshold (0.5: the model says
"done" more likely than not). It keeps as many episodes as the model calls successful, where
the rank keeps a fixed share.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from procvlm.errors import ProcvlmError


def progress_deltas(progress: np.ndarray, episode_index: np.ndarray,
                    chunk_size: int = 50) -> np.ndarray:
    """(N,) progress gained over the next ``chunk_size`` frames of the same episode.

    Frames must be grouped by episode and in frame order (as in a score file sorted by index).
    """
    if chunk_size < 1:
        raise ProcvlmError(f"chunk_size={chunk_size}: need >= 1 frame")
    p = np.asarray(progress, np.float64)
    ep = np.asarray(episode_index)
    if len(p) != len(ep):
        raise ProcvlmError(f"{len(p)} progress values for {len(ep)} episode indices")
    out = np.empty(len(p), np.float64)
    bounds = np.flatnonzero(np.diff(ep)) + 1
    for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(p)]):
        fut = np.minimum(np.arange(a, b) + chunk_size, b - 1)
        out[a:b] = p[fut] - p[a:b]
    return out


def rabc_weights(deltas: np.ndarray, kappa: float = 0.01, epsilon: float = 1e-6,
                 fallback_weight: float = 1.0) -> np.ndarray:
    """RA-BC weight of each sample from its progress delta (see the module docstring)."""
    d = np.asarray(deltas, np.float64)
    valid = ~np.isnan(d)
    if valid.any():
        mu = max(float(d[valid].mean()), 0.0)
        sigma = max(float(d[valid].std()), epsilon)
    else:
        mu, sigma = 0.0, epsilon
    soft = np.clip((d - (mu - 2 * sigma)) / (4 * sigma + epsilon), 0.0, 1.0)
    w = np.zeros(len(d), np.float64)
    w[valid & (d > kappa)] = 1.0
    mid = valid & (d >= 0) & (d <= kappa)
    w[mid] = soft[mid]
    w[~valid] = fallback_weight
    return w.astype(np.float32)


def normalize_batch(weights: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    """Scale a batch's weights to sum to the batch size (as LeRobot does per batch)."""
    w = np.asarray(weights, np.float64)
    return (w * len(w) / (w.sum() + epsilon)).astype(np.float32)


def rabc_weights_from_scores(table, chunk_size: int = 50, kappa: float = 0.01,
                             column: str | None = None) -> np.ndarray:
    """RA-BC weights of every row of a score table (``procvlm`` or ``lerobot-rabc`` format)."""
    column = column or ("progress_sparse" if "progress_sparse" in table.column_names
                        else "progress")
    if column not in table.column_names:
        raise ProcvlmError(f"score table has no {column!r} column (has {table.column_names})")
    t = table.sort_by([("episode_index", "ascending"), ("frame_index", "ascending")])
    deltas = progress_deltas(t.column(column).to_numpy(zero_copy_only=False),
                             t.column("episode_index").to_numpy(), chunk_size)
    w = rabc_weights(deltas, kappa)
    # back to the table's original row order
    order = np.lexsort((table.column("frame_index").to_numpy(),
                        table.column("episode_index").to_numpy()))
    out = np.empty_like(w)
    out[order] = w
    return out


# ----------------------------------------------------------------------------- in-process
def episode_weights(progress: Mapping[int, np.ndarray], chunk_size: int = 50,
                    kappa: float = 0.01) -> dict[int, np.ndarray]:
    """RA-BC weight of every frame of every episode from any per-episode progress curves.

    The statistics (mean and spread of the deltas) are pooled over all episodes, as LeRobot
    pools them over the whole progress file.

    Args:
        progress: episode index -> (T,) progress (labels of any scheme, a model's scores,
            simulator truth; see ``load_progress``).
        chunk_size: frames ahead the progress delta looks (the policy's action horizon).
        kappa: delta above which a frame gets the full weight.

    Returns:
        Episode index -> (T,) float32 weights in [0, 1].
    """
    keys = sorted(progress)
    if not keys:
        raise ProcvlmError("no episodes to weight: pass at least one progress curve")
    curves = [np.asarray(progress[k], np.float64).reshape(-1) for k in keys]
    episode = np.concatenate([np.full(len(c), i) for i, c in enumerate(curves)])
    w = rabc_weights(progress_deltas(np.concatenate(curves), episode, chunk_size), kappa)
    bounds = np.cumsum([0] + [len(c) for c in curves])
    return {k: w[a:b] for k, a, b in zip(keys, bounds[:-1], bounds[1:])}


def _curves(table, column: str) -> dict[int, np.ndarray]:
    t = table.sort_by([("episode_index", "ascending"), ("frame_index", "ascending")])
    ep = t.column("episode_index").to_numpy()
    values = t.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    bounds = np.flatnonzero(np.diff(ep)) + 1
    return {int(ep[a]): values[a:b] for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(ep)])}


def progress_from_labels(root: str | Path, scheme: str = "procvlm") -> dict[int, np.ndarray]:
    """Per-episode progress of a labelled dataset under ``scheme`` (any ``procvlm.labels``
    scheme: ``procvlm label`` stores every scheme's curve)."""
    from procvlm.labels import SCHEMES, read_labels, scheme_suffix

    if scheme not in SCHEMES:
        raise ProcvlmError(f"unknown label scheme {scheme!r}: choose one of {', '.join(SCHEMES)}")
    table = read_labels(root)
    column = f"progress_{scheme_suffix(scheme)}"
    if column not in table.column_names:
        raise ProcvlmError(f"{root} labels have no {column} column: relabel it with "
                           "`procvlm label`")
    return _curves(table, column)


def progress_from_scores(table) -> dict[int, np.ndarray]:
    """Per-episode progress of a score table (``procvlm`` or ``lerobot-rabc`` format)."""
    column = "progress_sparse" if "progress_sparse" in table.column_names else "progress"
    if column not in table.column_names:
        raise ProcvlmError(f"score table has no progress column (has {table.column_names}): "
                           "pass a file written by `procvlm score`")
    return _curves(table, column)


def progress_from_truth(ds) -> dict[int, np.ndarray]:
    """Per-episode simulator-truth progress (``Episode.true_progress``) of a dataset."""
    out = {}
    for i in ds.episode_indices:
        truth = ds.episode(i, cameras=[]).true_progress
        if truth is None:
            raise ProcvlmError(f"episode {i} of {ds.root} has no true_progress: generate the "
                               "dataset with a procvlm that records simulator truth")
        out[int(i)] = np.asarray(truth, np.float64)
    return out


def done_from_scores(table) -> dict[int, np.ndarray]:
    """Per-episode P(done) of a ``procvlm score`` table (its ``done`` column)."""
    if "done" not in table.column_names or table.column("done").null_count == len(table):
        raise ProcvlmError("score table has no P(done) (`done` column empty or missing): score "
                           "with a VLM or a compact model with the reasoning head")
    return _curves(table, "done")


def load_progress(dataset: str | Path, source: str) -> dict[int, np.ndarray]:
    """Per-episode progress of ``dataset`` from a named source.

    Args:
        dataset: a dataset folder.
        source: ``truth`` (simulator truth), ``labels:<scheme>`` (e.g. ``labels:time``), a
            score parquet path (``procvlm score`` output), or ``model:<run>`` (score it now).
    """
    import pyarrow.parquet as pq

    from procvlm.data import open_dataset

    if source == "truth":
        return progress_from_truth(open_dataset(dataset))
    if source.startswith("labels:"):
        return progress_from_labels(dataset, source.split(":", 1)[1])
    if source.startswith("model:"):
        from procvlm.models import load_model
        from procvlm.reward.score import score_episodes

        model = load_model(source.split(":", 1)[1])
        return progress_from_scores(score_episodes(model, open_dataset(dataset),
                                                   show_progress=False))
    if Path(source).is_file():
        return progress_from_scores(pq.read_table(source))
    raise ProcvlmError(f"progress source {source!r} is not truth, labels:<scheme>, "
                       "model:<run> or a score parquet file")


def return_filter(progress: Mapping[int, np.ndarray], keep: float = 0.25) -> dict[int, bool]:
    """Which episodes filtered behaviour cloning (%BC) keeps: the top ``keep`` fraction by
    progress return ``R = p[T-1]`` (at least one episode; every episode tied with the cut is
    kept, so curves that all end at the same value keep every episode).

    Args:
        progress: episode index -> (T,) progress curve (any source, see ``load_progress``).
        keep: fraction of episodes to keep, in (0, 1].

    Returns:
        Episode index -> kept.
    """
    if not 0.0 < keep <= 1.0:
        raise ProcvlmError(f"keep={keep}: pass a fraction of episodes in (0, 1], e.g. 0.25")
    if not progress:
        raise ProcvlmError("no episodes to filter: pass at least one progress curve")
    returns = {k: float(np.asarray(v, np.float64).reshape(-1)[-1]) for k, v in progress.items()}
    ranked = sorted(returns.values(), reverse=True)
    cut = ranked[max(1, int(np.ceil(keep * len(ranked)))) - 1]
    return {k: r >= cut for k, r in returns.items()}


def success_filter(done: Mapping[int, np.ndarray], threshold: float = 0.5,
                   last: int | None = None) -> dict[int, bool]:
    """Which episodes a model calls successful: ``success_score`` (mean P(done) over the last
    ``last`` frames, default ``DONE_FRAMES``) above ``threshold``.

    Args:
        done: episode index -> (T,) P(done) per frame (see ``done_from_scores``).
        threshold: in [0, 1).
        last: frames averaged at each episode's end.

    Returns:
        Episode index -> kept.
    """
    from procvlm.eval.metrics import DONE_FRAMES, success_score

    if not 0.0 <= threshold < 1.0:
        raise ProcvlmError(f"threshold={threshold}: pass a probability in [0, 1), e.g. 0.5")
    if not done:
        raise ProcvlmError("no episodes to filter: pass at least one P(done) curve")
    last = DONE_FRAMES if last is None else last
    return {k: success_score(v, last) > threshold for k, v in done.items()}


def success_filtered_weights(progress: Mapping[int, np.ndarray], done: Mapping[int, np.ndarray],
                             threshold: float = 0.5, chunk_size: int = 50,
                             kappa: float = 0.01) -> dict[int, np.ndarray]:
    """RA-BC weights (``episode_weights``) of the episodes ``success_filter`` keeps; the frames
    of the others weigh 0.

    Args:
        progress: episode index -> (T,) progress curve.
        done: episode index -> (T,) P(done), the same episodes.
        threshold: success-score threshold of ``success_filter``.
        chunk_size: RA-BC look-ahead in frames.
        kappa: RA-BC full-weight delta.
    """
    if set(progress) != set(done):
        raise ProcvlmError(f"progress covers episodes {sorted(progress)[:5]}..., P(done) "
                           f"{sorted(done)[:5]}...: pass both from the same score table")
    kept = success_filter(done, threshold)
    w = episode_weights(progress, chunk_size, kappa)
    return {k: v if kept[k] else np.zeros_like(v) for k, v in w.items()}


def filtered_weights(progress: Mapping[int, np.ndarray], keep: float = 0.25,
                     chunk_size: int = 50, kappa: float = 0.01) -> dict[int, np.ndarray]:
    """RA-BC weights (``episode_weights``) times the %BC filter (``return_filter``): the
    frames of episodes outside the top ``keep`` fraction by progress return weigh 0.

    Args:
        progress: episode index -> (T,) progress curve.
        keep: fraction of episodes kept by progress return.
        chunk_size: RA-BC look-ahead in frames.
        kappa: RA-BC full-weight delta.

    Returns:
        Episode index -> (T,) float32 weights in [0, 1].
    """
    kept = return_filter(progress, keep)
    w = episode_weights(progress, chunk_size, kappa)
    return {k: v if kept[k] else np.zeros_like(v) for k, v in w.items()}
