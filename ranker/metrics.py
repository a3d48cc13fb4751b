"""Ranking metrics over many lists at once, with bootstrap confidence intervals: the public entry point.

Every metric takes one flat array of labels (N,), one of scores (N,) and the list each row belongs to, given
either as list ids (N,) or as LightGBM-style group sizes (G,) of consecutive rows. It returns a
`MetricResult` with one value per list (so that values can be bootstrapped and split by section) and their
mean. Lists are sorted by score in one `np.lexsort` over all rows; nothing loops over lists in Python.

Conventions (docs/ranker-metrics.md gives the formulas):

- A row is *relevant* when its label is > 0; labels are graded (any finite number >= 0) for NDCG and
  binarised for MAP, recall and AUC.
- Ranks start at 1 for the highest score. Tied scores keep the input order of the rows (``ties="stable"``);
  NDCG and recall can instead average over every order of the tied rows (``ties="average"``).
- A list without relevant rows has NDCG 0 (or NaN with ``ignore_empty=True``) and NaN for MAP, recall and
  AUC; a list whose rows are all relevant has NaN AUC. Means ignore NaN.

The per-list metrics live in `ranker.list_metrics`, the bootstrap in `ranker.bootstrap` and the input checks
in `ranker.metric_checks`; this module re-exports their public names and combines them in `evaluate_lists`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ranker.bootstrap import ConfidenceInterval, bootstrap_ci, bootstrap_means, column_intervals
from ranker.errors import MetricInputError
from ranker.list_metrics import (
    Gain,
    MetricResult,
    RankedLists,
    Ties,
    auc,
    map_at_k,
    ndcg_at_k,
    recall_at_k,
)
from ranker.metric_checks import (
    check_bootstrap_options,
    check_choice,
    check_k,
    check_seed,
    first_bad,
    py_value,
)

METRICS = ("ndcg", "map", "recall", "auc")
#: The `section` value of the rows of `evaluate_lists` that cover every list.
OVERALL = "(all)"


def _list_sections(lists: RankedLists, sections: object) -> tuple[np.ndarray, np.ndarray]:
    """(section of each list (G,), distinct sections in order of first appearance) from per-row sections (N,).

    The section must be constant within a list.
    """
    sec = np.asarray(sections)
    if sec.shape != (lists.list_of.size,):
        raise MetricInputError(
            f"Expected `sections` of shape ({lists.list_of.size},) (one per row), found shape {sec.shape}"
        )
    missing = np.asarray(pd.isna(sec), dtype=bool)
    if missing.any():
        raise MetricInputError(
            f"Expected `sections` without missing values, found one at row {first_bad(missing)}"
        )
    codes, names = pd.factorize(sec)
    codes = codes[lists.order]
    first = codes[lists.starts]
    mixed = codes != first[lists.list_of]
    if mixed.any():
        row = int(np.flatnonzero(mixed)[0])
        g = int(lists.list_of[row])
        raise MetricInputError(
            f"Expected one section per list in `sections`, found {py_value(names[first[g]])!r} and "
            f"{py_value(names[codes[row]])!r} in list {py_value(lists.list_ids[g])!r}"
        )
    names = np.asarray(names)
    return names[first], names


def evaluate_lists(
    labels: object,
    scores: object,
    group_ids: object | None = None,
    sections: object | None = None,
    *,
    group_sizes: object | None = None,
    k: int = 10,
    metrics: Sequence[str] = METRICS,
    gain: Gain = "exponential",
    ties: Ties = "stable",
    ignore_empty: bool = False,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int | np.random.Generator = 0,
) -> pd.DataFrame:
    """Each metric per section and over all lists, with percentile bootstrap intervals.

    Lists are sorted once and shared by every metric. Within one section (and overall) the metrics share
    their bootstrap draws, so their intervals come from the same resampled lists; every section draws from
    its own stream of the seed (``np.random.SeedSequence(seed).spawn``), so the rows of one section do not
    depend on which other sections are present.

    Parameters
    ----------
    labels, scores, group_ids, group_sizes, k, gain, ties, ignore_empty
        As in `ndcg_at_k`; `ties` applies to NDCG and recall (MAP always ranks ties in input order).
    sections : (N,) array, optional
        The section of each row; every list must lie in one section. Without it only the overall rows are
        returned.
    metrics : sequence of {"ndcg", "map", "recall", "auc"}
    n_bootstrap, alpha, seed
        As in `bootstrap_ci`.

    Returns
    -------
    pd.DataFrame
        One row per (section, metric): ``section`` (`OVERALL` for all lists, first; then sections in order of
        first appearance), ``metric`` (e.g. ``"ndcg@10"``), ``k`` (<NA> for AUC), ``mean``, ``ci_low``,
        ``ci_high``, ``n_lists`` (lists of the section), ``n_defined`` (lists whose value is not NaN).
    """
    metrics = tuple(metrics)
    for name in metrics:
        check_choice("metrics", name, METRICS)
    if not metrics or len(set(metrics)) != len(metrics):
        raise MetricInputError(f"Expected distinct, non-empty `metrics`, found {metrics!r}")
    k = check_k(k)
    check_bootstrap_options(n_bootstrap, alpha)
    if isinstance(seed, np.random.Generator):
        seed_source: np.random.SeedSequence | np.random.Generator = seed
    else:
        check_seed(seed)
        seed_source = np.random.SeedSequence(int(seed))
    lists = RankedLists.build(labels, scores, group_ids, group_sizes=group_sizes)

    results: list[MetricResult] = []
    for name in metrics:
        if name == "ndcg":
            results.append(ndcg_at_k(lists, k=k, gain=gain, ties=ties, ignore_empty=ignore_empty))
        elif name == "map":
            results.append(map_at_k(lists, k=k))
        elif name == "recall":
            results.append(recall_at_k(lists, k=k, ties=ties))
        else:
            results.append(auc(lists))
    values = np.column_stack([r.values for r in results]) if lists.n_lists else np.empty((0, len(results)))

    strata: list[tuple[str, np.ndarray]] = [(OVERALL, np.ones(lists.n_lists, dtype=bool))]
    if sections is not None:
        list_section, names = _list_sections(lists, sections)
        for name in names:
            strata.append((py_value(name), list_section == name))
    streams = seed_source.spawn(len(strata))

    rows = []
    for (section, mask), stream in zip(strata, streams, strict=True):
        sub = values[mask]
        rng = np.random.default_rng(stream) if isinstance(stream, np.random.SeedSequence) else stream
        if sub.shape[0]:
            means = bootstrap_means(sub, None, int(n_bootstrap), rng)
        else:
            means = np.empty((0, sub.shape[1]))
        intervals = column_intervals(sub, means, int(n_bootstrap), float(alpha))
        for result, ci in zip(results, intervals, strict=True):
            rows.append(
                {
                    "section": section,
                    "metric": result.metric,
                    "k": result.k,
                    "mean": ci.mean,
                    "ci_low": ci.low,
                    "ci_high": ci.high,
                    "n_lists": int(mask.sum()),
                    "n_defined": ci.n,
                }
            )
    frame = pd.DataFrame(
        rows, columns=["section", "metric", "k", "mean", "ci_low", "ci_high", "n_lists", "n_defined"]
    )
    frame["k"] = frame["k"].astype("Int64")
    return frame


__all__ = [
    "METRICS",
    "OVERALL",
    "ConfidenceInterval",
    "Gain",
    "MetricResult",
    "RankedLists",
    "Ties",
    "auc",
    "bootstrap_ci",
    "evaluate_lists",
    "map_at_k",
    "ndcg_at_k",
    "recall_at_k",
]
