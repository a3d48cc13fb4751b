"""The comparison's typed results: built from synthetic per-seed means (no simulation), serialised to the
fields of results.json and read back, including a results.json written before the results were typed.

`make_results` is shared with the report's tests: every strategy earns 1.0 clicks per request plus an edge
per (strategy, section), so the answers, and hence the report's sentences, are known.
"""

from __future__ import annotations

import gzip
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from heuristics import SectionsConfig
from ranker.config import RankerConfig
from simulator.compare import assemble_results, read_results, write_outputs
from simulator.compare_results import (
    SCHEMA_VERSION,
    CompareResults,
    Difference,
    Interval,
    ReplayRow,
)
from simulator.compare_seed import (
    ArmCount,
    BestFixedArm,
    CurveLists,
    LogSummary,
    MetricMean,
    ReplayEstimate,
    SeedResult,
    StrategyCost,
)
from simulator.compare_settings import (
    ALL,
    MAIN_STRATEGIES,
    REPLAY_POLICIES,
    CompareInputError,
    CompareSettings,
    curve_strategy,
)
from simulator.strategies import SLATE_METRICS
from simulator.world_config import WorldConfig

SECTION_NAMES = ("discover", "similar_items", "category_explore", "search")
SEGMENTS = ("new", "casual", "heavy")
SETTINGS = CompareSettings(
    log_requests=1000, knob_requests=1000, eval_requests=100, tune_requests=50, curve_shares=(0.05, 0.2)
)
#: A results.json written by the comparison before its results were typed (2 seeds of the tiny test world).
LEGACY_RESULTS = Path(__file__).parents[1] / "fixtures" / "compare_results_v1.json.gz"


def _seed_metrics(
    edge: dict[tuple[str, str], float], rng: np.random.Generator, wobble: float, jitter: float
) -> list[MetricMean]:
    """Every metric of every strategy, per section, segment and overall."""
    strategies = [*MAIN_STRATEGIES, "consolidated[equal]", "consolidated[business]"]
    rows = []
    for strategy in strategies:
        per_section = {}
        for section in SECTION_NAMES:
            value = 1.0 + wobble + edge.get((strategy, section), 0.0) + jitter * rng.standard_normal()
            per_section[section] = value
            for metric in (*SLATE_METRICS, "coverage"):
                scale = {"clicks": 1.0, "conversions": 0.1, "revenue": 3.0}.get(metric, 0.5)
                rows.append(MetricMean(strategy, section, ALL, metric, value * scale, 50))
            rows += [MetricMean(strategy, section, segment, "clicks", value, 50) for segment in SEGMENTS]
        overall = float(np.mean(list(per_section.values())))
        rows += [
            MetricMean(strategy, ALL, ALL, metric, overall, 50) for metric in (*SLATE_METRICS, "coverage")
        ]
        rows += [MetricMean(strategy, ALL, segment, "clicks", overall, 50) for segment in SEGMENTS]
    for share in SETTINGS.curve_shares[:-1]:  # at share 1 the curve's models are the main ones
        for design in ("consolidated", "independent"):
            name = curve_strategy(design, share)
            ahead = 0.3 * (1 - share) if design == "consolidated" else 0.0
            value = 1.0 + wobble + ahead + edge.get((name, "category_explore"), 0.0)
            rows += [MetricMean(name, "category_explore", ALL, m, value, 50) for m in ("clicks", "ndcg")]
    return rows


def _seed_replay(wobble: float) -> list[ReplayEstimate]:
    """Every estimator 1% above the truth, but dm 20% above."""
    rows = []
    for policy in REPLAY_POLICIES:
        for section in (*SECTION_NAMES, ALL):
            for estimator in SETTINGS.estimators:
                truth = 1.0 + wobble
                value = truth * (1.2 if estimator == "dm" else 1.01)
                rows.append(
                    ReplayEstimate(policy, section, estimator, value, value - 0.05, value + 0.05, truth, 100)
                )
    return rows


def synthetic_seeds(
    edge: dict[tuple[str, str], float], n_seeds: int = 5, *, jitter: float = 0.001
) -> list[SeedResult]:
    """Per-seed means: every strategy earns 1.0 clicks per request plus `edge[(strategy, section)]`, with a
    seed-dependent wobble shared by all strategies and a `jitter` of its own (so paired differences are
    nearly constant; with no jitter, strategies without an edge tie exactly)."""
    rng = np.random.default_rng(0)
    results = []
    for seed in range(n_seeds):
        wobble = 0.05 * rng.standard_normal()
        results.append(
            SeedResult(
                seed=seed,
                metrics=tuple(_seed_metrics(edge, rng, wobble, jitter)),
                arm_counts=tuple(
                    ArmCount("base+bandit", section, segment, arm, 10 * (arm + 1))
                    for section in SECTION_NAMES
                    for segment in SEGMENTS
                    for arm in range(3)
                ),
                best_fixed_arms={
                    s: BestFixedArm(index=0, id=f"{s}-arm0", tuning_value=1.0) for s in SECTION_NAMES
                },
                curve=tuple(
                    CurveLists(share, design, int(1000 * share))
                    for share in SETTINGS.curve_shares
                    for design in ("consolidated", "independent")
                ),
                replay=tuple(_seed_replay(wobble)),
                costs={
                    name: StrategyCost(models=1, artifacts=1, train_seconds=1.0 + seed, artifact_bytes=2048)
                    for name in MAIN_STRATEGIES
                    if name not in ("random", "oracle")
                },
                training_lists={"consolidated": {s: 100 for s in SECTION_NAMES}},
                seconds={"log": 1.0, "train": 2.0},
                log=LogSummary(
                    requests=1000, windows={"stats": 100}, sections={"discover": 100}, test_window_start=5.0
                ),
            )
        )
    return results


def make_results(
    edge: dict[tuple[str, str], float], n_seeds: int = 5, *, jitter: float = 0.001
) -> CompareResults:
    """The comparison's results from `synthetic_seeds` on the default world's sections."""
    return assemble_results(
        synthetic_seeds(edge, n_seeds, jitter=jitter),
        world_config=WorldConfig.load("default"),
        settings=SETTINGS,
        sections=SectionsConfig.load(),
        ranker_config=RankerConfig.load(),
        seconds=12.0,
    )


@pytest.fixture(scope="module")
def results() -> CompareResults:
    return make_results({("consolidated", "discover"): 0.2, ("consolidated", "search"): -0.2})


def test_compare_results_round_trip_through_json_is_equal(results):
    text = json.dumps(results.to_json(), allow_nan=False)
    back = CompareResults.from_json(json.loads(text))
    assert back == results
    assert back.to_json() == results.to_json()


def test_compare_results_round_trip_keeps_missing_numbers_as_nan(results):
    # One seed: no interval ends (NaN), written as null and read back as NaN.
    single = make_results({}, n_seeds=1)
    data = json.loads(json.dumps(single.to_json(), allow_nan=False))
    assert data["headline"]["rows"][ALL]["consolidated"]["low"] is None
    back = CompareResults.from_json(data)
    assert math.isnan(back.headline.rows[ALL]["consolidated"].low)
    assert back.headline.rows[ALL]["consolidated"].mean == single.headline.rows[ALL]["consolidated"].mean
    assert back.to_json() == data


def test_compare_results_json_has_the_documented_fields(results):
    data = results.to_json()
    assert list(data) == [
        "schema_version", "created", "world", "seeds", "settings", "primary_metric", "interval", "sections",
        "strategies", "metrics", "headline", "designs", "cross_learning", "reversals", "stratification",
        "bandit", "replay", "costs", "conclusions", "config_lines", "log", "runtime", "feature_check",
        "bandit_headroom", "arm_knobs", "knob_windows",
    ]  # fmt: skip
    assert list(data["metrics"]["consolidated"]["discover"]["clicks"]) == [
        "mean",
        "low",
        "high",
        "n",
        "per_seed",
    ]
    assert data["designs"]["pairs"][0]["by_section"][ALL]["verdict"] in ("better", "worse", "tie")
    assert list(data["cross_learning"]["curve"][0]) == [
        "share", "consolidated", "lists", "independent", "gain", "gain_ndcg",
    ]  # fmt: skip
    assert data["stratification"]["unions"]["traffic"]["vs_traffic"] is None
    assert set(data["config_lines"]) == {*results.config_lines.by_strategy, "sources"}
    assert data["settings"] == SETTINGS.to_dict()
    assert data["seeds"] == [0, 1, 2, 3, 4]


def test_compare_results_read_a_results_json_written_before_typing():
    raw = json.loads(gzip.decompress(LEGACY_RESULTS.read_bytes()))
    results = CompareResults.from_json(raw)
    # Fields added since are absent from it and read as their defaults: no feature check was run.
    written = results.to_json()
    assert written.pop("feature_check") is None
    assert {k: written["settings"].pop(k) for k in ("feature_check", "feature_leak", "knob_requests")} == {
        "feature_check": [],
        "feature_leak": False,
        "knob_requests": CompareSettings().knob_requests,
    }
    assert results.knob_windows is None  # the knobs learned from the legacy log then
    assert written["reversals"].pop("no_overall_winner") == []
    assert written == raw
    assert results.seeds == (0, 1)
    assert isinstance(results.designs.pairs[0].by_section[ALL], Difference)
    assert isinstance(results.replay.rows[0], ReplayRow)
    assert results.metric("oracle", ALL, "ndcg").mean == pytest.approx(1.0)


def test_read_results_reads_what_write_outputs_wrote(results, tmp_path):
    paths = write_outputs(results, tmp_path / "out")
    assert read_results(tmp_path / "out") == results
    assert read_results(paths["results"]) == results


# Results that cannot be read: (change to the JSON, message).
BAD_RESULTS = [
    (lambda d: {**d, "schema_version": 2}, "`schema_version` 1, found 2"),
    (lambda d: {k: v for k, v in d.items() if k != "headline"}, "'headline'"),
    (lambda d: {**d, "seeds": ["zero", "one"]}, "expected int"),
]


@pytest.mark.parametrize(("change", "message"), BAD_RESULTS)
def test_compare_results_from_json_refuses_other_content(results, change, message):
    with pytest.raises(CompareInputError, match=message):
        CompareResults.from_json(change(results.to_json()))


def test_read_results_refuses_a_missing_file(tmp_path):
    with pytest.raises(CompareInputError, match=r"readable results\.json"):
        read_results(tmp_path / "nope.json")


def test_compare_results_schema_version_is_written():
    assert make_results({}, n_seeds=2).to_json()["schema_version"] == SCHEMA_VERSION


def test_interval_and_difference_serialise_in_their_field_order():
    diff = Difference(mean=0.5, low=math.nan, high=1.0, n=1, per_seed=(0.5,), verdict="tie")
    results = make_results({}, n_seeds=2)
    pair = replace(results.designs.pairs[0], by_section={ALL: diff})
    changed = replace(results, designs=replace(results.designs, pairs=(pair,)))
    assert changed.to_json()["designs"]["pairs"][0]["by_section"][ALL] == {
        "mean": 0.5, "low": None, "high": 1.0, "n": 1, "per_seed": [0.5], "verdict": "tie",
    }  # fmt: skip
    assert isinstance(diff, Interval)
