"""The feature function: one vectorised core, used offline (training, evaluation) and online (serving).

A `FeatureBuilder` is built once from `FeatureTables` (the item catalog, the user profiles and the item
statistics a model was trained with). It indexes them into numpy arrays: every item and user table gets one
extra *unknown* row holding the defaults, and ids are resolved to rows by binary search, so an unknown item
or user gets the documented defaults, never an error. One core function computes the feature matrix of any
number of (request, candidate) rows; two entry points share it:

- `FeatureBuilder.transform` / `FeatureBuilder.from_log`: many requests at once (a joined decision-log frame
  or labelled lists), in row chunks;
- `FeatureBuilder.one`: one served request, ``(section, user_id, context, candidates)``, in pure numpy on the
  pre-indexed arrays (no pandas per request).

Both return float64 matrices (R, F) whose columns follow the builder's feature list; categorical features
hold integer codes (-1: missing). `FEATURES` lists every feature with its dtype, default and meaning
(docs/ranker.md has the table). Section-context features (``context`` set) apply only in sections whose
request context is of that kind (ranker.toml ``sections.<name>.context``); elsewhere they take their default,
a sentinel outside the feature's natural range.

Ids match by value within their kind: integer ids against an integer catalog, strings against a string
catalog; a category in a request context must equal the catalog's value (``3``, not ``"3"``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TypeVar

import numpy as np
import pandas as pd

from ranker.artifact import FeatureSpec
from ranker.errors import FeatureInputError, FeatureTableError
from ranker.feature_defs import CONTEXT_KINDS, FEATURES, TASK_TYPE
from ranker.ids import IdIndex
from ranker.requests import Requests
from ranker.stats import ItemStats

T = TypeVar("T")
Progress = Callable[[Iterable[T], str], Iterable[T]]

DAY = 86400.0
CATALOG_COLUMNS = ("item_id", "category", "tags", "publish_time", "price", "promoted", "popularity")
USER_COLUMNS = ("user_id", "segment")
#: Rows per chunk of the offline path (bounds the memory of the (rows, d) embedding gathers).
CHUNK_ROWS = 1 << 18

_NONE, _SOURCE, _CATEGORY, _QUERY = range(4)
_UNKNOWN_CATEGORY = -2  # a request category the catalog does not have: matches no item
_UNKNOWN_WORD = -2  # a query word no item is tagged with
_NO_WORD = -3  # padding of query word codes (item tags are padded with -1)


@dataclass(frozen=True)
class FeatureTables:
    """The tables features are computed from.

    Attributes
    ----------
    catalog : pd.DataFrame
        One row per item: ``item_id`` (distinct), ``category``, ``tags`` (space-separated words),
        ``publish_time`` (Unix seconds), ``price``, ``promoted``, ``popularity`` and ``emb_0 .. emb_{d-1}``
        (`simulator.World.catalog` writes exactly this).
    users : pd.DataFrame
        One row per user: ``user_id`` (distinct), ``segment``, optionally ``home_device`` (its values are
        the ``device`` categories), and ``u_emb_0 .. u_emb_{d-1}``.
    item_stats : ItemStats
    """

    catalog: pd.DataFrame
    users: pd.DataFrame
    item_stats: ItemStats


def read_tables(catalog: str, users: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the catalog and user tables (Parquet or CSV), refusing a missing or unreadable file."""
    return _read_table(catalog, "catalog"), _read_table(users, "users")


def _read_table(path: str, what: str) -> pd.DataFrame:
    reader = pd.read_csv if str(path).lower().endswith(".csv") else pd.read_parquet
    try:
        return reader(path)
    except FileNotFoundError:
        raise FeatureTableError(f"{path}: no such {what} table") from None
    except (OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FeatureTableError(f"{path}: cannot read the {what} table ({detail})") from None


def _embedding_columns(frame: pd.DataFrame, prefix: str) -> list[str]:
    found = {int(m.group(1)): c for c in frame.columns if (m := re.fullmatch(rf"{prefix}(\d+)", str(c)))}
    return [found[j] for j in range(len(found))] if sorted(found) == list(range(len(found))) else []


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero."""
    norm = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    return np.divide(matrix, norm[:, None], out=np.zeros_like(matrix), where=norm[:, None] > 0)


@dataclass(frozen=True)
class _Resolved:
    """Per-request arrays (B,) of B requests, resolved against the tables."""

    section: np.ndarray  # int64 code into the builder's sections
    user: np.ndarray  # int64 user row (unknown: the extra row)
    time: np.ndarray  # float64
    device: np.ndarray  # float64 code, -1 unknown
    source: np.ndarray  # int64 item row of the source item (extra row when none)
    has_source: np.ndarray  # bool: a source_item section with a known source item
    source_given: np.ndarray  # bool: a known source item, whatever the section
    category: np.ndarray  # int64 category code
    has_category: np.ndarray  # bool: a category section with a category
    category_given: np.ndarray  # bool: a category, whatever the section
    query_words: np.ndarray  # (B, Q) int64 word codes, padded with _NO_WORD
    n_words: np.ndarray  # int64
    has_query: np.ndarray  # bool: a query section with a non-empty query
    query_given: np.ndarray  # bool: a non-empty query, whatever the section
    query_vector: np.ndarray  # (B, d) float64 unit query vectors (zeros without known words)


class _Rows:
    """R feature rows: the resolved requests, the request of each row and each row's item row."""

    def __init__(
        self, builder: FeatureBuilder, req: _Resolved, request_of_row: np.ndarray, items: np.ndarray
    ):
        self.b = builder
        self.req = req
        self.of = request_of_row
        self.items = items

    @cached_property
    def item_embedding(self) -> np.ndarray:
        return self.b._item_emb[self.items]


class FeatureBuilder:
    """Computes the features of (request, candidate) rows from pre-indexed tables.

    Parameters
    ----------
    tables : FeatureTables
    features : sequence of str
        Names from `FEATURES`, in the model's column order.
    sections : Mapping[str, str]
        Every configured section -> its context kind (one of `CONTEXT_KINDS`), in order: the ``task_type``
        categories are these names, in this order.

    Attributes
    ----------
    features : tuple of str
    sections : tuple of str
    specs : tuple of FeatureSpec
        The features with dtype, default and categories, as an `InferenceContract` records them.
    categorical : tuple of int
        Column indices of the categorical features.
    task_types : tuple of str
        The ``task_type`` categories when the builder computes task_type, else ().
    """

    def __init__(
        self, tables: FeatureTables, *, features: Sequence[str], sections: Mapping[str, str]
    ) -> None:
        if not isinstance(tables, FeatureTables):
            raise FeatureTableError(f"Expected `tables` to be FeatureTables, found {type(tables).__name__}")
        features = tuple(features)
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise FeatureInputError(f"unknown features {unknown}; known: {', '.join(FEATURES)}")
        if len(set(features)) != len(features) or not features:
            raise FeatureInputError(f"expected distinct, non-empty `features`, found {list(features)}")
        bad = {s: k for s, k in sections.items() if k not in CONTEXT_KINDS}
        if bad or not sections:
            raise FeatureInputError(
                f"expected sections mapped to one of {CONTEXT_KINDS}, found {dict(sections)}"
            )
        self.features = features
        self.sections = tuple(sections)
        self._section_index = {name: i for i, name in enumerate(self.sections)}
        self._section_kind = np.array(
            [CONTEXT_KINDS.index(sections[s]) for s in self.sections], dtype=np.int64
        )
        self.task_types = self.sections if TASK_TYPE in features else ()
        self._index_items(tables.catalog, tables.item_stats)
        self._index_users(tables.users)
        if "affinity" in features and self._user_emb.shape[1] != self._item_emb.shape[1]:
            raise FeatureTableError(
                f"users: {self._user_emb.shape[1]} u_emb_* columns, the catalog has "
                f"{self._item_emb.shape[1]} emb_* columns (affinity needs the same dimension)"
            )
        stats_defaults = tables.item_stats.defaults()
        specs = []
        for name in features:
            spec = FEATURES[name]
            default = stats_defaults.get(name, spec.default)
            categories = {TASK_TYPE: self.sections, "segment": self.segments, "device": self.devices}.get(
                name, ()
            )
            specs.append(FeatureSpec(name, spec.dtype, float(default), tuple(categories), spec.description))
        self.specs = tuple(specs)
        self.categorical = tuple(j for j, name in enumerate(features) if FEATURES[name].dtype == "category")
        self._columns = [getattr(self, f"_f_{name}") for name in features]
        self.everywhere: frozenset[str] = frozenset()

    def computing_everywhere(self, features: Collection[str]) -> FeatureBuilder:
        """A copy computing the section-context `features` wherever a request carries their field, in every
        section: the classic pipeline bug the comparison's feature check injects (docs/compare.md)."""
        wrong = sorted(set(features) - {n for n in self.features if FEATURES[n].context is not None})
        if wrong:
            raise FeatureInputError(f"Expected section-context features of this builder, found {wrong}")
        clone = copy.copy(self)
        clone.everywhere = frozenset(features)
        clone._columns = [getattr(clone, f"_f_{name}") for name in clone.features]
        return clone

    # ------------------------------------------------------------------------------------------ indexing

    def _index_items(self, catalog: pd.DataFrame, stats: ItemStats) -> None:
        if not isinstance(catalog, pd.DataFrame):
            raise FeatureTableError(f"Expected the catalog as a DataFrame, found {type(catalog).__name__}")
        missing = [c for c in CATALOG_COLUMNS if c not in catalog.columns]
        emb_cols = _embedding_columns(catalog, "emb_")
        if missing or not emb_cols:
            need = missing + ([] if emb_cols else ["emb_0 .. emb_{d-1}"])
            raise FeatureTableError(f"catalog: missing columns {need}; found {list(catalog.columns)}")
        for column in ("publish_time", "price", "popularity", *emb_cols):
            values = pd.to_numeric(catalog[column], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(values)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise FeatureTableError(
                    f"catalog: column {column!r} needs finite numbers, found {catalog[column].iloc[row]!r} "
                    f"at row {row}"
                )
        n = len(catalog)
        self._items = IdIndex(catalog["item_id"].to_numpy(), "catalog.item_id")
        self.n_items = n

        def padded(values: np.ndarray, default: float) -> np.ndarray:
            return np.concatenate((np.asarray(values, dtype=np.float64), [default]))

        self._item_emb = np.vstack(
            (_unit_rows(catalog[emb_cols].to_numpy(np.float64)), np.zeros(len(emb_cols)))
        )
        self._publish_time = padded(catalog["publish_time"].to_numpy(np.float64), 0.0)
        self._item_known = np.concatenate((np.ones(n, dtype=bool), [False]))
        self._price_log = padded(np.log1p(np.maximum(catalog["price"].to_numpy(np.float64), 0.0)), -1.0)
        self._promoted = padded(catalog["promoted"].astype(bool).to_numpy(), 0.0)
        self._popularity_log = padded(
            np.log1p(np.maximum(catalog["popularity"].to_numpy(np.float64), 0.0)), 0.0
        )
        codes, uniques = pd.factorize(catalog["category"], sort=True)
        self._category_index = {value: i for i, value in enumerate(uniques.tolist())}
        self._item_category = np.concatenate((codes.astype(np.int64), [-1]))

        # Tags: word codes (N + 1, T) padded with -1; a word's vector is the normalised sum of its items'.
        tag_lists = [str(t).split() if isinstance(t, str) else [] for t in catalog["tags"].tolist()]
        words = sorted({w for tags in tag_lists for w in tags})
        self._word_index = {w: i for i, w in enumerate(words)}
        width = max((len(t) for t in tag_lists), default=0)
        tags = np.full((n + 1, max(width, 1)), -1, dtype=np.int64)
        counts = np.fromiter(map(len, tag_lists), np.int64, count=n)
        flat = np.fromiter(
            (self._word_index[w] for t in tag_lists for w in t), np.int64, count=int(counts.sum())
        )
        owner = np.repeat(np.arange(n), counts)
        slot = np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts)
        tags[owner, slot] = flat
        self._item_tags = tags
        word_sum = np.zeros((len(words) + 1, self._item_emb.shape[1]))
        np.add.at(word_sum, flat, self._item_emb[owner])
        self._word_vec = _unit_rows(word_sum)  # the last row (no word) stays zero

        # Statistics aligned to catalog rows; the unknown row and items without data get zero counts.
        rows = self._items.rows(stats.item_id)
        known = rows < n
        zeros = np.zeros(n + 1)
        impressions, clicks, conversions, expected = (zeros.copy() for _ in range(4))
        impressions[rows[known]] = stats.impressions[known]
        clicks[rows[known]] = stats.clicks[known]
        conversions[rows[known]] = stats.conversions[known]
        expected[rows[known]] = stats.expected_clicks[known]
        self._coec = stats.coec(clicks, expected)
        self._cvr = stats.cvr(conversions, clicks)
        self._impressions_log = stats.impressions_log(impressions)

    def _index_users(self, users: pd.DataFrame) -> None:
        if not isinstance(users, pd.DataFrame):
            raise FeatureTableError(f"Expected the user table as a DataFrame, found {type(users).__name__}")
        missing = [c for c in USER_COLUMNS if c not in users.columns]
        emb_cols = _embedding_columns(users, "u_emb_")
        if missing or not emb_cols:
            need = missing + ([] if emb_cols else ["u_emb_0 .. u_emb_{d-1}"])
            raise FeatureTableError(f"users: missing columns {need}; found {list(users.columns)}")
        self._users = IdIndex(users["user_id"].to_numpy(), "users.user_id")
        self.n_users = len(users)
        emb = users[emb_cols].to_numpy(np.float64)
        if not np.isfinite(emb).all():
            raise FeatureTableError("users: u_emb_* columns need finite numbers")
        self._user_emb = np.vstack((_unit_rows(emb), np.zeros(len(emb_cols))))
        segments = users["segment"].astype(str)
        self.segments = tuple(sorted(segments.unique().tolist()))
        segment_index = {s: i for i, s in enumerate(self.segments)}
        self._user_segment = np.concatenate((segments.map(segment_index).to_numpy(np.float64), [-1.0]))
        devices = users["home_device"].astype(str).unique().tolist() if "home_device" in users.columns else []
        self.devices = tuple(sorted(devices))
        self._device_index = {d: float(i) for i, d in enumerate(self.devices)}

    # ------------------------------------------------------------------------------------------ requests

    def _resolve(self, requests: Requests) -> _Resolved:
        """Per-request codes and rows; one pass over the B requests' context fields."""
        b = len(requests)
        index = self._section_index
        section = np.fromiter((index.get(s, -1) for s in requests.section.tolist()), np.int64, count=b)
        if (section < 0).any():
            name = requests.section[int(np.flatnonzero(section < 0)[0])]
            raise FeatureInputError(f"unknown section {name!r}; configured: {', '.join(self.sections)}")
        kind = self._section_kind[section]
        devices = self._device_index
        device = np.fromiter((devices.get(d, -1.0) for d in requests.device.tolist()), np.float64, count=b)

        sources = requests.source_item.tolist()
        present = np.fromiter((s is not None for s in sources), bool, count=b)
        source = np.full(b, self.n_items, dtype=np.int64)
        if present.any():
            source[present] = self._items.rows(np.asarray([s for s in sources if s is not None]))
        categories = self._category_index
        category = np.fromiter(
            (
                _UNKNOWN_CATEGORY if c is None else categories.get(c, _UNKNOWN_CATEGORY)
                for c in requests.category
            ),
            np.int64,
            count=b,
        )
        has_category_value = np.fromiter((c is not None for c in requests.category), bool, count=b)

        words = self._word_index
        coded = [[words.get(w, _UNKNOWN_WORD) for w in q.split()] for q in requests.query.tolist()]
        n_words = np.fromiter(map(len, coded), np.int64, count=b)
        query_words = np.full((b, max(int(n_words.max(initial=0)), 1)), _NO_WORD, dtype=np.int64)
        if n_words.any():
            flat = np.fromiter((c for q in coded for c in q), np.int64, count=int(n_words.sum()))
            owner = np.repeat(np.arange(b), n_words)
            query_words[owner, np.arange(flat.size) - np.repeat(np.cumsum(n_words) - n_words, n_words)] = flat
        # The query vector: word vectors added in word order, then normalised (padding adds exact zeros).
        vec_rows = np.where(query_words >= 0, query_words, len(self._word_vec) - 1)
        total = self._word_vec[vec_rows[:, 0]].copy()
        for q in range(1, vec_rows.shape[1]):
            total += self._word_vec[vec_rows[:, q]]
        return _Resolved(
            section=section,
            user=self._users.rows(requests.user_id),
            time=requests.time,
            device=device,
            source=source,
            has_source=(kind == _SOURCE) & (source < self.n_items),
            source_given=source < self.n_items,
            category=category,
            has_category=(kind == _CATEGORY) & has_category_value,
            category_given=has_category_value,
            query_words=query_words,
            n_words=n_words,
            has_query=(kind == _QUERY) & (n_words > 0),
            query_given=n_words > 0,
            query_vector=_unit_rows(total),
        )

    # ------------------------------------------------------------------------------------------ the core

    def _matrix(self, req: _Resolved, request_of_row: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The feature matrix (R, F) of rows given their request (R,) and item row (R,)."""
        rows = _Rows(self, req, request_of_row, items)
        out = np.empty((len(items), len(self._columns)))
        for j, column in enumerate(self._columns):
            out[:, j] = column(rows)
        return out

    def transform(
        self,
        requests: Requests,
        item_ids: np.ndarray,
        request_of_row: np.ndarray,
        *,
        chunk_rows: int = CHUNK_ROWS,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Features (R, F) of many requests' rows: row r is item ``item_ids[r]`` of ``request_of_row[r]``.

        Parameters
        ----------
        requests : Requests
            (B,) requests.
        item_ids : (R,) array
        request_of_row : (R,) int
            Indices into `requests`.
        chunk_rows : int
            Rows computed at a time.
        progress : callable, optional
            ``progress(chunks, description)`` wraps the list of row chunks (a progress bar).
        """
        item_ids = np.asarray(item_ids)
        request_of_row = np.asarray(request_of_row, dtype=np.int64)
        if item_ids.shape != request_of_row.shape or item_ids.ndim != 1:
            raise FeatureInputError(
                f"Expected `item_ids` and `request_of_row` of the same shape (R,), found {item_ids.shape} "
                f"and {request_of_row.shape}"
            )
        if request_of_row.size and (request_of_row.min() < 0 or request_of_row.max() >= len(requests)):
            raise FeatureInputError(
                f"Expected `request_of_row` in [0, {len(requests)}), found out-of-range rows"
            )
        resolved = self._resolve(requests)
        items = self._items.rows(item_ids)
        out = np.empty((item_ids.size, len(self.features)))
        chunks = [
            (i, min(i + chunk_rows, item_ids.size)) for i in range(0, item_ids.size, max(chunk_rows, 1))
        ]
        for start, stop in progress(chunks, "features") if progress is not None else chunks:
            out[start:stop] = self._matrix(resolved, request_of_row[start:stop], items[start:stop])
        return out

    def from_log(
        self, frame: pd.DataFrame, *, column: str = "shown", progress: Progress | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Features of every item of `column` (``shown`` or ``candidates``) of a joined decision-log frame.

        Returns
        -------
        features : (R, F) float64
            Rows request by request, each request's items in logged order.
        request_of_row : (R,) int64
            The frame row (0-based position) of each feature row.
        """
        for name in ("section", "user_id", "time", "context", column):
            if name not in frame.columns:
                raise FeatureInputError(f"log frame: missing column {name!r}")
        requests = Requests.from_contexts(
            frame["section"].to_numpy(dtype=object),
            frame["user_id"].to_numpy(),
            frame["time"].to_numpy(np.float64),
            frame["context"].tolist(),
        )
        lists = frame[column].tolist()
        sizes = np.fromiter(map(len, lists), np.int64, count=len(lists))
        item_ids = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
        request_of_row = np.repeat(np.arange(len(lists), dtype=np.int64), sizes)
        return self.transform(requests, item_ids, request_of_row, progress=progress), request_of_row

    def one(
        self,
        section: str,
        user_id: object,
        context: Mapping[str, object] | None,
        candidates: Sequence[object] | np.ndarray,
        *,
        now: float | None = None,
    ) -> np.ndarray:
        """Features (n, F) of one served request's n candidates, in candidate order.

        Parameters
        ----------
        section : str
        user_id : int or str
        context : dict, optional
            ``device``, ``source_item``, ``category``, ``query``, ``time`` (see `ranker.requests`).
        candidates : sequence of ids (n,)
        now : float, optional
            The request time when the context has no ``time``; default: the clock.
        """
        request = Requests.single(section, user_id, context, now=now)
        ids = np.asarray(candidates)
        if ids.ndim != 1:
            raise FeatureInputError(f"Expected `candidates` of shape (n,), found shape {ids.shape}")
        return self._matrix(self._resolve(request), np.zeros(ids.size, dtype=np.int64), self._items.rows(ids))

    # ---------------------------------------------------------------------------------------- features

    def _f_task_type(self, r: _Rows) -> np.ndarray:
        return r.req.section[r.of]

    def _f_affinity(self, r: _Rows) -> np.ndarray:
        return np.einsum("ij,ij->i", self._user_emb[r.req.user[r.of]], r.item_embedding)

    def _f_popularity_log(self, r: _Rows) -> np.ndarray:
        return self._popularity_log[r.items]

    def _f_item_coec(self, r: _Rows) -> np.ndarray:
        return self._coec[r.items]

    def _f_item_cvr(self, r: _Rows) -> np.ndarray:
        return self._cvr[r.items]

    def _f_item_impressions_log(self, r: _Rows) -> np.ndarray:
        return self._impressions_log[r.items]

    def _f_age_days(self, r: _Rows) -> np.ndarray:
        age = np.maximum(r.req.time[r.of] - self._publish_time[r.items], 0.0) / DAY
        return np.where(self._item_known[r.items], age, FEATURES["age_days"].default)

    def _f_price_log(self, r: _Rows) -> np.ndarray:
        return self._price_log[r.items]

    def _f_promoted(self, r: _Rows) -> np.ndarray:
        return self._promoted[r.items]

    def _f_segment(self, r: _Rows) -> np.ndarray:
        return self._user_segment[r.req.user[r.of]]

    def _f_device(self, r: _Rows) -> np.ndarray:
        return r.req.device[r.of]

    def _context_column(self, r: _Rows, applies: tuple[np.ndarray, ...], name: str, value: Callable):
        """`value()` where it applies (its sections; `everywhere`: wherever given), else its default."""
        default = FEATURES[name].default
        assert default is not None
        row_applies = applies[name in self.everywhere][r.of]
        if not row_applies.any():
            return np.full(len(r.items), default)
        return np.where(row_applies, value(), default)

    def _f_source_similarity(self, r: _Rows) -> np.ndarray:
        return self._context_column(
            r,
            (r.req.has_source, r.req.source_given),
            "source_similarity",
            lambda: np.einsum("ij,ij->i", self._item_emb[r.req.source[r.of]], r.item_embedding),
        )

    def _f_category_match(self, r: _Rows) -> np.ndarray:
        return self._context_column(
            r,
            (r.req.has_category, r.req.category_given),
            "category_match",
            lambda: (self._item_category[r.items] == r.req.category[r.of]).astype(np.float64),
        )

    def _f_query_match(self, r: _Rows) -> np.ndarray:
        def share() -> np.ndarray:
            words = r.req.query_words[r.of]  # (R, Q)
            tags = self._item_tags[r.items]  # (R, T)
            hits = (tags[:, :, None] == words[:, None, :]).any(axis=1).sum(axis=1)
            return hits / np.maximum(r.req.n_words[r.of], 1)

        return self._context_column(r, (r.req.has_query, r.req.query_given), "query_match", share)

    def _f_query_similarity(self, r: _Rows) -> np.ndarray:
        return self._context_column(
            r,
            (r.req.has_query, r.req.query_given),
            "query_similarity",
            lambda: np.einsum("ij,ij->i", r.req.query_vector[r.of], r.item_embedding),
        )
