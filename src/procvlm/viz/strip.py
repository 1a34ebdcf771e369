"""A frame strip of one episode for people to look at: evenly spaced frames of the main camera,
a timeline bar coloured by sub-step (completed solid, not completed hatched, "done" grey), and
optionally progress curves per label scheme."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from procvlm._io import atomic_path
from procvlm.data.episode import DONE, Episode
from procvlm.errors import ProcvlmError


def frame_indices(num_frames: int, count: int) -> np.ndarray:
    """``count`` evenly spaced frame indices over ``num_frames`` frames, first and last included.

    Raises:
        ProcvlmError: no frames, or ``count`` < 1.
    """
    if num_frames < 1:
        raise ProcvlmError("the episode has no frames: pick another episode")
    if count < 1:
        raise ProcvlmError(f"frames={count}: pass at least 1 frame for the strip")
    return np.unique(np.linspace(0, num_frames - 1, min(count, num_frames)).round().astype(int))


def _step_colors(names: list[str]) -> dict[str, tuple]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return {n: cmap(i % 10) for i, n in enumerate(names)}


def _label_at(ep: Episode, t: int) -> str:
    for s in ep.subtasks or []:
        if s.start <= t < s.end:
            return s.name
    return DONE if ep.subtasks else ""


def _draw_timeline(ax, ep: Episode, colors: Mapping[str, tuple], picks: np.ndarray) -> None:
    n = len(ep)
    ax.set_xlim(0, n)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    covered = 0
    for s in ep.subtasks or []:
        ax.barh(0.5, s.length, left=s.start, height=1.0, color=colors[s.name],
                hatch=None if s.completed else "//", alpha=1.0 if s.completed else 0.55,
                edgecolor="black", linewidth=0.5)
        if s.length >= 0.06 * n:
            ax.text(s.start + s.length / 2, 0.5, s.name.split(" ", 1)[0], ha="center",
                    va="center", fontsize=7)
        covered = max(covered, s.end)
    if ep.subtasks and covered < n:
        ax.barh(0.5, n - covered, left=covered, height=1.0, color="0.85", edgecolor="black",
                linewidth=0.5)
        ax.text((covered + n) / 2, 0.5, DONE, ha="center", va="center", fontsize=7)
    for t in picks:
        ax.axvline(t + 0.5, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlabel("frame   (sub-steps: solid = completed, hatched = not completed, grey = done)",
                  fontsize=8)


def _draw_curves(ax, curves: Mapping[str, np.ndarray], n: int, picks: np.ndarray) -> None:
    for label, values in curves.items():
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ProcvlmError(f"curve {label!r} has shape {values.shape}: pass one value per frame")
        ax.plot(np.arange(len(values)), values, label=label, linewidth=1.2)
    for t in picks:
        ax.axvline(t, color="black", linewidth=0.6, linestyle=":")
    ax.set_xlim(0, max(n - 1, 1))
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("progress")
    ax.legend(fontsize=7, loc="upper left", ncol=min(4, len(curves)))


def draw_strip(ep: Episode, out: str | Path, *, frames: int = 8, camera: str | None = None,
               curves: Mapping[str, np.ndarray] | None = None, title: str | None = None) -> Path:
    """Draw an episode's frame strip with its sub-step timeline to a PNG file.

    Args:
        ep: the episode (frames are decoded only at the picked indices).
        out: the PNG file to write.
        frames: number of evenly spaced frames in the strip.
        camera: camera to show (default: the episode's main camera).
        curves: optional label scheme -> (T,) progress, drawn in a panel under the timeline.
        title: figure title (default: episode index, task, success, failure mode).

    Returns:
        The written file.

    Raises:
        ProcvlmError: unknown camera, no frames, or a bad curve.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cam = camera or ep.main_camera
    if cam not in ep.frames:
        raise ProcvlmError(f"camera {cam!r} is not in episode {ep.episode_index}: choose from "
                           f"{', '.join(ep.frames)}")
    picks = frame_indices(len(ep), frames)
    images = ep.frames[cam][picks]
    names = list(dict.fromkeys((ep.plan or []) + [s.name for s in ep.subtasks or []]))
    colors = _step_colors(names)
    width = max(1.5 * len(picks), 6.0)
    rows = [width / len(picks) * 1.05, 0.4] + ([1.6] if curves else [])
    fig = plt.figure(figsize=(width, sum(rows) + 1.3))
    grid = fig.add_gridspec(len(rows), len(picks), height_ratios=rows, hspace=0.6)
    for k, t in enumerate(picks):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(images[k])
        ax.set_xticks([])
        ax.set_yticks([])
        label = _label_at(ep, int(t))
        ax.set_title(f"t={t}\n" + "\n".join(textwrap.wrap(label, 18)), fontsize=7,
                     color=colors.get(label, "black"))
    _draw_timeline(fig.add_subplot(grid[1, :]), ep, colors, picks)
    if curves:
        _draw_curves(fig.add_subplot(grid[2, :]), curves, len(ep), picks)
    failure = ep.meta.get("failure")
    fig.suptitle(title or (f"episode {ep.episode_index}: {ep.task} | success={ep.success}"
                           + (f" | failure={failure}" if failure else "")), fontsize=9, y=1.03)
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return out
