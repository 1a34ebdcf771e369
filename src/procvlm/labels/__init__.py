"""Procedure-grounded progress labels: pHash visual change (bit-exact with ``imagehash``),
sub-step budgets, the failure-aware ``procvlm`` scheme, the paper's ``procvlm-paper`` scheme and
the ``time`` / ``sarm`` baselines (one registry, ``SCHEME_REGISTRY``; ``SCHEMES`` its names,
which every other module imports), and ``label_dataset`` which writes
``meta/procvlm/labels.parquet``. Imports numpy and pyarrow only (never torch)."""

from procvlm.labels.change import (ANCHOR_MEASURE, ANCHOR_THRESHOLD, MEASURES, anchored_change,
                                   similarity, visual_change, visual_changes)
from procvlm.labels.phash import hamming, phash
from procvlm.labels.schemes import (
    SCHEME_REGISTRY,
    SCHEMES,
    EpisodeLabels,
    LabelParams,
    Scheme,
    budgets,
    compute_labels,
    get_scheme,
    paper_progress,
    sarm_proportions,
)
from procvlm.labels.store import (
    build_table,
    collect_records,
    episode_labels,
    label_dataset,
    labels_dir,
    read_labels,
    read_plans,
    read_provenance,
    scheme_curves,
    scheme_suffix,
)

__all__ = ["ANCHOR_MEASURE", "ANCHOR_THRESHOLD", "MEASURES", "SCHEMES", "SCHEME_REGISTRY",
           "EpisodeLabels", "LabelParams", "Scheme", "anchored_change", "budgets", "build_table",
           "collect_records", "compute_labels", "episode_labels", "get_scheme", "hamming",
           "label_dataset", "labels_dir", "paper_progress", "phash", "read_labels", "read_plans",
           "read_provenance", "sarm_proportions", "scheme_curves", "scheme_suffix", "similarity",
           "visual_change", "visual_changes"]
