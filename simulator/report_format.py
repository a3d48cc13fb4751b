"""How the comparison report writes numbers, intervals, verdicts and lists of names in its text and tables."""

from __future__ import annotations

import math
from collections.abc import Sequence

from simulator.compare_results import Difference, Interval

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
