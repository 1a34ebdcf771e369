"""Parse a VLM's progress answer, never crashing on what the model writes.

The expected answer (``procvlm.models.vlm.processor_vlm.progress_answer``)::

    The following actions are required:
    1. Grasp the puck
    2. Place the puck onto the goal
    Therefore, the estimated progress is <progress>42.00%</progress>.

Whatever else comes back is flagged: ``missing_tag`` (no ``<progress>`` number; the previous
estimate is carried, as the paper does), ``garbage`` (a tag without a number; carried),
``fraction`` (``<progress>0.42</progress>``: read as 0.42), ``no_percent`` (``42`` without ``%``:
read as a percent), ``out_of_range`` (clipped to [0, 1]), and ``no_actions`` (neither a numbered
list nor the finished sentence). Several flags join with ``+``; a clean answer is ``ok``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from procvlm.models.vlm.processor_vlm import NO_ACTION

_TAG = re.compile(r"<progress>(.*?)(?:</progress>|$)", re.DOTALL)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d*)?|[-+]?\.\d+")
_ITEM = re.compile(r"^\s*\d+[.)]\s*(.+?)\s*$")
FLAGS = ("ok", "missing_tag", "garbage", "fraction", "no_percent", "out_of_range", "no_actions")


@dataclass(frozen=True)
class ParsedAnswer:
    """One parsed answer.

    Attributes:
        progress: in [0, 1] (the previous estimate when none could be read).
        remaining: the remaining atomic actions, in order ([] when finished or unreadable).
        flag: ``"ok"`` or the problems found, joined with ``+`` (see the module docstring).
        value: the number read from the tag before any correction, or None.
    """

    progress: float
    remaining: list[str] = field(default_factory=list)
    flag: str = "ok"
    value: float | None = None


def parse_number(inner: str) -> tuple[float | None, list[str]]:
    """Progress in [0, 1] from the text inside the tag, with the flags it earned.

    Returns:
        (progress or None when there is no number, flags).
    """
    m = _NUMBER.search(inner)
    if m is None:
        return None, ["garbage"]
    try:
        value = float(m.group(0))
    except ValueError:
        return None, ["garbage"]
    flags = []
    if "%" in inner[m.end():]:
        progress = value / 100.0
    elif 0.0 <= value <= 1.0:
        progress, flags = value, ["fraction"]
    else:
        progress, flags = value / 100.0, ["no_percent"]
    if not 0.0 <= progress <= 1.0:
        progress, flags = min(max(progress, 0.0), 1.0), [*flags, "out_of_range"]
    return progress, flags


def parse_remaining(text: str) -> list[str] | None:
    """The numbered actions before the progress tag; [] when the answer says none remain;
    None when it says neither."""
    head = text.split("<progress>", 1)[0]
    items = [m.group(1) for line in head.splitlines() if (m := _ITEM.match(line))]
    if items:
        return items
    if NO_ACTION.lower() in head.lower() or "has been completed" in head.lower():
        return []
    return None


def parse_answer(text: str, previous: float | None = None) -> ParsedAnswer:
    """Parse one answer.

    Args:
        text: the generated answer (anything: this never raises on it).
        previous: the last estimate of the same episode, carried when no number can be read
            (0.0 when None).

    Returns:
        A ``ParsedAnswer``.
    """
    text = text if isinstance(text, str) else ""
    carried = 0.0 if previous is None else float(previous)
    m = _TAG.search(text)
    if m is None:
        progress, value, flags = carried, None, ["missing_tag"]
    else:
        progress, flags = parse_number(m.group(1))
        nm = _NUMBER.search(m.group(1))
        value = float(nm.group(0)) if nm and progress is not None else None
        if progress is None:
            progress = carried
    remaining = parse_remaining(text)
    if remaining is None:
        remaining, flags = [], [*flags, "no_actions"]
    return ParsedAnswer(progress=float(progress), remaining=remaining,
                        flag="+".join(flags) or "ok", value=value)


def parse_answers(texts: list[str]) -> list[ParsedAnswer]:
    """Parse one episode's answers in frame order, carrying the last estimate over the gaps."""
    out: list[ParsedAnswer] = []
    previous: float | None = None
    for text in texts:
        parsed = parse_answer(text, previous)
        previous = parsed.progress
        out.append(parsed)
    return out


def stage_of(remaining: list[str], plan: list[str] | None) -> int:
    """Index into ``plan`` of the current step given the remaining actions.

    ``len(plan)`` when nothing remains, -1 without a plan. The first remaining action is looked
    up in the plan; when it is not there, the count of remaining actions decides.
    """
    if not plan:
        return -1
    if not remaining:
        return len(plan)
    if remaining[0] in plan:
        return plan.index(remaining[0])
    return max(len(plan) - len(remaining), 0)
