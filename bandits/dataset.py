"""Decision logs as a hive-partitioned Parquet dataset: shipping a host's SQLite log into it, reading it back.

Layout of a dataset ``ROOT`` (docs/scaling.md)::

    ROOT/decisions/date=YYYY-MM-DD/host=HOST/part-FIRST-LAST.parquet   decisions, by decision date (UTC)
    ROOT/feedback/date=YYYY-MM-DD/host=HOST/part-FIRST-LAST.parquet    feedback, by feedback date (UTC)
    ROOT/_shipped/HOST.json                                            the host's watermark

Each file holds the rows of one shipped chunk of one host's log (``FIRST``..``LAST`` are the log's ``seq``
of the chunk) in the log's own encoding: the scalar columns typed, the ragged and dict fields as the same
compact JSON text the SQLite log stores (``user_id`` as JSON too, so that an int id stays an int), plus the
``seq`` column. Decoding goes through `bandits.log_codec`, the decoder of the SQLite log, so a dataset reads
back exactly what its logs hold. Decisions and feedback are shipped separately and joined when read, with
the reader's wait window, as `DecisionLog.joined` does.

Shipping (`ship_log`) is incremental: the watermark records the last ``seq`` shipped of each table, and is
replaced (atomically) only after the chunk's files are in place. A run that dies between the two leaves
files past the watermark; the next run deletes them before shipping, so nothing is shipped twice.

Reading is `bandits.dataset_read` (`LogDataset`, and `open_log` for every job that takes ``--log``).
"""

from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from bandits.errors import DatasetError, InvalidArgumentError
from bandits.log import DecisionLog
from bandits.log_codec import (
    DECISION_FIELDS,
    FEEDBACK_FIELDS,
    decision_rows,
    feedback_rows,
)
from bandits.records import DecisionBatch, FeedbackBatch

DECISIONS, FEEDBACK, SHIPPED = "decisions", "feedback", "_shipped"
#: The Arrow schema of the decision files (without the hive columns ``date`` and ``host``).
DECISION_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("time", pa.float64()),
        ("section", pa.string()),
        ("user_id", pa.string()),
        ("context", pa.string()),
        ("candidates", pa.string()),
        ("shown", pa.string()),
        ("shown_scores", pa.string()),
        ("arm_id", pa.string()),
        ("arm_index", pa.int64()),
        ("knobs", pa.string()),
        ("propensity", pa.float64()),
        ("arm_probs", pa.string()),
        ("model_versions", pa.string()),
        ("variant", pa.string()),
    ]
)
#: The Arrow schema of the feedback files.
FEEDBACK_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("event_id", pa.string()),
        ("time", pa.float64()),
        ("clicks", pa.string()),
        ("conversions", pa.string()),
        ("revenue", pa.float64()),
        ("reward", pa.float64()),
        ("late", pa.bool_()),
    ]
)
SCHEMAS = {DECISIONS: DECISION_SCHEMA, FEEDBACK: FEEDBACK_SCHEMA}
#: The watermark's ``log_created_at`` of a host written by `DatasetWriter` rather than shipped from a log.
WRITTEN = "written directly"
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
PART_FILE = re.compile(r"part-(\d+)-(\d+)\.parquet$")
DAY_SECONDS = 86_400.0
#: Decisions a `DatasetWriter` buffers before it writes them as one chunk (one file per table and date).
ROWS_PER_FILE = 200_000
#: Rows per Parquet row group: the unit a filtered read (a time window, a chunk's feedback) can skip.
ROW_GROUP_ROWS = 50_000


def default_host() -> str:
    """This machine's host name, as a dataset partition name (characters outside ``[A-Za-z0-9._-]`` -> _)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "host"
    return name[:63] if name[0].isalnum() else f"h{name[:62]}"


def check_host(host: str) -> str:
    if not isinstance(host, str) or not _HOST.match(host):
        raise InvalidArgumentError(
            f"Expected `host` of 1 to 63 characters among A-Z a-z 0-9 . _ -, starting with a letter or "
            f"digit, found {host!r}"
        )
    return host


# ----------------------------------------------------------------------------------------------------
# Shipping


@dataclass(frozen=True)
class Watermark:
    """What of one host's log is in the dataset: every row with ``seq <=`` these."""

    host: str
    decisions: int = 0
    feedback: int = 0
    log_created_at: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "host": self.host,
                "decisions_seq": self.decisions,
                "feedback_seq": self.feedback,
                "log_created_at": self.log_created_at,
            },
            indent=2,
        )


@dataclass(frozen=True)
class ShipSummary:
    """What one `ship_log` run wrote: new decision and feedback rows, files, and the watermark after it."""

    root: Path
    host: str
    decisions: int
    feedback: int
    files: int
    watermark: Watermark


def read_watermark(root: str | PathLike[str], host: str) -> Watermark:
    """The host's watermark in the dataset at `root` (zeros when the host never shipped)."""
    path = Path(root) / SHIPPED / f"{check_host(host)}.json"
    if not path.is_file():
        return Watermark(host=host)
    try:
        data = json.loads(path.read_text())
        return Watermark(
            host=host,
            decisions=int(data["decisions_seq"]),
            feedback=int(data["feedback_seq"]),
            log_created_at=data.get("log_created_at"),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(root, f"unreadable watermark {path.name}: {exc}") from None


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _log_created_at(log: DecisionLog) -> str | None:
    rows = log.db.execute("SELECT value FROM meta WHERE key = 'created_at'").fetchall()
    return str(rows[0][0]) if rows else None


def dates_of(times: np.ndarray) -> np.ndarray:
    """(B,) the UTC date ``YYYY-MM-DD`` of Unix times (B,)."""
    return np.floor(np.asarray(times, dtype=np.float64) / DAY_SECONDS).astype("datetime64[D]").astype(str)


def _raw_table(rows: list[tuple[Any, ...]], table: str, seq: np.ndarray | None = None) -> pa.Table:
    """Raw log rows (``seq`` first, then the table's fields as SQLite stores them) as an Arrow table; with
    `seq` given, the rows hold the fields only and `seq` is their ``seq`` column."""
    schema = SCHEMAS[table]
    columns = list(zip(*rows, strict=True))
    if seq is not None:
        columns.insert(0, seq)
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        if field.name == "user_id":
            values = [orjson.dumps(v).decode() for v in values]
        elif field.type == pa.bool_():
            values = [bool(v) for v in values]
        arrays.append(pa.array(values, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _orphans(root: Path, table: str, host: str, after: int) -> list[Path]:
    """Files of `host` whose chunk starts after `after` (left by a run that died before its watermark)."""
    found = []
    for path in (root / table).glob(f"date=*/host={host}/part-*.parquet"):
        match = PART_FILE.search(path.name)
        if match and int(match.group(1)) > after:
            found.append(path)
    return found


def ship_log(
    log: DecisionLog,
    root: str | PathLike[str],
    *,
    host: str | None = None,
    chunk_size: int = 200_000,
) -> ShipSummary:
    """Append the decisions and feedback of `log` not shipped yet to the dataset at `root`.

    Parameters
    ----------
    log : DecisionLog
    root : a local directory (created if missing)
    host : the host partition this log ships as (default: `default_host`); one log per host name
    chunk_size : rows read and written at a time (one file per chunk and date)

    Raises
    ------
    DatasetError
        The host's watermark comes from another log file (another ``created_at``), or is past this log's end.
    """
    host = check_host(default_host() if host is None else host)
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgumentError(f"Expected `chunk_size` to be an integer >= 1, found {chunk_size!r}")
    root = Path(root)
    mark = read_watermark(root, host)
    created = _log_created_at(log)
    if mark.log_created_at == WRITTEN:
        raise DatasetError(
            root,
            f"host {host!r} was written directly (not shipped from a log); ship this "
            "log under another --host",
        )
    if mark.log_created_at is not None and mark.log_created_at != created:
        raise DatasetError(
            root,
            f"host {host!r} was shipped from another log (created {mark.log_created_at}, this one "
            f"{created}); ship this log under another --host",
        )
    counts = {DECISIONS: 0, FEEDBACK: 0}
    files = 0
    for table, fields in ((DECISIONS, DECISION_FIELDS), (FEEDBACK, FEEDBACK_FIELDS)):
        last = mark.decisions if table == DECISIONS else mark.feedback
        top = log.db.execute(f"SELECT COALESCE(MAX(seq), 0) FROM {table}").fetchone()[0]
        if top < last:
            raise DatasetError(
                root, f"host {host!r} shipped up to {table} seq {last}, but {log.path} ends at {top}"
            )
        for path in _orphans(root, table, host, last):
            path.unlink()
        sql = f"SELECT seq, {', '.join(fields)} FROM {table} WHERE seq > ? ORDER BY seq LIMIT ?"
        while True:
            rows = log.db.execute(sql, (last, chunk_size)).fetchall()
            if not rows:
                break
            last = int(rows[-1][0])
            files += _write_chunk(root, table, host, _raw_table(rows, table))
            counts[table] += len(rows)
            mark = Watermark(
                host=host,
                decisions=last if table == DECISIONS else mark.decisions,
                feedback=last if table == FEEDBACK else mark.feedback,
                log_created_at=created,
            )
            _write_atomic(root / SHIPPED / f"{host}.json", lambda tmp, m=mark: tmp.write_text(m.to_json()))
            if len(rows) < chunk_size:
                break
    if mark.log_created_at is None:  # nothing shipped yet: still tie the host to this log
        mark = Watermark(host=host, log_created_at=created)
        _write_atomic(root / SHIPPED / f"{host}.json", lambda tmp: tmp.write_text(mark.to_json()))
    return ShipSummary(
        root=root,
        host=host,
        decisions=counts[DECISIONS],
        feedback=counts[FEEDBACK],
        files=files,
        watermark=mark,
    )


class DatasetWriter:
    """Writes decision and feedback batches straight into a dataset as one host, without a SQLite log: the
    sink of a simulation too large for one file (``simulate(..., sink=writer.append)``).

    `append` validates and encodes a batch as `DecisionLog.append` would, and buffers it (as Arrow tables,
    compact); once `rows_per_file` decisions are buffered, `flush` writes them as one chunk (one file per
    table and date) and advances the host's watermark, so that a later `ship_log` under the same host is
    refused. Few big files read far faster than many small ones (every reader opens each file, and a
    chunk's feedback is looked up in the files of its dates). Rows still buffered are written by `close`
    (or on leaving a ``with`` block); rows appended after the last flush are lost without it.
    Duplicate event ids are not checked across batches (the simulator's are unique by construction).
    """

    def __init__(self, root: str | PathLike[str], host: str, *, rows_per_file: int = ROWS_PER_FILE) -> None:
        if isinstance(rows_per_file, bool) or not isinstance(rows_per_file, int) or rows_per_file < 1:
            raise InvalidArgumentError(
                f"Expected `rows_per_file` to be an integer >= 1, found {rows_per_file!r}"
            )
        self.root = Path(root)
        self.host = check_host(host)
        if (self.root / SHIPPED / f"{host}.json").exists():
            raise DatasetError(
                self.root, f"host {host!r} already has data here; choose another host or --dataset"
            )
        self.rows_per_file = rows_per_file
        self.seq = {DECISIONS: 0, FEEDBACK: 0}
        self._pending: dict[str, list[pa.Table]] = {DECISIONS: [], FEEDBACK: []}
        self._pending_rows = {DECISIONS: 0, FEEDBACK: 0}
        self.files = 0

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def append(self, decisions: DecisionBatch, feedback: FeedbackBatch) -> None:
        """Store a chunk of decisions, then their feedback (`DecisionLog.append`'s contract)."""
        for table, rows in ((DECISIONS, decision_rows(decisions)), (FEEDBACK, feedback_rows(feedback))):
            if not rows:
                continue
            first = self.seq[table] + self._pending_rows[table] + 1
            seq = np.arange(first, first + len(rows), dtype=np.int64)
            self._pending[table].append(_raw_table(rows, table, seq))
            self._pending_rows[table] += len(rows)
        if self._pending_rows[DECISIONS] >= self.rows_per_file:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows (one chunk: a file per table and date), then advance the watermark."""
        if not any(self._pending_rows.values()):
            return
        for table in (DECISIONS, FEEDBACK):
            if self._pending_rows[table]:
                self.files += _write_chunk(
                    self.root, table, self.host, pa.concat_tables(self._pending[table])
                )
                self.seq[table] += self._pending_rows[table]
            self._pending[table], self._pending_rows[table] = [], 0
        mark = Watermark(self.host, self.seq[DECISIONS], self.seq[FEEDBACK], log_created_at=WRITTEN)
        _write_atomic(self.root / SHIPPED / f"{self.host}.json", lambda tmp: tmp.write_text(mark.to_json()))

    def close(self) -> None:
        """Write what is still buffered (`flush`)."""
        self.flush()


def _write_chunk(root: Path, table: str, host: str, arrow: pa.Table) -> int:
    """Write one chunk of raw rows as one file per date; returns the number of files."""
    seq = arrow.column("seq").to_numpy()
    first, last = int(seq[0]), int(seq[-1])
    dates = dates_of(arrow.column("time").to_numpy())
    files = 0
    for date in np.unique(dates):
        part = arrow.filter(pa.array(dates == date))
        path = root / table / f"date={date}" / f"host={host}" / f"part-{first:012d}-{last:012d}.parquet"
        _write_atomic(path, lambda tmp, part=part: pq.write_table(part, tmp, row_group_size=ROW_GROUP_ROWS))
        files += 1
    return files
