"""Recording what a strategy served: per-seed means of its slates' metrics, and the knob arms it chose.

`record_run` values a `simulator.strategies.StrategyRun` on its evaluation requests (`slate_metrics`,
`coverage`) and returns its `MetricMean` rows (per section and over every request, per user segment and over
every segment) and, for the strategies of `POLICY_STRATEGIES`, its `ArmCount` rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.compare_seed import ArmCount, MetricMean
from simulator.compare_settings import ALL, POLICY_STRATEGIES, PRIMARY
from simulator.strategies import SLATE_METRICS, EvalSet, StrategyRun, coverage, slate_metrics
from simulator.world import World


@dataclass(frozen=True)
class RunRecord:
    """The rows a strategy's run adds to its seed's result."""

    metrics: tuple[MetricMean, ...]
    arm_counts: tuple[ArmCount, ...]


def _overall_coverage(world: World, eval_set: EvalSet, run: StrategyRun) -> float:
    """Share of the catalog shown at least once over every section's slates."""
    shown = [
        np.take_along_axis(eval_set.part(s)[0].candidates, order, axis=1).ravel()
        for s, order in run.order.items()
    ]
    return float(np.unique(np.concatenate(shown)).size / world.n_items)


def _group_rows(
    name: str, group: str, values: Mapping[str, np.ndarray], segment: np.ndarray
) -> list[MetricMean]:
    """Means of every slate metric over a group's requests, and of the primary metric per user segment.

    `values` maps each metric to its (m,) per-request values; `segment` is the (m,) user segment of each.
    """
    rows = [
        MetricMean(name, group, ALL, metric, float(values[metric].mean()), len(values[metric]))
        for metric in SLATE_METRICS
    ]
    for label in np.unique(segment).tolist():
        mask = segment == label
        rows.append(
            MetricMean(name, group, str(label), PRIMARY, float(values[PRIMARY][mask].mean()), int(mask.sum()))
        )
    return rows


def _arm_rows(run: StrategyRun, segments: Mapping[str, np.ndarray]) -> list[ArmCount]:
    """How many requests of each section and user segment the run served with each arm."""
    if run.arm_index is None or run.name not in POLICY_STRATEGIES:
        return []
    rows = []
    for section, arms in run.arm_index.items():
        frame = pd.DataFrame({"segment": segments[section], "arm": arms})
        counts = frame.value_counts().reset_index(name="count")
        rows += [
            ArmCount(run.name, section, str(r["segment"]), int(r["arm"]), int(r["count"]))
            for r in counts.to_dict("records")
        ]
    return rows


def record_run(world: World, eval_set: EvalSet, run: StrategyRun) -> RunRecord:
    """Per-seed means of a strategy's slates: per section and overall, per segment and overall.

    The overall group (``"all"``) is recorded when the run covers every section of the evaluation requests
    and there is more than one.
    """
    per_section: dict[str, dict[str, np.ndarray]] = {}
    segments: dict[str, np.ndarray] = {}
    metrics: list[MetricMean] = []
    for section, order in run.order.items():
        part, _ = eval_set.part(section)
        per_section[section] = slate_metrics(world, part, order, eval_set.relevance[section])
        segments[section] = part.segment
        metrics.append(
            MetricMean(run.name, section, ALL, "coverage", coverage(world, part, order), len(part))
        )
    groups = dict(per_section)
    if set(run.order) == set(eval_set.rows) and len(run.order) > 1:
        groups[ALL] = {m: np.concatenate([v[m] for v in per_section.values()]) for m in SLATE_METRICS}
        segments[ALL] = np.concatenate([segments[s] for s in per_section])
        value = _overall_coverage(world, eval_set, run)
        metrics.append(MetricMean(run.name, ALL, ALL, "coverage", value, len(segments[ALL])))
    for group, values in groups.items():
        metrics += _group_rows(run.name, group, values, segments[group])
    return RunRecord(metrics=tuple(metrics), arm_counts=tuple(_arm_rows(run, segments)))
