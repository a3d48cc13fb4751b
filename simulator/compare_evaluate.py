"""Evaluating a comparison seed's strategies on common fresh requests of the test window's period.

`sample_window` draws the fresh requests; `build_strategies` lists every strategy of the comparison from the
trained designs, the curve's models and the knob policies; `evaluate` serves each through the pipeline on the
same `EvalSet` (`simulator.strategies.StrategyRunner`) and records its metrics (`simulator.compare_record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from heuristics import SectionsConfig
from ranker.rerank.items import ItemAttributes
from simulator.compare_knobs import KnobPolicies
from simulator.compare_record import record_run
from simulator.compare_seed import ArmCount, MetricMean
from simulator.compare_settings import curve_strategy, union_strategy
from simulator.compare_train import CurveModels, TrainedDesigns
from simulator.errors import CompareInputError
from simulator.records import RequestBatch
from simulator.strategies import EvalSet, Strategy, StrategyRunner
from simulator.world import World


def sample_window(
    world: World, n: int, rng: np.random.Generator, since: float, until: float | None = None
) -> RequestBatch:
    """n fresh requests with times drawn as `World.sample_times` does, within ``[since, until)``."""
    until = world.config.end_time if until is None else until
    if not since < until:
        raise CompareInputError(f"Expected a non-empty time window, found [{since}, {until})")
    kept: list[np.ndarray] = []
    have = 0
    while have < n:
        times = world.sample_times(4 * n + 100, rng)
        times = times[(times >= since) & (times < until)]
        kept.append(times)
        have += len(times)
    pool = np.concatenate(kept)
    times = np.sort(rng.choice(pool, size=n, replace=False))
    return world.sample_requests(n, rng, times=times)


def _curve_strategies(designs: TrainedDesigns, curve: CurveModels, sections: Sequence[str]) -> list[Strategy]:
    """Both designs at each share below 1 of the curve section's data, evaluated on that section only."""
    independent = {s: t.model for s, t in designs.independent.items()}
    strategies = []
    for share, pair in curve.models.items():
        if share >= 1.0:
            continue
        strategies.append(
            Strategy(
                curve_strategy("consolidated", share),
                rankers={s: pair["consolidated"].model for s in sections},
                sections=(curve.section,),
            )
        )
        strategies.append(
            Strategy(
                curve_strategy("independent", share),
                rankers={**independent, curve.section: pair["independent"].model},
                sections=(curve.section,),
            )
        )
    return strategies


def build_strategies(
    designs: TrainedDesigns, curve: CurveModels, policies: KnobPolicies, sections: Sequence[str]
) -> list[Strategy]:
    """Every strategy of the comparison: the bounds, the designs with their knob policies, the consolidated
    model with each union, and the curve's models."""
    base = designs.base_rankers()
    strategies = [
        Strategy("random", bound="random"),
        Strategy("oracle", bound="oracle"),
        Strategy("independent", rankers={s: t.model for s, t in designs.independent.items()}),
        Strategy("base", rankers=base),
        Strategy("base+default", rankers=base, policy=policies.default),
        Strategy("base+best_fixed", rankers=base, policy=policies.best_fixed),
        Strategy("base+bandit", rankers=base, policy=policies.bandit),
    ]
    if policies.best_fixed_logged is not None:
        strategies.append(Strategy("base+best_fixed_logged", rankers=base, policy=policies.best_fixed_logged))
    if policies.context_oracle is not None:
        strategies.append(Strategy("base+context_oracle", rankers=base, policy=policies.context_oracle))
    strategies += [Strategy(name, rankers=base, policy=p) for name, p in policies.curve.items()]
    for union, trained in designs.consolidated.items():
        rankers = {s: trained.model for s in sections}
        strategies.append(Strategy(union_strategy(union), rankers=rankers))
        if union == "traffic":
            strategies.append(Strategy("consolidated+bandit", rankers=rankers, policy=policies.bandit))
    return strategies + _curve_strategies(designs, curve, sections)


@dataclass(frozen=True)
class Evaluation:
    """Every strategy's per-seed metric means and knob arm counts on the evaluation requests."""

    metrics: tuple[MetricMean, ...]
    arm_counts: tuple[ArmCount, ...]


def evaluate(
    world: World,
    requests: RequestBatch,
    sections: SectionsConfig,
    items: ItemAttributes,
    strategies: Sequence[Strategy],
    seed: int,
) -> Evaluation:
    """Serve every strategy on the same `requests`, in order, and record what each served."""
    eval_set = EvalSet.build(world, requests, sections)
    runner = StrategyRunner(eval_set, sections, items, seed)
    metrics: list[MetricMean] = []
    arm_counts: list[ArmCount] = []
    for strategy in strategies:
        record = record_run(world, eval_set, runner.run(strategy))
        metrics += record.metrics
        arm_counts += record.arm_counts
    return Evaluation(metrics=tuple(metrics), arm_counts=tuple(arm_counts))
