"""procvlm.eval: progress metrics against simulator truth (pure numpy), the paper's findings
read off a comparison, and the HTML/PNG report."""

from procvlm.eval.findings import Finding, findings
from procvlm.eval.metrics import (METRICS, EpisodeResult, Metric, auroc, boundary_f1,
                                  boundary_mae, ccc, epr, kendall_tau_a, mae, match_regressions,
                                  mcc_at, plan_exact, rankdata, regression_detections,
                                  regression_hits, regression_recall, spearman, stall_drift,
                                  step_accuracy, subtask_boundaries, success_score,
                                  summarize, value_order_correlation, voc)
from procvlm.eval.report import markdown_table, plot_curve, render_html, write_report

__all__ = [
    "METRICS", "EpisodeResult", "Finding", "Metric", "auroc", "boundary_f1", "boundary_mae",
    "ccc", "epr", "findings", "kendall_tau_a", "mae", "markdown_table", "match_regressions",
    "mcc_at", "plan_exact", "plot_curve", "rankdata", "regression_detections",
    "regression_hits", "regression_recall", "render_html", "spearman", "stall_drift",
    "step_accuracy", "subtask_boundaries", "success_score", "summarize",
    "value_order_correlation", "voc", "write_report",
]
