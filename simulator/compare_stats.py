"""Intervals over seeds, paired comparisons and the comparison's machine-readable conclusions.

Every number of the report is a mean over seeds with a 95% Student-t interval over the per-seed means
(``mean ± t(0.975, S - 1) * sd / sqrt(S)`` for S seeds). Each seed draws its own world, log and evaluation
requests, so the interval covers all of that variation. Two strategies are compared *paired*: they serve the
same evaluation requests in each seed, so the interval is taken over the S per-seed differences, which is much
tighter than comparing two marginal intervals. A difference is ``better`` when its interval lies above 0,
``worse`` when below, and ``tie`` (no significant difference) otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from heuristics import SectionsConfig
from simulator.compare_run import (
    ALL,
    MAIN_STRATEGIES,
    REPLAY_POLICIES,
    SeedResult,
    curve_strategy,
    union_strategy,
)
from simulator.compare_settings import PRIMARY, CompareSettings
from simulator.strategies import SLATE_METRICS

#: Two-sided 95% quantiles t(0.975, df) of Student's t for df = 1..30.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054
#: Strategies compared for Simpson-style reversals: the designs, without the bounds.
DESIGN_STRATEGIES = tuple(s for s in MAIN_STRATEGIES if s not in ("random", "oracle"))
BETTER, WORSE, TIE = "better", "worse", "tie"


def t_quantile(df: int) -> float:
    """t(0.975, df): exact table to df = 30, then the Cornish-Fisher expansion (error < 1e-4)."""
    if df < 1:
        raise ValueError(f"Expected `df` >= 1, found {df}")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval(values: Iterable[float]) -> dict[str, Any]:
    """Mean and 95% t-interval of per-seed values.

    Returns
    -------
    dict
        ``mean, low, high, n`` and ``per_seed`` (the values); ``low``/``high`` are NaN for fewer than two
        values, and equal the mean when every value is the same.
    """
    data = np.asarray(list(values), dtype=np.float64)
    data = data[np.isfinite(data)]
    n = int(data.size)
    if n == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0, "per_seed": []}
    mean = float(data.mean())
    if n < 2:
        low = high = math.nan
    else:
        half = t_quantile(n - 1) * float(data.std(ddof=1)) / math.sqrt(n)
        low, high = mean - half, mean + half
    return {"mean": mean, "low": low, "high": high, "n": n, "per_seed": [float(v) for v in data]}


def verdict(diff: Mapping[str, Any]) -> str:
    """``better`` when the interval of a difference lies above 0, ``worse`` below, else ``tie``."""
    if diff["low"] > 0:
        return BETTER
    if diff["high"] < 0:
        return WORSE
    return TIE


class SeedTable:
    """The per-seed means of every seed, looked up by strategy, section, segment and metric."""

    def __init__(self, results: Sequence[SeedResult]) -> None:
        self.seeds = [r.seed for r in results]
        frame = pd.DataFrame([{**row, "seed": r.seed} for r in results for row in r.metrics])
        self._values: dict[tuple[str, str, str, str], dict[int, float]] = {}
        for row in frame.itertuples(index=False):
            key = (row.strategy, row.section, row.segment, row.metric)
            self._values.setdefault(key, {})[int(row.seed)] = float(row.value)

    def values(self, strategy: str, section: str, metric: str, segment: str = ALL) -> np.ndarray:
        """(S,) per-seed means, NaN where a seed has none."""
        found = self._values.get((strategy, section, segment, metric), {})
        return np.array([found.get(seed, math.nan) for seed in self.seeds])

    def has(self, strategy: str, section: str, metric: str, segment: str = ALL) -> bool:
        return (strategy, section, segment, metric) in self._values

    def summary(self, strategy: str, section: str, metric: str, segment: str = ALL) -> dict[str, Any]:
        return interval(self.values(strategy, section, metric, segment))

    def diff(self, a: str, b: str, section: str, metric: str = PRIMARY, segment: str = ALL) -> dict[str, Any]:
        """Paired difference a - b over seeds, with its verdict."""
        out = interval(self.values(a, section, metric, segment) - self.values(b, section, metric, segment))
        out["verdict"] = verdict(out) if out["n"] >= 2 else TIE
        return out

    def strategies(self) -> list[str]:
        return sorted({key[0] for key in self._values})

    def segments(self, section: str) -> list[str]:
        return sorted({key[2] for key in self._values if key[1] == section and key[2] != ALL})


def summarize(
    results: Sequence[SeedResult],
    settings: CompareSettings,
    sections_config: SectionsConfig,
    *,
    sections: Sequence[str],
    curve_section: str,
) -> dict[str, Any]:
    """Everything the report shows, from the seeds' results: metrics with intervals and the answers."""
    table = SeedTable(results)
    groups = [*sections, ALL]
    strategies = table.strategies()
    metrics: dict[str, dict[str, dict[str, Any]]] = {}
    for strategy in strategies:
        metrics[strategy] = {}
        for group in groups:
            cells = {
                metric: table.summary(strategy, group, metric)
                for metric in (*SLATE_METRICS, "coverage")
                if table.has(strategy, group, metric)
            }
            if cells:
                metrics[strategy][group] = cells
    out = {
        "metrics": metrics,
        "headline": _headline(table, groups),
        "designs": _designs(table, groups),
        "cross_learning": _cross_learning(table, results, settings, sections, curve_section),
        "reversals": _reversals(table, sections),
        "stratification": _stratification(table, results, settings, groups),
        "bandit": _bandit(table, results, sections_config, groups),
        "replay": _replay(results, settings),
        "costs": _costs(results),
    }
    out["conclusions"] = conclusions(out, sections)
    return out


def conclusions(summary: Mapping[str, Any], sections: Sequence[str]) -> dict[str, Any]:
    """The answers in a few machine-readable fields (verdicts as in `verdict`; lists of sections)."""
    first = summary["designs"]["pairs"][0]["by_section"]
    split = {v: [s for s in sections if first[s]["verdict"] == v] for v in (BETTER, WORSE, TIE)}
    cross = summary["cross_learning"]
    bandit = summary["bandit"]["by_section"][ALL]
    replay = summary["replay"]["by_estimator"]
    return {
        "consolidated_vs_base_bandit": {
            "overall": first[ALL]["verdict"],
            **{f"{k}_in": v for k, v in split.items()},
        },
        "cross_learning_gain": cross["any_gain"],
        "cross_learning_gain_sections": cross["gain_sections"],
        "cross_learning_gain_shares": cross["gain_shares"],
        "reversals": len(summary["reversals"]["flagged"]),
        "bandit_vs_best_fixed": bandit["vs_best_fixed"]["verdict"],
        "bandit_vs_default": bandit["vs_default"]["verdict"],
        "bandit_gain_over_best_fixed": {k: bandit["vs_best_fixed"][k] for k in ("mean", "low", "high")},
        "freshness_zero_share": summary["bandit"]["freshness_zero_share"].get(ALL),
        "closest_replay_estimator": min(replay, key=lambda e: replay[e]["abs_relative_error"])
        if replay
        else None,
    }


def _headline(table: SeedTable, groups: Sequence[str]) -> dict[str, Any]:
    """Clicks per request of every main strategy, per section and overall."""
    return {
        "metric": PRIMARY,
        "strategies": list(MAIN_STRATEGIES),
        "rows": {g: {s: table.summary(s, g, PRIMARY) for s in MAIN_STRATEGIES} for g in groups},
    }


def _designs(table: SeedTable, groups: Sequence[str]) -> dict[str, Any]:
    """Question 1: the consolidated model against the base ranker with bandit-tuned heuristics."""
    pairs = [
        ("consolidated", "base+bandit"),
        ("consolidated", "base+best_fixed"),
        ("consolidated+bandit", "base+bandit"),
        ("consolidated+bandit", "consolidated"),
    ]
    return {
        "pairs": [{"a": a, "b": b, "by_section": {g: table.diff(a, b, g) for g in groups}} for a, b in pairs]
    }


def _cross_learning(
    table: SeedTable,
    results: Sequence[SeedResult],
    settings: CompareSettings,
    sections: Sequence[str],
    curve_section: str,
) -> dict[str, Any]:
    """Question 2: consolidated against independent per section, and along the curve section's data."""
    by_section = {s: table.diff("consolidated", "independent", s) for s in sections}
    lists = pd.DataFrame([row for r in results for row in r.curve])
    curve = []
    for share in settings.curve_shares:
        point: dict[str, Any] = {"share": share}
        names = {d: curve_strategy(d, share) for d in ("consolidated", "independent")}
        for design, name in names.items():
            point[design] = {m: table.summary(name, curve_section, m) for m in (PRIMARY, "ndcg")}
            mine = lists[(lists["share"] == share) & (lists["design"] == design)]["lists"]
            point.setdefault("lists", float(mine.mean()) if len(mine) else math.nan)
        point["gain"] = table.diff(names["consolidated"], names["independent"], curve_section)
        point["gain_ndcg"] = table.diff(names["consolidated"], names["independent"], curve_section, "ndcg")
        curve.append(point)
    gain_sections = [s for s, d in by_section.items() if d["verdict"] == BETTER]
    loss_sections = [s for s, d in by_section.items() if d["verdict"] == WORSE]
    gain_shares = [p["share"] for p in curve if p["gain"]["verdict"] == BETTER]
    return {
        "section": curve_section,
        "by_section": by_section,
        "curve": curve,
        "gain_sections": gain_sections,
        "loss_sections": loss_sections,
        "gain_shares": gain_shares,
        "any_gain": bool(gain_sections or gain_shares),
    }


def _reversals(table: SeedTable, sections: Sequence[str]) -> dict[str, Any]:
    """Question 3: every pair of designs whose overall winner loses significantly in a section.

    The overall winner of a pair is the one with the higher mean clicks per request over every request; a
    reversal is a section where the winner's paired difference to the loser lies entirely below 0.
    """
    flagged = []
    checked = 0
    for a, b in combinations(DESIGN_STRATEGIES, 2):
        overall = table.diff(a, b, ALL)
        if not math.isfinite(overall["mean"]):
            continue
        winner, loser = (a, b) if overall["mean"] >= 0 else (b, a)
        overall = table.diff(winner, loser, ALL)
        for section in sections:
            checked += 1
            diff = table.diff(winner, loser, section)
            if diff["verdict"] == WORSE:
                flagged.append(
                    {
                        "winner": winner,
                        "loser": loser,
                        "section": section,
                        "overall": overall,
                        "overall_significant": overall["verdict"] == BETTER,
                        "section_diff": diff,
                    }
                )
    return {
        "rule": (
            "For every pair of design strategies, the overall winner (higher mean clicks per request over "
            "all "
            "requests) is flagged in each section where its paired 95% interval of the difference lies "
            "entirely below 0."
        ),
        "pairs_checked": checked,
        "flagged": flagged,
    }


def _stratification(
    table: SeedTable, results: Sequence[SeedResult], settings: CompareSettings, groups: Sequence[str]
) -> dict[str, Any]:
    """Question 4: the consolidated model trained with each union strategy, per section."""
    unions = {}
    for union in settings.unions:
        name = union_strategy(union)
        lists = pd.DataFrame(
            [{"section": s, "lists": n} for r in results for s, n in r.training_lists.get(name, {}).items()]
        )
        unions[union] = {
            "strategy": name,
            "clicks": {g: table.summary(name, g, PRIMARY) for g in groups},
            "vs_traffic": {g: table.diff(name, "consolidated", g) for g in groups}
            if union != "traffic"
            else None,
            "training_lists": (
                {str(k): float(v) for k, v in lists.groupby("section")["lists"].mean().items()}
                if len(lists)
                else {}
            ),
        }
    return {"unions": unions}


def _bandit(
    table: SeedTable, results: Sequence[SeedResult], sections_config: SectionsConfig, groups: Sequence[str]
) -> dict[str, Any]:
    """Question 5: bandit knobs against the best fixed arm and the default arm, per section and segment, and
    the arms the bandit chose."""
    out: dict[str, Any] = {"by_section": {}, "arm_shares": {}, "knob_shares": {}, "best_fixed_arms": {}}
    for group in groups:
        row: dict[str, Any] = {
            "vs_best_fixed": table.diff("base+bandit", "base+best_fixed", group),
            "vs_default": table.diff("base+bandit", "base+default", group),
            "by_segment": {},
        }
        for segment in table.segments(group):
            row["by_segment"][segment] = {
                "vs_best_fixed": table.diff("base+bandit", "base+best_fixed", group, segment=segment),
                "vs_default": table.diff("base+bandit", "base+default", group, segment=segment),
            }
        out["by_section"][group] = row
    counts = pd.DataFrame(
        [row for r in results for row in r.arm_counts if row["strategy"] == "base+bandit"],
        columns=["strategy", "section", "segment", "arm", "count"],
    )
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
        out["arm_shares"][str(section)] = shares
        out["knob_shares"][str(section)] = knobs
    for r in results:
        for section, best in r.best_fixed_arms.items():
            out["best_fixed_arms"].setdefault(section, []).append(best["id"])
    out["freshness_zero_share"] = _knob_value_share(counts, sections_config, "freshness.weight", 0.0)
    return out


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


def _replay(results: Sequence[SeedResult], settings: CompareSettings) -> dict[str, Any]:
    """Question 6: replay estimates against the exact truth, per policy, section and estimator."""
    frame = pd.DataFrame([{**row, "seed": r.seed} for r in results for row in r.replay])
    rows = []
    if len(frame):
        frame["relative_error"] = (frame["value"] - frame["truth"]) / frame["truth"]
        frame["covers"] = (frame["ci_low"] <= frame["truth"]) & (frame["truth"] <= frame["ci_high"])
        for (policy, section, estimator), part in frame.groupby(
            ["policy", "section", "estimator"], sort=False
        ):
            rows.append(
                {
                    "policy": policy,
                    "section": section,
                    "estimator": estimator,
                    "estimate": interval(part["value"]),
                    "truth": interval(part["truth"]),
                    "relative_error": interval(part["relative_error"]),
                    "abs_relative_error": float(part["relative_error"].abs().mean()),
                    "coverage": float(part["covers"].mean()),
                    "n": float(part["n"].mean()),
                    "per_seed": part[["seed", "value", "ci_low", "ci_high", "truth"]].to_dict("records"),
                }
            )
    by_estimator = {}
    for estimator in settings.estimators:
        mine = [r for r in rows if r["estimator"] == estimator and r["section"] != ALL]
        if mine:
            by_estimator[estimator] = {
                "abs_relative_error": float(np.mean([r["abs_relative_error"] for r in mine])),
                "coverage": float(np.mean([r["coverage"] for r in mine])),
            }
    return {"policies": dict(REPLAY_POLICIES), "rows": rows, "by_estimator": by_estimator}


def _costs(results: Sequence[SeedResult]) -> dict[str, Any]:
    """Models, artifacts, training seconds and artifact bytes of each strategy (means over seeds)."""
    out: dict[str, Any] = {}
    names = sorted({name for r in results for name in r.costs})
    for name in names:
        rows = [r.costs[name] for r in results if name in r.costs]
        out[name] = {
            "models": int(rows[0]["models"]),
            "artifacts": int(rows[0]["artifacts"]),
            "train_seconds": interval(r["train_seconds"] for r in rows),
            "artifact_bytes": float(np.mean([r["artifact_bytes"] for r in rows])),
        }
    return out
