"""The evaluation report: a metrics table and progress-curve plots as Markdown, JSON, PNG, HTML.

``write_report(out_dir, title, table, curves)`` writes::

    index.html      the table and every plot (relative <img> paths), opens offline
    results.md      the table in Markdown
    results.json    {"title", "table", "curves": [{"episode", "kind", "png", "events"}]}
    plots/NN_<kind>_ep<episode>.png   one plot per curve set

Curve sets are dicts ``{"episode", "kind" (success|failure|stall|regression), "series":
{name: (T,) progress}, "reference": (T,) labels or None, "events": [...]}``. Events are
``{"type": "stall", "start": s, "end": e}`` (frames ``[s, e)``, drawn as shaded ranges) or
``{"type": "regression", "frame": f}`` (drawn as markers); other events are listed, not drawn.
Matplotlib runs on its Agg backend; every file is written atomically.
"""

from __future__ import annotations

import html
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from procvlm._io import atomic_path, write_json, write_text
from procvlm.errors import ProcvlmError

logger = logging.getLogger(__name__)

KINDS = ("success", "failure", "stall", "regression")


def _cell(value: Any) -> str:
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


def markdown_table(table: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a Markdown table (floats to 3 decimals, missing or NaN as ``n/a``)."""
    cols = table_columns(table)
    if not cols:
        return "_no results_\n"
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in table:
        lines.append("| " + " | ".join(_cell(row.get(c, float("nan"))) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _html_table(table: Sequence[Mapping[str, Any]]) -> str:
    cols = table_columns(table)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, float('nan'))))}</td>"
                                    for c in cols) + "</tr>\n" for r in table)
    return f"<table>\n<tr>{head}</tr>\n{rows}</table>"


def _check_curve(curve: Mapping[str, Any], i: int) -> None:
    missing = [k for k in ("episode", "kind", "series") if k not in curve]
    if missing:
        raise ProcvlmError(f"curve {i} lacks {missing}: give episode, kind and series")
    if curve["kind"] not in KINDS:
        raise ProcvlmError(f"curve {i} has kind {curve['kind']!r}: use one of {list(KINDS)}")
    lengths = {name: np.asarray(s).shape for name, s in curve["series"].items()}
    if not lengths or any(len(shape) != 1 for shape in lengths.values()):
        raise ProcvlmError(f"curve {i} series {lengths}: give one or more 1-D progress arrays")


def curve_filename(i: int, curve: Mapping[str, Any]) -> str:
    """``plots/03_stall_ep12.png``: a file name safe on every file system."""
    episode = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(curve["episode"]))
    return f"plots/{i:02d}_{curve['kind']}_ep{episode}.png"


def plot_curve(curve: Mapping[str, Any], path: str | Path) -> Path:
    """Plot predicted progress against frames (several series), the reference dashed, stall
    ranges shaded and regression frames marked; save a PNG atomically at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=100)
    try:
        for name, series in curve["series"].items():
            ax.plot(np.arange(len(series)), np.asarray(series, dtype=float), label=str(name),
                    linewidth=1.6)
        if curve.get("reference") is not None:
            ref = np.asarray(curve["reference"], dtype=float)
            ax.plot(np.arange(len(ref)), ref, "k--", linewidth=1.0, label="reference")
        _draw_events(ax, curve.get("events") or [])
        ax.set(xlabel="frame", ylabel="progress", ylim=(-0.05, 1.05),
               title=f"episode {curve['episode']} ({curve['kind']})")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return Path(path)


def _draw_events(ax: Any, events: Sequence[Any]) -> None:
    shaded = marked = False
    for ev in events:
        if not isinstance(ev, Mapping):
            continue
        kind = ev.get("type", ev.get("kind"))
        if kind == "stall" and "start" in ev and "end" in ev:
            ax.axvspan(ev["start"], ev["end"], color="tab:orange", alpha=0.2,
                       label=None if shaded else "stall")
            shaded = True
        elif kind == "regression" and "frame" in ev:
            ax.axvline(ev["frame"], color="tab:red", linestyle=":", linewidth=1.5,
                       label=None if marked else "regression")
            marked = True


_CSS = ("body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{background:#f3f3f3}figure{display:inline-block;margin:8px}"
        "img{max-width:100%}")


def render_html(title: str, table: Sequence[Mapping[str, Any]],
                figures: Sequence[tuple[str, str]]) -> str:
    """The report page: the table, then each ``(png relative path, caption)`` figure."""
    t = html.escape(title)
    figs = "\n".join(f'<figure><img src="{html.escape(src)}" alt="{html.escape(cap)}">'
                     f"<figcaption>{html.escape(cap)}</figcaption></figure>"
                     for src, cap in figures)
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title>"
            f"<style>{_CSS}</style></head>\n<body>\n<h1>{t}</h1>\n<h2>Metrics</h2>\n"
            f"{_html_table(table) if table else '<p>no results</p>'}\n"
            f"<h2>Progress curves</h2>\n{figs}\n</body></html>\n")


def write_report(out_dir: str | Path, title: str, table: Sequence[Mapping[str, Any]],
                 curves: Sequence[Mapping[str, Any]] = ()) -> Path:
    """Write the report folder (see the module docstring).

    Args:
        out_dir: the report folder (created).
        title: page title.
        table: rows (models or label schemes) of metric name -> value.
        curves: curve sets to plot, one PNG each.

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
        figures.append((rel, f"episode {curve['episode']}: {curve['kind']}, "
                             + ", ".join(map(str, curve["series"]))))
        listed.append({"episode": curve["episode"], "kind": curve["kind"], "png": rel,
                       "series": list(map(str, curve["series"])),
                       "events": curve.get("events") or []})
    write_text(out / "results.md", f"# {title}\n\n{markdown_table(table)}")
    write_json(out / "results.json", _jsonable({"title": title, "table": list(table),
                                                "curves": listed}))
    index = out / "index.html"
    write_text(index, render_html(title, table, figures))
    logger.info("report: %s (%d rows, %d plots)", index, len(table), len(figures))
    return index
