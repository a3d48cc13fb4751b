"""Benchmarks: `make bench` runs `python -m benchmarks.run --out docs/BENCHMARKS.md`.

Each ``benchmarks/bench_<name>.py`` module exposes ``run(quick: bool) -> str``, returning one markdown
section; the runner finds the modules by name, so a new benchmark is a new module. The helpers here time a
callable many times with ``time.perf_counter`` and format medians and 99th percentiles, never a single run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    """Wall-clock times of repeated calls of one case.

    Attributes
    ----------
    label : str
        What was timed.
    seconds : (repeats,) float64
        Duration of each timed call.
    per_call : int
        How many units (requests, events) one call handles; per-unit figures divide by it.
    """

    label: str
    seconds: np.ndarray
    per_call: int = 1

    @property
    def repeats(self) -> int:
        return int(self.seconds.size)

    def median_us(self, *, per_unit: bool = False) -> float:
        return float(np.median(self.seconds)) * 1e6 / (self.per_call if per_unit else 1)

    def p99_us(self, *, per_unit: bool = False) -> float:
        return float(np.percentile(self.seconds, 99)) * 1e6 / (self.per_call if per_unit else 1)


def measure(
    label: str,
    call: Callable[[int], object],
    *,
    repeats: int,
    warmup: int = 10,
    per_call: int = 1,
) -> Timing:
    """Time `repeats` calls of ``call(i)`` (i = 0, 1, ...) after `warmup` untimed ones.

    The argument lets a case cycle through several prepared inputs; the garbage collector stays on, as in
    a serving process.
    """
    if repeats < 1:
        raise ValueError(f"Expected `repeats` >= 1, found {repeats}")
    for i in range(warmup):
        call(i)
    seconds = np.empty(repeats)
    clock = time.perf_counter
    for i in range(repeats):
        start = clock()
        call(i)
        seconds[i] = clock() - start
    return Timing(label=label, seconds=seconds, per_call=per_call)


def fmt_us(value: float) -> str:
    """Microseconds with a precision that suits their size."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numbers right-aligned."""
    align = ["---:" if _numeric(rows, j) else "---" for j in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _numeric(rows: Sequence[Sequence[object]], column: int) -> bool:
    """Whether every cell of a column reads as a number (thousands separators allowed)."""
    try:
        for row in rows:
            float(str(row[column]).replace(",", ""))
    except ValueError:
        return False
    return bool(rows)
