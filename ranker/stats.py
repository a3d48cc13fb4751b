"""Item statistics from logged impressions and feedback: the source of the CTR and conversion features.

They are counted over the log's *stats window*, which ends before the first training list (see
`ranker.dataset`), so that no training, validation or test list sees its own clicks in its features. The
table a model was trained with is stored in its artifact (``item_stats.parquet``, covered by the content
hash) and served unchanged.

For every item i, over its impressions j (shown slots) in the window:

- ``impressions_i``, ``clicks_i``, ``conversions_i`` (a conversion counts as a click);
- ``expected_clicks_i = sum_j ctr_{s_j}(p_j)``, where ``ctr_s(p)`` is the click-through rate of position p in
  section s over all items of the window: what an average item would have collected in the same slots.

Features (`ranker.features`):

- ``item_coec = (clicks_i + a) / (expected_clicks_i + a)``: clicks over expected clicks, a position-debiased
  CTR ratio shrunk towards 1 with strength ``a = coec_prior_strength``;
- ``item_cvr = (conversions_i + b * p0) / (clicks_i + b)``, shrunk towards the window's conversions per click
  ``p0`` with strength ``b = cvr_prior_strength``;
- ``item_impressions_log = log1p(impressions_i)``.

An item without impressions in the window gets the same formulas at zero counts: 1, p0 and 0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ranker.errors import ItemStatsError

if TYPE_CHECKING:
    from ranker.labels import LabelledLists

_METADATA_KEY = b"sectionrank.item_stats"
COLUMNS = ("item_id", "impressions", "clicks", "conversions", "expected_clicks")


@dataclass(frozen=True)
class ItemStats:
    """Per-item counts over a window of the log, and the smoothing that turns them into features.

    Attributes
    ----------
    item_id : (M,) int64 or object
        Sorted, distinct.
    impressions, clicks, conversions : (M,) int64
    expected_clicks : (M,) float64
    coec_prior_strength, cvr_prior_strength : float
        The smoothing strengths ``a`` and ``b`` (> 0).
    cvr_prior : float
        ``p0``, conversions per click over the window (0 without clicks).
    window : tuple of float
        ``(start, end)``: decisions with ``start <= time < end`` were counted.
    n_requests : int
        Requests counted.
    """

    item_id: np.ndarray
    impressions: np.ndarray
    clicks: np.ndarray
    conversions: np.ndarray
    expected_clicks: np.ndarray
    coec_prior_strength: float
    cvr_prior_strength: float
    cvr_prior: float
    window: tuple[float, float]
    n_requests: int

    def __len__(self) -> int:
        return len(self.item_id)

    # ------------------------------------------------------------------------------------------- features

    def coec(self, clicks: np.ndarray | None = None, expected: np.ndarray | None = None) -> np.ndarray:
        """``(clicks + a) / (expected_clicks + a)`` per item (M,), or for given counts."""
        clicks = self.clicks if clicks is None else clicks
        expected = self.expected_clicks if expected is None else expected
        a = self.coec_prior_strength
        return (clicks + a) / (expected + a)

    def cvr(self, conversions: np.ndarray | None = None, clicks: np.ndarray | None = None) -> np.ndarray:
        """``(conversions + b * p0) / (clicks + b)`` per item (M,), or for given counts."""
        conversions = self.conversions if conversions is None else conversions
        clicks = self.clicks if clicks is None else clicks
        b = self.cvr_prior_strength
        return (conversions + b * self.cvr_prior) / (clicks + b)

    def impressions_log(self, impressions: np.ndarray | None = None) -> np.ndarray:
        return np.log1p(self.impressions if impressions is None else impressions).astype(np.float64)

    def defaults(self) -> dict[str, float]:
        """Features of an item without impressions: ``item_coec``, ``item_cvr``, ``item_impressions_log``."""
        zero = np.zeros(1)
        return {
            "item_coec": float(self.coec(zero, zero)[0]),
            "item_cvr": float(self.cvr(zero, zero)[0]),
            "item_impressions_log": 0.0,
        }

    # ----------------------------------------------------------------------------------------------- I/O

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({name: getattr(self, name) for name in COLUMNS})

    def metadata(self) -> dict[str, Any]:
        return {
            "coec_prior_strength": self.coec_prior_strength,
            "cvr_prior_strength": self.cvr_prior_strength,
            "cvr_prior": self.cvr_prior,
            "window": list(self.window),
            "n_requests": self.n_requests,
            "n_items": len(self),
        }

    def to_parquet_bytes(self) -> bytes:
        """The table as Parquet, the scalars in the schema's metadata."""
        table = pa.Table.from_pandas(self.to_frame(), preserve_index=False)
        table = table.replace_schema_metadata({_METADATA_KEY: json.dumps(self.metadata()).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()

    @classmethod
    def read(cls, path: str | os.PathLike) -> ItemStats:
        """Read a table written by `to_parquet_bytes`."""
        path = Path(path)
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise ItemStatsError(f"{path}: cannot read item statistics ({exc})") from None
        raw = (table.schema.metadata or {}).get(_METADATA_KEY)
        if raw is None:
            raise ItemStatsError(
                f"{path}: not an item statistics table (no {_METADATA_KEY.decode()} metadata)"
            )
        meta = json.loads(raw)
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise ItemStatsError(f"{path}: missing columns {missing}")
        frame = table.to_pandas()
        item_id = frame["item_id"].to_numpy()
        return cls(
            item_id=item_id.astype(np.int64) if item_id.dtype.kind in "iu" else item_id.astype(object),
            impressions=frame["impressions"].to_numpy(np.int64),
            clicks=frame["clicks"].to_numpy(np.int64),
            conversions=frame["conversions"].to_numpy(np.int64),
            expected_clicks=frame["expected_clicks"].to_numpy(np.float64),
            coec_prior_strength=float(meta["coec_prior_strength"]),
            cvr_prior_strength=float(meta["cvr_prior_strength"]),
            cvr_prior=float(meta["cvr_prior"]),
            window=(float(meta["window"][0]), float(meta["window"][1])),
            n_requests=int(meta["n_requests"]),
        )


def position_ctr(lists: LabelledLists) -> dict[str, np.ndarray]:
    """Click-through rate (P,) of every position of every section's lists: clicks / impressions there."""
    section_of_row = lists.section_of_row
    out = {}
    for name in pd.unique(lists.requests.section):
        rows = section_of_row == name
        positions = lists.position[rows]
        shown = np.bincount(positions)
        clicks = np.bincount(positions, weights=lists.clicked[rows].astype(np.float64), minlength=shown.size)
        out[str(name)] = np.divide(clicks, shown, out=np.zeros(shown.size), where=shown > 0)
    return out


def item_stats(
    lists: LabelledLists,
    *,
    coec_prior_strength: float,
    cvr_prior_strength: float,
    window: tuple[float, float],
) -> ItemStats:
    """Count every item's impressions, clicks, conversions and expected clicks over `lists`.

    Parameters
    ----------
    lists : LabelledLists
        The stats window's lists, every shown position.
    coec_prior_strength, cvr_prior_strength : float
        Smoothing strengths (> 0).
    window : (start, end)
        The window the lists come from, recorded with the table.
    """
    for name, value in (
        ("coec_prior_strength", coec_prior_strength),
        ("cvr_prior_strength", cvr_prior_strength),
    ):
        if not (np.isfinite(value) and value > 0):
            raise ItemStatsError(f"Expected `{name}` > 0, found {value!r}")
    ctr = position_ctr(lists)
    expected = np.zeros(lists.n_rows)
    section_of_row = lists.section_of_row
    for name, rates in ctr.items():
        rows = np.flatnonzero(section_of_row == name)
        expected[rows] = rates[lists.position[rows]]
    if lists.n_rows:
        item_id, codes = np.unique(lists.item_id, return_inverse=True)
    else:
        item_id, codes = lists.item_id[:0], np.zeros(0, dtype=np.int64)
    codes = codes.reshape(-1)
    m = len(item_id)
    clicked = lists.clicked | lists.converted
    clicks = np.bincount(codes, weights=clicked, minlength=m).astype(np.int64)
    conversions = np.bincount(codes, weights=lists.converted, minlength=m).astype(np.int64)
    total_clicks = int(clicks.sum())
    return ItemStats(
        item_id=item_id.astype(np.int64) if item_id.dtype.kind in "iu" else item_id.astype(object),
        impressions=np.bincount(codes, minlength=m).astype(np.int64),
        clicks=clicks,
        conversions=conversions,
        expected_clicks=np.bincount(codes, weights=expected, minlength=m),
        coec_prior_strength=float(coec_prior_strength),
        cvr_prior_strength=float(cvr_prior_strength),
        cvr_prior=float(conversions.sum() / total_clicks) if total_clicks else 0.0,
        window=(float(window[0]), float(window[1])),
        n_requests=lists.n_requests,
    )
