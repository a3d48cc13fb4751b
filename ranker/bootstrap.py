"""Percentile bootstrap intervals for the mean of per-list metric values, drawn in vectorised chunks.

`bootstrap_ci` gives one interval; `bootstrap_means` and `column_intervals` give one per column of a
(lists, metrics) matrix from the same draws, as `ranker.metrics.evaluate_lists` uses them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ranker.errors import MetricInputError
from ranker.metric_checks import as_1d_float, check_bootstrap_options, check_seed

# Bootstrap resamples are drawn in chunks of about this many (replicate, list) cells.
_BOOTSTRAP_CELLS = 1 << 21


@dataclass(frozen=True)
class ConfidenceInterval:
    """A percentile bootstrap interval for the mean of per-list values.

    Attributes
    ----------
    mean : float
        Mean of the values that are not NaN (NaN when there are none).
    low, high : float
        The ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the bootstrap means.
    n : int
        Number of values that are not NaN.
    n_bootstrap : int
    alpha : float
    """

    mean: float
    low: float
    high: float
    n: int
    n_bootstrap: int
    alpha: float


def bootstrap_means(
    values: np.ndarray, clusters: np.ndarray | None, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """(n_bootstrap, M) bootstrap means of the columns of `values` (n, M), NaN-aware.

    Clusters (n,) (default: each row its own) are drawn with replacement, as many as there are clusters; a
    replicate's mean is the sum of the drawn clusters' non-NaN values over their count. Every column uses the
    same draws. A column whose drawn values are all NaN gets NaN in that replicate.
    """
    defined = ~np.isnan(values)
    filled = np.where(defined, values, 0.0)
    if clusters is None:
        sums, counts = filled, defined.astype(np.float64)
    else:
        _, codes = np.unique(clusters, return_inverse=True)
        codes = codes.reshape(-1)
        n_clusters = int(codes.max()) + 1
        sums = np.zeros((n_clusters, values.shape[1]))
        counts = np.zeros((n_clusters, values.shape[1]))
        np.add.at(sums, codes, filled)
        np.add.at(counts, codes, defined.astype(np.float64))
    n_units = sums.shape[0]
    means = np.empty((n_bootstrap, values.shape[1]))
    chunk = max(1, _BOOTSTRAP_CELLS // n_units)
    for first in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - first)
        draws = rng.integers(0, n_units, size=(b, n_units))
        draws += (np.arange(b) * n_units)[:, None]
        weights = np.bincount(draws.ravel(), minlength=b * n_units).reshape(b, n_units).astype(np.float64)
        totals = weights @ sums
        numbers = weights @ counts
        means[first : first + b] = np.divide(
            totals, numbers, out=np.full_like(totals, np.nan), where=numbers > 0
        )
    return means


def column_intervals(
    values: np.ndarray, means: np.ndarray, n_bootstrap: int, alpha: float
) -> list[ConfidenceInterval]:
    """One interval per column of `values` (n, M) from its bootstrap means (n_bootstrap, M)."""
    out = []
    for j in range(values.shape[1]):
        column = values[:, j]
        defined = column[~np.isnan(column)]
        boot = means[:, j]
        boot = boot[~np.isnan(boot)]
        if defined.size == 0 or boot.size == 0:
            low = high = mean = float("nan")
        else:
            mean = float(defined.mean())
            low, high = (float(q) for q in np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0]))
        out.append(
            ConfidenceInterval(
                mean=mean, low=low, high=high, n=int(defined.size), n_bootstrap=n_bootstrap, alpha=alpha
            )
        )
    return out


def bootstrap_ci(
    per_list_values: object,
    *,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int | np.random.Generator = 0,
    groups: object | None = None,
) -> ConfidenceInterval:
    """Percentile bootstrap interval for the mean of per-list metric values.

    Each replicate draws n units with replacement, where the units are the lists (or, with `groups`, the
    clusters of lists, e.g. users, to respect their correlation) and n is their number, NaN ones included,
    and takes the mean of the drawn values that are not NaN (a replicate that drew only NaN is left out).
    The interval is the ``alpha / 2`` and ``1 - alpha / 2`` quantiles of the replicate means. Replicates
    are drawn in vectorised chunks; the same seed gives the same interval.

    Parameters
    ----------
    per_list_values : (n,) array of float
        One value per list, e.g. ``MetricResult.values``; NaN values are left out.
    n_bootstrap : int, default 1000
        Number of replicates, >= 1.
    alpha : float, default 0.05
        One minus the coverage, in (0, 1).
    seed : int or np.random.Generator, default 0
    groups : (n,) array, optional
        The cluster of each list; clusters are resampled whole and a replicate's mean is the sum of its
        clusters' non-NaN values over their count.

    Returns
    -------
    ConfidenceInterval
        NaN mean and bounds when no value is defined.
    """
    values = as_1d_float("per_list_values", per_list_values)
    check_bootstrap_options(n_bootstrap, alpha)
    rng = check_seed(seed)
    clusters = None
    if groups is not None:
        clusters = np.asarray(groups)
        if clusters.shape != values.shape:
            raise MetricInputError(
                f"Expected `groups` of shape {values.shape} (as `per_list_values`), found {clusters.shape}"
            )
    if values.size == 0:
        means = np.empty((0, 1))
    else:
        means = bootstrap_means(values[:, None], clusters, int(n_bootstrap), rng)
    return column_intervals(values[:, None], means, int(n_bootstrap), float(alpha))[0]
