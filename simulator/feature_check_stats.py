"""Question 7's answer from every seed's per-seed means: with minus without each checked feature, paired.

For a feature F, the model with F (``consolidated``, or with the injected bug `leak_strategy`) and the same
design retrained without F (`without_strategy`) serve the same evaluation requests in each seed, so each
difference's interval is taken over the per-seed differences (`simulator.compare_stats.difference`). Besides
every section, two pooled groups: ``carrying`` (the requests of the sections that carry F) and
``default_only`` (those of the sections that only see its default), each seed's pooled mean weighting the
sections by their evaluation requests.

The finding is read in the default-only sections pooled, in clicks per request: ``regression`` when the
interval lies below 0; ``no_regression`` when it does not and its lower end is above ``-TOLERANCE`` times
the clicks of the model without F (a loss of that size is ruled out); ``too_noisy`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ranker.config import RankerConfig
from simulator.compare_answers import FeatureCheck, FeatureEffect, FeatureFinding
from simulator.compare_results import WORSE
from simulator.compare_seed import SeedResult
from simulator.compare_settings import ALL, PRIMARY, CompareSettings
from simulator.compare_stats import difference
from simulator.feature_check import FeatureSplit, leak_strategy, split_sections, without_strategy

REGRESSION, NO_REGRESSION, TOO_NOISY = "regression", "no_regression", "too_noisy"
#: The relative loss of clicks per request a ``no_regression`` finding must rule out.
TOLERANCE = 0.02
#: The pooled groups, after the sections.
CARRYING, DEFAULT_ONLY = "carrying", "default_only"
METRICS = (PRIMARY, "ndcg")


def pooled(results: Sequence[SeedResult], strategy: str, sections: Sequence[str], metric: str) -> np.ndarray:
    """(S,) per-seed means of `metric` over the requests of `sections` (each section's mean weighted by its
    requests); NaN for a seed without every one of them."""
    out = np.full(len(results), math.nan)
    for i, r in enumerate(results):
        cells = {
            row.section: (row.value, row.n)
            for row in r.metrics
            if row.strategy == strategy and row.metric == metric and row.segment == ALL
        }
        if all(s in cells for s in sections):
            n = np.array([cells[s][1] for s in sections], dtype=np.float64)
            values = np.array([cells[s][0] for s in sections])
            out[i] = float(n @ values / n.sum()) if n.sum() > 0 else math.nan
    return out


def effect(results: Sequence[SeedResult], with_: str, without: str, sections: Sequence[str]) -> FeatureEffect:
    """``with_ - without`` over the requests of `sections`, in clicks and NDCG, paired over seeds."""
    diffs = {m: pooled(results, with_, sections, m) - pooled(results, without, sections, m) for m in METRICS}
    baseline = pooled(results, without, sections, PRIMARY)
    finite = baseline[np.isfinite(baseline)]
    return FeatureEffect(
        clicks=difference(diffs[PRIMARY]),
        ndcg=difference(diffs["ndcg"]),
        baseline=float(finite.mean()) if finite.size else math.nan,
    )


def finding(default_only: FeatureEffect, tolerance: float = TOLERANCE) -> str:
    """`REGRESSION`, `NO_REGRESSION` or `TOO_NOISY` from the default-only sections' pooled effect."""
    clicks = default_only.clicks
    if clicks.verdict == WORSE:
        return REGRESSION
    if clicks.n >= 2 and math.isfinite(clicks.low) and clicks.low >= -tolerance * default_only.baseline:
        return NO_REGRESSION
    return TOO_NOISY


def feature_finding(results: Sequence[SeedResult], split: FeatureSplit, *, leak: bool) -> FeatureFinding:
    """One feature's effects per section and pooled group, the carrying sections' independent models, and
    the finding."""
    feature = split.feature
    with_ = leak_strategy(feature) if leak else "consolidated"
    without = without_strategy("consolidated", feature)
    groups = {
        **{s: (s,) for s in (*split.carrying, *split.default_only)},
        CARRYING: split.carrying,
        DEFAULT_ONLY: split.default_only,
    }
    consolidated = {g: effect(results, with_, without, members) for g, members in groups.items()}
    independent_without = without_strategy("independent", feature)
    return FeatureFinding(
        feature=feature,
        context=split.context,
        carrying=split.carrying,
        default_only=split.default_only,
        consolidated=consolidated,
        independent={s: effect(results, "independent", independent_without, (s,)) for s in split.carrying},
        finding=finding(consolidated[DEFAULT_ONLY]),
        regressed_in=tuple(
            s
            for s in split.default_only
            if WORSE in (consolidated[s].clicks.verdict, consolidated[s].ndcg.verdict)
        ),
    )


def summarize_feature_check(
    results: Sequence[SeedResult],
    settings: CompareSettings,
    *,
    sections: Sequence[str],
    ranker_config: RankerConfig,
) -> FeatureCheck | None:
    """Question 7 for every feature of ``settings.feature_check``, and with ``settings.feature_leak`` the
    same from the same seeds with the bug injected; None when no feature was checked."""
    if not settings.feature_check:
        return None
    splits = [split_sections(f, sections, ranker_config) for f in settings.feature_check]
    return FeatureCheck(
        tolerance=TOLERANCE,
        features=tuple(feature_finding(results, split, leak=False) for split in splits),
        leaking=tuple(feature_finding(results, split, leak=True) for split in splits)
        if settings.feature_leak
        else (),
    )
