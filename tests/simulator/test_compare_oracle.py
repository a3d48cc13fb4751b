"""The context oracle (best arm per observable cell, with back-off) and the capture interval."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulator.compare_headroom import capture_interval
from simulator.compare_oracle import MIN_CELL, ORACLE_LEVELS, ContextOraclePolicy, cell_keys, fit_tables
from tests.bandits.policy_factories import CONFIG, make_context


def _naive_arm(context, values, row, min_cell):
    """The reference: for one request, scan the levels finest first for a cell with enough requests."""
    columns = {"segment": context.segment, "device": context.device, "hour": context.hour_bucket()}
    for fields in ORACLE_LEVELS:
        same = np.ones(len(context), dtype=bool)
        for name in fields:
            same &= columns[name] == columns[name][row]
        if same.sum() >= min_cell or not fields:
            return int(np.argmax(values[same].sum(axis=0)))
    raise AssertionError("the last level always decides")


def test_context_oracle_matches_a_naive_per_request_scan():
    context = make_context(600, seed=3, section="discover")
    rng = np.random.default_rng(4)
    n_arms = len(CONFIG["discover"].arms)
    values = rng.random((600, n_arms))
    values[context.segment == "heavy", 5] += 0.5  # a cell-dependent best arm
    policy = ContextOraclePolicy(CONFIG, {"discover": fit_tables(context, values)})
    fresh = make_context(200, seed=5, section="discover")
    chosen = policy.arms("discover", fresh)
    for i in range(len(fresh)):
        # The cells of a fresh request are looked up in the tuning sample's tables.
        columns = {"segment": fresh.segment, "device": fresh.device, "hour": fresh.hour_bucket()}
        probe = context.__class__(
            **{
                name: np.concatenate([getattr(context, name), getattr(fresh, name)[i : i + 1]])
                for name in context.__dataclass_fields__
            }
        )
        padded = np.vstack([values, np.zeros((1, n_arms))])
        expected = _naive_arm(probe, padded, len(context), MIN_CELL + 1)
        assert chosen[i] == expected, (i, {k: v[i] for k, v in columns.items()})
    assert (chosen[fresh.segment == "heavy"] == 5).all()
    probs = np.stack(policy.distribution(fresh))
    np.testing.assert_array_equal(probs.argmax(axis=1), chosen)
    np.testing.assert_array_equal(probs.sum(axis=1), 1.0)


def test_context_oracle_without_a_table_serves_the_default_arm():
    policy = ContextOraclePolicy(CONFIG, {})
    context = make_context(5, section="search")
    assert (policy.arms("search", context) == CONFIG["search"].default_arm.index).all()


def test_cell_keys_join_the_level_fields():
    context = make_context(3, seed=1)
    keys = cell_keys(context, ("segment", "device"))
    assert keys.tolist() == [f"{s}|{d}" for s, d in zip(context.segment, context.device, strict=True)]
    assert cell_keys(context, ()).tolist() == ["all", "all", "all"]


def test_capture_interval_is_exact_when_gain_is_proportional_to_headroom():
    headroom = np.array([0.1, 0.2, 0.15, 0.05])
    out = capture_interval(0.6 * headroom, headroom)
    assert out.mean == pytest.approx(0.6)
    assert out.low == pytest.approx(0.6)
    assert out.high == pytest.approx(0.6)


def test_capture_interval_is_the_ratio_of_means_and_nan_without_headroom():
    gain, headroom = np.array([0.1, 0.0, 0.05]), np.array([0.2, 0.1, 0.1])
    out = capture_interval(gain, headroom)
    assert out.mean == pytest.approx(0.15 / 0.4)
    assert out.low < out.mean < out.high
    assert math.isnan(capture_interval(gain, -headroom).mean)


def test_bandit_headroom_in_results_matches_the_edges_and_round_trips():
    from simulator.compare_results import CompareResults
    from simulator.report import render_markdown
    from tests.simulator.test_compare_results import make_results

    edge = {
        ("base+context_oracle", "discover"): 0.10,
        ("base+bandit", "discover"): 0.06,
        ("base+best_fixed_logged", "discover"): -0.02,
    }
    results = make_results(edge, jitter=0.0)
    headroom = results.bandit_headroom
    assert headroom is not None
    discover = headroom.by_section["discover"]
    assert discover.headroom.mean == pytest.approx(0.10)
    assert discover.gain.mean == pytest.approx(0.06)
    assert discover.capture.mean == pytest.approx(0.6)
    assert discover.vs_best_fixed_logged.mean == pytest.approx(0.08)
    assert discover.vs_best_fixed_logged.verdict == "better"
    assert math.isnan(headroom.by_section["search"].capture.mean)  # no headroom: no capture
    back = CompareResults.from_json(results.to_json())
    assert back.bandit_headroom == headroom
    text = render_markdown(results)
    assert "Headroom, capture and the promotion gate" in text
    assert "0.60 [0.60, 0.60]" in text
