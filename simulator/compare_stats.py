"""Intervals over seeds, paired comparisons and the comparison's answers, from every seed's per-seed means.

Every number of the report is a mean over seeds with a 95% Student-t interval over the per-seed means
(``mean ± t(0.975, S - 1) * sd / sqrt(S)`` for S seeds). Each seed draws its own world, log and evaluation
requests, so the interval covers all of that variation. Two strategies are compared *paired*: they serve the
same evaluation requests in each seed, so the interval is taken over the S per-seed differences, which is much
tighter than comparing two marginal intervals. A difference is ``better`` when its interval lies above 0,
``worse`` when below, and ``tie`` (no significant difference) otherwise.

`summarize` turns the seeds' `SeedResult` records into the typed answers of `simulator.compare_results`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from heuristics import SectionsConfig
from simulator.compare_results import (
    BETTER,
    TIE,
    WORSE,
    BanditGroup,
    BanditKnobs,
    Conclusions,
    CostSummary,
    CrossLearning,
    CurvePoint,
    DesignComparison,
    DesignPair,
    Difference,
    EstimatorAccuracy,
    Headline,
    Interval,
    KnobGain,
    MeanBounds,
    ReplayAccuracy,
    ReplayRow,
    ReplaySeed,
    Reversal,
    Reversals,
    SectionVerdicts,
    Stratification,
    UnionResult,
)
from simulator.compare_seed import SeedResult
from simulator.compare_settings import (
    ALL,
    MAIN_STRATEGIES,
    PRIMARY,
    REPLAY_POLICIES,
    CompareSettings,
    curve_strategy,
    union_strategy,
)
from simulator.strategies import SLATE_METRICS

#: Two-sided 95% quantiles t(0.975, df) of Student's t for df = 1..30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054
#: Strategies compared for Simpson-style reversals: the designs, without the bounds (the context oracle too).
DESIGN_STRATEGIES = tuple(s for s in MAIN_STRATEGIES if s not in ("random", "oracle", "base+context_oracle"))
#: The rule of question 3, as the report states it.
REVERSAL_RULE = (
    "For every pair of design strategies whose overall paired difference in clicks per request is "
    "significant (its 95% interval excludes 0), the overall winner is flagged in each section where its "
    "paired 95% interval of the difference lies entirely below 0; a pair whose overall difference is not "
    "significant has no overall winner, and nothing is flagged for it."
)


def t_quantile(df: int) -> float:
    """t(0.975, df): exact table to df = 30, then the Cornish-Fisher expansion (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"Expected `df` >= 1, found {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval(values: Iterable[float]) -> Interval:
    """Mean and 95% t-interval of per-seed values; non-finite values are left out.

    Returns
    -------
    Interval
        ``low``/``high`` are NaN for fewer than two values, and equal the mean when every value is the same;
        every field but ``n = 0`` is NaN (and ``per_seed`` empty) without a value.
    """
    data = np.asarray(list(values), dtype=np.float64)
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        return Interval(mean=math.nan, low=math.nan, high=math.nan, n=0, per_seed=())
    mean = float(data.mean())
    if n < 2:
        low = high = math.nan
    else:
        half = t_quantile(n - 1) * float(data.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return Interval(mean=mean, low=low, high=high, n=n, per_seed=tuple(float(v) for v in data))


def verdict(diff: Interval) -> str:
    """``better`` when the interval of a difference lies above 0, ``worse`` below, else ``tie``."""
    if diff.low > 0:
        return BETTER
    if diff.high < 0:
        return WORSE
    return TIE


def difference(values: Iterable[float]) -> Difference:
    """The `interval` of per-seed differences with its `verdict` (``tie`` with fewer than two seeds)."""
    out = interval(values)
    return Difference(**asdict(out), verdict=verdict(out) if out.n >= 2 else TIE)


class SeedTable:
    """The per-seed means of every seed, looked up by strategy, section, segment and metric."""

    def __init__(self, results: Sequence[SeedResult]) -> None:
        self.seeds = [r.seed for r in results]
        self._values: dict[tuple[str, str, str, str], dict[int, float]] = {}
        for r in results:
            for row in r.metrics:
                key = (row.strategy, row.section, row.segment, row.metric)
                self._values.setdefault(key, {})[int(r.seed)] = float(row.value)

    def values(self, strategy: str, section: str, metric: str, segment: str = ALL) -> np.ndarray:
        """(S,) per-seed means, NaN where a seed has none."""
        found = self._values.get((strategy, section, segment, metric), {})
        return np.array([found.get(seed, math.nan) for seed in self.seeds])

    def has(self, strategy: str, section: str, metric: str, segment: str = ALL) -> bool:
        return (strategy, section, segment, metric) in self._values

    def summary(self, strategy: str, section: str, metric: str, segment: str = ALL) -> Interval:
        return interval(self.values(strategy, section, metric, segment))

    def diff(self, a: str, b: str, section: str, metric: str = PRIMARY, segment: str = ALL) -> Difference:
        """Paired difference a - b over seeds, with its verdict."""
        return difference(self.values(a, section, metric, segment) - self.values(b, section, metric, segment))

    def strategies(self) -> list[str]:
        return sorted({key[0] for key in self._values})

    def segments(self, section: str) -> list[str]:
        return sorted({key[2] for key in self._values if key[1] == section and key[2] != ALL})


@dataclass(frozen=True)
class Summary:
    """Everything the report shows that `summarize` computes from the seeds' results (the fields of
    `simulator.compare_results.CompareResults` of the same names)."""

    metrics: dict[str, dict[str, dict[str, Interval]]]
    headline: Headline
    designs: DesignComparison
    cross_learning: CrossLearning
    reversals: Reversals
    stratification: Stratification
    bandit: BanditKnobs
    replay: ReplayAccuracy
    costs: dict[str, CostSummary]
    conclusions: Conclusions


def _metrics(table: SeedTable, groups: Sequence[str]) -> dict[str, dict[str, dict[str, Interval]]]:
    """strategy -> group -> metric -> interval, for every metric a strategy has in a group."""
    metrics: dict[str, dict[str, dict[str, Interval]]] = {}
    for strategy in table.strategies():
        metrics[strategy] = {}
        for group in groups:
            cells = {
                metric: table.summary(strategy, group, metric)
                for metric in (*SLATE_METRICS, "coverage")
                if table.has(strategy, group, metric)
            }
            if cells:
                metrics[strategy][group] = cells
    return metrics


def summarize(
    results: Sequence[SeedResult],
    settings: CompareSettings,
    sections_config: SectionsConfig,
    *,
    sections: Sequence[str],
    curve_section: str,
) -> Summary:
    """Everything the report shows, from the seeds' results: metrics with intervals and the answers."""
    table = SeedTable(results)
    groups = [*sections, ALL]
    designs = _designs(table, groups)
    cross = _cross_learning(table, results, settings, sections, curve_section)
    reversals = _reversals(table, sections)
    bandit = _bandit(table, results, sections_config, groups)
    replay = _replay(results, settings)
    return Summary(
        metrics=_metrics(table, groups),
        headline=_headline(table, groups),
        designs=designs,
        cross_learning=cross,
        reversals=reversals,
        stratification=_stratification(table, results, settings, groups),
        bandit=bandit,
        replay=replay,
        costs=_costs(results),
        conclusions=conclusions(designs, cross, reversals, bandit, replay, sections),
    )


def conclusions(
    designs: DesignComparison,
    cross: CrossLearning,
    reversals: Reversals,
    bandit: BanditKnobs,
    replay: ReplayAccuracy,
    sections: Sequence[str],
) -> Conclusions:
    """The answers in a few machine-readable fields (verdicts as in `verdict`; lists of sections)."""
    first = designs.pairs[0].by_section
    overall = bandit.by_section[ALL]
    accuracy = replay.by_estimator
    gain = overall.vs_best_fixed
    return Conclusions(
        consolidated_vs_base_bandit=SectionVerdicts(
            overall=first[ALL].verdict,
            better_in=tuple(s for s in sections if first[s].verdict == BETTER),
            worse_in=tuple(s for s in sections if first[s].verdict == WORSE),
            tie_in=tuple(s for s in sections if first[s].verdict == TIE),
        ),
        cross_learning_gain=cross.any_gain,
        cross_learning_gain_sections=cross.gain_sections,
        cross_learning_gain_shares=cross.gain_shares,
        reversals=len(reversals.flagged),
        bandit_vs_best_fixed=gain.verdict,
        bandit_vs_default=overall.vs_default.verdict,
        bandit_gain_over_best_fixed=MeanBounds(mean=gain.mean, low=gain.low, high=gain.high),
        freshness_zero_share=bandit.freshness_zero_share.get(ALL),
        closest_replay_estimator=(
            min(accuracy, key=lambda e: accuracy[e].abs_relative_error) if accuracy else None
        ),
    )


def _headline(table: SeedTable, groups: Sequence[str]) -> Headline:
    """Clicks per request of every main strategy, per section and overall."""
    return Headline(
        metric=PRIMARY,
        strategies=MAIN_STRATEGIES,
        rows={g: {s: table.summary(s, g, PRIMARY) for s in MAIN_STRATEGIES} for g in groups},
    )


def _designs(table: SeedTable, groups: Sequence[str]) -> DesignComparison:
    """Question 1: the consolidated model against the base ranker with bandit-tuned heuristics."""
    pairs = [
        ("consolidated", "base+bandit"),
        ("consolidated", "base+best_fixed"),
        ("consolidated+bandit", "base+bandit"),
        ("consolidated+bandit", "consolidated"),
        # The ranker's effect and the knobs' effect read apart: both designs without knobs, then the knobs
        # on the base ranker.
        ("consolidated", "base"),
        ("base+bandit", "base"),
        ("base+best_fixed", "base"),
    ]
    return DesignComparison(
        pairs=tuple(
            DesignPair(a=a, b=b, by_section={g: table.diff(a, b, g) for g in groups}) for a, b in pairs
        )
    )


def _curve_point(
    table: SeedTable, results: Sequence[SeedResult], share: float, curve_section: str
) -> CurvePoint:
    """Both designs at one share of the curve section's data, and their paired differences."""
    names = {d: curve_strategy(d, share) for d in ("consolidated", "independent")}
    lists = [c.lists for r in results for c in r.curve if c.share == share and c.design == "consolidated"]
    summaries = {
        d: {m: table.summary(n, curve_section, m) for m in (PRIMARY, "ndcg")} for d, n in names.items()
    }
    return CurvePoint(
        share=share,
        consolidated=summaries["consolidated"],
        lists=float(np.mean(lists)) if lists else math.nan,
        independent=summaries["independent"],
        gain=table.diff(names["consolidated"], names["independent"], curve_section),
        gain_ndcg=table.diff(names["consolidated"], names["independent"], curve_section, "ndcg"),
    )


def _cross_learning(
    table: SeedTable,
    results: Sequence[SeedResult],
    settings: CompareSettings,
    sections: Sequence[str],
    curve_section: str,
) -> CrossLearning:
    """Question 2: consolidated against independent per section, and along the curve section's data."""
    by_section = {s: table.diff("consolidated", "independent", s) for s in sections}
    curve = tuple(_curve_point(table, results, share, curve_section) for share in settings.curve_shares)
    gain_sections = tuple(s for s, d in by_section.items() if d.verdict == BETTER)
    gain_shares = tuple(p.share for p in curve if p.gain.verdict == BETTER)
    return CrossLearning(
        section=curve_section,
        by_section=by_section,
        curve=curve,
        gain_sections=gain_sections,
        loss_sections=tuple(s for s, d in by_section.items() if d.verdict == WORSE),
        gain_shares=gain_shares,
        any_gain=bool(gain_sections or gain_shares),
    )


def _reversals(table: SeedTable, sections: Sequence[str]) -> Reversals:
    """Question 3: every pair of designs whose overall winner loses significantly in a section.

    A pair has an overall winner only when its paired difference over every request is significant; a
    reversal is a section where the winner's paired difference to the loser lies entirely below 0.
    """
    flagged = []
    no_winner = []
    checked = 0
    for a, b in combinations(DESIGN_STRATEGIES, 2):
        overall = table.diff(a, b, ALL)
        if not math.isfinite(overall.mean):
            continue
        if overall.verdict == TIE:
            no_winner.append(f"{a} vs {b}")
            continue
        winner, loser = (a, b) if overall.mean >= 0 else (b, a)
        overall = table.diff(winner, loser, ALL)
        for section in sections:
            checked += 1
            diff = table.diff(winner, loser, section)
            if diff.verdict == WORSE:
                flagged.append(
                    Reversal(
                        winner=winner,
                        loser=loser,
                        section=section,
                        overall=overall,
                        overall_significant=overall.verdict == BETTER,
                        section_diff=diff,
                    )
                )
    return Reversals(
        rule=REVERSAL_RULE, pairs_checked=checked, flagged=tuple(flagged), no_overall_winner=tuple(no_winner)
    )


def _stratification(
    table: SeedTable, results: Sequence[SeedResult], settings: CompareSettings, groups: Sequence[str]
) -> Stratification:
    """Question 4: the consolidated model trained with each union strategy, per section."""
    unions = {}
    for union in settings.unions:
        name = union_strategy(union)
        lists: dict[str, list[int]] = {}
        for r in results:
            for section, n in r.training_lists.get(name, {}).items():
                lists.setdefault(section, []).append(n)
        unions[union] = UnionResult(
            strategy=name,
            clicks={g: table.summary(name, g, PRIMARY) for g in groups},
            vs_traffic={g: table.diff(name, "consolidated", g) for g in groups}
            if union != "traffic"
            else None,
            training_lists={s: float(np.mean(lists[s])) for s in sorted(lists)},
        )
    return Stratification(unions=unions)


def _arm_count_frame(results: Sequence[SeedResult], strategy: str) -> pd.DataFrame:
    """The arm counts of `strategy` over every seed: ``strategy, section, segment, arm, count``."""
    return pd.DataFrame(
        [asdict(row) for r in results for row in r.arm_counts if row.strategy == strategy],
        columns=["strategy", "section", "segment", "arm", "count"],
    )


def _bandit_group(table: SeedTable, group: str) -> BanditGroup:
    def gains(segment: str) -> KnobGain:
        return KnobGain(
            vs_best_fixed=table.diff("base+bandit", "base+best_fixed", group, segment=segment),
            vs_default=table.diff("base+bandit", "base+default", group, segment=segment),
        )

    overall = gains(ALL)
    return BanditGroup(
        vs_best_fixed=overall.vs_best_fixed,
        vs_default=overall.vs_default,
        by_segment={segment: gains(segment) for segment in table.segments(group)},
    )


def _arm_shares(
    counts: pd.DataFrame, sections_config: SectionsConfig
) -> tuple[dict[str, dict[str, dict[str, float]]], dict[str, dict[str, dict[str, dict[str, float]]]]]:
    """Per section and segment (and ``all``): the share of requests of each arm, and of each knob value."""
    arm_shares: dict[str, dict[str, dict[str, float]]] = {}
    knob_shares: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for section, part in counts.groupby("section"):
        cfg = sections_config[str(section)]
        shares: dict[str, dict[str, float]] = {}
        knobs: dict[str, dict[str, dict[str, float]]] = {}
        for segment, seg in [*part.groupby("segment"), (ALL, part)]:
            by_arm = seg.groupby("arm")["count"].sum()
            total = float(by_arm.sum())
            shares[str(segment)] = {cfg.arms[int(a)].id: float(c) / total for a, c in by_arm.items()}
            for knob, values in cfg.knob_values.items():
                if len(values) < 2:
                    continue
                per_value: dict[str, float] = {}
                for a, c in by_arm.items():
                    key = f"{cfg.arms[int(a)].knobs[knob]:g}"
                    per_value[key] = per_value.get(key, 0.0) + float(c) / total
                knobs.setdefault(knob, {})[str(segment)] = per_value
        arm_shares[str(section)] = shares
        knob_shares[str(section)] = knobs
    return arm_shares, knob_shares


def _bandit(
    table: SeedTable, results: Sequence[SeedResult], sections_config: SectionsConfig, groups: Sequence[str]
) -> BanditKnobs:
    """Question 5: bandit knobs against the best fixed arm and the default arm, per section and segment, and
    the arms the bandit chose."""
    counts = _arm_count_frame(results, "base+bandit")
    arm_shares, knob_shares = _arm_shares(counts, sections_config)
    best_fixed: dict[str, list[str]] = {}
    for r in results:
        for section, best in r.best_fixed_arms.items():
            best_fixed.setdefault(section, []).append(best.id)
    return BanditKnobs(
        by_section={group: _bandit_group(table, group) for group in groups},
        arm_shares=arm_shares,
        knob_shares=knob_shares,
        best_fixed_arms={s: tuple(ids) for s, ids in best_fixed.items()},
        freshness_zero_share=_knob_value_share(counts, sections_config, "freshness.weight", 0.0),
    )


def _knob_value_share(
    counts: pd.DataFrame, sections_config: SectionsConfig, knob: str, value: float
) -> dict[str, float]:
    """Per section (and over every request of the sections that have the knob, ``"all"``): the share of the
    bandit's requests served with ``knob == value``."""
    hits: dict[str, float] = {}
    totals: dict[str, float] = {}
    for section, part in counts.groupby("section"):
        cfg = sections_config[str(section)]
        if knob not in cfg.knob_names:
            continue
        chosen = np.array([cfg.arms[int(a)].knobs[knob] == value for a in part["arm"]], dtype=bool)
        hits[str(section)] = float(part["count"][chosen].sum())
        totals[str(section)] = float(part["count"].sum())
    out = {s: hits[s] / totals[s] for s in hits if totals[s] > 0}
    if totals:
        out[ALL] = sum(hits.values()) / max(sum(totals.values()), 1.0)
    return out


def _replay_row(policy: str, section: str, estimator: str, part: pd.DataFrame) -> ReplayRow:
    """A (policy, section, estimator) group of every seed's replay estimates, against the truth."""
    return ReplayRow(
        policy=policy,
        section=section,
        estimator=estimator,
        estimate=interval(part["value"]),
        truth=interval(part["truth"]),
        relative_error=interval(part["relative_error"]),
        abs_relative_error=float(part["relative_error"].abs().mean()),
        coverage=float(part["covers"].mean()),
        n=float(part["n"].mean()),
        per_seed=tuple(
            ReplaySeed(
                seed=int(r["seed"]),
                value=float(r["value"]),
                ci_low=float(r["ci_low"]),
                ci_high=float(r["ci_high"]),
                truth=float(r["truth"]),
            )
            for r in part[["seed", "value", "ci_low", "ci_high", "truth"]].to_dict("records")
        ),
    )


def _replay(results: Sequence[SeedResult], settings: CompareSettings) -> ReplayAccuracy:
    """Question 6: replay estimates against the exact truth, per policy, section and estimator."""
    frame = pd.DataFrame([{**asdict(row), "seed": r.seed} for r in results for row in r.replay])
    rows = []
    if len(frame):
        frame["relative_error"] = (frame["value"] - frame["truth"]) / frame["truth"]
        frame["covers"] = (frame["ci_low"] <= frame["truth"]) & (frame["truth"] <= frame["ci_high"])
        groups = frame.groupby(["policy", "section", "estimator"], sort=False)
        rows = [_replay_row(str(p), str(s), str(e), part) for (p, s, e), part in groups]
    by_estimator = {}
    for estimator in settings.estimators:
        mine = [r for r in rows if r.estimator == estimator and r.section != ALL]
        if mine:
            by_estimator[estimator] = EstimatorAccuracy(
                abs_relative_error=float(np.mean([r.abs_relative_error for r in mine])),
                coverage=float(np.mean([r.coverage for r in mine])),
            )
    return ReplayAccuracy(policies=dict(REPLAY_POLICIES), rows=tuple(rows), by_estimator=by_estimator)


def _costs(results: Sequence[SeedResult]) -> dict[str, CostSummary]:
    """Models, artifacts, training seconds and artifact bytes of each strategy (means over seeds)."""
    out = {}
    for name in sorted({name for r in results for name in r.costs}):
        rows = [r.costs[name] for r in results if name in r.costs]
        out[name] = CostSummary(
            models=int(rows[0].models),
            artifacts=int(rows[0].artifacts),
            train_seconds=interval(r.train_seconds for r in rows),
            artifact_bytes=float(np.mean([r.artifact_bytes for r in rows])),
        )
    return out
