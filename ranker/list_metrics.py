"""Per-list ranking metrics: NDCG@k, MAP@k, recall@k and AUC of many lists at once.

Every metric takes one flat array of labels (N,), one of scores (N,) and the list each row belongs to, given
either as list ids (N,) or as LightGBM-style group sizes (G,) of consecutive rows, or a `RankedLists` that
holds them already sorted. It returns a `MetricResult` with one value per list and their mean. Lists are
sorted by score in one `np.lexsort` over all rows; nothing loops over lists in Python. `ranker.metrics`
re-exports every public name and states the conventions.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from ranker.errors import MetricInputError
from ranker.metric_checks import check_choice, check_k, check_labels_scores, list_codes

Gain = Literal["exponential", "linear"]
Ties = Literal["stable", "average"]

GAINS = ("exponential", "linear")
TIES = ("stable", "average")


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
        y, s = check_labels_scores(labels, scores)
        codes, list_ids, sizes = list_codes(y.size, group_ids, group_sizes)
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
    k = check_k(k)
    check_choice("gain", gain, GAINS)
    check_choice("ties", ties, TIES)
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
    k = check_k(k)
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
    k = check_k(k)
    check_choice("ties", ties, TIES)
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
