"""Candidate generation: what an upstream retriever hands to the ranker, batched over requests.

A request's candidates mix four sources, in the shares of ``candidates.mix``:

- ``popular``: items drawn in proportion to ``popularity + 1``;
- ``affinity``: an inverted-file (IVF) style nearest-neighbour retrieval: a retrieval cell (a subcategory,
  represented by the mean observable embedding of its items) is drawn with probability
  ``softmax(cos(user embedding, cell centre) / affinity_temperature)``, then an item uniformly within it;
- ``context``: the section's own source: for similar_items the cells around the source item's embedding
  (``context_temperature``), for category_explore the user's cells within the explored category, for search
  the items tagged with a query word, for a section without context the items published within the last
  ``fresh_window_days`` (a "new arrivals" source);
- ``random``: uniformly among the available items.

Only items published by the request time are drawn. About ``count * oversample`` draws are made, shuffled,
and the first ``count`` distinct ones are kept (the source item of similar_items is never a candidate); rows
left short are filled with uniform draws. Everything is vectorised over the batch; the only loops run over
the context kinds and the (rarely repeated) fill step.
"""

from __future__ import annotations

import math

import numpy as np

from simulator.errors import SimulationInputError
from simulator.population import Items, unit_rows
from simulator.world_config import CONTEXT_KINDS, CandidatesConfig

DAY = 86400.0
_MAX_FILL_ROUNDS = 50


def sample_rows(weights: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
    """Draw m indices per row from the unnormalised row weights (B, K) >= 0, with replacement.

    A single searchsorted over the rows' cumulative weights offset by their row number. A row whose
    weights are all zero draws uniformly. Each row's draws are returned in ascending order (shuffle them if
    their order matters).
    """
    batch, width = weights.shape
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1:]
    empty = total[:, 0] <= 0
    if empty.any():
        cum[empty] = np.arange(1, width + 1, dtype=np.float64)
        total = cum[:, -1:]
    offsets = np.arange(batch, dtype=np.float64)[:, None]
    flat = (cum / total + offsets).ravel()
    # Sorted queries make the search cache-friendly; the draws of a row come out in ascending order.
    u = np.sort(rng.random((batch, m)), axis=1) + offsets
    index = np.searchsorted(flat, u.ravel(), side="right").reshape(batch, m)
    return np.clip(index - np.arange(batch)[:, None] * width, 0, width - 1)


class Buckets:
    """Item ids grouped by a bucket id (a retrieval cell or a tag word), each group in publish order.

    Parameters
    ----------
    bucket : (M,) int64
        The bucket of each entry.
    item : (M,) int64
        The item of each entry.
    n_buckets, n_items : int
    """

    def __init__(self, bucket: np.ndarray, item: np.ndarray, n_buckets: int, n_items: int) -> None:
        self.n_items = n_items
        self.keys = np.sort(bucket.astype(np.int64) * n_items + item.astype(np.int64))
        self.items = self.keys % n_items
        self.starts = np.searchsorted(self.keys, np.arange(n_buckets + 1, dtype=np.int64) * n_items)
        self.sizes = np.diff(self.starts)

    def sample(self, bucket: np.ndarray, n_available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One item per entry of `bucket` (B, m), uniform among the bucket's items with id < n_available
        (B, 1); -1 where there is none."""
        start = self.starts[bucket]
        stop = np.searchsorted(self.keys, bucket * self.n_items + n_available)
        count = stop - start
        offset = np.floor(rng.random(bucket.shape) * count).astype(np.int64)
        position = np.minimum(start + offset, len(self.items) - 1)
        return np.where(count > 0, self.items[position], -1)


class Retriever:
    """The upstream retriever of a world: draws candidates from the observable item attributes only."""

    def __init__(self, config: CandidatesConfig, items: Items, n_cells: int, n_categories: int) -> None:
        self.config = config
        n = len(items)
        self.publish_time = items.publish_time
        self.popularity_cum = np.cumsum(items.popularity + 1.0)
        ids = np.arange(n, dtype=np.int64)
        self.cells = Buckets(items.subcategory, ids, n_cells, n)
        centre = np.zeros((n_cells, items.embedding.shape[1]))
        np.add.at(centre, items.subcategory, items.embedding)
        self.centres = unit_rows(centre)
        self.cell_category = np.arange(n_cells) // (n_cells // n_categories)
        self.cell_empty = self.cells.sizes == 0
        tags = items.tags
        self.postings = Buckets(tags.ravel(), np.repeat(ids, tags.shape[1]), int(tags.max()) + 1, n)
        self.embedding = items.embedding

    def n_available(self, time: np.ndarray) -> np.ndarray:
        """Number of items published at or before each time (B,): the ids available are 0..n-1."""
        return np.searchsorted(self.publish_time, time, side="right").astype(np.int64)

    def popular(self, n_available: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """(B, m) available items drawn in proportion to popularity + 1."""
        total = self.popularity_cum[n_available - 1][:, None]
        u = rng.random((len(n_available), m)) * total
        return np.minimum(np.searchsorted(self.popularity_cum, u, side="right"), n_available[:, None] - 1)

    def uniform(self, low: np.ndarray, high: np.ndarray, m: int, rng: np.random.Generator) -> np.ndarray:
        """(B, m) ids uniform in [low, high) per row; -1 where the range is empty."""
        span = (high - low)[:, None]
        draws = low[:, None] + np.floor(rng.random((len(low), m)) * span).astype(np.int64)
        return np.where(span > 0, draws, -1)

    def near(
        self,
        query: np.ndarray,
        n_available: np.ndarray,
        m: int,
        temperature: float,
        rng: np.random.Generator,
        category: np.ndarray | None = None,
    ) -> np.ndarray:
        """(B, m) items from cells drawn by softmax(cos(query (B, d), cell centre) / temperature).

        With `category` (B,), only the cells of that category are drawn from. -1 where a drawn cell has
        no available item.
        """
        logits = (unit_rows(query) @ self.centres.T) / temperature
        allowed = ~self.cell_empty[None, :]
        if category is not None:
            allowed = allowed & (self.cell_category[None, :] == category[:, None])
        logits = np.where(allowed, logits, -np.inf)
        top = logits.max(axis=1, keepdims=True)
        weights = np.exp(logits - np.where(np.isfinite(top), top, 0.0))
        cell = sample_rows(weights, m, rng)
        return self.cells.sample(cell, n_available[:, None], rng)

    def tagged(
        self, tokens: np.ndarray, n_available: np.ndarray, m: int, rng: np.random.Generator
    ) -> np.ndarray:
        """(B, m) items tagged with one of each row's query words (tokens (B, Q), -1 padded)."""
        valid = tokens >= 0
        word = np.take_along_axis(tokens, sample_rows(valid.astype(np.float64), m, rng), axis=1)
        found = self.postings.sample(np.maximum(word, 0), n_available[:, None], rng)
        return np.where(word >= 0, found, -1)

    def retrieve(
        self,
        *,
        time: np.ndarray,
        user_embedding: np.ndarray,
        context_kind: np.ndarray,
        source_item: np.ndarray,
        category: np.ndarray,
        query_tokens: np.ndarray,
        rng: np.random.Generator,
        count: int | None = None,
    ) -> np.ndarray:
        """Candidate ids (B, count), distinct per row, in random order.

        Parameters
        ----------
        time : (B,) float
        user_embedding : (B, d) float
            Observable user embeddings.
        context_kind : (B,) int
            Index into `CONTEXT_KINDS` of each request's section.
        source_item, category : (B,) int64
            Context fields, -1 where absent.
        query_tokens : (B, Q) int64
        """
        cfg = self.config
        n = cfg.count if count is None else count
        batch = len(time)
        n_available = self.n_available(time)
        if batch and n_available.min() < n:
            raise SimulationInputError(
                f"Expected at least {n} items published by every request time, found "
                f"{n_available.min()} at time {time[np.argmin(n_available)]:.0f}"
            )
        total = math.ceil(n * cfg.oversample)
        shares = cfg.mix
        m_pop, m_aff, m_ctx = (round(shares[s] * total) for s in ("popular", "affinity", "context"))
        m_rand = max(total - m_pop - m_aff - m_ctx, 0)

        context = np.full((batch, m_ctx), -1, dtype=np.int64)
        if m_ctx:
            for code in np.unique(context_kind).tolist():
                kind = CONTEXT_KINDS[code]
                rows = np.flatnonzero(context_kind == code)
                avail = n_available[rows]
                if kind == "none":  # new arrivals
                    low = self.n_available(time[rows] - cfg.fresh_window_days * DAY)
                    context[rows] = self.uniform(low, avail, m_ctx, rng)
                elif kind == "source_item":
                    source = self.embedding[source_item[rows]]
                    context[rows] = self.near(source, avail, m_ctx, cfg.context_temperature, rng)
                elif kind == "category":
                    context[rows] = self.near(
                        user_embedding[rows], avail, m_ctx, cfg.affinity_temperature, rng, category[rows]
                    )
                else:
                    context[rows] = self.tagged(query_tokens[rows], avail, m_ctx, rng)
        draws = np.concatenate(
            [
                self.popular(n_available, m_pop, rng),
                self.near(user_embedding, n_available, m_aff, cfg.affinity_temperature, rng),
                context,
                self.uniform(np.zeros(batch, dtype=np.int64), n_available, m_rand, rng),
            ],
            axis=1,
        )
        draws = np.where(draws == source_item[:, None], -1, draws)
        shuffle = np.argsort(rng.random(draws.shape), axis=1)
        out, have = first_distinct(np.take_along_axis(draws, shuffle, axis=1), n)
        for _ in range(_MAX_FILL_ROUNDS):
            short = np.flatnonzero(have < n)
            if short.size == 0:
                return out
            extra = self.uniform(np.zeros(short.size, dtype=np.int64), n_available[short], 2 * n, rng)
            extra = np.where(extra == source_item[short, None], -1, extra)
            out[short], have[short] = first_distinct(np.concatenate([out[short], extra], axis=1), n)
        raise SimulationInputError(f"Could not draw {n} distinct candidates for {short.size} requests")


def first_distinct(draws: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n distinct non-negative ids of each row of `draws` (B, M), in draw order.

    Returns ``(ids (B, n) padded with -1, how many were found (B,))``. One sort of ``id * M + position``
    groups equal ids with their earliest position first; a second sort orders the kept positions.
    """
    width = draws.shape[1]
    key = draws * width + np.arange(width)
    key.sort(axis=1)
    value = key // width
    first = value >= 0
    first[:, 1:] &= value[:, 1:] != value[:, :-1]
    position = np.where(first, key - value * width, width)
    position.sort(axis=1)
    position = position[:, :n]
    found = position < width
    ids = np.take_along_axis(draws, np.minimum(position, width - 1), axis=1)
    return np.where(found, ids, -1), found.sum(axis=1)
