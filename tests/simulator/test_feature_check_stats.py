"""Question 7's answer from per-seed means built so that it is known: pooled groups against a naive reference,
and the finding (regression, no regression, too noisy) as the differences' signs and spreads change."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ranker.config import RankerConfig
from simulator.compare_seed import MetricMean, SeedResult
from simulator.compare_settings import ALL, CompareSettings
from simulator.feature_check import leak_strategy, split_sections, without_strategy
from simulator.feature_check_stats import (
    DEFAULT_ONLY,
    NO_REGRESSION,
    REGRESSION,
    TOLERANCE,
    TOO_NOISY,
    feature_finding,
    pooled,
    summarize_feature_check,
)

SECTIONS = ("discover", "similar_items", "category_explore", "search")
FEATURE = "source_similarity"
#: Evaluation requests per section (unequal, so that pooling must weight).
REQUESTS = {"discover": 400, "similar_items": 250, "category_explore": 150, "search": 200}
SPLIT = split_sections(FEATURE, SECTIONS, RankerConfig.load())


def seeds(
    effect: dict[str, float], spread: float = 0.001, *, leak: dict[str, float] | None = None, n_seeds: int = 5
) -> list[SeedResult]:
    """Per-seed means: without the feature every model earns 1.0 (+ a seed wobble) clicks and 0.5 NDCG per
    request; with it, `effect[section]` more in both (+ per-seed noise of sd `spread`); leaking, `leak`."""
    rng = np.random.default_rng(1)
    out = []
    for seed in range(n_seeds):
        wobble = 0.1 * rng.standard_normal()
        rows = []
        for section in SECTIONS:
            n = REQUESTS[section]
            noise = spread * rng.standard_normal()
            values = {
                without_strategy("consolidated", FEATURE): 0.0,
                "consolidated": effect.get(section, 0.0) + noise,
                "independent": 2 * effect.get(section, 0.0) + noise,
                without_strategy("independent", FEATURE): 0.0,
            }
            if leak is not None:
                values[leak_strategy(FEATURE)] = leak.get(section, 0.0) + noise
            for strategy, gain in values.items():
                rows.append(MetricMean(strategy, section, ALL, "clicks", 1.0 + wobble + gain, n))
                rows.append(MetricMean(strategy, section, ALL, "ndcg", 0.5 + wobble / 10 + gain, n))
                rows.append(MetricMean(strategy, section, "heavy", "clicks", 9.0, n // 2))  # not pooled
        out.append(SeedResult(seed=seed, metrics=tuple(rows)))
    return out


def test_pooled_weights_each_section_by_its_requests():
    results = seeds({"discover": 0.1, "search": -0.3}, spread=0.05)
    got = pooled(results, "consolidated", ("discover", "search", "category_explore"), "clicks")
    for r, value in zip(results, got, strict=True):
        # A naive reference: the mean over every request of the three sections.
        per_request = np.concatenate(
            [
                np.full(row.n, row.value)
                for row in r.metrics
                if row.strategy == "consolidated" and row.metric == "clicks" and row.segment == ALL
                if row.section in ("discover", "search", "category_explore")
            ]
        )
        assert value == pytest.approx(per_request.mean())


def test_pooled_is_nan_for_a_seed_without_a_section():
    results = seeds({})
    results[1] = SeedResult(seed=1, metrics=tuple(m for m in results[1].metrics if m.section != "search"))
    got = pooled(results, "consolidated", ("discover", "search"), "clicks")
    assert math.isnan(got[1])
    assert np.isfinite(np.delete(got, 1)).all()


def test_feature_finding_splits_carrying_and_default_only_sections():
    results = seeds({"similar_items": 0.2, "discover": -0.05})
    found = feature_finding(results, SPLIT, leak=False)
    assert (found.carrying, found.default_only) == (
        ("similar_items",),
        ("discover", "category_explore", "search"),
    )
    assert list(found.consolidated) == [
        "similar_items", "discover", "category_explore", "search", "carrying", "default_only",
    ]  # fmt: skip
    assert found.consolidated["similar_items"].clicks.mean == pytest.approx(0.2, abs=0.01)
    assert found.consolidated["carrying"].clicks.verdict == "better"
    # Pooled over 400 + 150 + 200 requests, only discover's 400 lost 0.05.
    assert found.consolidated[DEFAULT_ONLY].clicks.mean == pytest.approx(-0.05 * 400 / 750, abs=0.002)
    assert found.consolidated["discover"].ndcg.verdict == "worse"
    assert found.regressed_in == ("discover",)
    assert found.finding == REGRESSION
    assert list(found.independent) == ["similar_items"]
    assert found.independent["similar_items"].clicks.mean == pytest.approx(0.4, abs=0.01)
    without = without_strategy("consolidated", FEATURE)
    baseline = [
        m.value
        for r in results
        for m in r.metrics
        if (m.strategy, m.section, m.segment, m.metric) == (without, "discover", ALL, "clicks")
    ]
    assert found.consolidated["discover"].baseline == pytest.approx(np.mean(baseline))


# (effect in every default-only section, per-seed spread, finding)
FINDINGS = [
    (-0.05, 0.001, REGRESSION),  # every seed loses: the interval lies below 0
    (0.0, 0.001, NO_REGRESSION),  # a tight tie: a loss of 2% is ruled out
    (0.03, 0.001, NO_REGRESSION),  # a gain is no regression
    (0.0, 0.05, TOO_NOISY),  # a tie whose interval still allows a 2% loss
    (-0.01, 0.05, TOO_NOISY),
]


@pytest.mark.parametrize(("gain", "spread", "expected"), FINDINGS)
def test_feature_finding_reads_the_default_only_interval(gain, spread, expected):
    effect = {s: gain for s in SPLIT.default_only}
    found = feature_finding(seeds(effect, spread), SPLIT, leak=False)
    assert found.finding == expected
    clicks = found.consolidated[DEFAULT_ONLY].clicks
    assert (clicks.high < 0) == (expected == REGRESSION)
    if expected == NO_REGRESSION:
        assert clicks.low >= -TOLERANCE * found.consolidated[DEFAULT_ONLY].baseline


def test_summarize_feature_check_reads_the_leak_from_the_same_seeds():
    results = seeds({"similar_items": 0.2}, leak={"similar_items": 0.2, "discover": -0.1, "search": -0.1})
    settings = CompareSettings(feature_check=(FEATURE,), feature_leak=True)
    check = summarize_feature_check(results, settings, sections=SECTIONS, ranker_config=RankerConfig.load())
    assert check is not None
    assert check.tolerance == TOLERANCE
    (correct,), (leaking,) = check.features, check.leaking
    assert correct.finding != REGRESSION
    assert correct.regressed_in == ()
    assert leaking.finding == REGRESSION
    assert leaking.regressed_in == ("discover", "search")
    # The bug changes nothing where the feature is carried, and the independent models are the same.
    assert leaking.consolidated["carrying"] == correct.consolidated["carrying"]
    assert leaking.independent == correct.independent


def test_summarize_feature_check_is_none_without_features():
    check = summarize_feature_check(
        seeds({}), CompareSettings(), sections=SECTIONS, ranker_config=RankerConfig.load()
    )
    assert check is None
