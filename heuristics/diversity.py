"""Diversity: greedy maximal marginal relevance (MMR) and a per-category cap within the top k.

Both are vectorised over the requests of a batch; the only Python loop is MMR's k greedy picks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from heuristics.base import (
    ContextBatch,
    ItemBatch,
    KnobSpec,
    OrderHeuristic,
    ParamSpec,
    as_knob,
)
from heuristics.errors import MissingContextError


@dataclass(frozen=True)
class MMR(OrderHeuristic):
    """Greedy maximal marginal relevance (Carbonell & Goldstein, 1998).

    Position t takes the not-yet-chosen candidate i maximising

        lambda * rel_i - (1 - lambda) * max_{j chosen} sim(i, j)

    where rel are the (normalised) scores and sim is the cosine of item embeddings
    (``similarity="embedding"``), or 1 for the same category or subcategory and 0 otherwise
    (``similarity="category"`` or ``"subcategory"``). An embedding of zero or non-finite norm has similarity
    0 to every item. The first pick is the most relevant item; ties go to the candidate earlier in the input
    order. With lambda = 1 an input order by descending score is kept. Positions after k keep the input
    order. Scores must be finite.
    """

    NAME: ClassVar[str] = "mmr"
    KNOBS: ClassVar[dict[str, KnobSpec]] = {"lambda": KnobSpec(default=1.0, low=0.0, high=1.0)}
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "similarity": ParamSpec(default="embedding", choices=("embedding", "category", "subcategory"))
    }
    IDENTITY: ClassVar[dict[str, float]] = {"lambda": 1.0}
    USES_SCORES: ClassVar[bool] = True

    lambda_: float | np.ndarray = 1.0
    similarity: str = "embedding"

    def _unit_embeddings(self, items: ItemBatch) -> np.ndarray:
        if items.embedding is None:
            raise MissingContextError(self.NAME, "item embedding")
        norms = np.linalg.norm(items.embedding, axis=2, keepdims=True)
        return np.divide(
            items.embedding,
            norms,
            out=np.zeros_like(items.embedding, dtype=np.float64),
            where=np.isfinite(norms) & (norms > 0),
        )

    def reorder(
        self,
        order: np.ndarray,
        scores: np.ndarray,
        items: ItemBatch,
        context: ContextBatch,
        k: int,
    ) -> np.ndarray:
        batch, n = order.shape
        k = min(k, n)
        if k == 0:
            return order
        rows = np.arange(batch)
        flat = rows * n
        # Work in the input order's positions, so that argmax ties fall to the earlier position.
        relevance = np.take_along_axis(scores, order, axis=1)
        if self.similarity == "embedding":
            unit = np.take_along_axis(self._unit_embeddings(items), order[:, :, None], axis=1)
            unit_rows = unit.reshape(batch * n, unit.shape[2])
        else:
            group = np.take_along_axis(items.grouping(self.similarity, self.NAME), order, axis=1)
            group_rows = group.reshape(-1)
        lam = as_knob(self.lambda_, batch)
        weight = 1.0 - lam
        # `gain` is lambda * relevance, set to -inf once a candidate is chosen; `value` is the MMR objective.
        gain = lam * relevance
        gain_rows = gain.reshape(-1)
        value = np.empty((batch, n))
        penalty = np.empty((batch, n))
        picks = np.empty((batch, k), dtype=np.int64)
        pick = gain.argmax(axis=1)
        for t in range(k):
            if t:
                np.multiply(weight, penalty, out=value)
                np.subtract(gain, value, out=value)
                pick = value.argmax(axis=1)
            picks[:, t] = pick
            chosen = flat + pick
            gain_rows[chosen] = -np.inf
            if self.similarity == "embedding":
                sim = np.matmul(unit, unit_rows[chosen][:, :, None])[:, :, 0]
            else:
                sim = group == group_rows[chosen][:, None]
            if t:
                np.maximum(penalty, sim, out=penalty)
            else:
                penalty[...] = sim
        chosen_mask = np.zeros((batch, n), dtype=bool)
        chosen_mask[rows[:, None], picks] = True
        rest = np.nonzero(~chosen_mask)[1].reshape(batch, n - k)
        positions = np.concatenate([picks, rest], axis=1)
        return np.take_along_axis(order, positions, axis=1)


@dataclass(frozen=True)
class CategoryCap(OrderHeuristic):
    """At most ``cap`` candidates of one category (or subcategory, with ``field``) within the top k.

    Walking the input order, a candidate enters the top k while its category has fewer than ``cap`` entries
    there; this equals keeping the candidates whose rank within their own category is below ``cap``. When the
    cap cannot be met (too few categories), the top k is filled with the skipped candidates in input order.
    Relative order is otherwise kept; positions after k follow in input order.
    """

    NAME: ClassVar[str] = "category_cap"
    KNOBS: ClassVar[dict[str, KnobSpec]] = {"cap": KnobSpec(default=1000, low=1, high=1000, integer=True)}
    PARAMS: ClassVar[dict[str, ParamSpec]] = {
        "field": ParamSpec(default="category", choices=("category", "subcategory"))
    }
    IDENTITY: ClassVar[dict[str, float]] = {"cap": 1000}

    cap: int | np.ndarray = 1000
    field: str = "category"

    def reorder(
        self,
        order: np.ndarray,
        scores: np.ndarray,
        items: ItemBatch,
        context: ContextBatch,
        k: int,
    ) -> np.ndarray:
        batch, n = order.shape
        if n == 0:
            return order
        category = np.take_along_axis(items.grouping(self.field, self.NAME), order, axis=1)
        # Rank of each position within its category (0 for the category's first), vectorised by sorting.
        by_category = np.argsort(category, axis=1, kind="stable")
        grouped = np.take_along_axis(category, by_category, axis=1)
        pos = np.broadcast_to(np.arange(n), grouped.shape)
        starts = np.ones(grouped.shape, dtype=bool)
        starts[:, 1:] = grouped[:, 1:] != grouped[:, :-1]
        first = np.maximum.accumulate(np.where(starts, pos, 0), axis=1)
        within = np.empty_like(pos)
        np.put_along_axis(within, by_category, pos - first, axis=1)

        eligible = within < as_knob(self.cap, batch)
        taken_before = np.cumsum(eligible, axis=1) - eligible
        in_top = eligible & (taken_before < k)
        shortfall = k - in_top.sum(axis=1, keepdims=True)
        skipped_before = np.cumsum(~in_top, axis=1) - ~in_top
        fill = ~in_top & (skipped_before < shortfall)
        # Sort key: top-k entries first, then fillers, then the rest; each group keeps input order.
        group = np.where(in_top, 0, np.where(fill, 1, 2))
        positions = np.argsort(group * n + pos, axis=1, kind="stable")
        return np.take_along_axis(order, positions, axis=1)
