"""Validation and encoding of logged batches into SQLite rows, and decoding of rows into DataFrames.

Ragged and dict fields are stored as compact JSON text (no spaces, UTF-8, no NaN or infinity), which every
SQLite client and JSON library can read. JSON keeps the type of an id: ``[17,4]`` holds int ids, ``["a","b"]``
str ids. Decoding number lists (int ids, positions, probabilities) takes a vectorised path: all rows of a
column are joined into one text and parsed by numpy in one call, then split by the row lengths; text that is
not a plain list of numbers (written by another tool) falls back to the general JSON parser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pandas as pd

from bandits.errors import InvalidBatchError
from bandits.records import DecisionBatch, FeedbackBatch

#: Decision columns in the order `decision_rows` writes them and `decisions_frame` reads them.
DECISION_FIELDS: tuple[str, ...] = (
    "event_id",
    "time",
    "section",
    "user_id",
    "context",
    "candidates",
    "shown",
    "shown_scores",
    "arm_id",
    "arm_index",
    "knobs",
    "propensity",
    "arm_probs",
    "model_versions",
    "variant",
)
#: Feedback columns in the order `feedback_rows` writes them and `feedback_frame` reads them.
FEEDBACK_FIELDS: tuple[str, ...] = ("event_id", "time", "clicks", "conversions", "revenue", "reward", "late")
#: Feedback columns of a joined frame, after the decision columns (``time`` renamed ``feedback_time``).
JOINED_FEEDBACK_FIELDS: tuple[str, ...] = (
    "has_feedback",
    "feedback_time",
    "clicks",
    "conversions",
    "revenue",
    "reward",
    "late",
)

# A leftover float difference between a distribution's sum and 1, or between `propensity` and the chosen
# arm's probability, that is still accepted.
_PROB_TOLERANCE = 1e-6


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):  # e.g. an arm's read-only knobs
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


#: Compact JSON text of a value; numpy scalars, arrays and read-only mappings become numbers, lists and
#: objects; NaN and infinity are refused.
encode_json = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
).encode


def encode_list(values: np.ndarray) -> str:
    """Compact JSON text of a validated 1-d array of ids or finite numbers (orjson: the per-decision hot path
    of the log writer; the same text `encode_json` would give up to float spelling, e.g. ``1e-5``)."""
    return orjson.dumps(values.tolist()).decode()


# ---------------------------------------------------------------------------------------------------------
# Validation and encoding


def decision_rows(batch: DecisionBatch) -> list[tuple[Any, ...]]:
    """Validate `batch` and encode it as B row tuples in `DECISION_FIELDS` order.

    Raises
    ------
    InvalidBatchError
        Naming the field, the row and the expected vs. found value.
    """
    n = len(batch)
    event_id = _str_ids("event_id", batch.event_id, n)
    _check_unique("event_id", event_id)
    time = _floats("time", batch.time, n)
    section = _str_ids("section", batch.section, n)
    user_id = _ids("user_id", batch.user_id, n)
    arm_id = _str_ids("arm_id", batch.arm_id, n)
    variant = np.full(n, "", object) if batch.variant is None else _str_ids("variant", batch.variant, n, True)
    arm_index = _ints("arm_index", batch.arm_index, n)
    propensity = _floats("propensity", batch.propensity, n)
    bad = np.flatnonzero(~((propensity > 0) & (propensity <= 1)))
    if bad.size:
        raise InvalidBatchError(
            f"Expected `propensity` in (0, 1], found {propensity[bad[0]]:g} at row {bad[0]}"
        )
    for name in ("context", "knobs", "model_versions"):
        _dicts(name, getattr(batch, name), n)
    candidates = _id_lists("candidates", batch.candidates, n)
    shown = _id_lists("shown", batch.shown, n)
    n_candidates = np.fromiter(map(len, candidates), np.int64, count=n)
    n_shown = np.fromiter(map(len, shown), np.int64, count=n)
    bad = np.flatnonzero(n_shown > n_candidates)
    if bad.size:
        raise InvalidBatchError(
            f"Expected `shown` no longer than `candidates`, found {n_shown[bad[0]]} shown of "
            f"{n_candidates[bad[0]]} candidates at row {bad[0]}"
        )
    arm_probs = _float_lists("arm_probs", batch.arm_probs, n)
    _check_distributions(arm_probs, arm_index, propensity)
    if batch.shown_scores is None:
        scores_text: list[str | None] = [None] * n
    else:
        scores = _float_lists("shown_scores", batch.shown_scores, n)
        n_scores = np.fromiter(map(len, scores), np.int64, count=n)
        bad = np.flatnonzero(n_scores != n_shown)
        if bad.size:
            raise InvalidBatchError(
                f"Expected `shown_scores` of the length of `shown` ({n_shown[bad[0]]}), found "
                f"{n_scores[bad[0]]} at row {bad[0]}"
            )
        scores_text = [encode_list(s) for s in scores]

    context = _encode_all("context", batch.context)
    knobs = _encode_all("knobs", batch.knobs)
    versions = _encode_all("model_versions", batch.model_versions)
    return list(
        zip(
            event_id.tolist(),
            time.tolist(),
            section.tolist(),
            user_id.tolist(),
            context,
            [encode_list(c) for c in candidates],
            [encode_list(s) for s in shown],
            scores_text,
            arm_id.tolist(),
            arm_index.tolist(),
            knobs,
            propensity.tolist(),
            [encode_list(p) for p in arm_probs],
            versions,
            variant.tolist(),
            strict=True,
        )
    )


def feedback_rows(batch: FeedbackBatch, late: bool | np.ndarray = False) -> list[tuple[Any, ...]]:
    """Validate `batch` and encode it as B row tuples in `FEEDBACK_FIELDS` order.

    `late` is the writer's late flag, a bool or a (B,) bool array. A missing `conversions` (the default empty
    list) means none; a missing `revenue` means 0; a missing `reward` means NaN (stored as NULL).
    """
    n = len(batch)
    event_id = _str_ids("event_id", batch.event_id, n)
    time = _floats("time", batch.time, n)
    clicks = _position_lists("clicks", batch.clicks, n)
    if len(batch.conversions) == 0 and n > 0:
        conversions = [np.empty(0, np.int64)] * n
    else:
        conversions = _position_lists("conversions", batch.conversions, n)
    revenue = np.zeros(n) if batch.revenue is None else _floats("revenue", batch.revenue, n)
    if batch.reward is None:
        reward = np.full(n, np.nan)
    else:
        reward = _floats("reward", batch.reward, n, allow_nan=True)
    late_flags = np.broadcast_to(np.asarray(late), (n,)) if np.ndim(late) == 0 else np.asarray(late)
    if late_flags.shape != (n,) or late_flags.dtype != np.bool_:
        raise InvalidBatchError(
            f"Expected `late` to be a bool or a ({n},) bool array, found dtype {late_flags.dtype} "
            f"shape {late_flags.shape}"
        )
    # NaN is bound as NULL: the column holds "no explicit reward" portably.
    reward_values = [None if r != r else r for r in reward.tolist()]
    return list(
        zip(
            event_id.tolist(),
            time.tolist(),
            [encode_list(c) for c in clicks],
            [encode_list(c) for c in conversions],
            revenue.tolist(),
            reward_values,
            late_flags.astype(np.int64).tolist(),
            strict=True,
        )
    )


def _array(name: str, value: object, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (n,):
        raise InvalidBatchError(f"Expected `{name}` of shape ({n},), found shape {arr.shape}")
    return arr


def _is_str_array(arr: np.ndarray) -> bool:
    if arr.dtype.kind in "UT":
        return True
    return arr.dtype.kind == "O" and pd.api.types.infer_dtype(arr, skipna=False) in ("string", "empty")


def _is_id_array(arr: np.ndarray) -> bool:
    """Int ids, or str ids (an object array must hold only one of the two)."""
    if arr.dtype.kind in "iuUT":
        return True
    return arr.dtype.kind == "O" and pd.api.types.infer_dtype(arr, skipna=False) in (
        "integer",
        "string",
        "empty",
    )


def _str_ids(name: str, value: object, n: int, allow_empty: bool = False) -> np.ndarray:
    arr = _array(name, value, n)
    if arr.size and not _is_str_array(arr):
        raise InvalidBatchError(f"Expected `{name}` of str, found dtype {arr.dtype}")
    empty = np.flatnonzero((arr == "") & (not allow_empty))
    if empty.size:
        raise InvalidBatchError(f"Expected a non-empty `{name}`, found '' at row {empty[0]}")
    return arr


def _ids(name: str, value: object, n: int) -> np.ndarray:
    arr = _array(name, value, n)
    if arr.size and not _is_id_array(arr):
        raise InvalidBatchError(f"Expected `{name}` of int or str ids, found dtype {arr.dtype}")
    return arr


def _ints(name: str, value: object, n: int) -> np.ndarray:
    arr = _array(name, value, n)
    if arr.size and arr.dtype.kind not in "iu":
        raise InvalidBatchError(f"Expected `{name}` of integers, found dtype {arr.dtype}")
    return arr.astype(np.int64)


def _floats(name: str, value: object, n: int, *, allow_nan: bool = False) -> np.ndarray:
    arr = _array(name, value, n)
    if arr.size and arr.dtype.kind not in "iuf":
        raise InvalidBatchError(f"Expected `{name}` of numbers, found dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = np.flatnonzero(np.isinf(arr) if allow_nan else ~np.isfinite(arr))
    if bad.size:
        what = "a finite or NaN" if allow_nan else "a finite"
        raise InvalidBatchError(f"Expected {what} `{name}`, found {arr[bad[0]]} at row {bad[0]}")
    return arr


def _check_unique(name: str, arr: np.ndarray) -> None:
    if arr.size < 2:
        return
    dup = np.flatnonzero(pd.Index(arr).duplicated())
    if dup.size:
        raise InvalidBatchError(f"Expected unique `{name}`, found {str(arr[dup[0]])!r} again at row {dup[0]}")


def _ragged(name: str, value: object, n: int) -> Sequence[Any]:
    if not isinstance(value, Sequence | np.ndarray) or len(value) != n:
        found = len(value) if isinstance(value, Sequence | np.ndarray) else type(value).__name__
        raise InvalidBatchError(f"Expected `{name}` to be a list of {n} rows, found {found}")
    return value


def _id_lists(name: str, value: object, n: int) -> list[np.ndarray]:
    out = [np.asarray(v) for v in _ragged(name, value, n)]
    for row, arr in enumerate(out):
        if arr.ndim != 1 or (arr.size and not _is_id_array(arr)):
            raise InvalidBatchError(
                f"Expected `{name}` rows of int or str ids (1-d), found dtype {arr.dtype} shape {arr.shape} "
                f"at row {row}"
            )
    return out


def _number_lists(name: str, value: object, n: int, kinds: str, what: str) -> list[np.ndarray]:
    out = [np.asarray(v) for v in _ragged(name, value, n)]
    for row, arr in enumerate(out):
        if arr.ndim != 1 or (arr.dtype.kind not in kinds and arr.size):
            raise InvalidBatchError(
                f"Expected `{name}` rows of {what} (1-d), found dtype {arr.dtype} shape {arr.shape} "
                f"at row {row}"
            )
    return out


def _float_lists(name: str, value: object, n: int) -> list[np.ndarray]:
    out = [a.astype(np.float64) for a in _number_lists(name, value, n, "iuf", "numbers")]
    flat = np.concatenate(out) if out else np.empty(0)
    bad = np.flatnonzero(~np.isfinite(flat))
    if bad.size:
        row = int(np.searchsorted(np.cumsum([len(a) for a in out]), bad[0], side="right"))
        raise InvalidBatchError(f"Expected finite `{name}`, found {flat[bad[0]]} at row {row}")
    return out


def _position_lists(name: str, value: object, n: int) -> list[np.ndarray]:
    out = [a.astype(np.int64) for a in _number_lists(name, value, n, "iu", "integer positions")]
    flat = np.concatenate(out) if out else np.empty(0, np.int64)
    bad = np.flatnonzero(flat < 0)
    if bad.size:
        row = int(np.searchsorted(np.cumsum([len(a) for a in out]), bad[0], side="right"))
        raise InvalidBatchError(f"Expected `{name}` positions >= 0, found {flat[bad[0]]} at row {row}")
    return out


def _dicts(name: str, value: object, n: int) -> None:
    rows = _ragged(name, value, n)
    for row, item in enumerate(rows):
        if not isinstance(item, Mapping):
            raise InvalidBatchError(
                f"Expected `{name}` rows of dicts, found {type(item).__name__} at row {row}"
            )


def _encode_all(name: str, rows: Sequence[Any]) -> list[str]:
    try:
        return [encode_json(item) for item in rows]
    except (TypeError, ValueError) as exc:
        # Find the row to name it; only on this error path.
        for row, item in enumerate(rows):
            try:
                encode_json(item)
            except (TypeError, ValueError) as row_exc:
                raise InvalidBatchError(f"`{name}` at row {row} is not JSON-serialisable: {row_exc}") from exc
        raise  # pragma: no cover - the loop always finds the row


def _check_distributions(arm_probs: list[np.ndarray], arm_index: np.ndarray, propensity: np.ndarray) -> None:
    n = len(arm_probs)
    if n == 0:
        return
    lengths = np.fromiter(map(len, arm_probs), np.int64, count=n)
    bad = np.flatnonzero((arm_index < 0) | (arm_index >= lengths))
    if bad.size:
        raise InvalidBatchError(
            f"Expected `arm_index` in [0, {lengths[bad[0]]}) (the length of `arm_probs`), found "
            f"{arm_index[bad[0]]} at row {bad[0]}"
        )
    flat = np.concatenate(arm_probs)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    negative = np.flatnonzero(flat < 0)
    if negative.size:
        row = int(np.searchsorted(starts, negative[0], side="right")) - 1
        raise InvalidBatchError(f"Expected `arm_probs` >= 0, found {flat[negative[0]]:g} at row {row}")
    sums = np.add.reduceat(flat, starts)
    bad = np.flatnonzero(np.abs(sums - 1.0) > _PROB_TOLERANCE)
    if bad.size:
        raise InvalidBatchError(
            f"Expected `arm_probs` summing to 1, found {sums[bad[0]]:.9g} at row {bad[0]}"
        )
    chosen = flat[starts + arm_index]
    bad = np.flatnonzero(np.abs(chosen - propensity) > _PROB_TOLERANCE)
    if bad.size:
        raise InvalidBatchError(
            f"Expected `propensity` equal to arm_probs[arm_index] ({chosen[bad[0]]:.9g}), found "
            f"{propensity[bad[0]]:.9g} at row {bad[0]}"
        )


# ---------------------------------------------------------------------------------------------------------
# Decoding


def decode_dicts(texts: Sequence[str]) -> list[Any]:
    """JSON texts -> Python values, parsed in one call."""
    return json.loads("[" + ",".join(texts) + "]") if len(texts) else []


def decode_number_lists(
    texts: Sequence[str], dtype: type[np.integer] | type[np.floating]
) -> list[np.ndarray]:
    """JSON number arrays -> one numpy array of `dtype` per row (vectorised, with a JSON fallback)."""
    n = len(texts)
    if n == 0:
        return []
    lengths = np.fromiter((t.count(",") + 1 if len(t) > 2 else 0 for t in texts), np.int64, count=n)
    flat = _parse_numbers(",".join([t[1:-1] for t in texts if len(t) > 2]), dtype, int(lengths.sum()))
    if flat is None:
        return [np.asarray(values, dtype=dtype) for values in decode_dicts(texts)]
    ends = np.cumsum(lengths)
    # Slicing is several times faster than np.split; each row is a view of the one parsed array.
    return [flat[a:b] for a, b in zip((ends - lengths).tolist(), ends.tolist(), strict=True)]


def decode_id_lists(texts: Sequence[str]) -> list[np.ndarray]:
    """JSON id arrays -> one array per row: int64 for int ids, an object array of the str ids as logged (NUL
    included) for str ids (int64 when empty)."""
    n = len(texts)
    is_str = np.fromiter((t.startswith('["') for t in texts), bool, count=n)
    if not is_str.any():
        try:
            return decode_number_lists(texts, np.int64)
        except (TypeError, ValueError):
            return [_id_array(values) for values in decode_dicts(texts)]
    out: list[np.ndarray] = [np.empty(0, np.int64)] * n
    str_rows = np.flatnonzero(is_str)
    for row, values in zip(str_rows, decode_dicts([texts[i] for i in str_rows]), strict=True):
        out[row] = _str_id_array(values)
    int_rows = np.flatnonzero(~is_str)
    if int_rows.size:
        for row, arr in zip(int_rows, decode_id_lists([texts[i] for i in int_rows]), strict=True):
            out[row] = arr
    return out


def _id_array(values: list[Any]) -> np.ndarray:
    return np.asarray(values) if values else np.empty(0, np.int64)


def _str_id_array(values: list[Any]) -> np.ndarray:
    """Str ids as an object array: numpy's fixed-width strings would drop trailing NULs."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


_NUMBER_CHARS = {
    np.dtype(np.int64): b"0123456789-,",
    np.dtype(np.float64): b"0123456789-+.eE,",
}


def _parse_numbers(
    body: str, dtype: type[np.integer] | type[np.floating], expected: int
) -> np.ndarray | None:
    """Comma-separated numbers -> a flat array; None when `body` is not exactly `expected` plain numbers."""
    if expected == 0:
        return np.empty(0, dtype) if body == "" else None
    raw = body.encode()
    if raw.translate(None, _NUMBER_CHARS[np.dtype(dtype)]):
        return None
    try:
        flat = np.fromstring(body, dtype=dtype, sep=",")
    except (ValueError, DeprecationWarning):
        # numpy warns (and, with warnings as errors, raises) on text it cannot read to its end.
        return None
    return flat if flat.size == expected else None


def _object_column(values: Sequence[Any]) -> pd.Series:
    return pd.Series(list(values), dtype=object)


def _str_column(values: Sequence[Any]) -> pd.Series:
    return pd.Series(list(values), dtype=str) if len(values) == 0 else pd.Series(list(values))


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


def decisions_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Decision rows (in `DECISION_FIELDS` order) -> a DataFrame with JSON decoded.

    Columns: ``event_id, time, section, user_id`` (int64 or str; object when the log mixes both),
    ``context, knobs, model_versions`` (dicts), ``candidates, shown`` (one id array per row),
    ``shown_scores`` (float64 arrays, None when not logged), ``arm_id, arm_index, propensity``,
    ``arm_probs`` (float64 arrays), ``variant`` (str, "" outside any A/B experiment).
    """
    cols = _columns(rows, len(DECISION_FIELDS))
    return pd.DataFrame(decode_joined_columns(dict(zip(DECISION_FIELDS, cols, strict=True))))


def _scores_column(texts: Sequence[str | None]) -> pd.Series:
    scores: list[np.ndarray | None] = [None] * len(texts)
    logged = [i for i, t in enumerate(texts) if t is not None]
    for i, arr in zip(logged, decode_number_lists([texts[i] for i in logged], np.float64), strict=True):
        scores[i] = arr
    return _object_column(scores)


def _floats_column(values: Sequence[Any]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)


#: How each column of a joined frame is decoded from its stored values (``user_id`` already decoded).
_DECODERS: dict[str, Any] = {
    "event_id": _str_column,
    "time": _floats_column,
    "section": _str_column,
    "user_id": lambda v: pd.Series(list(v), dtype=None if len(v) else np.int64),
    "context": lambda v: _object_column(decode_dicts(v)),
    "candidates": lambda v: _object_column(decode_id_lists(v)),
    "shown": lambda v: _object_column(decode_id_lists(v)),
    "shown_scores": _scores_column,
    "arm_id": _str_column,
    "arm_index": lambda v: np.asarray(v, dtype=np.int64),
    "knobs": lambda v: _object_column(decode_dicts(v)),
    "propensity": _floats_column,
    "arm_probs": lambda v: _object_column(decode_number_lists(v, np.float64)),
    "model_versions": lambda v: _object_column(decode_dicts(v)),
    "variant": _str_column,
    "has_feedback": lambda v: np.asarray(v, dtype=bool),
    "feedback_time": _floats_column,
    "clicks": lambda v: _object_column(decode_number_lists(v, np.int64)),
    "conversions": lambda v: _object_column(decode_number_lists(v, np.int64)),
    "revenue": _floats_column,
    "reward": _floats_column,
    "late": lambda v: np.asarray(v, dtype=bool),
}


def decode_joined_columns(columns: Mapping[str, Sequence[Any]]) -> dict[str, Any]:
    """Stored columns of decisions, or of decisions joined with feedback (any subset of `DECISION_FIELDS`
    and `JOINED_FEEDBACK_FIELDS`, by name) -> the decoded columns of `joined_frame`, in its column order:
    a job that reads a few columns skips decoding the costly others (candidate and shown lists)."""
    unknown = set(columns) - set(_DECODERS)
    if unknown:
        raise ValueError(f"Expected columns of a joined frame, found {sorted(unknown)}")
    return {name: decode(columns[name]) for name, decode in _DECODERS.items() if name in columns}


def feedback_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Feedback rows (in `FEEDBACK_FIELDS` order) -> a DataFrame.

    Columns: ``event_id, time, clicks, conversions`` (int64 position arrays), ``revenue``, ``reward``
    (NaN when none was given), ``late`` (bool).
    """
    cols = _columns(rows, len(FEEDBACK_FIELDS))
    return pd.DataFrame(decode_joined_columns(dict(zip(FEEDBACK_FIELDS, cols, strict=True))))


def joined_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """Rows of decision fields followed by `JOINED_FEEDBACK_FIELDS` -> a DataFrame.

    The query fills in the feedback fields of a decision without (admitted) feedback: ``has_feedback``
    False, ``feedback_time`` and ``reward`` NaN, empty ``clicks`` and ``conversions``, ``revenue`` 0 and
    ``late`` False.
    """
    names = DECISION_FIELDS + JOINED_FEEDBACK_FIELDS
    cols = _columns(rows, len(names))
    return pd.DataFrame(decode_joined_columns(dict(zip(names, cols, strict=True))))


# ---------------------------------------------------------------------------------------------------------
# Frames back to records


def decision_batch_from_frame(frame: pd.DataFrame) -> DecisionBatch:
    """A `DecisionBatch` of the rows of a `decisions()` (or `joined()`) frame.

    ``shown_scores`` is None when no row has scores; rows without scores among rows with them get NaN.
    ``variant`` is None when no row was served in an A/B experiment.
    """
    scores = frame["shown_scores"].tolist()
    shown = frame["shown"].tolist()
    if all(s is None for s in scores):
        shown_scores = None
    else:
        shown_scores = [
            np.full(len(sh), np.nan) if s is None else s for s, sh in zip(scores, shown, strict=True)
        ]
    return DecisionBatch(
        event_id=frame["event_id"].to_numpy(dtype=str),
        time=frame["time"].to_numpy(dtype=np.float64),
        section=frame["section"].to_numpy(dtype=str),
        user_id=_user_ids(frame["user_id"]),
        context=frame["context"].tolist(),
        candidates=frame["candidates"].tolist(),
        shown=shown,
        arm_id=frame["arm_id"].to_numpy(dtype=str),
        arm_index=frame["arm_index"].to_numpy(dtype=np.int64),
        knobs=frame["knobs"].tolist(),
        propensity=frame["propensity"].to_numpy(dtype=np.float64),
        arm_probs=frame["arm_probs"].tolist(),
        model_versions=frame["model_versions"].tolist(),
        shown_scores=shown_scores,
        variant=None if (frame["variant"] == "").all() else frame["variant"].to_numpy(dtype=object),
    )


def feedback_batch_from_frame(frame: pd.DataFrame) -> FeedbackBatch:
    """A `FeedbackBatch` of the rows of a `feedback()` frame."""
    return FeedbackBatch(
        event_id=frame["event_id"].to_numpy(dtype=str),
        time=frame["time"].to_numpy(dtype=np.float64),
        clicks=frame["clicks"].tolist(),
        conversions=frame["conversions"].tolist(),
        revenue=frame["revenue"].to_numpy(dtype=np.float64),
        reward=frame["reward"].to_numpy(dtype=np.float64),
    )


def _user_ids(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_integer_dtype(column):
        return column.to_numpy(dtype=np.int64)
    return column.to_numpy(dtype=object)
