"""Ranking requests as the feature function reads them: who asks, in which section, when, and in what context.

The same parser reads a logged context dict (offline) and a served request's context dict (online), so both
paths see identical request fields. A context dict may hold:

- ``device`` (str): the request's device; absent or empty: unknown;
- ``source_item`` (int or str id): the item on screen (similar_items);
- ``category`` (int or str): the explored category (category_explore);
- ``query`` (str): the query text, space-separated words (search);
- ``time`` (float, Unix seconds): the request time, used online when no time is passed explicitly.

Other keys (``hour``, ``segment``, ``fresh_share``, ...) are ignored by the rankers.
"""

from __future__ import annotations

import math
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from ranker.errors import RequestError


@dataclass(frozen=True)
class Requests:
    """B ranking requests.

    Attributes
    ----------
    section : (B,) str
    user_id : (B,) int64 or object
        User ids as given (int or str).
    time : (B,) float64
        Request time, Unix seconds.
    device : (B,) str
        "" when the context has none.
    source_item : (B,) object
        The source item id, None when the context has none.
    category : (B,) object
        The explored category, None when the context has none.
    query : (B,) str
        The query text, "" when the context has none.
    """

    section: np.ndarray
    user_id: np.ndarray
    time: np.ndarray
    device: np.ndarray
    source_item: np.ndarray
    category: np.ndarray
    query: np.ndarray

    def __len__(self) -> int:
        return len(self.section)

    def take(self, rows: np.ndarray) -> Requests:
        """The requests at `rows` (indices, repeats allowed, or a boolean mask), in that order."""
        return Requests(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @classmethod
    def from_contexts(
        cls,
        sections: Sequence[str] | np.ndarray,
        user_ids: Sequence[object] | np.ndarray,
        times: Sequence[float] | np.ndarray,
        contexts: Sequence[Mapping[str, object] | None],
    ) -> Requests:
        """Requests from per-request sections, users, times (B,) and context dicts (B).

        Raises
        ------
        RequestError
            A context field of the wrong type, naming the field and the request's position.
        """
        n = len(contexts)
        for name, values in (("sections", sections), ("user_ids", user_ids), ("times", times)):
            if len(values) != n:
                raise RequestError(f"Expected `{name}` of length {n} (one per context), found {len(values)}")
        parsed = [_parse_context(ctx, i) for i, ctx in enumerate(contexts)]
        device, source, category, query = (
            (list(column) for column in zip(*parsed, strict=True)) if n else ([],) * 4
        )
        time = np.asarray(times, dtype=np.float64).reshape(n)
        bad = ~np.isfinite(time)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RequestError(f"Expected finite request `time`, found {time[i]!r} at request {i}")
        return cls(
            section=np.asarray(sections, dtype=object).reshape(n),
            user_id=_id_array(user_ids),
            time=time,
            device=np.asarray(device, dtype=object).reshape(n),
            source_item=_object_array(source),
            category=_object_array(category),
            query=np.asarray(query, dtype=object).reshape(n),
        )

    @classmethod
    def from_columns(
        cls,
        *,
        section: np.ndarray,
        user_id: np.ndarray,
        time: np.ndarray,
        device: np.ndarray,
        source_item: np.ndarray,
        category: np.ndarray,
        query: np.ndarray,
    ) -> Requests:
        """Requests from columns (B,), as the attributes above describe them; no per-request dicts.

        `device` and `query` are strings (``""`` for none); `source_item` and `category` hold ids, None for
        none. The columns are checked as wholes: equal lengths, finite times, string and id dtypes.

        Raises
        ------
        RequestError
            A column of another length or dtype, naming it.
        """
        columns = {
            "section": np.asarray(section),
            "user_id": np.asarray(user_id),
            "time": np.asarray(time),
            "device": np.asarray(device),
            "source_item": np.asarray(source_item),
            "category": np.asarray(category),
            "query": np.asarray(query),
        }
        n = len(columns["section"])
        for name, values in columns.items():
            if values.shape != (n,):
                raise RequestError(f"Expected `{name}` of shape ({n},) (as `section`), found {values.shape}")
        for name in ("section", "device", "query"):
            if columns[name].dtype.kind not in "UO":
                raise RequestError(f"Expected `{name}` as strings, found dtype {columns[name].dtype}")
        for name in ("source_item", "category"):
            if columns[name].dtype.kind != "O":
                raise RequestError(
                    f"Expected `{name}` as an object array of ids (None for none), found dtype "
                    f"{columns[name].dtype}"
                )
        if columns["time"].dtype.kind not in "iuf":
            raise RequestError(f"Expected `time` as Unix seconds, found dtype {columns['time'].dtype}")
        times = columns["time"].astype(np.float64)
        bad = ~np.isfinite(times)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise RequestError(f"Expected finite request `time`, found {float(times[i])!r} at request {i}")
        return cls(
            section=columns["section"].astype(object),
            user_id=_id_array(columns["user_id"]),
            time=times,
            device=columns["device"].astype(object),
            source_item=columns["source_item"],
            category=columns["category"],
            query=columns["query"].astype(object),
        )

    @classmethod
    def single(
        cls, section: str, user_id: object, context: Mapping[str, object] | None, *, now: float | None = None
    ) -> Requests:
        """One served request. Its time is ``context["time"]`` when given, else `now`, else the clock."""
        context = {} if context is None else context
        when = context.get("time", now)
        if when is None:
            when = _time.time()
        if isinstance(when, bool) or not isinstance(when, int | float) or not math.isfinite(when):
            raise RequestError(f"Expected context `time` to be finite Unix seconds, found {when!r}")
        return cls.from_contexts([section], [user_id], [float(when)], [context])


def _id_array(values: Sequence[object] | np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind in "iu":
        return array.astype(np.int64, copy=False)
    return np.asarray(values, dtype=object)


def _object_array(values: list[object]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _is_id(value: object) -> bool:
    return isinstance(value, int | str | np.integer) and not isinstance(value, bool)


def _parse_context(context: Mapping[str, object] | None, i: int) -> tuple[str, object, object, str]:
    """(device, source_item or None, category or None, query) of one context dict."""
    if context is None:
        return "", None, None, ""
    if not isinstance(context, Mapping):
        raise RequestError(f"Expected a context dict, found {type(context).__name__} at request {i}")
    device = context.get("device")
    if device is None:
        device = ""
    elif not isinstance(device, str):
        raise RequestError(f"Expected context `device` to be a string, found {device!r} at request {i}")
    source = context.get("source_item")
    if source is not None and not _is_id(source):
        raise RequestError(
            f"Expected context `source_item` to be an int or str id, found {source!r} at request {i}"
        )
    category = context.get("category")
    if category is not None and not _is_id(category):
        raise RequestError(
            f"Expected context `category` to be an int or str, found {category!r} at request {i}"
        )
    query = context.get("query")
    if query is None:
        query = ""
    elif not isinstance(query, str):
        raise RequestError(f"Expected context `query` to be a string, found {query!r} at request {i}")
    return device, source, category, query
