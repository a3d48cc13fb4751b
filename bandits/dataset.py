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

Reading (`LogDataset`, `open_log`): a dataset root, a glob of roots (their union), or an fsspec URL of
either. `LogDataset` has the reading interface of `DecisionLog` that the jobs use (`joined`, `iter_joined`,
`count`, `sections`, `path`), so every job that takes ``--log`` takes a dataset too.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandits.errors import DatasetError, InvalidArgumentError
from bandits.log import DecisionLog
from bandits.log_codec import DECISION_FIELDS, FEEDBACK_FIELDS, decode_dicts, joined_frame

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
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_PART = re.compile(r"part-(\d+)-(\d+)\.parquet$")
_DAY = 86_400.0


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


def _dates(times: np.ndarray) -> np.ndarray:
    """(B,) the UTC date ``YYYY-MM-DD`` of Unix times (B,)."""
    return np.floor(np.asarray(times, dtype=np.float64) / _DAY).astype("datetime64[D]").astype(str)


def _raw_table(rows: list[tuple[Any, ...]], table: str) -> pa.Table:
    """Raw log rows (``seq`` first, then the table's fields as SQLite stores them) as an Arrow table."""
    schema = SCHEMAS[table]
    columns = list(zip(*rows, strict=True))
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
        match = _PART.search(path.name)
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
    host = check_host(host or default_host())
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidArgumentError(f"Expected `chunk_size` to be an integer >= 1, found {chunk_size!r}")
    root = Path(root)
    mark = read_watermark(root, host)
    created = _log_created_at(log)
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
            arrow = _raw_table(rows, table)
            first, last = int(rows[0][0]), int(rows[-1][0])
            dates = _dates(arrow.column("time").to_numpy())
            for date in np.unique(dates):
                part = arrow.filter(pa.array(dates == date))
                path = (
                    root / table / f"date={date}" / f"host={host}" / f"part-{first:012d}-{last:012d}.parquet"
                )
                _write_atomic(path, lambda tmp, part=part: pq.write_table(part, tmp))
                files += 1
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


# ----------------------------------------------------------------------------------------------------
# Reading


def is_dataset(source: str | PathLike[str]) -> bool:
    """Whether `source` names a Parquet dataset rather than a SQLite log: a URL, a glob, or a directory."""
    text = os.fspath(source)
    return "://" in text or any(c in text for c in "*?[") or Path(text).is_dir()


@dataclass(frozen=True)
class DataFile:
    """One Parquet file of a dataset: where it is, and its host, date and chunk."""

    path: str
    host: str
    date: str
    first_seq: int


def _file_of(path: str) -> DataFile | None:
    host = re.search(r"host=([^/]+)/", path)
    date = re.search(r"date=([0-9-]+)/", path)
    part = _PART.search(path)
    if not (host and date and part):
        return None
    return DataFile(path=path, host=host.group(1), date=date.group(1), first_seq=int(part.group(1)))


class LogDataset:
    """A decision-log dataset opened for reading: one root, or the union of the roots a glob matches.

    Create one with `LogDataset.open` (or `open_log`). It reads with pyarrow through the root's filesystem
    (local, or any fsspec URL such as ``s3://bucket/logs``); files are listed once, at open.
    """

    def __init__(self, source: str, fs: Any, roots: list[str], files: dict[str, list[DataFile]]) -> None:
        self.path = source
        self.fs = fs
        self.roots = roots
        self.files = files
        hosts = sorted({f.host for f in files[DECISIONS]})
        self._host_rank = {h: i for i, h in enumerate(hosts)}

    @classmethod
    def open(cls, source: str | PathLike[str]) -> LogDataset:
        """Open the dataset(s) at `source`: a root directory, a glob of roots, or an fsspec URL of either.

        Raises
        ------
        DatasetError
            Nothing matches `source`, or a match has no ``decisions`` directory.
        """
        import fsspec

        text = os.fspath(source)
        fs, path = fsspec.core.url_to_fs(text)
        roots = sorted(fs.glob(path)) if any(c in path for c in "*?[") else [path]
        roots = [r for r in roots if fs.isdir(r)]
        if not roots:
            raise DatasetError(text, "no such dataset directory")
        files: dict[str, list[DataFile]] = {DECISIONS: [], FEEDBACK: []}
        for root in roots:
            if not fs.isdir(f"{root}/{DECISIONS}"):
                raise DatasetError(
                    text, f"{root} is not a decision-log dataset (no {DECISIONS}/ directory in it)"
                )
            for table in (DECISIONS, FEEDBACK):
                if fs.isdir(f"{root}/{table}"):
                    found = (_file_of(p) for p in fs.find(f"{root}/{table}") if p.endswith(".parquet"))
                    files[table].extend(f for f in found if f is not None)
        for table in files:
            files[table].sort(key=lambda f: (f.host, f.first_seq, f.date))
        return cls(text, fs, roots, files)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release (files are opened per read); for symmetry with `DecisionLog`."""

    def __repr__(self) -> str:
        return f"LogDataset({self.path!r}, {len(self.files[DECISIONS])} decision files)"

    @property
    def hosts(self) -> list[str]:
        """The hosts whose decisions the dataset holds, sorted."""
        return list(self._host_rank)

    # -- raw tables --------------------------------------------------------------------------------

    def _read(self, files: Sequence[DataFile], table: str, columns=None, filters=None) -> pa.Table:
        schema = SCHEMAS[table] if columns is None else pa.schema([SCHEMAS[table].field(c) for c in columns])
        parts = []
        for f in files:
            part = pq.read_table(f.path, filesystem=self.fs, columns=columns, filters=filters)
            if len(part):
                if table == DECISIONS:
                    rank = np.full(len(part), self._host_rank[f.host], np.int64)
                    part = part.append_column("host_rank", pa.array(rank))
                parts.append(part)
        if not parts:
            empty = schema.empty_table()
            return empty.append_column("host_rank", pa.array([], pa.int64())) if table == DECISIONS else empty
        return pa.concat_tables(parts)

    @staticmethod
    def _decision_filter(section: str | None, since: float | None, until: float | None):
        clauses = []
        if section is not None:
            clauses.append(pc.field("section") == str(section))
        for name, value, op in (("since", since, "ge"), ("until", until, "lt")):
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise InvalidArgumentError(
                    f"Expected `{name}` in seconds since the epoch or None, found {value!r}"
                )
            field = pc.field("time")
            clauses.append(field >= float(value) if op == "ge" else field < float(value))
        if not clauses:
            return None
        out = clauses[0]
        for clause in clauses[1:]:
            out = out & clause
        return out

    def raw_decisions(
        self,
        files: Sequence[DataFile] | None = None,
        *,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> pd.DataFrame:
        """The decision rows as stored (JSON text), in log order: host by host, each by ``seq``."""
        table = self._read(
            self.files[DECISIONS] if files is None else files,
            DECISIONS,
            filters=self._decision_filter(section, since, until),
        )
        frame = table.to_pandas()
        return frame.sort_values(["host_rank", "seq"], kind="stable").reset_index(drop=True)

    def raw_feedback(self, filters=None, files: Sequence[DataFile] | None = None) -> pd.DataFrame:
        """The feedback rows as stored, one per ``event_id`` (the first stored, as the log keeps it)."""
        frame = self._read(self.files[FEEDBACK] if files is None else files, FEEDBACK, filters=filters)
        return frame.to_pandas().drop_duplicates("event_id", keep="first")

    # -- the DecisionLog reading interface -------------------------------------------------------------------

    def count(self, section: str | None = None) -> int:
        """Number of decisions (of one section, if given)."""
        return len(
            self._read(
                self.files[DECISIONS], DECISIONS, ["section"], self._decision_filter(section, None, None)
            )
        )

    def sections(self) -> list[str]:
        """The sections with at least one decision, sorted."""
        column = self._read(self.files[DECISIONS], DECISIONS, ["section"]).column("section")
        return sorted(str(s) for s in pc.unique(column).to_pylist())

    def joined(
        self,
        wait_seconds: float | None = None,
        *,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> pd.DataFrame:
        """Decisions left-joined with their feedback, one row per decision: as `DecisionLog.joined`."""
        decisions = self.raw_decisions(section=section, since=since, until=until)
        return join_raw(decisions, self.raw_feedback(), wait_seconds)

    def chunks(self) -> list[list[DataFile]]:
        """The shipped chunks, in log order: the decision files of one host's chunk (all its dates)."""
        out: dict[tuple[str, int], list[DataFile]] = {}
        for f in self.files[DECISIONS]:
            out.setdefault((f.host, f.first_seq), []).append(f)
        return list(out.values())

    def iter_joined(
        self,
        chunk_size: int | None = None,
        *,
        wait_seconds: float | None = None,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[pd.DataFrame]:
        """`joined` one shipped chunk at a time (`chunk_size` is the shipping's and is ignored), holding one
        chunk's decisions and their feedback in memory.

        A chunk's feedback is read from the feedback files dated from the day before its first decision to
        the day after its last decision plus `wait_seconds` (every file without a wait window): feedback
        stamped more than a day before its own decision (a skewed clock) is not joined here.
        """
        _check_wait(wait_seconds)
        for files in self.chunks():
            decisions = self.raw_decisions(files, section=section, since=since, until=until)
            if decisions.empty:
                continue
            times = decisions["time"].to_numpy()
            low = str(_dates(np.array([times.min() - _DAY]))[0])
            feedback_files = self.files[FEEDBACK]
            if wait_seconds is not None:
                high = str(_dates(np.array([times.max() + wait_seconds + _DAY]))[0])
                feedback_files = [f for f in feedback_files if low <= f.date <= high]
            else:
                feedback_files = [f for f in feedback_files if low <= f.date]
            ids = pa.array(decisions["event_id"].to_numpy(dtype=object), pa.string())
            feedback = self.raw_feedback(pc.field("event_id").isin(ids), feedback_files)
            yield join_raw(decisions, feedback, wait_seconds)


def _check_wait(wait_seconds: float | None) -> None:
    if wait_seconds is not None and not (
        isinstance(wait_seconds, int | float) and np.isfinite(wait_seconds) and wait_seconds >= 0
    ):
        raise InvalidArgumentError(f"Expected `wait_seconds` >= 0 or None, found {wait_seconds!r}")


def join_raw(decisions: pd.DataFrame, feedback: pd.DataFrame, wait_seconds: float | None) -> pd.DataFrame:
    """Raw decision rows left-joined with raw feedback rows within the wait window, decoded by the log's
    codec into the frame `DecisionLog.joined` returns (rows in the order of `decisions`).

    Feedback joins when ``feedback time - decision time <= wait_seconds`` (all of it when None); a decision
    without admitted feedback gets ``has_feedback`` False, empty clicks and conversions, revenue 0, reward
    NaN and late False, as the log's ``LEFT JOIN`` with ``COALESCE`` gives.
    """
    _check_wait(wait_seconds)
    n = len(decisions)
    slim = feedback[["event_id", "time", "clicks", "conversions", "revenue", "reward", "late"]]
    where = pd.Index(slim["event_id"]).get_indexer(decisions["event_id"])
    found = where >= 0
    at = np.where(found, where, 0)
    f_time = slim["time"].to_numpy(np.float64)[at] if len(slim) else np.zeros(n)
    if wait_seconds is not None:
        found &= f_time - decisions["time"].to_numpy(np.float64) <= float(wait_seconds)

    def column(name: str, missing: Any, dtype: Any) -> np.ndarray:
        values = slim[name].to_numpy(dtype) if len(slim) else np.empty(0, dtype)
        out = np.full(n, missing, dtype=dtype)
        out[found] = values[at[found]]
        return out

    user_ids = decode_dicts(decisions["user_id"].tolist())
    decision_columns = [
        user_ids if name == "user_id" else decisions[name].tolist() for name in DECISION_FIELDS
    ]
    feedback_columns = [
        found.tolist(),
        np.where(found, f_time, np.nan).tolist(),
        column("clicks", "[]", object).tolist(),
        column("conversions", "[]", object).tolist(),
        column("revenue", 0.0, np.float64).tolist(),
        column("reward", np.nan, np.float64).tolist(),
        column("late", False, bool).tolist(),
    ]
    return joined_frame(list(zip(*decision_columns, *feedback_columns, strict=True)))


def open_log(source: str | PathLike[str]) -> DecisionLog | LogDataset:
    """The decision log at `source`: a `LogDataset` for a directory, glob or URL, else a SQLite
    `DecisionLog` (opened for reading: it must exist)."""
    if is_dataset(source):
        return LogDataset.open(source)
    return DecisionLog.open(source)
