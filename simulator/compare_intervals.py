"""The numbers with intervals that every answer of the comparison is made of (`simulator.compare_results`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """A mean over seeds with its 95% Student-t interval (`simulator.compare_stats.interval`).

    Attributes
    ----------
    mean : float
        NaN when no seed has a value.
    low, high : float
        The interval's ends; NaN with fewer than two values.
    n : int
        Seeds with a value.
    per_seed : tuple of float, shape (n,)
        The per-seed values, in seed order.
    """

    mean: float
    low: float
    high: float
    n: int
    per_seed: tuple[float, ...]


@dataclass(frozen=True)
class Difference(Interval):
    """A paired difference a - b over seeds (`Interval` of the per-seed differences) with its verdict:
    ``better`` when the interval lies above 0, ``worse`` below, ``tie`` otherwise (or with fewer than two
    seeds)."""

    verdict: str


@dataclass(frozen=True)
class MeanBounds:
    """The mean and interval ends of a difference, without the per-seed values."""

    mean: float
    low: float
    high: float
