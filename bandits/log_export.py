"""Export of a decision log to Parquet: one row per decision, joined with its feedback.

List fields (candidates, shown, shown_scores, arm_probs, clicks, conversions) become Parquet list columns;
dict fields (context, knobs, model_versions) stay compact JSON text, since their keys differ between
sections. Ids are int64 when the exported decisions hold only int ids and strings otherwise (a log mixing
both exports every id of that column as its decimal text). NaN (no feedback time, no explicit reward)
becomes null.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bandits.errors import InvalidArgumentError, UnknownSectionError
from bandits.log import DecisionLog
from bandits.log_codec import encode_json
from bandits.log_schema import SCHEMA_VERSION

#: A wrapper that shows progress over an iterable of frames, given their expected count.
Progress = Callable[[Iterable[pd.DataFrame], int], Iterable[pd.DataFrame]]

_ID_COLUMNS = ("user_id", "candidates", "shown")


@dataclass(frozen=True)
class ExportSummary:
    """What `export_parquet` wrote: `rows` decisions, `with_feedback` of them joined with feedback."""

    path: Path
    rows: int
    with_feedback: int


def parquet_schema(id_types: Mapping[str, str]) -> pa.Schema:
    """The Arrow schema of an export, given `DecisionLog.id_types` ("str" or "mixed" ids become strings)."""
    ids = {c: pa.string() if id_types.get(c) in ("str", "mixed") else pa.int64() for c in _ID_COLUMNS}
    return pa.schema(
        [
            ("event_id", pa.string()),
            ("time", pa.float64()),
            ("section", pa.string()),
            ("user_id", ids["user_id"]),
            ("context", pa.string()),
            ("candidates", pa.list_(ids["candidates"])),
            ("shown", pa.list_(ids["shown"])),
            ("shown_scores", pa.list_(pa.float64())),
            ("arm_id", pa.string()),
            ("arm_index", pa.int64()),
            ("knobs", pa.string()),
            ("propensity", pa.float64()),
            ("arm_probs", pa.list_(pa.float64())),
            ("model_versions", pa.string()),
            ("variant", pa.string()),
            ("has_feedback", pa.bool_()),
            ("feedback_time", pa.float64()),
            ("clicks", pa.list_(pa.int64())),
            ("conversions", pa.list_(pa.int64())),
            ("revenue", pa.float64()),
            ("reward", pa.float64()),
            ("late", pa.bool_()),
        ]
    )


def joined_to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A `DecisionLog.joined` frame -> an Arrow table of `schema` (see `parquet_schema`)."""
    columns = []
    for field in schema:
        values = frame[field.name]
        if pa.types.is_list(field.type):
            columns.append(_list_array(values.tolist(), field.type.value_type))
        elif field.name in ("context", "knobs", "model_versions"):
            columns.append(pa.array([encode_json(v) for v in values.tolist()], pa.string()))
        elif field.type == pa.string():
            columns.append(pa.array(values.astype(str).to_numpy(dtype=object), pa.string()))
        else:
            columns.append(pa.array(values.to_numpy(), field.type, from_pandas=True))
    return pa.Table.from_arrays(columns, schema=schema)


def _list_array(rows: list[np.ndarray | None], value_type: pa.DataType) -> pa.ListArray:
    n = len(rows)
    missing = np.fromiter((r is None for r in rows), bool, count=n)
    arrays = [np.empty(0) if r is None else r for r in rows]
    lengths = np.fromiter(map(len, arrays), np.int64, count=n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if value_type == pa.string():
        flat = np.concatenate([a.astype(str) for a in arrays]) if n else np.empty(0, str)
        values = pa.array(flat.astype(object), pa.string())
    else:
        dtype = np.int64 if value_type == pa.int64() else np.float64
        values = pa.array(np.concatenate(arrays).astype(dtype) if n else np.empty(0, dtype), value_type)
    if offsets[-1] >= 2**31:
        raise InvalidArgumentError(
            f"A chunk holds {offsets[-1]} list values, more than a Parquet list takes; lower `chunk_size`"
        )
    mask = pa.array(missing) if missing.any() else None
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, mask=mask)


def export_parquet(
    log: DecisionLog,
    out: str | PathLike[str],
    *,
    section: str | None = None,
    wait_seconds: float | None = None,
    chunk_size: int = 50_000,
    progress: Progress | None = None,
) -> ExportSummary:
    """Write the log's decisions joined with their feedback to a Parquet file, one row per decision.

    The file is written beside `out` under a temporary name and moved into place when complete, so that a
    failed export leaves no partial file.

    Parameters
    ----------
    log : DecisionLog
    out : path of the Parquet file (replaced if it exists)
    section : only this section's decisions; it must have some
    wait_seconds : the join's wait window (see `DecisionLog.joined`); None admits all feedback
    chunk_size : decisions read and written at a time (one Parquet row group each)
    progress : wraps the iterable of chunks, e.g. to show a progress bar

    Raises
    ------
    UnknownSectionError
        `section` has no decisions in the log.
    """
    out = Path(out)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgumentError(f"Expected `chunk_size` to be an integer >= 1, found {chunk_size!r}")
    total = log.count(section)
    if section is not None and total == 0:
        raise UnknownSectionError(log.path, section, log.sections())
    schema = parquet_schema(log.id_types(section)).with_metadata(
        {
            "sectionrank.log_schema_version": str(SCHEMA_VERSION),
            "sectionrank.section": "" if section is None else section,
            "sectionrank.wait_seconds": "" if wait_seconds is None else repr(float(wait_seconds)),
        }
    )
    chunks: Iterable[pd.DataFrame] = log.iter_joined(chunk_size, wait_seconds=wait_seconds, section=section)
    if progress is not None:
        chunks = progress(chunks, math.ceil(total / chunk_size))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    rows = with_feedback = 0
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for frame in chunks:
                writer.write_table(joined_to_arrow(frame, schema))
                rows += len(frame)
                with_feedback += int(frame["has_feedback"].sum())
            if rows == 0:
                writer.write_table(schema.empty_table())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportSummary(path=out, rows=rows, with_feedback=with_feedback)
