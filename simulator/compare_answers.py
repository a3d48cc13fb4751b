"""The answers of the comparison's newer questions, as typed records of results.json: the bandit against
the ceiling of its features (``bandit_headroom``) and question 7, the feature check (``feature_check``).
`simulator.compare_results.CompareResults` holds them; see that module for the serialisation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from simulator.compare_intervals import Difference, Interval


@dataclass(frozen=True)
class HeadroomGroup:
    """The observable context's headroom over the best fixed arm, and what the bandit gets of it (paired over
    seeds): ``headroom`` = context_oracle - best_fixed, ``gain`` = bandit - best_fixed, ``capture`` =
    mean(gain) / mean(headroom) with a delta-method interval (NaN unless headroom's interval is above 0),
    ``vs_best_fixed_logged`` = bandit - best_fixed_logged, ``logged_vs_best_fixed`` = best_fixed_logged -
    best_fixed (what picking the fixed arm from the log costs)."""

    headroom: Difference
    gain: Difference
    capture: Interval
    vs_best_fixed_logged: Difference
    logged_vs_best_fixed: Difference


@dataclass(frozen=True)
class KnobCurvePoint:
    """The shipped bandit learned on the latest `share` of its learning window, against the best logged
    fixed arm (group -> paired difference ``bandit@share - base+best_fixed_logged``)."""

    share: float
    strategy: str
    decisions: float
    vs_best_fixed_logged: Mapping[str, Difference]


@dataclass(frozen=True)
class BanditHeadroom:
    """The bandit against the ceiling of its features and against the fixed arm a team would pick from the
    log.

    Attributes
    ----------
    by_section : mapping group -> HeadroomGroup
    curve : tuple of KnobCurvePoint
        The knobs' learning curve, shares ascending (the last is the whole window: ``base+bandit``).
    shipped : mapping section -> source -> int
        In how many seeds the promotion gate shipped each source (candidate, best_fixed_logged, ...).
    fixed_logged_estimator : str
        The off-policy estimator ``base+best_fixed_logged`` chooses its arm with.
    oracle_cells : str
        How ``base+context_oracle`` buckets the context, in words.
    """

    by_section: Mapping[str, HeadroomGroup]
    curve: tuple[KnobCurvePoint, ...]
    shipped: Mapping[str, Mapping[str, int]]
    fixed_logged_estimator: str
    oracle_cells: str


@dataclass(frozen=True)
class FeatureEffect:
    """Question 7: a model with a feature minus the same model trained without it (paired over seeds).

    Attributes
    ----------
    clicks, ndcg : Difference
    baseline : float
        Clicks per request of the model without the feature (mean over seeds).
    """

    clicks: Difference
    ndcg: Difference
    baseline: float


@dataclass(frozen=True)
class FeatureFinding:
    """Question 7: one section-specific feature, each model trained with and without it.

    Attributes
    ----------
    feature, context : str
        The feature and the context kind whose sections carry it.
    carrying, default_only : tuple of str
        The sections that carry the feature, and those that only see its default value.
    consolidated : mapping group -> FeatureEffect
        Every section, then ``carrying`` and ``default_only``: their requests pooled.
    independent : mapping section -> FeatureEffect
        Each carrying section's independent model.
    finding : {"regression", "no_regression", "too_noisy"}
        In the default-only sections pooled, clicks: the interval below 0; its lower end above
        ``-tolerance * baseline`` (a loss that large is ruled out); neither.
    regressed_in : tuple of str
        Default-only sections whose clicks or NDCG interval lies below 0.
    """

    feature: str
    context: str
    carrying: tuple[str, ...]
    default_only: tuple[str, ...]
    consolidated: Mapping[str, FeatureEffect]
    independent: Mapping[str, FeatureEffect]
    finding: str
    regressed_in: tuple[str, ...]


@dataclass(frozen=True)
class FeatureCheck:
    """Question 7: does a feature added for one section make the others worse? (`simulator.feature_check`)

    Attributes
    ----------
    tolerance : float
        The relative loss of clicks a ``no_regression`` finding rules out.
    features : tuple of FeatureFinding
        Each feature, the models with it served as they should be (defaulted outside its sections).
    leaking : tuple of FeatureFinding
        With the injected bug (``settings.feature_leak``; else empty): the model with each feature served
        computing it in every section, the same models without it and the same requests.
    """

    tolerance: float
    features: tuple[FeatureFinding, ...]
    leaking: tuple[FeatureFinding, ...]
