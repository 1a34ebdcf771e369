"""The paper's findings, read off a comparison table: reproduced or not, with the figures that
decide it.

- Finding 1, reasoning before estimation helps: every model ``X[s]`` (current step, remaining
  actions, then progress) against ``X-direct[s]`` (the same backbone regressing progress) in the
  same split. Reproduced where the reasoning model is ahead on CCC vs truth and its success
  AUROC is at least as high.
- Finding 2, procedure-grounded progress is more discriminative than time-based progress (it
  sees unfinished steps, stagnation and failure): ``labels:procvlm`` against ``labels:time``,
  and every ``X[procvlm]`` against ``X[time]``. Reproduced where procvlm is ahead on CCC vs
  truth and on AUROC, and drifts less over still stretches.
- Finding 3, better reward-guided policy learning, is measured by ``procvlm policy``, not here.

A finding is "not measured" when the rows it needs are missing or their figures undefined.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED = (
    "reproduced", "partly reproduced", "not reproduced", "not measured")


@dataclass(frozen=True)
class Finding:
    """One of the paper's findings as this table decides it.

    Attributes:
        number: the finding's number in the paper's list.
        claim: what the paper claims.
        verdict: ``reproduced``, ``partly reproduced``, ``not reproduced`` or ``not measured``.
        evidence: one line per comparison, with its deciding figures.
    """

    number: int
    claim: str
    verdict: str
    evidence: list[str] = field(default_factory=list)


def _num(row: Mapping[str, Any], key: str) -> float:
    v = row.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def _f(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.3f}"


def _compare(split: str, ours: Mapping[str, Any], theirs: Mapping[str, Any],
             tests: Sequence[tuple[str, str]]) -> tuple[bool | None, str]:
    """(all tests hold, evidence line); None when a figure is undefined. ``tests`` holds
    ``(metric, op)`` with op ``>`` (ours above), ``>=`` or ``<`` (ours below)."""
    held, parts = [], []
    for key, op in tests:
        a, b = _num(ours, key), _num(theirs, key)
        parts.append(f"{key} {_f(a)} vs {_f(b)}")
        if math.isnan(a) or math.isnan(b):
            held.append(None)
        else:
            held.append(a > b if op == ">" else a >= b if op == ">=" else a < b)
    ok = None if None in held else all(held)
    mark = {True: "holds", False: "fails", None: "undefined"}[ok]
    return ok, f"{split}: {ours['name']} vs {theirs['name']}: {'; '.join(parts)} ({mark})"


def _verdict(results: Sequence[bool | None]) -> str:
    known = [r for r in results if r is not None]
    if not known:
        return NOT_MEASURED
    if all(known):
        return REPRODUCED if len(known) == len(results) else PARTLY
    return NOT_REPRODUCED if not any(known) else PARTLY


def _by_split(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    out: dict[str, dict[str, Mapping[str, Any]]] = {}
    for r in rows:
        if "name" in r:
            out.setdefault(str(r.get("split", "")), {})[str(r["name"])] = r
    return out


def _finding_reasoning(rows: Sequence[Mapping[str, Any]]) -> Finding:
    claim = ("Reasoning about the remaining actions before estimating progress helps "
             "(X[s] vs X-direct[s]: CCC vs truth higher, AUROC at least as high)")
    results, lines = [], []
    for split, named in _by_split(rows).items():
        for name, row in named.items():
            m = re.fullmatch(r"(.+)-direct\[(.+)\]", name)
            if not m or f"{m[1]}[{m[2]}]" not in named:
                continue
            ours = named[f"{m[1]}[{m[2]}]"]
            ok, line = _compare(split, ours, row, [("ccc_truth", ">"), ("auroc", ">=")])
            plan = _num(ours, "plan_exact")
            results.append(ok)
            lines.append(f"{line}; plan_exact {_f(plan)}")
    if not lines:
        lines = ["no model pair X[s] / X-direct[s] in the table"]
    return Finding(1, claim, _verdict(results), lines)


def _finding_procedure(rows: Sequence[Mapping[str, Any]]) -> Finding:
    claim = ("Procedure-grounded progress is more discriminative than time-based progress "
             "(procvlm vs time: CCC vs truth higher, AUROC higher, less drift while still)")
    tests = [("ccc_truth", ">"), ("auroc", ">"), ("stall_drift", "<")]
    results, lines = [], []
    for split, named in _by_split(rows).items():
        pairs = [("labels:procvlm", "labels:time")]
        pairs += [(n, n[:-len("[procvlm]")] + "[time]") for n in named
                  if n.endswith("[procvlm]") and not n.startswith("labels:")]
        for ours, theirs in pairs:
            if ours in named and theirs in named:
                ok, line = _compare(split, named[ours], named[theirs], tests)
                results.append(ok)
                lines.append(line)
    if not lines:
        lines = ["no procvlm / time pair (labels:procvlm, labels:time, X[procvlm], X[time])"]
    return Finding(2, claim, _verdict(results), lines)


def findings(rows: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """The paper's findings 1-3 as the comparison ``rows`` decide them (see module doc)."""
    return [_finding_reasoning(rows), _finding_procedure(rows),
            Finding(3, "Procedure-grounded rewards improve reward-guided policy learning",
                    NOT_MEASURED, ["measured by `procvlm policy`, not by this report"])]
