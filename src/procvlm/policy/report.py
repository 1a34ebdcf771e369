"""Success rates with bootstrap intervals, the markdown table, the JSON and the bar chart.

Intervals: a two-level percentile bootstrap (training seeds resampled, then each seed's
rollouts), so both the spread between training runs and the finite number of rollouts count.
The average over tasks resamples every task independently and averages.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from procvlm._io import atomic_path, write_json, write_text
from procvlm.errors import ProcvlmError

BOOTSTRAP = 2000


def bootstrap_means(success: np.ndarray, reps: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """(reps,) bootstrap replicates of the mean success of a (seeds, rollouts) 0/1 array."""
    x = np.asarray(success, np.float64)
    if x.ndim != 2 or x.size == 0:
        raise ValueError(f"success must be a non-empty (seeds, rollouts) array, got {x.shape}")
    rng = np.random.default_rng(seed)
    s, r = x.shape
    seeds = rng.integers(0, s, (reps, s))  # (reps, S)
    cols = rng.integers(0, r, (reps, s, r))  # (reps, S, R)
    return x[seeds[..., None], cols].mean(axis=(1, 2))


def interval(reps: np.ndarray) -> list[float]:
    """95% percentile interval of bootstrap replicates."""
    lo, hi = np.percentile(reps, [2.5, 97.5])
    return [float(lo), float(hi)]


def summarize(success: dict[str, dict[str, np.ndarray]],
              outcomes: dict[str, dict[str, list[str]]]) -> dict:
    """Per task and method: mean success, interval, per-seed rates, outcome counts; and the
    average over tasks per method.

    Args:
        success: task -> method -> (seeds, rollouts) 0/1.
        outcomes: task -> method -> every rollout's outcome ("success", "dropped", "stuck: ...").
    """
    tasks = list(success)
    methods = list(dict.fromkeys(m for t in tasks for m in success[t]))
    out: dict = {"tasks": {}, "average": {}}
    reps: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for k, task in enumerate(tasks):
        out["tasks"][task] = {}
        for j, m in enumerate(methods):
            if m not in success[task]:
                continue
            x = np.asarray(success[task][m], np.float64)
            r = bootstrap_means(x, seed=1000 * k + j)
            reps[m].append(r)
            out["tasks"][task][m] = {
                "success": float(x.mean()), "ci95": interval(r),
                "per_seed": [float(v) for v in x.mean(1)], "rollouts": int(x.size),
                "outcomes": dict(Counter(outcomes[task][m]).most_common())}
    for m in methods:
        if len(reps[m]) == len(tasks):
            mean = float(np.mean([out["tasks"][t][m]["success"] for t in tasks]))
            out["average"][m] = {"success": mean, "ci95": interval(np.mean(reps[m], axis=0))}
    return out


def markdown_table(summary: dict, names: dict[str, str]) -> str:
    """Success rate (%) with 95% interval, one row per method, one column per task."""
    tasks = list(summary["tasks"])
    methods = list(dict.fromkeys(m for t in tasks for m in summary["tasks"][t]))

    def cell(d: dict | None) -> str:
        if d is None:
            return "-"
        lo, hi = d["ci95"]
        return f"{100 * d['success']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"

    head = "| method | " + " | ".join(tasks) + " | average |"
    rule = "|---" * (len(tasks) + 2) + "|"
    rows = [f"| {names.get(m, m)} | " + " | ".join(cell(summary["tasks"][t].get(m))
                                                 for t in tasks)
            + f" | {cell(summary['average'].get(m))} |" for m in methods]
    return "\n".join([head, rule, *rows]) + "\n"


def bar_chart(summary: dict, names: dict[str, str], out: str | Path, title: str) -> Path:
    """Grouped bars (tasks and the average) with 95% interval whiskers, one colour per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(summary["tasks"]) + ["average"]
    methods = list(dict.fromkeys(m for t in summary["tasks"] for m in summary["tasks"][t]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups)), 4.2))
    width = 0.8 / len(methods)
    colours = method_colours(len(methods))
    for j, m in enumerate(methods):
        xs, ys, err = [], [], [[], []]
        for g, group in enumerate(groups):
            d = summary["average"].get(m) if group == "average" else summary["tasks"][group].get(m)
            if d is None:
                continue
            xs.append(g + (j - (len(methods) - 1) / 2) * width)
            ys.append(100 * d["success"])
            err[0].append(100 * (d["success"] - d["ci95"][0]))
            err[1].append(100 * (d["ci95"][1] - d["success"]))
        ax.bar(xs, ys, width, yerr=err, capsize=2, label=names.get(m, m), color=colours[j])
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel("success rate (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))  # off bars
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")  # the legend below the axes
    plt.close(fig)
    return out


def method_colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct bar colours: matplotlib's tab10, or tab20 beyond 10 methods."""
    import matplotlib

    if n > 20:
        raise ProcvlmError(f"{n} methods in one chart: at most 20 have distinct colours")
    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i) for i in range(n)]


def sizes_line(config: dict) -> str:
    """What a run's figures rest on, from ``PolicyConfig.to_dict()``: tasks, episodes, seeds,
    rollouts and BC steps ('' for a config without them)."""
    keys = ("tasks", "episodes", "seeds", "rollouts")
    if not all(k in config for k in keys) or "steps" not in config.get("bc", {}):
        return ""
    n = len(config["tasks"])
    return (f"{n} task{'s' * (n != 1)}, {config['episodes']} training episodes per task, "
            f"{config['seeds']} training seed{'s' * (config['seeds'] != 1)} per method, "
            f"{config['rollouts']} evaluation rollouts per policy, "
            f"{config['bc']['steps']} BC steps")


def write_outputs(out: Path, summary: dict, names: dict[str, str], extra: dict) -> dict:
    """``policy.json``, ``policy.md`` and ``policy.png`` in ``out``; returns their paths.
    Both the table and the chart say the run's sizes (``sizes_line``), so that a test-sized
    run (``--quick``) cannot be read as the experiment."""
    table = markdown_table(summary, names)
    write_json(out / "policy.json", {**summary, **extra, "methods": names})
    sizes = sizes_line(extra.get("config", {}))
    notes = [f"- {k}: {v}" for k, v in extra.get("references", {}).items()]
    for task, shared in extra.get("same_weights", {}).items():
        notes += [f"- {task}: {names.get(m, m)} has the same weights as {names.get(o, o)} "
                  "(same policies)" for m, o in shared.items()]
    write_text(out / "policy.md", "# Behaviour cloning with progress weights (success %, 95% "
                                  "interval)\n\n" + (f"Sizes: {sizes}.\n\n" if sizes else "")
               + table + "".join(f"\n{n}" for n in notes) + ("\n" if notes else ""))
    title = "MetaWorld success of BC policies trained on a mixed-quality corpus"
    chart = bar_chart(summary, names, out / "policy.png",
                      f"{title}\n({sizes})" if sizes else title)
    return {"json": out / "policy.json", "markdown": out / "policy.md", "chart": chart,
            "table": table}
