"""LightGBM lambdarank trained across a Dask cluster (LightGBM's own `lightgbm.dask.DaskLGBMRanker`).

`DaskLambdaRanker` is a `LambdaRanker` with the same `fit` arguments and the same learned state (a plain
``lightgbm.Booster`` cut at its best iteration), so `ranker.train.train_design` uses it unchanged
(``ranker_factory=``) and the model directory it writes has the same format and inference contract as one
trained in one process: the service loads it as any other.

`fit` takes the training rows in the client (a SQLite log, or a log prepared in one process);
`fit_partitions` takes Dask arrays whose partitions already sit on the workers, as
`ranker.dataset_dask` builds them from a dataset labelled there (the training window never reaches the
client). With `fit`, the training rows are cut into partitions at list boundaries (a ranking group never
straddles two partitions, as LightGBM's distributed lambdarank requires), about two per worker, and each
worker trains on its partitions (LightGBM's data-parallel tree learner, over ports it opens between the
workers). The lists are dealt to the
partitions in turn (list i to partition i mod P), not cut into consecutive runs: a union is ordered by
section, and LightGBM builds each feature's bins on the one worker that owns the feature, from that worker's
rows only (LightGBM issue #5798). With consecutive runs, a feature that only one section carries got its bins
from a worker holding none of that section's rows (every value its default: one bin), and the model could not
split on it. Dealt in turn, every worker holds a share of every section.
LightGBM's Dask interface has no early stopping: every run boosts ``num_boost_round`` iterations with the
validation NDCG recorded after each, and the model is cut where `LambdaRanker`'s early stopping would have
stopped (the first best iteration before ``early_stopping_rounds`` without improvement), so the choice of
iterations and of ``num_leaves`` follows the same rule. The trees differ from one process's (the data-parallel
learner finds splits from histograms merged across workers); the held-out metrics agree within their
intervals (tests/ranker/test_train_dask.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from ranker.config import LightGBMSettings
from ranker.errors import TrainingDataError
from ranker.train import LambdaRanker, Progress

#: Partitions per worker: a few, so that the work spreads while each partition stays large.
PARTITIONS_PER_WORKER = 2


def dealt_order(group_sizes: np.ndarray, n_partitions: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The order of lists and of rows that deals the lists to `n_partitions` partitions in turn.

    Returns
    -------
    list_order : (G,) int64
        Lists ``0, P, 2P, ..., 1, P + 1, ...`` (P = ``min(n_partitions, G)``).
    row_order : (R,) int64
        The rows of those lists, each list's rows contiguous and in their original order.
    lists_per_partition : (P,) int64
        How many lists each partition takes from the front of `list_order`: partition p holds exactly the
        lists ``i`` with ``i mod P == p``.
    """
    sizes = np.asarray(group_sizes, dtype=np.int64)
    n = len(sizes)
    parts = max(1, min(int(n_partitions), n))
    lists = np.arange(n, dtype=np.int64)
    list_order = np.lexsort((lists, lists % parts))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    lengths = sizes[list_order]
    offsets = np.arange(lengths.sum(), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    row_order = np.repeat(starts[list_order], lengths) + offsets
    lists_per_partition = (n - np.arange(parts, dtype=np.int64) + parts - 1) // parts
    return list_order, row_order, lists_per_partition


def dask_collections(
    client: Any, x: np.ndarray, y: np.ndarray, group_sizes: np.ndarray, n_partitions: int
) -> tuple[Any, Any, Any]:
    """Dask arrays of rows (R, F), labels (R,) and group sizes (G,), the lists dealt to the partitions in turn
    (`dealt_order`) and partitioned at list boundaries alike, partition p placed on the p-th worker (round
    robin, in address order) so that a run is repeatable."""
    import dask.array as da

    if len(group_sizes) == 0:
        raise TrainingDataError("expected at least one list to partition, found none")
    list_order, row_order, lists = dealt_order(group_sizes, n_partitions)
    groups = np.asarray(group_sizes, dtype=np.int64)[list_order]
    list_edges = np.concatenate([[0], np.cumsum(lists)])
    rows = np.add.reduceat(groups, list_edges[:-1])
    x = np.asarray(x, dtype=np.float64)[row_order]
    y = np.asarray(y)[row_order]
    workers = sorted(client.nthreads())
    row_edges = np.concatenate([[0], np.cumsum(rows)])
    parts: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    for p in range(len(rows)):
        r0, r1, l0, l1 = row_edges[p], row_edges[p + 1], list_edges[p], list_edges[p + 1]
        where = [workers[p % len(workers)]]
        for out, piece in zip(parts, (x[r0:r1], y[r0:r1], groups[l0:l1]), strict=True):
            future = client.scatter(piece, workers=where, broadcast=False, hash=False)
            out.append(da.from_delayed(future, shape=piece.shape, dtype=piece.dtype))
    return tuple(da.concatenate(p, axis=0) for p in parts)  # type: ignore[return-value]


def early_stopped(history: Sequence[float], early_stopping_rounds: int) -> tuple[int, float]:
    """(best iteration, its score) that `LambdaRanker`'s early stopping picks from a validation history:
    the first maximum, scanning until ``early_stopping_rounds`` iterations pass without improvement."""
    best, best_iteration = -math.inf, 0
    for iteration, score in enumerate(history):
        if score > best:
            best, best_iteration = float(score), iteration + 1
        elif iteration + 1 - best_iteration >= early_stopping_rounds:
            break
    return best_iteration, best


def ndcg_history(
    booster: lgb.Booster, x: np.ndarray, y: np.ndarray, group_sizes: np.ndarray, k: int
) -> np.ndarray:
    """(T,) NDCG@k of `booster` after each of its T iterations on lists ``(x, y, group_sizes)``, as
    LightGBM's own ``ndcg`` metric computes it: gain ``2^label - 1``, discount ``1 / log2(2 + position)``,
    ties in score kept in row order, a list without a positive label counting 1, the mean over lists."""
    sizes = np.asarray(group_sizes, dtype=np.int64)
    y = np.asarray(y, dtype=np.float64)
    query = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    gain = np.exp2(y) - 1.0

    def dcg(order: np.ndarray) -> np.ndarray:
        rank = np.arange(len(order)) - starts[query]  # position within its list, once sorted
        discounted = np.where(rank < k, gain[order] / np.log2(2.0 + rank), 0.0)
        return np.bincount(query, discounted, minlength=len(sizes))

    rows = np.arange(len(y))
    ideal = dcg(np.lexsort((rows, -y, query)))
    total = booster.current_iteration()
    out = np.empty(total)
    score = np.zeros(len(y))
    x = np.asarray(x, dtype=np.float64)
    for t in range(total):
        score += booster.predict(x, start_iteration=t, num_iteration=1, raw_score=True)
        ndcg = np.where(
            ideal > 0, dcg(np.lexsort((rows, -score, query))) / np.where(ideal > 0, ideal, 1), 1.0
        )
        out[t] = ndcg.mean()
    return out


class DaskLambdaRanker(LambdaRanker):
    """`LambdaRanker` trained with ``lightgbm.dask.DaskLGBMRanker`` on the workers of `client`.

    Parameters
    ----------
    settings, feature_names, categorical, position_bias
        As `LambdaRanker`. ``position_bias="unbiased"`` is refused: LightGBM's Dask interface takes no
        positions.
    client : distributed.Client, keyword-only
    """

    def __init__(
        self,
        settings: LightGBMSettings,
        *,
        feature_names: Sequence[str],
        categorical: Sequence[int] = (),
        position_bias: str = "unbiased",
        client: Any,
    ) -> None:
        super().__init__(
            settings, feature_names=feature_names, categorical=categorical, position_bias=position_bias
        )
        self.client = client

    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        group_sizes: np.ndarray,
        *,
        positions: np.ndarray | None = None,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
        progress: Progress | None = None,
        description: str = "training",
    ) -> DaskLambdaRanker:
        """As `LambdaRanker.fit`, on the cluster (`progress` is not shown: the boosting runs remotely): the
        rows are scattered to the workers in partitions of whole lists (`dask_collections`)."""
        if self.position_bias == "unbiased" and positions is not None:
            raise TrainingDataError(
                "position_bias 'unbiased' needs LightGBM's positions, which its Dask interface does not "
                "take; train in one process or use position_bias 'truncate'"
            )
        # The same checks as one process (shapes, integer labels, group sizes), on the client's copy.
        self._dataset(x, y, group_sizes, "training")
        workers = max(1, len(self.client.nthreads()))
        n_partitions = PARTITIONS_PER_WORKER * workers
        train = dask_collections(self.client, x, y, group_sizes, n_partitions)
        self._boost_partitions(train, valid)
        self.n_partitions_ = n_partitions
        return self

    def fit_partitions(
        self,
        train: tuple[Any, Any, Any],
        *,
        valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> DaskLambdaRanker:
        """As `fit`, on Dask arrays of rows (R, F), labels (R,) and group sizes (G,) already on the workers,
        partitioned alike at list boundaries (`ranker.dataset_dask` builds them where the lists were
        labelled); `valid` is in the client. The arrays are trusted as built: no check gathers them."""
        if self.position_bias == "unbiased":
            raise TrainingDataError(
                "position_bias 'unbiased' needs LightGBM's positions, which its Dask interface does not "
                "take; train in one process or use position_bias 'truncate'"
            )
        return self._boost_partitions(train, valid)

    def _boost_partitions(
        self, train: tuple[Any, Any, Any], valid: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    ) -> DaskLambdaRanker:
        from lightgbm.dask import DaskLGBMRanker

        if valid is not None:
            self._dataset(*valid, "validation")
        fit_options: dict[str, Any] = {
            "feature_name": list(self.feature_names),
            "categorical_feature": list(self.categorical),
        }
        choices = self.settings.num_leaves if valid is not None else self.settings.num_leaves[:1]
        self.scores_by_num_leaves_: dict[int, float] = {}
        chosen = None
        for leaves in choices:
            params = self.settings.params(leaves)
            # Each worker trains with its own threads (one per process on a LocalCluster).
            for name in ("metric", "eval_at", "num_threads"):
                params.pop(name)
            model = DaskLGBMRanker(
                client=self.client,
                n_estimators=self.settings.num_boost_round,
                metric="ndcg",
                **params,
            )
            with warnings.catch_warnings():
                # The scikit-learn layer always sets num_threads, which the Dask layer always ignores (each
                # worker uses its own threads) and says so: nothing to act on.
                warnings.filterwarnings("ignore", "Parameter n_jobs will be ignored", UserWarning)
                model.fit(train[0], train[1], group=train[2], **fit_options)
            booster = model.booster_
            if valid is not None:
                # On the client, over every validation list (LightGBM's Dask interface would report the
                # lists of one worker only).
                history = ndcg_history(booster, *valid, self.settings.eval_at).tolist()
                best_iteration, best = early_stopped(history, self.settings.early_stopping_rounds)
                history = history[: best_iteration + self.settings.early_stopping_rounds]
            else:
                history, best_iteration, best = [], booster.current_iteration(), math.nan
            self.scores_by_num_leaves_[leaves] = best
            if chosen is None or best > chosen[1][2]:  # ascending sizes: a tie keeps the smaller
                chosen = (leaves, (booster, best_iteration, best, history))
        assert chosen is not None  # `choices` is never empty
        self.num_leaves_, (booster, best_iteration, best, history) = chosen
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=max(best_iteration, 1)))
        self.best_iteration_ = best_iteration
        self.best_score_ = best
        self.history_ = history
        self.used_positions_ = False
        self.n_partitions_ = len(train[2].chunks[0])
        return self
