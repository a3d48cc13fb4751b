"""The bandit's headroom and capture, its gain over the best logged fixed arm, and the knobs' learning curve.

Per section, from the seeds' per-seed means (`simulator.compare_stats.SeedTable`):

- **headroom** = ``base+context_oracle - base+best_fixed``: what the context the policy observes can gain
  over the best fixed arm, at most (`simulator.compare_oracle`);
- **capture** = ``(base+bandit - base+best_fixed) / headroom``, the ratio of the seeds' mean gain to their
  mean headroom, with a delta-method interval: the per-seed linearised values
  ``c + (g_s - c h_s) / mean(h)`` get the usual t-interval (their mean is c); NaN where the headroom is not
  significantly above 0 (its paired interval reaches 0);
- the bandit against ``base+best_fixed_logged`` (the fixed arm a team without a simulator picks from the
  log), and what that pick costs against the truth's best fixed arm;
- the learning curve: the shipped bandit learned on the latest `KNOB_CURVE_SHARES` of its learning window
  (the learning part of the knob window, `simulator.compare_knobs`) against ``base+best_fixed_logged``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from simulator.compare_answers import BanditHeadroom, HeadroomGroup, KnobCurvePoint
from simulator.compare_intervals import Interval
from simulator.compare_oracle import MIN_CELL, ORACLE_LEVELS
from simulator.compare_results import BETTER
from simulator.compare_seed import SeedResult
from simulator.compare_settings import (
    ALL,
    FIXED_LOGGED_ESTIMATOR,
    KNOB_CURVE_SHARES,
    PRIMARY,
    knob_curve_strategy,
)
from simulator.compare_stats import SeedTable, interval

ORACLE_CELLS = (
    "the arm with the most exact expected clicks on the tuning sample per cell of "
    + ", then ".join(" x ".join(level) for level in ORACLE_LEVELS if level)
    + f" (the first cell with at least {MIN_CELL} tuning requests), else the best fixed arm"
)


def capture_interval(gain: np.ndarray, headroom: np.ndarray) -> Interval:
    """``mean(gain) / mean(headroom)`` over seeds with its delta-method t-interval (module docstring).

    NaN (n = 0) when no seed has both values or the mean headroom is not positive.
    """
    keep = np.isfinite(gain) & np.isfinite(headroom)
    g, h = gain[keep], headroom[keep]
    if len(g) == 0 or not h.mean() > 0:
        return Interval(mean=math.nan, low=math.nan, high=math.nan, n=0, per_seed=())
    ratio = float(g.mean() / h.mean())
    return interval(ratio + (g - ratio * h) / h.mean())


def _group(table: SeedTable, group: str) -> HeadroomGroup:
    values = {
        s: table.values(s, group, PRIMARY)
        for s in ("base+context_oracle", "base+best_fixed", "base+bandit", "base+best_fixed_logged")
    }
    headroom = table.diff("base+context_oracle", "base+best_fixed", group)
    capture = capture_interval(
        values["base+bandit"] - values["base+best_fixed"],
        values["base+context_oracle"] - values["base+best_fixed"],
    )
    if headroom.verdict != BETTER:  # a share of a headroom that may be 0 means nothing
        capture = Interval(mean=math.nan, low=math.nan, high=math.nan, n=0, per_seed=())
    return HeadroomGroup(
        headroom=headroom,
        gain=table.diff("base+bandit", "base+best_fixed", group),
        capture=capture,
        vs_best_fixed_logged=table.diff("base+bandit", "base+best_fixed_logged", group),
        logged_vs_best_fixed=table.diff("base+best_fixed_logged", "base+best_fixed", group),
    )


def knob_headroom(results: Sequence[SeedResult], *, sections: Sequence[str]) -> BanditHeadroom | None:
    """The `BanditHeadroom` of the seeds' results; None when they have no ``base+context_oracle``."""
    table = SeedTable(results)
    if not table.has("base+context_oracle", ALL, PRIMARY):
        return None
    groups = [*sections, ALL]
    learned = [r.knob_window.learn for r in results]
    curve = tuple(
        KnobCurvePoint(
            share=share,
            strategy=knob_curve_strategy(share),
            decisions=share * float(np.mean(learned)) if learned else math.nan,
            vs_best_fixed_logged={
                g: table.diff(knob_curve_strategy(share), "base+best_fixed_logged", g) for g in groups
            },
        )
        for share in (*KNOB_CURVE_SHARES, 1.0)
        if table.has(knob_curve_strategy(share), ALL, PRIMARY)
    )
    shipped: dict[str, dict[str, int]] = {}
    for r in results:
        for section, source in r.shipped.items():
            shipped.setdefault(section, {}).setdefault(source, 0)
            shipped[section][source] += 1
    return BanditHeadroom(
        by_section={g: _group(table, g) for g in groups},
        curve=curve,
        shipped=shipped,
        fixed_logged_estimator=FIXED_LOGGED_ESTIMATOR,
        oracle_cells=ORACLE_CELLS,
    )
