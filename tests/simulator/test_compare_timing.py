"""The step clock of a comparison seed: time per named step, summed over repeats."""

from __future__ import annotations

import itertools

import pytest

from simulator.compare_timing import StepClock


def ticking() -> StepClock:
    """A clock whose timer reads 0, 1, 2, ... seconds, one per reading."""
    counter = itertools.count()
    return StepClock(timer=lambda: float(next(counter)))


def test_step_clock_sums_the_time_of_each_step():
    clock = ticking()
    with clock("train"):
        pass  # 0 -> 1
    with clock("learn"):
        pass  # 2 -> 3
    with clock("train"):
        pass  # 4 -> 5
    assert clock.seconds == {"train": 2.0, "learn": 1.0}


def test_step_clock_times_a_step_that_raises():
    clock = ticking()
    with pytest.raises(KeyError), clock("replay"):
        raise KeyError("x")
    assert clock.seconds == {"replay": 1.0}
