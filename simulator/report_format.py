"""How the comparison report writes numbers, intervals, verdicts and lists of names in its text and tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

from simulator.compare_intervals import Difference, Interval
from simulator.compare_results import CompareResults

#: The mark of each verdict in a table cell.
VERDICT_MARK = {"better": "▲", "worse": "▼", "tie": "="}


def num(value: float | None) -> float:
    """A number, None as NaN."""
    return math.nan if value is None else float(value)


def fmt(value: float | None, digits: int = 3, *, signed: bool = False) -> str:
    """A number with `digits` decimals ("–" for a missing value)."""
    x = num(value)
    if not math.isfinite(x):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def cell(summary: Interval | None, digits: int = 3, *, signed: bool = False) -> str:
    """``mean [low, high]`` of an interval (the mean alone without its ends; "–" without an interval)."""
    if summary is None:
        return "–"
    mean = fmt(summary.mean, digits, signed=signed)
    if not math.isfinite(num(summary.low)):
        return mean
    low, high = fmt(summary.low, digits, signed=signed), fmt(summary.high, digits, signed=signed)
    return f"{mean} [{low}, {high}]"


def diff_cell(diff: Difference | None, digits: int = 3) -> str:
    """A signed `cell` of a difference followed by its verdict's mark."""
    if diff is None:
        return "–"
    return f"{cell(diff, digits, signed=True)} {VERDICT_MARK.get(diff.verdict, '')}"


def plus_minus(summary: Interval | None, digits: int = 3) -> str:
    """``mean ± half-width`` (the intervals are symmetric)."""
    if summary is None:
        return "–"
    mean = fmt(summary.mean, digits)
    if not math.isfinite(num(summary.high)):
        return mean
    return f"{mean} ± {num(summary.high) - num(summary.mean):.{digits}f}"


def names(items: Sequence[str]) -> str:
    """`a`, `b` and `c` ("none" for no item)."""
    quoted = [f"`{i}`" for i in items]
    if not quoted:
        return "none"
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def percent(value: float | None, digits: int = 0) -> str:
    """A share as a percentage ("–" for a missing value)."""
    x = num(value)
    return "–" if not math.isfinite(x) else f"{100 * x:.{digits}f}%"


#: Short names of knobs in arm labels (the knob's heuristic, or these).
_KNOB_SHORT = {"category_cap": "cap", "source_similarity": "similarity", "category_match": "match"}


def knob_short(knob: str) -> str:
    """A knob's short name: its heuristic (``freshness.weight`` -> ``freshness``; ``category_cap.cap`` ->
    ``cap``), or the whole name for a knob that is not its heuristic's weight-like first setting."""
    head, _, tail = knob.partition(".")
    if tail in ("weight", "lambda", "cap", ""):
        return _KNOB_SHORT.get(head, head)
    return knob


def arm_label(results: CompareResults, section: str, arm: str) -> str:
    """An arm by its knob values, ``freshness 0.5, mmr 0.8, cap 4``: the knobs whose value differs between
    the section's arms (the arm id itself when the results do not record the arms' knobs)."""
    arms = (results.arm_knobs or {}).get(section, {})
    if arm not in arms:
        return f"`{arm}`"
    varying = [k for k in arms[arm] if len({a.get(k) for a in arms.values()}) > 1]
    return ", ".join(f"{knob_short(k)} {arms[arm][k]:g}" for k in varying) or "its only arm"
