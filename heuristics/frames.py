"""Candidate lists as tables: read the attributes the heuristics need from a DataFrame.

Columns: ``id``, ``score``, ``category``, ``age_days``, ``promoted`` (required); ``subcategory`` and embedding
columns ``emb_0 .. emb_{d-1}`` (optional). Scores, ages and embeddings must be finite numbers, categories
integers, and ``promoted`` a boolean: true/false, yes/no or 1/0 (a missing value is an error, not "true").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from heuristics.base import ItemBatch
from heuristics.errors import InputError

REQUIRED_COLUMNS = ("id", "score", "category", "age_days", "promoted")
_TRUE = frozenset({"true", "yes", "1", "1.0"})
_FALSE = frozenset({"false", "no", "0", "0.0"})


def embedding_columns(frame: pd.DataFrame) -> list[str]:
    """The ``emb_<j>`` columns of `frame`, in order of j."""
    cols = [c for c in frame.columns if isinstance(c, str) and c.startswith("emb_") and c[4:].isdigit()]
    return sorted(cols, key=lambda c: int(c[4:]))


def _refuse(frame: pd.DataFrame, column: str, expected: str, bad: np.ndarray) -> None:
    """Raise InputError naming the first row of `bad` (a boolean mask), if any."""
    rows = np.flatnonzero(bad)
    if rows.size:
        value = frame[column].iloc[rows[0]]
        shown = value.item() if isinstance(value, np.generic) else value
        raise InputError(f"candidates: column {column!r} needs {expected}, found {shown!r} at row {rows[0]}")


def _numbers(frame: pd.DataFrame, column: str, *, integer: bool = False) -> np.ndarray:
    """A column as finite float64 numbers (integers when `integer`), naming the first bad row."""
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if integer:
        bad |= np.where(bad, False, values != np.round(values))
    _refuse(frame, column, "integers" if integer else "finite numbers", bad)
    return values


def _flags(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column of true/false, yes/no or 1/0 values as booleans, naming the first bad row."""
    series = frame[column]
    if series.dtype == bool:
        return series.to_numpy(bool)
    text = series.astype("string").str.strip().str.lower().fillna("")
    truth = text.isin(_TRUE).to_numpy()
    _refuse(frame, column, "true/false, yes/no or 1/0", ~truth & ~text.isin(_FALSE).to_numpy())
    return truth


def items_from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, ItemBatch]:
    """(ids (n,), scores (n,), a batch of one ItemBatch) from one request's candidate table."""
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise InputError(f"candidates: missing column {column!r}")
    scores = _numbers(frame, "score")
    category = _numbers(frame, "category", integer=True)
    age_days = _numbers(frame, "age_days")
    subcategory = _numbers(frame, "subcategory", integer=True) if "subcategory" in frame.columns else None
    emb_cols = embedding_columns(frame)
    embedding = np.column_stack([_numbers(frame, c) for c in emb_cols]) if emb_cols else None
    items = ItemBatch.single(
        category=category.astype(np.int64),
        age_days=age_days,
        promoted=_flags(frame, "promoted"),
        embedding=embedding,
        subcategory=None if subcategory is None else subcategory.astype(np.int64),
    )
    return frame["id"].astype(str).to_numpy(), scores, items
