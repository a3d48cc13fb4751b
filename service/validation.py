"""Request bodies -> typed requests, refusing anything malformed with an `ApiError` naming the field.

Rules (docs/http-api.md):

- the body is a JSON object (malformed JSON: 400; any other JSON value: 422 on ``body``); unknown keys are
  refused, at the top level and in ``user`` and ``context``;
- ids (user, candidates, ``context.source_item``) are integers in int64 or non-empty strings of at most
  `MAX_ID_CHARS` characters; all candidates of one request have the same id type;
- duplicate candidate ids are refused (422 naming the second occurrence): a candidate list is a set;
- ``k`` is an integer in [1, the section's ``max_candidates``] (booleans are not integers); a ``k`` above the
  number of candidates returns them all;
- numbers must be finite (orjson refuses NaN and Infinity literals as malformed JSON).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from heuristics import SectionsConfig
from ranker.rerank.pipeline import RerankRequest
from service.errors import ApiError

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 1024
MAX_SHORT_CHARS = 64
MAX_FEEDBACK_ITEMS = 10_000
INT64 = (-(2**63), 2**63 - 1)

RERANK_KEYS = frozenset({"section", "user", "context", "candidates", "k", "request_id"})
USER_KEYS = frozenset({"id", "features"})
CONTEXT_KEYS = frozenset({"source_item", "category", "query", "device", "time"})
FEEDBACK_KEYS = frozenset({"event_id", "clicks", "conversions", "revenue", "reward", "time"})


def unprocessable(field: str, message: str) -> ApiError:
    return ApiError(422, message, field)


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    if not raw:
        raise ApiError(400, "the request body is empty; expected a JSON object", "body")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON: {exc}", "body") from None
    if not isinstance(body, dict):
        raise unprocessable("body", f"expected a JSON object, found {_kind(body)}")
    return body


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _check_keys(field: str, body: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        where = f"{field}.{unknown[0]}" if field else unknown[0]
        raise unprocessable(where, f"unknown field (expected some of {', '.join(sorted(allowed))})")


def _string(field: str, value: Any, limit: int, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise unprocessable(field, f"expected a string, found {_kind(value)}")
    if not value and not empty:
        raise unprocessable(field, "expected a non-empty string")
    if len(value) > limit:
        raise unprocessable(field, f"expected at most {limit} characters, found {len(value)}")
    return value


def _id(field: str, value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise unprocessable(field, f"expected an integer or string id, found {_kind(value)}")
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise unprocessable(field, "expected an integer id within int64")
        return value
    return _string(field, value, MAX_ID_CHARS)


def _number(field: str, value: Any, low: float = -math.inf, high: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise unprocessable(field, f"expected a number, found {_kind(value)}")
    if not (math.isfinite(value) and low <= value <= high):
        raise unprocessable(field, f"expected a finite number in [{low:g}, {high:g}], found {value!r}")
    return float(value)


def _integer(field: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise unprocessable(field, f"expected an integer, found {_kind(value)}")
    if not low <= value <= high:
        raise unprocessable(field, f"expected an integer in [{low}, {high}], found {value}")
    return value


def candidate_ids(value: Any) -> np.ndarray:
    """Candidate ids (n,) from ``[id, ...]`` or ``[{"id": id, ...}, ...]``: int64, or an object array of the
    str ids as given (NUL included)."""
    if not isinstance(value, list):
        raise unprocessable("candidates", f"expected an array of ids, found {_kind(value)}")
    if not value:
        raise unprocessable("candidates", "expected at least one candidate")
    types = set(map(type, value))
    if types == {dict}:
        ids = [c.get("id") for c in value]
        missing = [i for i, c in enumerate(ids) if c is None]
        if missing:
            raise unprocessable(f"candidates[{missing[0]}].id", "missing (each candidate object needs an id)")
        value, types, where = ids, set(map(type, ids)), "candidates[{}].id"
    else:
        where = "candidates[{}]"
    if types == {int}:
        try:
            ids = np.array(value, dtype=np.int64)
        except OverflowError:
            big = next(i for i, v in enumerate(value) if not INT64[0] <= v <= INT64[1])
            raise unprocessable(where.format(big), "expected an integer id within int64") from None
    elif types == {str}:
        # An object array keeps each id as given: numpy's fixed-width strings drop trailing NULs.
        ids = np.empty(len(value), dtype=object)
        ids[:] = value
        lengths = np.fromiter(map(len, value), np.int64, count=len(value))
        bad = np.flatnonzero((lengths == 0) | (lengths > MAX_ID_CHARS))
        if bad.size:
            _string(where.format(bad[0]), value[bad[0]], MAX_ID_CHARS)
    else:
        first = type(value[0])
        odd = next(
            (i for i, v in enumerate(value) if type(v) is not first or first not in (int, str)),
            0,
        )
        _id(where.format(odd), value[odd])
        raise unprocessable(
            where.format(odd), f"expected every id of the same type as the first ({first.__name__})"
        )
    unique, first_at = np.unique(ids, return_index=True)
    if len(unique) < len(ids):
        seen = np.zeros(len(ids), dtype=bool)
        seen[first_at] = True
        second = int(np.flatnonzero(~seen)[0])
        raise unprocessable(
            where.format(second), f"duplicate candidate id {value[second]!r} (candidates must be distinct)"
        )
    return ids


def parse_rerank(body: Mapping[str, Any], sections: SectionsConfig) -> RerankRequest:
    """A rerank body -> `RerankRequest`; the section's required context is checked by the pipeline."""
    _check_keys("", body, RERANK_KEYS)
    for key in ("section", "user", "candidates"):
        if key not in body:
            raise unprocessable(key, "missing")
    section = _string("section", body["section"], MAX_SHORT_CHARS)
    if section not in sections.sections:
        known = ", ".join(sections.sections)
        raise unprocessable("section", f"unknown section {section!r} (configured: {known})")
    serving = sections[section].serving
    user = body["user"]
    if not isinstance(user, dict):
        raise unprocessable("user", f"expected an object with an id, found {_kind(user)}")
    _check_keys("user", user, USER_KEYS)
    if "id" not in user:
        raise unprocessable("user.id", "missing")
    user_id = _id("user.id", user["id"])
    features = user.get("features", {})
    if not isinstance(features, dict):
        raise unprocessable("user.features", f"expected an object, found {_kind(features)}")
    context_in = body.get("context", {})
    if not isinstance(context_in, dict):
        raise unprocessable("context", f"expected an object, found {_kind(context_in)}")
    _check_keys("context", context_in, CONTEXT_KEYS)
    context: dict[str, Any] = {}
    if context_in.get("source_item") is not None:
        context["source_item"] = _id("context.source_item", context_in["source_item"])
    if context_in.get("category") is not None:
        context["category"] = _id("context.category", context_in["category"])
    if context_in.get("query") is not None:
        context["query"] = _string("context.query", context_in["query"], MAX_TEXT_CHARS, empty=True)
    if context_in.get("device") is not None:
        context["device"] = _string("context.device", context_in["device"], MAX_SHORT_CHARS)
    if context_in.get("time") is not None:
        context["time"] = _number("context.time", context_in["time"], 0.0, 1e11)
    candidates = candidate_ids(body["candidates"])
    if len(candidates) > serving.max_candidates:
        raise unprocessable(
            "candidates",
            f"{len(candidates)} candidates, section {section!r} takes at most {serving.max_candidates}",
        )
    k = body.get("k")
    if k is not None:
        k = _integer("k", k, 1, serving.max_candidates)
    request_id = body.get("request_id")
    if request_id is not None:
        request_id = _string("request_id", request_id, MAX_ID_CHARS)
    return RerankRequest(
        section=section, user_id=user_id, context=context, candidates=candidates, k=k, request_id=request_id
    )


def cache_key(body: Mapping[str, Any]) -> bytes:
    """The body minus ``request_id``, canonically serialised: identical requests share a key."""
    return orjson.dumps({k: v for k, v in body.items() if k != "request_id"}, option=orjson.OPT_SORT_KEYS)


@dataclass(frozen=True)
class FeedbackRequest:
    """A feedback body, validated; clicks and conversions are still ids or positions.

    Attributes
    ----------
    clicks, conversions : tuple of (kind, value)
        ``("position", int)`` for ``{"position": p}`` entries, ``("id", id)`` for item ids.
    """

    event_id: str
    time: float
    clicks: tuple[tuple[str, int | str], ...]
    conversions: tuple[tuple[str, int | str], ...]
    revenue: float
    reward: float


def _slots(field: str, value: Any) -> tuple[tuple[str, int | str], ...]:
    if not isinstance(value, list):
        raise unprocessable(
            field, f"expected an array of item ids or {{'position': p}}, found {_kind(value)}"
        )
    if len(value) > MAX_FEEDBACK_ITEMS:
        raise unprocessable(field, f"expected at most {MAX_FEEDBACK_ITEMS} entries, found {len(value)}")
    out = []
    for i, entry in enumerate(value):
        if isinstance(entry, dict):
            _check_keys(f"{field}[{i}]", entry, frozenset({"position"}))
            if "position" not in entry:
                raise unprocessable(f"{field}[{i}].position", "missing")
            out.append(("position", _integer(f"{field}[{i}].position", entry["position"], 0, 2**31)))
        else:
            out.append(("id", _id(f"{field}[{i}]", entry)))
    return tuple(out)


def parse_feedback(body: Mapping[str, Any], *, now: float | None = None) -> FeedbackRequest:
    """A feedback body -> `FeedbackRequest`."""
    _check_keys("", body, FEEDBACK_KEYS)
    for key in ("event_id", "clicks"):
        if key not in body:
            raise unprocessable(key, "missing")
    event_id = _string("event_id", body["event_id"], MAX_ID_CHARS)
    clicks = _slots("clicks", body["clicks"])
    conversions = _slots("conversions", body.get("conversions", []))
    revenue = _number("revenue", body.get("revenue", 0.0), 0.0)
    reward = body.get("reward")
    reward = math.nan if reward is None else _number("reward", reward)
    when = body.get("time")
    when = (time.time() if now is None else now) if when is None else _number("time", when, 0.0, 1e11)
    return FeedbackRequest(event_id, when, clicks, conversions, revenue, reward)


RELOAD_KEYS = frozenset({"models", "policy", "section_models"})


def parse_reload(body: Mapping[str, Any]) -> dict[str, Any]:
    """A reload body -> overrides: ``models`` (design -> directory), ``policy``, ``section_models``."""
    _check_keys("", body, RELOAD_KEYS)
    out: dict[str, Any] = {}
    for key in ("models", "section_models"):
        if key in body:
            table = body[key]
            if not isinstance(table, dict):
                raise unprocessable(key, f"expected an object, found {_kind(table)}")
            out[key] = {str(k): _string(f"{key}.{k}", v, MAX_TEXT_CHARS) for k, v in table.items()}
    if "models" in out:
        out["models"] = {k: Path(v) for k, v in out["models"].items()}
    if "policy" in body:
        out["policy"] = _string("policy", body["policy"], MAX_TEXT_CHARS)
    return out
