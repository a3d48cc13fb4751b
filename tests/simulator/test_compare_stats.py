"""Intervals, paired verdicts, reversals and settings of the design comparison (no simulation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simulator.compare import _seeds, config_lines
from simulator.compare_results import Interval
from simulator.compare_seed import MetricMean, SeedResult
from simulator.compare_settings import ALL, CompareSettings
from simulator.compare_stats import (
    SeedTable,
    _knob_value_share,
    _reversals,
    interval,
    t_quantile,
    verdict,
)
from simulator.errors import CompareInputError


def test_t_quantile_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in [*range(1, 61), 100, 1000]:
        assert t_quantile(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-4), df


def test_t_quantile_refuses_df_below_one():
    with pytest.raises(ValueError, match="`df` >= 1"):
        t_quantile(0)


def test_interval_closed_form():
    values = [1.0, 2.0, 3.0, 4.0, 5.0]
    out = interval(values)
    half = 2.7764 * np.std(values, ddof=1) / math.sqrt(5)
    assert out.mean == pytest.approx(3.0)
    assert out.low == pytest.approx(3.0 - half, abs=1e-4)
    assert out.high == pytest.approx(3.0 + half, abs=1e-4)
    assert out.n == 5
    assert out.per_seed == tuple(values)


def test_interval_edge_cases():
    one = interval([2.5])
    assert one.mean == 2.5
    assert math.isnan(one.low)
    assert math.isnan(one.high)
    constant = interval([0.7, 0.7, 0.7])
    assert constant.low == pytest.approx(0.7)
    assert constant.high == pytest.approx(0.7)
    empty = interval([math.nan, math.nan])
    assert empty.n == 0
    assert empty.per_seed == ()
    assert math.isnan(empty.mean)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(0.1, 0.3, "better"), (-0.3, -0.1, "worse"), (-0.1, 0.2, "tie"), (0.0, 0.2, "tie"), (-0.2, 0.0, "tie")],
)
def test_verdict_reads_the_interval(low, high, expected):
    assert verdict(Interval(mean=(low + high) / 2, low=low, high=high, n=5, per_seed=())) == expected


def _seed_results(values: dict[tuple[str, str], list[float]], metric: str = "clicks") -> list[SeedResult]:
    """SeedResults holding per-seed values of (strategy, section)."""
    n = len(next(iter(values.values())))
    return [
        SeedResult(
            seed=seed,
            metrics=tuple(
                MetricMean(strategy, section, ALL, metric, per_seed[seed], 10)
                for (strategy, section), per_seed in values.items()
            ),
        )
        for seed in range(n)
    ]


def test_seed_table_diff_is_paired():
    # Both vary a lot between seeds (their marginal intervals overlap), but b is always about 0.01 above a.
    level = [0.5, 0.9, 0.3, 1.2, 0.7]
    table = SeedTable(
        _seed_results({("a", "s"): level, ("b", "s"): [v + 0.01 + 0.001 * i for i, v in enumerate(level)]})
    )
    a, b = table.summary("a", "s", "clicks"), table.summary("b", "s", "clicks")
    assert a.high > b.low  # overlapping marginal intervals
    diff = table.diff("b", "a", "s")
    assert diff.verdict == "better"
    assert diff.mean == pytest.approx(0.012)
    assert table.diff("a", "b", "s").verdict == "worse"


def test_seed_table_missing_values_are_nan():
    table = SeedTable(_seed_results({("a", "s"): [1.0, 2.0]}))
    assert np.isnan(table.values("a", "other", "clicks")).all()
    assert not table.has("a", "other", "clicks")


def test_reversals_flag_the_overall_winner_losing_a_section():
    # "consolidated" wins overall and in discover, but loses every seed in search; the other designs tie.
    n = 5
    noise = np.linspace(-0.001, 0.001, n)
    values = {}
    for strategy in ("independent", "base+default", "base+best_fixed", "base+bandit", "consolidated+bandit"):
        for section in ("discover", "search", ALL):
            values[(strategy, section)] = list(1.0 + noise * (hash(strategy) % 7))
    values[("consolidated", "discover")] = list(1.3 + noise)
    values[("consolidated", "search")] = list(0.8 - noise)
    values[("consolidated", ALL)] = list(1.1 + noise)
    table = SeedTable(_seed_results(values))
    out = _reversals(table, ["discover", "search"])
    flagged = {(f.winner, f.loser, f.section) for f in out.flagged}
    others = ("independent", "base+default", "base+best_fixed", "base+bandit", "consolidated+bandit")
    assert flagged == {("consolidated", other, "search") for other in others}
    assert all(f.overall_significant for f in out.flagged)
    # Pairs without a significant overall difference have no winner and are not checked.
    assert out.pairs_checked + 2 * len(out.no_overall_winner) == 15 * 2
    assert all("consolidated " not in p for p in out.no_overall_winner)


def test_reversals_flag_nothing_for_a_pair_without_an_overall_winner():
    # consolidated wins discover and loses search by the same amount: the overall difference is a tie.
    noise = np.linspace(-0.01, 0.01, 5)
    values = {(s, g): list(1.0 + 0 * noise) for s in ("base+bandit",) for g in ("discover", "search", ALL)}
    values[("consolidated", "discover")] = list(1.3 + noise)
    values[("consolidated", "search")] = list(0.7 - noise)
    values[("consolidated", ALL)] = list(1.0 + noise)
    out = _reversals(SeedTable(_seed_results(values)), ["discover", "search"])
    assert out.flagged == ()
    assert out.no_overall_winner == ("consolidated vs base+bandit",)
    assert out.pairs_checked == 0
    # Tilt the overall difference above 0: consolidated now wins overall and search is flagged.
    values[("consolidated", ALL)] = list(1.1 + noise)
    out = _reversals(SeedTable(_seed_results(values)), ["discover", "search"])
    assert {(f.winner, f.section) for f in out.flagged} == {("consolidated", "search")}
    assert out.no_overall_winner == ()


def test_knob_value_share_matches_a_count(default_config):
    discover = default_config["discover"]
    counts = pd.DataFrame(
        [
            {"strategy": "base+bandit", "section": "discover", "segment": "new", "arm": arm.index, "count": c}
            for arm, c in zip(discover.arms, range(1, len(discover.arms) + 1), strict=True)
        ]
    )
    out = _knob_value_share(counts, default_config, "freshness.weight", 0.0)
    expected = sum(
        c for arm, c in zip(discover.arms, counts["count"], strict=True) if arm.knobs["freshness.weight"] == 0
    )
    assert out["discover"] == pytest.approx(expected / counts["count"].sum())
    assert out[ALL] == pytest.approx(out["discover"])


# Invalid settings: (changes, message).
BAD_SETTINGS = [
    ({"log_requests": 10}, "`log_requests` to be an integer >= 200"),
    ({"eval_requests": 0}, "`eval_requests` to be an integer >= 10"),
    ({"tune_requests": 2.5}, "`tune_requests` to be an integer"),
    ({"threads": 0}, "`threads` to be an integer >= 1"),
    ({"curve_shares": (0.0, 0.5)}, r"`curve_shares` in \(0, 1\]"),
    ({"curve_shares": (1.5,)}, r"`curve_shares` in \(0, 1\]"),
    ({"unions": ("equal", "traffic")}, "starting with traffic"),
    ({"unions": ("traffic", "weird")}, "`unions` among"),
    ({"unions": ("traffic", "equal", "equal")}, "distinct `unions`"),
    ({"estimators": ("ips", "magic")}, "`estimators` among"),
    ({"n_bootstrap": 5}, "`n_bootstrap` to be an integer >= 10"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_SETTINGS)
def test_compare_settings_refuse_invalid_values(changes, message):
    with pytest.raises(CompareInputError, match=message):
        CompareSettings(**changes)


def test_compare_settings_always_include_the_full_data_share():
    settings = CompareSettings(curve_shares=(0.2, 0.05))
    assert settings.curve_shares == (0.05, 0.2, 1.0)


@pytest.mark.parametrize(
    ("seeds", "message"),
    [
        (1, "at least 2 seeds"),
        ([3], "at least 2 seeds"),
        ([1, 1], "distinct seeds"),
        ([-1, 2], "distinct seeds"),
        (True, "count or a list"),
    ],
)
def test_compare_seeds_are_validated(seeds, message):
    with pytest.raises(CompareInputError, match=message):
        _seeds(seeds)


def test_compare_seeds_count_or_list():
    assert _seeds(3) == [0, 1, 2]
    assert _seeds([5, 2]) == [5, 2]


def test_config_lines_counts_the_named_tables(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        "# header comment\ntop = 1\n\n[a]\nx = 1\n# comment\ny = [\n  1,\n]\n\n[a.sub]\nz = 2\n[b]\nw = 3\n"
    )
    # [a] (header, x, y = [, 1, ]) and [a.sub] (header, z); not top-level keys, comments or [b].
    assert config_lines(path, ["a"]) == 5 + 2
    assert config_lines(path, ["b"]) == 2
    assert config_lines(path, ["a.sub", "b"]) == 4
    assert config_lines(tmp_path / "missing.toml", ["a"]) == 0
