"""The catalog and user attributes that the heuristics and the knob policy read, indexed for one request.

Ids resolve to rows through the feature function's index (`ranker.features.IdIndex`); the attributes here
serve the re-rankers: each candidate's category, subcategory, age, promoted flag and embedding, and each
user's segment. Unknown items
and users get documented defaults, never errors:

- an unknown item has category and subcategory -1 (its own group), no publish time (age +inf: no freshness
  boost, never "fresh"), not promoted, and a zero embedding (similar to nothing);
- an unknown user has segment ``"unknown"``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from heuristics import ContextBatch, ItemBatch
from ranker.ids import IdIndex
from ranker.requests import Requests

DAY = 86400.0
UNKNOWN_SEGMENT = "unknown"


class ItemAttributes:
    """Heuristic inputs of catalog items and the segment of users, from the observable tables.

    An attribute source of the rerank pipeline (`ranker.rerank.batch.AttributeSource`).
    """

    def __init__(self, catalog: pd.DataFrame, users: pd.DataFrame | None = None) -> None:
        n = len(catalog)
        self.n_items = n
        self._items = IdIndex(catalog["item_id"].to_numpy(), "catalog.item_id")
        if "category" in catalog:
            category, uniques = pd.factorize(catalog["category"])
            self._category_lookup = {value: code for code, value in enumerate(uniques.tolist())}
            self._categories = pd.Index(uniques)
        else:
            category, self._category_lookup = np.full(n, -1), {}
            self._categories = pd.Index([], dtype=object)
        subcategory = (
            pd.factorize(catalog["subcategory"])[0] if "subcategory" in catalog else np.asarray(category)
        )
        self._category = np.append(np.asarray(category, dtype=np.int64), -1)
        self._subcategory = np.append(np.asarray(subcategory, dtype=np.int64), -1)
        publish = (
            catalog["publish_time"].to_numpy(np.float64) if "publish_time" in catalog else np.full(n, np.nan)
        )
        self._publish = np.append(publish, np.nan)
        promoted = catalog["promoted"].astype(bool).to_numpy() if "promoted" in catalog else np.zeros(n, bool)
        self._promoted = np.append(promoted, False)
        emb_cols = sorted(
            (c for c in catalog.columns if c.startswith("emb_") and c[4:].isdigit()), key=lambda c: int(c[4:])
        )
        emb = catalog[emb_cols].to_numpy(np.float64) if emb_cols else np.zeros((n, 1))
        self._embedding = np.vstack([emb, np.zeros((1, emb.shape[1]))])
        if users is not None and len(users):
            self._users = IdIndex(users["user_id"].to_numpy(), "users.user_id")
            segments = users["segment"].astype(str).to_numpy() if "segment" in users else None
            self._segment = np.append(
                segments if segments is not None else np.full(len(users), UNKNOWN_SEGMENT), UNKNOWN_SEGMENT
            ).astype(object)
        else:
            self._users = IdIndex(np.zeros(0, dtype=np.int64), "users.user_id")
            self._segment = np.array([UNKNOWN_SEGMENT], dtype=object)

    def rows(self, item_ids: np.ndarray) -> np.ndarray:
        """Catalog rows of item ids (any shape); unknown ids get the defaults row."""
        item_ids = np.asarray(item_ids)
        return self._items.rows(item_ids.ravel()).reshape(item_ids.shape)

    def known(self, item_ids: np.ndarray) -> np.ndarray:
        return self.rows(item_ids) < self.n_items

    def item_batch(self, candidates: np.ndarray, times: np.ndarray) -> ItemBatch:
        """Heuristic attributes of candidates (B, n) at request times (B,)."""
        rows = self.rows(candidates)
        age = (np.asarray(times, dtype=np.float64)[:, None] - self._publish[rows]) / DAY
        return ItemBatch(
            category=self._category[rows],
            age_days=np.where(np.isnan(age), np.inf, age),
            promoted=self._promoted[rows],
            embedding=self._embedding[rows],
            subcategory=self._subcategory[rows],
        )

    def context_batch(self, source_items: list[object], categories: list[object]) -> ContextBatch:
        """Heuristic context of B requests: the source item's embedding (zeros for none or an unknown item)
        and the explored category's code (-1 for none, -2 for a category no catalog item has)."""
        batch = len(source_items)
        source_rows = np.full(batch, self.n_items, dtype=np.int64)
        given = np.array([s is not None for s in source_items], dtype=bool)
        if given.any():
            ids = np.array([s for s in source_items if s is not None])
            source_rows[given] = self.rows(ids)
        codes = np.array(
            [-1 if c is None else self._category_lookup.get(c, -2) for c in categories], dtype=np.int64
        )
        return ContextBatch(source_embedding=self._embedding[source_rows], category=codes)

    def request_context(self, requests: Requests) -> ContextBatch:
        """`context_batch` of B requests' ``source_item`` and ``category`` columns, column-wise."""
        source = requests.source_item
        given = np.not_equal(source, None)
        source_rows = np.full(len(source), self.n_items, dtype=np.int64)
        if given.any():
            source_rows[given] = self.rows(np.array(source[given].tolist()))
        category = requests.category
        named = np.not_equal(category, None)
        codes = np.full(len(category), -1, dtype=np.int64)
        if named.any():
            found = self._categories.get_indexer(category[named]) if len(self._categories) else -1
            codes[named] = np.where(np.asarray(found) >= 0, found, -2)
        return ContextBatch(source_embedding=self._embedding[source_rows], category=codes)

    def segment(self, user_ids: np.ndarray) -> np.ndarray:
        """(B,) the users' segments ("unknown" for users not in the profile table)."""
        user_ids = np.asarray(user_ids)
        return self._segment[self._users.rows(user_ids.ravel()).reshape(user_ids.shape)]
