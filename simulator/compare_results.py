"""The design comparison's results as typed records, and their one serialisation: results.json.

`CompareResults` is everything `simulator.compare.compare` returns and the report reads; each question's
answer is a frozen dataclass of its own. `CompareResults.to_json()` gives the content of results.json (strict
JSON: NaN is written as null) and `CompareResults.from_json()` reads it back, so that a results.json written
earlier can be reported again. The field names, their nesting and their order are those of results.json
(docs/compare.md: Output); the conversion is generic over the dataclasses' type hints, with one exception:
`ConfigLines`, whose JSON object holds the strategies' counts beside their ``sources``. A field added later
with a default (``feature_check``, the feature-check settings) may be absent from an older file.
"""

from __future__ import annotations

import functools
import math
import types
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

import numpy as np

from simulator.compare_answers import (
    BanditHeadroom,
    FeatureCheck,
)
from simulator.compare_intervals import Difference, Interval, MeanBounds
from simulator.compare_seed import KnobWindow, LogSummary
from simulator.compare_settings import CompareSettings
from simulator.errors import CompareInputError

SCHEMA_VERSION = 1
BETTER, WORSE, TIE = "better", "worse", "tie"


# --- the answers --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Headline:
    """Clicks per request of every main strategy: ``rows[group][strategy]``, groups = sections and ``all``."""

    metric: str
    strategies: tuple[str, ...]
    rows: Mapping[str, Mapping[str, Interval]]


@dataclass(frozen=True)
class DesignPair:
    """Question 1: the paired difference ``a - b`` in clicks per request, per section and overall."""

    a: str
    b: str
    by_section: Mapping[str, Difference]


@dataclass(frozen=True)
class DesignComparison:
    """Question 1: the consolidated model against the base ranker with tuned knobs, pair by pair."""

    pairs: tuple[DesignPair, ...]


@dataclass(frozen=True)
class CurvePoint:
    """Question 2: both designs at one share of the curve section's own data.

    Attributes
    ----------
    share : float
    consolidated, independent : mapping metric -> Interval
        Clicks and NDCG of each design on the curve section's evaluation requests.
    lists : float
        The curve section's training lists at this share (mean over seeds).
    gain, gain_ndcg : Difference
        consolidated - independent, in clicks and in NDCG.
    """

    share: float
    consolidated: Mapping[str, Interval]
    lists: float
    independent: Mapping[str, Interval]
    gain: Difference
    gain_ndcg: Difference


@dataclass(frozen=True)
class CrossLearning:
    """Question 2: consolidated against independent per section, and along the curve section's data."""

    section: str
    by_section: Mapping[str, Difference]
    curve: tuple[CurvePoint, ...]
    gain_sections: tuple[str, ...]
    loss_sections: tuple[str, ...]
    gain_shares: tuple[float, ...]
    any_gain: bool


@dataclass(frozen=True)
class Reversal:
    """Question 3: the overall winner of a pair of designs losing significantly in a section."""

    winner: str
    loser: str
    section: str
    overall: Difference
    overall_significant: bool
    section_diff: Difference


@dataclass(frozen=True)
class Reversals:
    """Question 3: the rule, how many (pair, section) checks it made, and the reversals it flagged.

    ``no_overall_winner`` lists the pairs (``"a vs b"``) whose overall difference is not significant: they
    have no overall winner, so nothing is flagged for them (empty in results written before the rule).
    """

    rule: str
    pairs_checked: int
    flagged: tuple[Reversal, ...]
    no_overall_winner: tuple[str, ...] = ()


@dataclass(frozen=True)
class UnionResult:
    """Question 4: the consolidated model trained with one union strategy.

    Attributes
    ----------
    strategy : str
    clicks : mapping group -> Interval
    vs_traffic : mapping group -> Difference, or None for the traffic union itself
    training_lists : mapping section -> float
        Training lists per section (mean over seeds).
    """

    strategy: str
    clicks: Mapping[str, Interval]
    vs_traffic: Mapping[str, Difference] | None
    training_lists: Mapping[str, float]


@dataclass(frozen=True)
class Stratification:
    """Question 4: union strategy -> its consolidated model."""

    unions: Mapping[str, UnionResult]


@dataclass(frozen=True)
class KnobGain:
    """The bandit's paired gain over the best fixed arm and over the default arm."""

    vs_best_fixed: Difference
    vs_default: Difference


@dataclass(frozen=True)
class BanditGroup(KnobGain):
    """Question 5: the bandit's gains in a section (or overall), and per user segment."""

    by_segment: Mapping[str, KnobGain]


@dataclass(frozen=True)
class BanditKnobs:
    """Question 5: bandit knobs against fixed knobs, and what the bandit chose.

    Attributes
    ----------
    by_section : mapping group -> BanditGroup
    arm_shares : mapping section -> segment -> arm id -> float
        Share of the bandit's requests served with each arm (segment ``all``: every request of the section).
    knob_shares : mapping section -> knob -> segment -> value -> float
        The same per knob value, for knobs with more than one value.
    best_fixed_arms : mapping section -> tuple of str
        The best fixed arm's id in each seed.
    freshness_zero_share : mapping section -> float
        Share of the bandit's requests served with freshness weight 0 (``all``: every section with the knob).
    """

    by_section: Mapping[str, BanditGroup]
    arm_shares: Mapping[str, Mapping[str, Mapping[str, float]]]
    knob_shares: Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]
    best_fixed_arms: Mapping[str, tuple[str, ...]]
    freshness_zero_share: Mapping[str, float]


@dataclass(frozen=True)
class ReplaySeed:
    """One seed's replay estimate, its bootstrap interval and its truth."""

    seed: int
    value: float
    ci_low: float
    ci_high: float
    truth: float


@dataclass(frozen=True)
class ReplayRow:
    """Question 6: a policy replayed with an estimator in a section (or ``all``), over seeds.

    Attributes
    ----------
    estimate, truth, relative_error : Interval
        Over seeds; relative error = (estimate - truth) / truth.
    abs_relative_error : float
        Mean over seeds of the absolute relative error.
    coverage : float
        Share of seeds whose bootstrap interval contains the truth.
    n : float
        Decisions replayed (mean over seeds).
    per_seed : tuple of ReplaySeed
    """

    policy: str
    section: str
    estimator: str
    estimate: Interval
    truth: Interval
    relative_error: Interval
    abs_relative_error: float
    coverage: float
    n: float
    per_seed: tuple[ReplaySeed, ...]


@dataclass(frozen=True)
class EstimatorAccuracy:
    """An estimator's mean absolute relative error and coverage over the (policy, section) rows."""

    abs_relative_error: float
    coverage: float


@dataclass(frozen=True)
class ReplayAccuracy:
    """Question 6: replay estimates against the exact truth.

    Attributes
    ----------
    policies : mapping replay name -> strategy
    rows : tuple of ReplayRow
    by_estimator : mapping estimator -> EstimatorAccuracy
        Over the per-section rows (not ``all``).
    """

    policies: Mapping[str, str]
    rows: tuple[ReplayRow, ...]
    by_estimator: Mapping[str, EstimatorAccuracy]


@dataclass(frozen=True)
class CostSummary:
    """A strategy's models, artifacts, training seconds (over seeds) and artifact bytes (mean over seeds)."""

    models: int
    artifacts: int
    train_seconds: Interval
    artifact_bytes: float


@dataclass(frozen=True)
class SectionVerdicts:
    """The overall verdict of a difference and the sections where it is better, worse or a tie."""

    overall: str
    better_in: tuple[str, ...]
    worse_in: tuple[str, ...]
    tie_in: tuple[str, ...]


@dataclass(frozen=True)
class Conclusions:
    """The answers in a few machine-readable fields (docs/compare.md: Output)."""

    consolidated_vs_base_bandit: SectionVerdicts
    cross_learning_gain: bool
    cross_learning_gain_sections: tuple[str, ...]
    cross_learning_gain_shares: tuple[float, ...]
    reversals: int
    bandit_vs_best_fixed: str
    bandit_vs_default: str
    bandit_gain_over_best_fixed: MeanBounds
    freshness_zero_share: float | None
    closest_replay_estimator: str | None


# --- what was run -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SectionTraffic:
    traffic: float
    context: str


@dataclass(frozen=True)
class WorldInfo:
    """The simulated world: its name, file, sizes and sections."""

    name: str
    source: str
    items: int
    users: int
    candidates: int
    days: float
    sections: Mapping[str, SectionTraffic]


@dataclass(frozen=True)
class ConfigSources:
    ranker: str
    sections: str
    learn_settings: int


@dataclass(frozen=True)
class ConfigLines:
    """Config lines a team maintains per strategy (docs/compare.md: Cost), and the files they were counted in.

    In results.json the strategies' counts and ``sources`` share one object.
    """

    by_strategy: Mapping[str, int]
    sources: ConfigSources


@dataclass(frozen=True)
class Runtime:
    """Wall time of the whole run and of each step (summed over seeds)."""

    seconds: float
    steps: Mapping[str, float]
    python: str


@dataclass(frozen=True)
class CompareResults:
    """Everything a comparison found: what was run, every metric with intervals, and each question's answer.

    Attributes
    ----------
    schema_version : int
    created : str
        ISO time of the run (UTC).
    world : WorldInfo
    seeds : tuple of int
    settings : CompareSettings
    primary_metric : str
    interval : str
        How the intervals were taken, in words.
    sections : tuple of str
        The world's sections, in order; the groups of every table are these and ``all``.
    strategies : mapping strategy -> str
        What each strategy serves.
    metrics : mapping strategy -> group -> metric -> Interval
    headline, designs, cross_learning, reversals, stratification, bandit, replay
        The answers (`Headline`, questions 1 to 6).
    costs : mapping strategy -> CostSummary
    conclusions : Conclusions
    config_lines : ConfigLines
    log : tuple of LogSummary
        Each seed's log.
    runtime : Runtime
    feature_check : FeatureCheck or None
        Question 7, None when no feature was checked (and in results written before it).
    bandit_headroom : BanditHeadroom or None
        The bandit against the context oracle and the best logged fixed arm (None in results written before
        those strategies existed).
    arm_knobs : mapping section -> arm id -> knob -> float, or None
        The knob values of every arm, so that the report names arms by their values (None in results
        written before it was recorded).
    knob_windows : tuple of KnobWindow, or None
        Each seed's knob window, the base ranker's exploring traffic the knob policies learn from (None in
        results written before the knobs learned from it).
    """

    schema_version: int
    created: str
    world: WorldInfo
    seeds: tuple[int, ...]
    settings: CompareSettings
    primary_metric: str
    interval: str
    sections: tuple[str, ...]
    strategies: Mapping[str, str]
    metrics: Mapping[str, Mapping[str, Mapping[str, Interval]]]
    headline: Headline
    designs: DesignComparison
    cross_learning: CrossLearning
    reversals: Reversals
    stratification: Stratification
    bandit: BanditKnobs
    replay: ReplayAccuracy
    costs: Mapping[str, CostSummary]
    conclusions: Conclusions
    config_lines: ConfigLines
    log: tuple[LogSummary, ...]
    runtime: Runtime
    feature_check: FeatureCheck | None = None
    bandit_headroom: BanditHeadroom | None = field(default=None, metadata={"omit_if_none": True})
    arm_knobs: Mapping[str, Mapping[str, Mapping[str, float]]] | None = field(
        default=None, metadata={"omit_if_none": True}
    )
    knob_windows: tuple[KnobWindow, ...] | None = field(default=None, metadata={"omit_if_none": True})

    @property
    def groups(self) -> tuple[str, ...]:
        """The sections and ``all``: the columns of the per-section tables."""
        return (*self.sections, "all")

    def metric(self, strategy: str, group: str, metric: str) -> Interval | None:
        """The interval of a strategy's metric in a group, None when it was not measured there."""
        return self.metrics.get(strategy, {}).get(group, {}).get(metric)

    def to_json(self) -> dict[str, Any]:
        """The content of results.json: plain dicts, lists, strings and numbers, NaN as None."""
        return _to_json(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CompareResults:
        """Read the content of a results.json back (null numbers as NaN).

        Raises
        ------
        CompareInputError
            When the schema version is not `SCHEMA_VERSION`, or a field is missing or of the wrong type.
        """
        version = data.get("schema_version") if isinstance(data, Mapping) else None
        if version != SCHEMA_VERSION:
            raise CompareInputError(f"Expected results `schema_version` {SCHEMA_VERSION}, found {version!r}")
        try:
            return _from_json(cls, data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CompareInputError(
                f"Expected the fields of results.json, found a mismatch: {exc!r}"
            ) from None


# --- the conversion -----------------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    """Dataclasses as objects (fields in order), mappings as objects, tuples as lists, NaN as None."""
    if isinstance(value, ConfigLines):  # the counts beside "sources", in one object
        return {**_to_json(value.by_strategy), "sources": _to_json(value.sources)}
    if is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_json(getattr(value, f.name))
            for f in fields(value)
            if not (f.metadata.get("omit_if_none") and getattr(value, f.name) is None)
        }
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, int):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    raise TypeError(f"Expected a results value, found {type(value).__name__}")


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    """A dataclass's field types (its annotations evaluated once)."""
    return get_type_hints(kind)


def _from_json(kind: Any, value: Any) -> Any:
    """`value` (parsed JSON) as the type `kind`: the inverse of `_to_json`."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (inner,) = [a for a in get_args(kind) if a is not type(None)]
        return _from_json(inner, value)
    if kind is float:
        return math.nan if value is None else float(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise TypeError(f"expected {kind.__name__}, found {value!r}")
        return value
    if origin is tuple:
        item = get_args(kind)[0]
        return tuple(_from_json(item, v) for v in value)
    if origin is Mapping:
        item = get_args(kind)[1]
        return {str(k): _from_json(item, v) for k, v in value.items()}
    if kind is ConfigLines:
        counts = {k: v for k, v in value.items() if k != "sources"}
        return ConfigLines(
            by_strategy=_from_json(Mapping[str, int], counts),
            sources=_from_json(ConfigSources, value["sources"]),
        )
    if isinstance(kind, type) and is_dataclass(kind):
        hints = _hints(kind)
        return kind(
            **{  # a field with a default may be absent: results written before it was added
                f.name: _from_json(hints[f.name], value[f.name])
                for f in fields(kind)
                if f.init and (f.name in value or f.default is MISSING)
            }
        )
    raise TypeError(f"cannot read a results value as {kind!r}")
