"""Ranking metrics over many lists at once, with bootstrap confidence intervals.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from ranker.errors import MetricInputError

Gain = Literal["exponential", "linear"]
Ties = Literal["stable", "average"]

METRICS = ("ndcg", "map", "recall", "auc")
#: The `section` value of the rows of `evaluate_lists` that cover every list.
OVERALL = "(all)"

_GAINS = ("exponential", "linear")
_TIES = ("stable", "average")
# Bootstrap resamples are drawn in chunks of about this many (replicate, list) cells.
_BOOTSTRAP_CELLS = 1 << 21


@dataclass(frozen=True)
class MetricResult:
    """Per-list values of one metric and their mean.

    Attributes
    ----------
    metric : str
        The metric's name with its cutoff, e.g. ``"ndcg@10"``, or ``"auc"``.
    k : int or None
        The cutoff; None for AUC, which reads the whole list.
    list_ids : (G,) array
        The id of each list: the sorted distinct list ids, or 0..G-1 when lists were given by group sizes.
    values : (G,) float64
        The metric of each list, NaN where it is undefined (or excluded by ``ignore_empty``).
    mean : float
        Mean of the values that are not NaN; NaN when there are none.
    n_defined : int
        How many lists have a value that is not NaN.
    """

    metric: str
    k: int | None
    list_ids: np.ndarray
    values: np.ndarray
    mean: float
    n_defined: int

    @classmethod
    def from_values(
        cls, metric: str, k: int | None, list_ids: np.ndarray, values: np.ndarray
    ) -> MetricResult:
        defined = ~np.isnan(values)
        n_defined = int(defined.sum())
        mean = float(values[defined].mean()) if n_defined else float("nan")
        return cls(metric=metric, k=k, list_ids=list_ids, values=values, mean=mean, n_defined=n_defined)


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


# --------------------------------------------------------------------------------------------- validation


def _check_k(k: object) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise MetricInputError(f"Expected `k` to be an integer >= 1, found {_py(k)!r}")
    return int(k)


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        raise MetricInputError(f"Expected `{name}` in {', '.join(map(repr, choices))}, found {_py(value)!r}")


def _as_1d_float(name: str, values: object) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise MetricInputError(f"Expected `{name}` to hold numbers: {exc}") from None
    if arr.ndim != 1:
        raise MetricInputError(f"Expected `{name}` of shape (N,), found shape {arr.shape}")
    return arr


def _py(value: object) -> object:
    """A numpy scalar as the Python value, so that messages show ``-1.0`` rather than ``np.float64(-1.0)``."""
    return value.item() if isinstance(value, np.generic) else value


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_labels_scores(labels: object, scores: object) -> tuple[np.ndarray, np.ndarray]:
    y = _as_1d_float("labels", labels)
    s = _as_1d_float("scores", scores)
    if y.shape != s.shape:
        raise MetricInputError(
            f"Expected `labels` and `scores` of the same length, found {y.shape[0]} and {s.shape[0]}"
        )
    bad = ~np.isfinite(y)
    if bad.any():
        i = _first_bad(bad)
        raise MetricInputError(f"Expected finite `labels`, found {_py(y[i])!r} at row {i}")
    bad = y < 0
    if bad.any():
        i = _first_bad(bad)
        raise MetricInputError(f"Expected `labels` >= 0, found {_py(y[i])!r} at row {i}")
    bad = np.isnan(s)
    if bad.any():
        raise MetricInputError(f"Expected `scores` without NaN, found NaN at row {_first_bad(bad)}")
    return y, s


def _list_codes(
    n_rows: int, group_ids: object | None, group_sizes: object | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes (N,) in 0..G-1, list ids (G,), sizes (G,)) from list ids or group sizes."""
    if (group_ids is None) == (group_sizes is None):
        raise MetricInputError("Expected exactly one of `group_ids` and `group_sizes`")
    if group_sizes is not None:
        sizes = np.asarray(group_sizes)
        if sizes.ndim != 1:
            raise MetricInputError(f"Expected `group_sizes` of shape (G,), found shape {sizes.shape}")
        if sizes.size and not np.issubdtype(sizes.dtype, np.integer):
            raise MetricInputError(f"Expected integer `group_sizes`, found dtype {sizes.dtype}")
        sizes = sizes.astype(np.int64)
        bad = sizes < 1
        if bad.any():
            i = _first_bad(bad)
            raise MetricInputError(f"Expected `group_sizes` >= 1, found {_py(sizes[i])} at position {i}")
        if int(sizes.sum()) != n_rows:
            raise MetricInputError(
                f"Expected `group_sizes` to sum to the number of rows {n_rows}, found {int(sizes.sum())}"
            )
        codes = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
        return codes, np.arange(sizes.size, dtype=np.int64), sizes
    ids = np.asarray(group_ids)
    if ids.ndim != 1:
        raise MetricInputError(f"Expected `group_ids` of shape (N,), found shape {ids.shape}")
    if ids.shape[0] != n_rows:
        raise MetricInputError(f"Expected `group_ids` of length {n_rows} (as `labels`), found {ids.shape[0]}")
    missing = np.asarray(pd.isna(ids), dtype=bool)
    if missing.any():
        raise MetricInputError(
            f"Expected `group_ids` without missing values, found one at row {_first_bad(missing)}"
        )
    try:
        list_ids, codes = np.unique(ids, return_inverse=True)
    except TypeError as exc:
        raise MetricInputError(f"Expected sortable `group_ids` of one type: {exc}") from None
    codes = codes.reshape(-1).astype(np.int64)
    return codes, list_ids, np.bincount(codes, minlength=list_ids.size).astype(np.int64)


# ------------------------------------------------------------------------------------------- ranked lists


class RankedLists:
    """Rows grouped into lists and sorted by score within each list, computed once for several metrics.

    Rows are ordered by list, then by score descending; tied scores keep their input order (the sort is
    stable). Build one with `RankedLists.build`; the metric functions accept it in place of labels and scores.

    Attributes
    ----------
    list_ids : (G,) array
    sizes : (G,) int64
        Rows per list.
    list_of : (N,) int64
        The list (0..G-1) of each row, in ranked order.
    rank : (N,) int64
        0-based position of each row within its list, in ranked order.
    labels, scores : (N,) float64
        Labels and scores in ranked order.
    """

    def __init__(
        self,
        list_ids: np.ndarray,
        sizes: np.ndarray,
        codes: np.ndarray,
        labels: np.ndarray,
        scores: np.ndarray,
    ) -> None:
        order = np.lexsort((-scores, codes))
        starts = np.zeros(sizes.size, dtype=np.int64)
        np.cumsum(sizes[:-1], out=starts[1:])
        self.list_ids = list_ids
        self.sizes = sizes
        self.starts = starts
        self.order = order
        self.list_of = codes[order]
        self.rank = np.arange(codes.size, dtype=np.int64) - starts[self.list_of]
        self.labels = labels[order]
        self.scores = scores[order]

    @classmethod
    def build(
        cls,
        labels: object,
        scores: object,
        group_ids: object | None = None,
        *,
        group_sizes: object | None = None,
    ) -> RankedLists:
        """Validate the inputs and sort every list by score.

        Parameters
        ----------
        labels : (N,) array of float
            Graded relevance, finite and >= 0.
        scores : (N,) array of float
            Model scores, higher is better; no NaN.
        group_ids : (N,) array, optional
            The list of each row; rows of a list need not be consecutive.
        group_sizes : (G,) array of int, optional
            Sizes of consecutive lists, as LightGBM's ``group``. Give exactly one of the two.
        """
        y, s = _check_labels_scores(labels, scores)
        codes, list_ids, sizes = _list_codes(y.size, group_ids, group_sizes)
        return cls(list_ids, sizes, codes, y, s)

    @property
    def n_lists(self) -> int:
        return int(self.sizes.size)

    def per_list(self, weights: np.ndarray) -> np.ndarray:
        """Sum of `weights` (N,) over the rows of each list, (G,)."""
        return np.bincount(self.list_of, weights=weights, minlength=self.n_lists).astype(
            np.float64, copy=False
        )

    @cached_property
    def relevant(self) -> np.ndarray:
        """(N,) float64: 1 where the label is > 0, in ranked order."""
        return (self.labels > 0).astype(np.float64)

    @cached_property
    def n_relevant(self) -> np.ndarray:
        """(G,) float64: relevant rows per list."""
        return self.per_list(self.relevant)

    @cached_property
    def tie_block(self) -> np.ndarray:
        """(N,) int64: id of each run of equal scores within a list, in ranked order."""
        new = np.ones(self.list_of.size, dtype=bool)
        new[1:] = (self.list_of[1:] != self.list_of[:-1]) | (self.scores[1:] != self.scores[:-1])
        return np.cumsum(new) - 1

    def tie_average(self, values: np.ndarray) -> np.ndarray:
        """(N,) the mean of `values` (N,) over each row's run of tied scores."""
        block = self.tie_block
        sums = np.bincount(block, weights=values)
        counts = np.bincount(block)
        return (sums / counts)[block]

    @cached_property
    def ideal_labels(self) -> np.ndarray:
        """(N,) labels sorted descending within each list (lists in the same order as `labels`)."""
        codes = self.list_of
        return self.labels[np.lexsort((-self.labels, codes))]


def _ranked(
    labels: object | RankedLists, scores: object | None, group_ids: object | None, group_sizes: object | None
) -> RankedLists:
    if isinstance(labels, RankedLists):
        if scores is not None or group_ids is not None or group_sizes is not None:
            raise MetricInputError("Expected no `scores`, `group_ids` or `group_sizes` with a RankedLists")
        return labels
    if scores is None:
        raise MetricInputError("Expected `scores` of shape (N,), found None")
    return RankedLists.build(labels, scores, group_ids, group_sizes=group_sizes)


def _gains(labels: np.ndarray, gain: str) -> np.ndarray:
    return np.expm1(labels * np.log(2.0)) if gain == "exponential" else labels


def _discounts(rank: np.ndarray, k: int) -> np.ndarray:
    """1 / log2(rank + 1) for 1-based ranks up to k, 0 below the cutoff; `rank` is 0-based."""
    return np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)


# ------------------------------------------------------------------------------------------------ metrics


def ndcg_at_k(
    labels: object | RankedLists,
    scores: object | None = None,
    group_ids: object | None = None,
    *,
    group_sizes: object | None = None,
    k: int = 10,
    gain: Gain = "exponential",
    ties: Ties = "stable",
    ignore_empty: bool = False,
) -> MetricResult:
    r"""Normalised discounted cumulative gain at k of every list.

    .. math::

        \mathrm{DCG@k} = \sum_{r=1}^{\min(k, n)} \frac{g(\mathrm{rel}_r)}{\log_2(r + 1)}, \qquad
        \mathrm{NDCG@k} = \frac{\mathrm{DCG@k}}{\mathrm{IDCG@k}}

    where ``rel_r`` is the label at rank r (rank 1 = highest score), ``g(x) = 2**x - 1`` (``gain=
    "exponential"``) or ``g(x) = x`` (``gain="linear"``), and IDCG@k is the DCG@k of the same list sorted by
    label, so NDCG lies in [0, 1].

    Parameters
    ----------
    labels : (N,) array of float, or RankedLists
        Graded relevance, finite and >= 0. A `RankedLists` replaces labels, scores and the grouping.
    scores : (N,) array of float
        Scores, higher ranks first; no NaN.
    group_ids : (N,) array, optional
        The list of each row.
    group_sizes : (G,) array of int, optional
        Sizes of consecutive lists (LightGBM's ``group``); give this or `group_ids`.
    k : int, default 10
        Cutoff, >= 1; lists shorter than k use all their rows.
    gain : {"exponential", "linear"}
    ties : {"stable", "average"}
        ``"stable"``: tied scores are ranked in input order. ``"average"``: each row of a run of tied scores
        gets the run's mean gain, i.e. the expected DCG over every order of the tied rows. With
        ``gain="linear", ties="average"`` the values equal scikit-learn's ``ndcg_score(..., k=k)``
        (``ignore_ties=False``), which uses labels as gains.
    ignore_empty : bool, default False
        A list with IDCG@k = 0 (no label > 0) gets NDCG 0, as in scikit-learn; with True it gets NaN and is
        left out of the mean.

    Returns
    -------
    MetricResult
        ``values`` (G,) in [0, 1] (NaN only for lists left out by `ignore_empty`).
    """
    k = _check_k(k)
    _check_choice("gain", gain, _GAINS)
    _check_choice("ties", ties, _TIES)
    lists = _ranked(labels, scores, group_ids, group_sizes)
    gains = _gains(lists.labels, gain)
    if ties == "average":
        gains = lists.tie_average(gains)
    disc = _discounts(lists.rank, k)
    dcg = lists.per_list(gains * disc)
    idcg = lists.per_list(_gains(lists.ideal_labels, gain) * disc)
    empty = idcg <= 0
    values = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=~empty)
    if ignore_empty:
        values[empty] = np.nan
    return MetricResult.from_values(f"ndcg@{k}", k, lists.list_ids, values)


def map_at_k(
    labels: object | RankedLists,
    scores: object | None = None,
    group_ids: object | None = None,
    *,
    group_sizes: object | None = None,
    k: int = 10,
) -> MetricResult:
    r"""Average precision at k of every list (their mean is MAP@k).

    .. math::

        \mathrm{AP@k} = \frac{1}{\min(k, R)} \sum_{i=1}^{\min(k, n)} P@i \cdot \mathrm{rel}_i, \qquad
        P@i = \frac{1}{i} \sum_{j=1}^{i} \mathrm{rel}_j

    with binary relevance ``rel_i = [label_i > 0]`` at rank i and R the number of relevant rows in the whole
    list. The normaliser min(k, R) makes AP@k = 1 when the top min(k, R) rows are all relevant. Tied scores
    are ranked in input order.

    Parameters
    ----------
    labels, scores, group_ids, group_sizes, k
        As in `ndcg_at_k`.

    Returns
    -------
    MetricResult
        ``values`` (G,) in [0, 1]; NaN for a list with R = 0.
    """
    k = _check_k(k)
    lists = _ranked(labels, scores, group_ids, group_sizes)
    rel = lists.relevant
    cum = np.cumsum(rel)
    # Relevant rows at or above each row, within its list: subtract the running total before the list.
    before = np.concatenate(([0.0], cum))[lists.starts[lists.list_of]]
    precision = (cum - before) / (lists.rank + 1.0)
    hits = lists.per_list(np.where(lists.rank < k, precision * rel, 0.0))
    n_rel = lists.n_relevant
    norm = np.minimum(float(k), n_rel)
    values = np.divide(hits, norm, out=np.full_like(hits, np.nan), where=n_rel > 0)
    return MetricResult.from_values(f"map@{k}", k, lists.list_ids, values)


def recall_at_k(
    labels: object | RankedLists,
    scores: object | None = None,
    group_ids: object | None = None,
    *,
    group_sizes: object | None = None,
    k: int = 10,
    ties: Ties = "stable",
) -> MetricResult:
    r"""Recall at k of every list: the share of its relevant rows (label > 0) ranked in the top k.

    .. math:: \mathrm{recall@k} = \frac{1}{R} \sum_{i=1}^{\min(k, n)} \mathrm{rel}_i

    Parameters
    ----------
    labels, scores, group_ids, group_sizes, k
        As in `ndcg_at_k`.
    ties : {"stable", "average"}
        ``"stable"``: tied scores are ranked in input order. ``"average"``: the expected recall over every
        order of the tied rows (a run of ties that straddles the cutoff contributes its relevant share times
        the number of its positions above the cutoff).

    Returns
    -------
    MetricResult
        ``values`` (G,) in [0, 1]; NaN for a list with no relevant row.
    """
    k = _check_k(k)
    _check_choice("ties", ties, _TIES)
    lists = _ranked(labels, scores, group_ids, group_sizes)
    rel = lists.relevant
    if ties == "average":
        rel = lists.tie_average(rel)
    hits = lists.per_list(np.where(lists.rank < k, rel, 0.0))
    n_rel = lists.n_relevant
    values = np.divide(hits, n_rel, out=np.full_like(hits, np.nan), where=n_rel > 0)
    return MetricResult.from_values(f"recall@{k}", k, lists.list_ids, values)


def auc(
    labels: object | RankedLists,
    scores: object | None = None,
    group_ids: object | None = None,
    *,
    group_sizes: object | None = None,
) -> MetricResult:
    r"""Area under the ROC curve of every list.

    The probability that a relevant row (label > 0) of the list scores above a non-relevant one, tied pairs
    counting 1/2:

    .. math::

        \mathrm{AUC} = \frac{1}{R (n - R)} \sum_{i: \mathrm{rel}_i = 1} \sum_{j: \mathrm{rel}_j = 0}
        \left( [s_i > s_j] + \tfrac12 [s_i = s_j] \right)

    computed from mid-ranks (the Mann-Whitney U statistic). It reads every row of the list, so it has no k.

    Parameters
    ----------
    labels, scores, group_ids, group_sizes
        As in `ndcg_at_k`.

    Returns
    -------
    MetricResult
        ``values`` (G,) in [0, 1]; NaN for a list with only relevant or only non-relevant rows.
    """
    lists = _ranked(labels, scores, group_ids, group_sizes)
    n = lists.sizes.astype(np.float64)
    # Ascending 1-based rank of a row at descending position p of a list of n rows is n - p; a run of ties
    # shares the mean of its ranks.
    ascending = n[lists.list_of] - lists.rank
    midrank = lists.tie_average(ascending.astype(np.float64))
    n_pos = lists.n_relevant
    n_neg = n - n_pos
    u = lists.per_list(midrank * lists.relevant) - n_pos * (n_pos + 1.0) / 2.0
    pairs = n_pos * n_neg
    values = np.divide(u, pairs, out=np.full_like(u, np.nan), where=pairs > 0)
    return MetricResult.from_values("auc", None, lists.list_ids, values)


# ---------------------------------------------------------------------------------------------- bootstrap


def _generator(seed: int | np.random.Generator) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise MetricInputError(f"Expected `seed` to be an integer >= 0 or a Generator, found {_py(seed)!r}")
    return np.random.default_rng(int(seed))


def _check_bootstrap_options(n_bootstrap: object, alpha: object) -> None:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, int | np.integer) or n_bootstrap < 1:
        raise MetricInputError(f"Expected `n_bootstrap` to be an integer >= 1, found {_py(n_bootstrap)!r}")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise MetricInputError(f"Expected `alpha` in (0, 1), found {_py(alpha)!r}")


def _bootstrap_means(
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


def _interval(
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
    values = _as_1d_float("per_list_values", per_list_values)
    _check_bootstrap_options(n_bootstrap, alpha)
    rng = _generator(seed)
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
        means = _bootstrap_means(values[:, None], clusters, int(n_bootstrap), rng)
    return _interval(values[:, None], means, int(n_bootstrap), float(alpha))[0]


# --------------------------------------------------------------------------------------------- evaluation


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
            f"Expected `sections` without missing values, found one at row {_first_bad(missing)}"
        )
    codes, names = pd.factorize(sec)
    codes = codes[lists.order]
    first = codes[lists.starts]
    mixed = codes != first[lists.list_of]
    if mixed.any():
        row = int(np.flatnonzero(mixed)[0])
        g = int(lists.list_of[row])
        raise MetricInputError(
            f"Expected one section per list in `sections`, found {_py(names[first[g]])!r} and "
            f"{_py(names[codes[row]])!r} in list {_py(lists.list_ids[g])!r}"
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
        _check_choice("metrics", name, METRICS)
    if not metrics or len(set(metrics)) != len(metrics):
        raise MetricInputError(f"Expected distinct, non-empty `metrics`, found {metrics!r}")
    k = _check_k(k)
    _check_bootstrap_options(n_bootstrap, alpha)
    if isinstance(seed, np.random.Generator):
        seed_source: np.random.SeedSequence | np.random.Generator = seed
    else:
        _generator(seed)
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
            strata.append((_py(name), list_section == name))
    streams = seed_source.spawn(len(strata))

    rows = []
    for (section, mask), stream in zip(strata, streams, strict=True):
        sub = values[mask]
        rng = np.random.default_rng(stream) if isinstance(stream, np.random.SeedSequence) else stream
        if sub.shape[0]:
            means = _bootstrap_means(sub, None, int(n_bootstrap), rng)
        else:
            means = np.empty((0, sub.shape[1]))
        intervals = _interval(sub, means, int(n_bootstrap), float(alpha))
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
