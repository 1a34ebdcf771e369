"""The evaluation report: what it found, the metrics tables, and example episodes, as
Markdown, JSON, PNG and HTML.

``write_report(out_dir, title, table, curves)`` writes::

    index.html      findings, the tables, metric definitions, every plot and frame strip
    results.md      findings and the tables in Markdown
    results.json    {"title", "findings", "table", "curves": [{"episode", "kind", "png", ...}]}
    plots/NN_<kind>_ep<episode>.png         one plot per curve set
    plots/NN_<kind>_ep<episode>_strip.png   its frame strip (when the curve has the episode)

Findings (``findings``) are read off the table: the paper's finding 1 (reasoning before
estimation helps) from models named ``X[s]`` and ``X-direct[s]``, finding 2 (procedure-grounded
progress beats time-based progress) from ``labels:procvlm`` vs ``labels:time`` and ``X[procvlm]``
vs ``X[time]``, each "not measured" when its rows are missing.

Curve sets are dicts ``{"episode", "kind" (one of ``KINDS``), "series": {model: (T,)
progress}}`` with optional ``"labels"`` ({scheme: (T,)}, drawn in a second panel), ``"truth"``
(simulator truth, drawn in both), ``"reference"`` (labels, dashed, when there is no truth),
``"title"``, ``"events"`` and ``"episode_data"`` (the ``Episode``, for its frame strip). Events
``{"type": "stall" | "hesitation", "start", "end"}`` are shaded, ``{"type": "regression",
"frame"}`` marked; others are listed, not drawn. Matplotlib runs on its Agg backend; every file
is written atomically.
"""

from __future__ import annotations

import html
import logging
import math
import re
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from procvlm._io import atomic_path, write_json, write_text
from procvlm.errors import ProcvlmError
from procvlm.eval.findings import Finding, findings
from procvlm.eval.metrics import METRICS

logger = logging.getLogger(__name__)

KINDS = ("success", "failure", "stall", "hesitation", "regression")
IDENTITY = ("split", "name", "model", "source", "steps")
"""Columns that name a row rather than measure it."""


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        return "n/a" if not math.isfinite(float(value)) else f"{float(value):.3f}"
    return str(value)


def _jsonable(value: Any) -> Any:
    """Numpy scalars/arrays to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def table_columns(table: Sequence[Mapping[str, Any]]) -> list[str]:
    """Column names in order of first appearance over the rows."""
    columns: list[str] = []
    for row in table:
        columns.extend(k for k in row if k not in columns)
    return columns


def _check_curve(curve: Mapping[str, Any], i: int) -> None:
    missing = [k for k in ("episode", "kind", "series") if k not in curve]
    if missing:
        raise ProcvlmError(f"curve {i} lacks {missing}: give episode, kind and series")
    if curve["kind"] not in KINDS:
        raise ProcvlmError(f"curve {i} has kind {curve['kind']!r}: use one of {list(KINDS)}")
    groups = {**curve["series"], **(curve.get("labels") or {})}
    lengths = {name: np.asarray(s).shape for name, s in groups.items()}
    if not lengths or any(len(shape) != 1 for shape in lengths.values()):
        raise ProcvlmError(f"curve {i} series {lengths}: give one or more 1-D progress arrays")


def curve_filename(i: int, curve: Mapping[str, Any], suffix: str = "") -> str:
    """``plots/03_stall_ep12.png``: a file name safe on every file system."""
    episode = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(curve["episode"]))
    return f"plots/{i:02d}_{curve['kind']}_ep{episode}{suffix}.png"


_EVENT_STYLE = {"stall": ("tab:orange", "stall (still)"),
                "hesitation": ("gold", "hesitation (still)")}


def _draw_events(ax: Any, events: Sequence[Any]) -> None:
    seen: set[str] = set()
    for ev in events:
        if not isinstance(ev, Mapping):
            continue
        kind = ev.get("type", ev.get("kind"))
        if kind in _EVENT_STYLE and "start" in ev and "end" in ev:
            color, label = _EVENT_STYLE[kind]
            ax.axvspan(ev["start"], ev["end"], color=color, alpha=0.25,
                       label=None if kind in seen else label)
        elif kind == "regression" and "frame" in ev:
            ax.axvline(ev["frame"], color="tab:red", linestyle=":", linewidth=1.5,
                       label=None if kind in seen else "regression")
        else:
            continue
        seen.add(str(kind))


def _panel(ax: Any, series: Mapping[str, Any], curve: Mapping[str, Any], heading: str,
           palette: str) -> None:
    import matplotlib

    cmap = matplotlib.colormaps[palette]
    for k, (name, values) in enumerate(series.items()):
        values = np.asarray(values, dtype=float)
        ax.plot(np.arange(len(values)), values, color=cmap(k % cmap.N), linewidth=1.5,
                label=str(name))
    if curve.get("truth") is not None:
        truth = np.asarray(curve["truth"], dtype=float)
        ax.plot(np.arange(len(truth)), truth, color="black", linewidth=2.4, alpha=0.8,
                label="simulator truth")
    elif curve.get("reference") is not None:
        ref = np.asarray(curve["reference"], dtype=float)
        ax.plot(np.arange(len(ref)), ref, "k--", linewidth=1.0, label="reference labels")
    _draw_events(ax, curve.get("events") or [])
    ax.set(ylabel="progress", ylim=(-0.05, 1.05))
    ax.set_title(heading, fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def plot_curve(curve: Mapping[str, Any], path: str | Path) -> Path:
    """Plot predicted progress against frames: the models in one panel, the label schemes in a
    second, simulator truth in both (black), still stretches shaded and regressions marked,
    legends outside the data; save a PNG atomically at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(curve["series"], "models", "tab10")] if len(curve["series"]) else []
    if curve.get("labels"):
        panels.append((curve["labels"], "label schemes", "Dark2"))
    fig, axes = plt.subplots(len(panels), 1, figsize=(9.5, 1.2 + 2.4 * len(panels)), dpi=100,
                             sharex=True, squeeze=False)
    try:
        for ax, (series, heading, palette) in zip(axes[:, 0], panels):
            _panel(ax, series, curve, heading, palette)
        axes[-1, 0].set_xlabel("frame")
        title = curve.get("title") or f"episode {curve['episode']} ({curve['kind']})"
        fig.suptitle("\n".join(textwrap.wrap(str(title), 95)), fontsize=10)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None}, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def _metric_header(column: str) -> str:
    metric = METRICS.get(column)
    return f"{metric.label} {metric.arrow}" if metric else column


def table_groups(table: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """(heading, columns) of each table: against simulator truth, for the literature, and the
    episode counts; one table of every column when the rows hold none of the known metrics."""
    cols = table_columns(table)
    ident = [c for c in IDENTITY if c in cols and c != "source"]
    truth = [c for c in METRICS if c in cols and not METRICS[c].literature]
    lit = [c for c in METRICS if c in cols and METRICS[c].literature]
    if not truth and not lit:
        return [("Metrics", cols)]
    rest = [c for c in cols if c not in METRICS and c not in IDENTITY]
    names = [c for c in ident if c != "steps"]
    groups = [("Against simulator truth and episode events", ident, truth),
              ("For comparison with the literature", names, lit), ("Episodes", names, rest)]
    return [(h, keys + measured) for h, keys, measured in groups if measured]


def markdown_table(table: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None
                   ) -> str:
    """The rows as a Markdown table (floats to 3 decimals, missing or NaN as ``n/a``)."""
    cols = list(columns) if columns is not None else table_columns(table)
    if not cols:
        return "_no results_\n"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table:
        lines.append("| " + " | ".join(_cell(row.get(c, float("nan"))) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _html_table(table: Sequence[Mapping[str, Any]], cols: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(_metric_header(c))}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, float('nan'))))}</td>"
                                    for c in cols) + "</tr>\n" for r in table)
    return f"<table>\n<tr>{head}</tr>\n{rows}</table>"


def _definitions(cols: set[str]) -> str:
    items = "".join(f"<li><b>{html.escape(m.label)} {m.arrow}</b> (<code>{html.escape(k)}</code>, "
                    f"against {html.escape(m.reference)}): {html.escape(m.definition)}</li>"
                    for k, m in METRICS.items() if k in cols)
    return f"<ul class=\"defs\">{items}</ul>" if items else ""


def _findings_html(found: Sequence[Finding]) -> str:
    out = []
    for f in found:
        lines = "".join(f"<li>{html.escape(x)}</li>" for x in f.evidence)
        out.append(f"<li><b>Finding {f.number}: {html.escape(f.verdict)}.</b> "
                   f"{html.escape(f.claim)}<ul>{lines}</ul></li>")
    return f"<ol class=\"findings\">{''.join(out)}</ol>"


def findings_markdown(found: Sequence[Finding]) -> str:
    """The findings as a Markdown list."""
    lines = []
    for f in found:
        lines.append(f"- **Finding {f.number}: {f.verdict}.** {f.claim}")
        lines += [f"  - {x}" for x in f.evidence]
    return "\n".join(lines) + "\n"


_CSS = ("body{font-family:sans-serif;margin:2em;max-width:1150px}"
        "table{border-collapse:collapse;font-size:12px;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#f3f3f3;max-width:7.5em;font-weight:normal}"
        "td:nth-child(2){text-align:left}"
        ".defs{font-size:13px}.findings li{margin-bottom:.4em}"
        "section{margin:1.5em 0}img{max-width:100%;display:block;margin:4px 0}")


def render_html(title: str, table: Sequence[Mapping[str, Any]],
                figures: Sequence[tuple[str, str]] | Sequence[tuple[str, str, str | None]],
                found: Sequence[Finding] | None = None) -> str:
    """The report page: findings, the tables, metric definitions, then each example episode
    ``(plot png, caption[, strip png])`` (relative paths)."""
    t = html.escape(title)
    found = findings(table) if found is None else found
    tables = "\n".join(f"<h3>{html.escape(h)}</h3>\n{_html_table(table, cols)}"
                       for h, cols in table_groups(table)) if table else "<p>no results</p>"
    figs = []
    for fig in figures:
        src, cap, strip = (tuple(fig) + (None,))[:3]
        img = f'<img src="{html.escape(src)}" alt="{html.escape(cap)}">'
        if strip:
            img += f'<img src="{html.escape(strip)}" alt="frames of {html.escape(cap)}">'
        figs.append(f"<section><h3>{html.escape(cap)}</h3>{img}</section>")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{t}</h1>\n"
            f"<h2>Findings</h2>\n{_findings_html(found)}\n<h2>Metrics</h2>\n{tables}\n"
            f"<h3>Definitions (↑ higher is better, ↓ lower is better)</h3>\n"
            f"{_definitions(set(table_columns(table)))}\n"
            f"<h2>Example episodes</h2>\n{''.join(figs)}\n</body></html>\n")


def _draw_strip(curve: Mapping[str, Any], path: Path) -> str | None:
    ep = curve.get("episode_data")
    if ep is None:
        return None
    from procvlm.viz.strip import draw_strip

    draw_strip(ep, path, frames=8, title=str(curve.get("title") or curve["episode"]))
    return path.name


def write_report(out_dir: str | Path, title: str, table: Sequence[Mapping[str, Any]],
                 curves: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write the report folder (see the module docstring).

    Args:
        out_dir: the report folder (created).
        title: page title.
        table: rows (models or label schemes) of metric name -> value.
        curves: curve sets to plot, one PNG each (and a frame strip with ``episode_data``).

    Returns:
        The path of ``index.html``.
    """
    out = Path(out_dir)
    for i, curve in enumerate(curves):
        _check_curve(curve, i)
    figures, listed = [], []
    for i, curve in enumerate(curves):
        rel = curve_filename(i, curve)
        plot_curve(curve, out / rel)
        strip = _draw_strip(curve, out / curve_filename(i, curve, "_strip"))
        strip_rel = f"plots/{strip}" if strip else None
        caption = str(curve.get("title") or f"episode {curve['episode']}: {curve['kind']}")
        figures.append((rel, f"{curve['kind']}: {caption}", strip_rel))
        listed.append({"episode": curve["episode"], "kind": curve["kind"], "png": rel,
                       "strip": strip_rel, "title": curve.get("title"),
                       "series": list(map(str, curve["series"])),
                       "labels": list(map(str, curve.get("labels") or {})),
                       "events": curve.get("events") or []})
    found = findings(table)
    tables = "\n".join(f"## {h}\n\n{markdown_table(table, cols)}"
                       for h, cols in table_groups(table)) if table else markdown_table(table)
    write_text(out / "results.md", f"# {title}\n\n## Findings\n\n{findings_markdown(found)}\n"
                                   f"{tables}")
    write_json(out / "results.json", _jsonable({
        "title": title, "findings": [vars(f) for f in found], "table": list(table),
        "curves": listed}))
    index = out / "index.html"
    write_text(index, render_html(title, table, figures, found))
    logger.info("report: %s (%d rows, %d plots)", index, len(table), len(figures))
    return index
