"""Recording a strategy's run: its per-seed metric means and knob arm counts against a naive loop, on the tiny
world of the shared fixtures (no model is trained: the runs are built by hand)."""

from __future__ import annotations

import numpy as np
import pytest

from simulator import World, WorldConfig
from simulator.compare_record import record_run
from simulator.compare_settings import ALL, PRIMARY
from simulator.strategies import SLATE_METRICS, EvalSet, StrategyRun, coverage, slate_metrics
from tests.conftest import SEED, WORLD_FILE


@pytest.fixture(scope="module")
def world() -> World:
    return World.build(WorldConfig.load(WORLD_FILE), SEED)


@pytest.fixture(scope="module")
def eval_set(world, default_config) -> EvalSet:
    return EvalSet.build(world, world.sample_requests(200, np.random.default_rng(7)), default_config)


def first_k(eval_set: EvalSet, sections) -> dict[str, np.ndarray]:
    """Every request's first k candidates, in candidate order."""
    return {s: np.tile(np.arange(eval_set.k[s]), (len(eval_set.rows[s]), 1)) for s in sections}


def test_record_run_means_match_a_naive_loop(world, eval_set):
    run = StrategyRun("independent", first_k(eval_set, eval_set.rows), None)
    rows = {(m.section, m.segment, m.metric): m for m in record_run(world, eval_set, run).metrics}
    for section, order in run.order.items():
        part, _ = eval_set.part(section)
        values = slate_metrics(world, part, order, eval_set.relevance[section])
        for metric in SLATE_METRICS:
            assert rows[(section, ALL, metric)].value == pytest.approx(np.mean(values[metric]))
            assert rows[(section, ALL, metric)].n == len(part)
        for segment in set(part.segment.tolist()):
            mine = [v for v, s in zip(values[PRIMARY], part.segment, strict=True) if s == segment]
            row = rows[(section, segment, PRIMARY)]
            assert row.value == pytest.approx(sum(mine) / len(mine))
            assert row.n == len(mine)
        assert rows[(section, ALL, "coverage")].value == coverage(world, part, order)
    overall = rows[(ALL, ALL, PRIMARY)]
    assert overall.n == len(eval_set.requests)
    per_section = [rows[(s, ALL, PRIMARY)] for s in run.order]
    assert overall.value == pytest.approx(sum(r.value * r.n for r in per_section) / overall.n)
    assert rows[(ALL, ALL, "coverage")].value >= max(rows[(s, ALL, "coverage")].value for s in run.order)


def test_record_run_leaves_out_the_overall_group_of_a_partial_run(world, eval_set):
    section = next(iter(eval_set.rows))
    run = StrategyRun("consolidated@0.05", first_k(eval_set, [section]), None)
    record = record_run(world, eval_set, run)
    assert {m.section for m in record.metrics} == {section}
    assert record.arm_counts == ()


def test_record_run_counts_the_arms_of_policy_strategies_only(world, eval_set):
    rng = np.random.default_rng(3)
    arms = {s: rng.integers(0, 4, size=len(r)) for s, r in eval_set.rows.items()}
    order = first_k(eval_set, eval_set.rows)
    counted = record_run(world, eval_set, StrategyRun("base+bandit", order, arms)).arm_counts
    for section, chosen in arms.items():
        segment = eval_set.part(section)[0].segment
        for s in set(segment.tolist()):
            for arm in range(4):
                expected = int(((segment == s) & (chosen == arm)).sum())
                found = [c.count for c in counted if (c.section, c.segment, c.arm) == (section, s, arm)]
                assert found == ([expected] if expected else [])
    assert record_run(world, eval_set, StrategyRun("some+policy", order, arms)).arm_counts == ()
