"""procvlm.eval: progress metrics (pure numpy) and the HTML/PNG report."""

from procvlm.eval.metrics import (EpisodeResult, auroc, boundary_f1, boundary_mae, ccc, epr,
                                  kendall_tau_a, mcc_at, rankdata, regression_hits,
                                  regression_recall, spearman, stall_drift, subtask_boundaries,
                                  summarize, value_order_correlation, voc)
from procvlm.eval.report import markdown_table, plot_curve, render_html, write_report

__all__ = [
    "EpisodeResult", "auroc", "boundary_f1", "boundary_mae", "ccc", "epr", "kendall_tau_a",
    "markdown_table", "mcc_at", "plot_curve", "rankdata", "regression_hits",
    "regression_recall", "render_html", "spearman", "stall_drift", "subtask_boundaries",
    "summarize", "value_order_correlation", "voc", "write_report",
]
