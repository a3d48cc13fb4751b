"""What one seed of the design comparison produces (`simulator.compare_run.run_seed`): per-seed means only.

Every record is a frozen dataclass; `simulator.compare_stats` aggregates the records of every seed into the
comparison's results (`simulator.compare_results`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricMean:
    """The mean of a metric over the evaluation requests of a section and a user segment.

    Attributes
    ----------
    strategy : str
    section : str
        A section, or ``"all"``: every request.
    segment : str
        A user segment, or ``"all"``: every segment.
    metric : str
        One of `simulator.strategies.SLATE_METRICS`, or ``coverage`` (a share of the catalog, not a mean).
    value : float
    n : int
        Requests behind the value.
    """

    strategy: str
    section: str
    segment: str
    metric: str
    value: float
    n: int


@dataclass(frozen=True)
class ArmCount:
    """How many evaluation requests of a section and user segment a strategy served with a knob arm."""

    strategy: str
    section: str
    segment: str
    arm: int
    count: int


@dataclass(frozen=True)
class BestFixedArm:
    """A section's best fixed arm for the base ranker: the most exact expected clicks on the tuning sample.

    Attributes
    ----------
    index : int
        Position in the section's arms.
    id : str
        The arm's id.
    tuning_value : float
        Its expected clicks per request on the tuning sample.
    """

    index: int
    id: str
    tuning_value: float


@dataclass(frozen=True)
class CurveLists:
    """The curve section's training lists of one model of the cross-learning curve."""

    share: float
    design: str
    lists: int


@dataclass(frozen=True)
class ReplayEstimate:
    """A replay estimate of a knob policy on the log's test window, with the exact truth of those requests.

    Attributes
    ----------
    policy : str
        A name of `simulator.compare_settings.REPLAY_POLICIES`.
    section : str
        A section, or ``"all"``.
    estimator : str
    value, ci_low, ci_high : float
        The estimate and its bootstrap interval (clicks per request).
    truth : float
        The policy's exact expected clicks per request on the same requests under the logging scorer.
    n : int
        Logged decisions replayed.
    """

    policy: str
    section: str
    estimator: str
    value: float
    ci_low: float
    ci_high: float
    truth: float
    n: int


@dataclass(frozen=True)
class StrategyCost:
    """What a strategy cost in one seed: boosters (and the VW policy), artifacts, training time and bytes."""

    models: int
    artifacts: int
    train_seconds: float
    artifact_bytes: int


@dataclass(frozen=True)
class LogSummary:
    """The exploring log of a seed.

    Attributes
    ----------
    requests : int
        Requests logged.
    windows : mapping window -> int
        Decisions in the stats, train, validation and test windows.
    sections : mapping section -> int
        Decisions per section.
    test_window_start : float
        Unix time at which the test window starts (the bandit learns from the decisions before it).
    """

    requests: int
    windows: Mapping[str, int] = field(default_factory=dict)
    sections: Mapping[str, int] = field(default_factory=dict)
    test_window_start: float = math.nan


@dataclass(frozen=True)
class KnobWindow:
    """The knob window of a seed: fresh requests served by the base ranker with uniform knob exploration.

    Attributes
    ----------
    requests : int
        Requests (decisions) in the window.
    learn, gate : int
        Decisions the bandit and the best logged fixed arms learn on, and decisions the gate decides on.
    start, gate_start : float
        Unix times at which the window and its gate part start.
    """

    requests: int = 0
    learn: int = 0
    gate: int = 0
    start: float = math.nan
    gate_start: float = math.nan


@dataclass(frozen=True)
class SeedResult:
    """Per-seed means of everything the report aggregates.

    Attributes
    ----------
    seed : int
    metrics : tuple of MetricMean
        Every strategy's metrics, per section and overall, per segment and overall.
    arm_counts : tuple of ArmCount
        The knob arms served by the strategies of `simulator.compare_settings.POLICY_STRATEGIES`.
    best_fixed_arms : mapping section -> BestFixedArm
    curve : tuple of CurveLists
    replay : tuple of ReplayEstimate
    costs : mapping strategy -> StrategyCost
    training_lists : mapping ranker strategy -> section -> int
        The training lists its model(s) learned from.
    seconds : mapping step -> float
        Wall time of each step.
    log : LogSummary
    knob_window : KnobWindow
    shipped : mapping section -> str
        What the promotion gate shipped as the bandit in each section (`bandits.shipped.SOURCES`).
    """

    seed: int
    metrics: tuple[MetricMean, ...] = ()
    arm_counts: tuple[ArmCount, ...] = ()
    best_fixed_arms: Mapping[str, BestFixedArm] = field(default_factory=dict)
    curve: tuple[CurveLists, ...] = ()
    replay: tuple[ReplayEstimate, ...] = ()
    costs: Mapping[str, StrategyCost] = field(default_factory=dict)
    training_lists: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    seconds: Mapping[str, float] = field(default_factory=dict)
    log: LogSummary = field(default_factory=lambda: LogSummary(requests=0))
    knob_window: KnobWindow = field(default_factory=KnobWindow)
    shipped: Mapping[str, str] = field(default_factory=dict)
