"""Candidate lists as tables: read the attributes the heuristics need from a DataFrame.

Columns: ``id``, ``score``, ``category``, ``age_days``, ``promoted`` (required); ``subcategory`` and embedding
columns ``emb_0 .. emb_{d-1}`` (optional).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from heuristics.base import ItemBatch
from heuristics.errors import InputError

REQUIRED_COLUMNS = ("id", "score", "category", "age_days", "promoted")


def embedding_columns(frame: pd.DataFrame) -> list[str]:
    """The ``emb_<j>`` columns of `frame`, in order of j."""
    cols = [c for c in frame.columns if c.startswith("emb_") and c[4:].isdigit()]
    return sorted(cols, key=lambda c: int(c[4:]))


def items_from_frame(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, ItemBatch]:
    """(ids (n,), scores (n,), a batch of one ItemBatch) from one request's candidate table."""
    for column in REQUIRED_COLUMNS:
        if column not in frame.columns:
            raise InputError(f"candidates: missing column {column!r}")
    numeric = ["score", "category", "age_days"] + (["subcategory"] if "subcategory" in frame.columns else [])
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy())
        if bad.size:
            raise InputError(
                f"candidates: column {column!r} needs numbers, found {frame[column].iloc[bad[0]]!r} "
                f"at row {bad[0]}"
            )
    emb_cols = embedding_columns(frame)
    items = ItemBatch.single(
        category=frame["category"].to_numpy(np.int64),
        age_days=frame["age_days"].to_numpy(np.float64),
        promoted=frame["promoted"].astype(bool).to_numpy(),
        embedding=frame[emb_cols].to_numpy(np.float64) if emb_cols else None,
        subcategory=frame["subcategory"].to_numpy(np.int64) if "subcategory" in frame.columns else None,
    )
    return frame["id"].astype(str).to_numpy(), frame["score"].to_numpy(np.float64), items
