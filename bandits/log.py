"""The decision log: what the logging policy decided, and the feedback on it, in one SQLite file.

Example::

    with DecisionLog.open("decisions.db", create=True) as log:
        log.append_decisions(decision_batch)
        log.append_feedback(feedback_batch)
        frame = log.joined(wait_seconds=3600)

Storage (docs/log-schema.md): a ``decisions`` table, one row per decision, and a ``feedback`` table with at
most one row per ``event_id``, so that repeated feedback changes nothing. The connection runs in WAL mode with
``synchronous=NORMAL``: a committed append survives a crash of the process, but the last appends before a
power loss or an operating-system crash may be rolled back (the file stays consistent). ``synchronous="FULL"``
makes every committed append survive both, at several times the cost of a small append (docs/BENCHMARKS.md).

Every append is one ``BEGIN IMMEDIATE`` transaction: a batch is stored whole or not at all. One writer at a
time; readers never wait for it. A `DecisionLog` may be shared by the threads of one process (its calls take a
lock); a process started by ``fork()`` must open its own.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
import sqlite_utils

from bandits.errors import (
    DuplicateEventError,
    InvalidArgumentError,
    LogError,
    LogSchemaError,
    UnknownEventError,
)
from bandits.log_codec import (
    DECISION_FIELDS,
    FEEDBACK_FIELDS,
    decision_batch_from_frame,
    decision_rows,
    decisions_frame,
    feedback_batch_from_frame,
    feedback_frame,
    feedback_rows,
    joined_frame,
)
from bandits.log_schema import check_schema, is_blank
from bandits.log_sqlite import connect, enable_wal, initialise, translated
from bandits.records import DecisionBatch, FeedbackBatch

# `decision_batch_from_frame` and `feedback_batch_from_frame` turn read frames back into records.
__all__ = ["DecisionLog", "decision_batch_from_frame", "feedback_batch_from_frame"]

#: The WAL file is truncated back to this size after a checkpoint, so that one large batch does not leave a
#: WAL file of its size behind.
JOURNAL_SIZE_LIMIT = 64 * 1024 * 1024

_DECISION_SELECT = ", ".join(f"d.{c}" for c in DECISION_FIELDS)
_JOINED_FEEDBACK_SELECT = (
    "f.event_id IS NOT NULL, f.time, COALESCE(f.clicks, '[]'), COALESCE(f.conversions, '[]'), "
    "COALESCE(f.revenue, 0.0), f.reward, COALESCE(f.late, 0)"
)
_INSERT_DECISION = (
    f"INSERT INTO decisions ({', '.join(DECISION_FIELDS)}) VALUES ({', '.join('?' * len(DECISION_FIELDS))})"
)
_INSERT_DECISION_IF_NEW = f"{_INSERT_DECISION} ON CONFLICT (event_id) DO NOTHING"
# A repeat of an event_id already in the table is skipped: the first feedback stored for an event stays.
_INSERT_FEEDBACK = (
    f"INSERT INTO feedback ({', '.join(FEEDBACK_FIELDS)}) VALUES ({', '.join('?' * len(FEEDBACK_FIELDS))}) "
    "ON CONFLICT (event_id) DO NOTHING"
)


class DecisionLog:
    """An open decision log. Create one with `DecisionLog.open`; close it with `close` or a ``with`` block.

    Attributes
    ----------
    path : Path
        The log file.
    db : sqlite_utils.Database
        The database, for ad hoc read-only queries from one thread (it shares the log's connection but not
        its lock; do not write through it).
    busy_timeout : float
        Seconds a write waits for another writer before `LogLockedError`.
    """

    def __init__(self, path: Path, db: sqlite_utils.Database, *, busy_timeout: float) -> None:
        self.path = path
        self.db = db
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection = db.conn
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._closed = False

    # -----------------------------------------------------------------------------------------------------
    # Opening and closing

    @classmethod
    def open(
        cls,
        path: str | PathLike[str],
        create: bool = False,
        *,
        busy_timeout: float = 5.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> DecisionLog:
        """Open the decision log at `path`; with ``create=True``, create it if it does not exist.

        Opening an existing file only reads it until it is known to be a decision log of this schema
        version: a file that is not one is refused unchanged.

        Parameters
        ----------
        path : str or PathLike
            The SQLite file.
        create : bool
            Create the file (and its tables) when it is missing or empty. Without it a missing file raises.
        busy_timeout : float, keyword-only
            Seconds a write waits for another connection's write lock before raising `LogLockedError`.
        synchronous : {"NORMAL", "FULL"}, keyword-only
            SQLite's ``synchronous`` setting: the durability guarantee (see the module docstring).

        Raises
        ------
        LogNotFoundError
            The file (or, with ``create=True``, its directory) does not exist.
        LogSchemaError
            The file is not a sectionrank decision log, or one of another schema version.
        LogLockedError
            Creating the log needed a lock that another connection held past `busy_timeout`.
        LogError
            Any other reason the file cannot be opened (a directory, unreadable, corrupt).
        """
        path = Path(path)
        if not (isinstance(busy_timeout, int | float) and math.isfinite(busy_timeout) and busy_timeout >= 0):
            raise InvalidArgumentError(f"Expected `busy_timeout` >= 0 seconds, found {busy_timeout!r}")
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidArgumentError(f"Expected `synchronous` 'NORMAL' or 'FULL', found {synchronous!r}")
        conn = connect(path, create, busy_timeout)
        try:
            with translated(path, busy_timeout):
                conn.execute(f"PRAGMA busy_timeout = {round(busy_timeout * 1000)}")
                db = sqlite_utils.Database(conn, execute_plugins=False)
                if is_blank(db):
                    if not create:
                        raise LogSchemaError(
                            path,
                            "empty database, not a sectionrank decision log (create=True initialises it)",
                        )
                    enable_wal(conn, path)
                    initialise(db)
                check_schema(db, str(path))
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    enable_wal(conn, path)
                conn.execute(f"PRAGMA synchronous = {synchronous}")
                conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        except BaseException:
            conn.close()
            raise
        return cls(path, db, busy_timeout=busy_timeout)

    def close(self) -> None:
        """Close the connection. Later calls raise `LogError`; closing twice does nothing."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"DecisionLog({str(self.path)!r}, {state})"

    @property
    def schema_version(self) -> int:
        """The schema version of the file (always `bandits.log_schema.SCHEMA_VERSION` once open)."""
        return int(self._read("PRAGMA user_version")[0][0])

    # -----------------------------------------------------------------------------------------------------
    # Writing

    def append_decisions(self, batch: DecisionBatch, *, skip_existing: bool = False) -> int:
        """Store a batch of decisions in one transaction; returns the number of rows written (B).

        With ``skip_existing=True`` a decision whose ``event_id`` is already in the log is skipped (a replay
        of decisions that may have been written before is idempotent), and the count is of new rows only.

        Raises
        ------
        InvalidBatchError
            A field of the wrong shape, type or range (nothing is written).
        DuplicateEventError
            Without `skip_existing`, an ``event_id`` already in the log (the whole batch is rolled back).
        LogLockedError
            Another connection held the write lock past the busy timeout (nothing is written).
        """
        rows = decision_rows(batch)
        if not rows:
            return 0
        if skip_existing:
            with self._transaction() as conn:
                changes = conn.total_changes
                conn.executemany(_INSERT_DECISION_IF_NEW, rows)
                return conn.total_changes - changes
        try:
            with self._transaction() as conn:
                conn.executemany(_INSERT_DECISION, rows)
        except sqlite3.IntegrityError as exc:
            raise DuplicateEventError(self.path, self._first_known(batch.event_id)) from exc
        return len(rows)

    def append(self, decisions: DecisionBatch, feedback: FeedbackBatch) -> None:
        """Store a chunk of decisions, then their feedback: the sink a simulation writes its log through
        (``simulate(..., sink=log.append)``)."""
        self.append_decisions(decisions)
        self.append_feedback(feedback)

    def append_feedback(
        self,
        batch: FeedbackBatch,
        *,
        late: bool | np.ndarray = False,
        require_known: bool = True,
    ) -> int:
        """Store a batch of feedback in one transaction; returns the number of rows newly stored.

        Feedback is idempotent: a row whose ``event_id`` already has feedback (from an earlier call or an
        earlier row of this batch) is skipped and changes nothing.

        Parameters
        ----------
        batch : FeedbackBatch
        late : bool or (B,) bool array, keyword-only
            The writer's "late" flag, stored in the ``late`` column. Learners decide lateness themselves by a
            wait window (`joined`); the flag is for the writer's own bookkeeping.
        require_known : bool, keyword-only
            Refuse the batch when a newly stored row names an ``event_id`` with no decision in the log. With
            False such feedback is stored, and joins with its decision once that is written.

        Raises
        ------
        InvalidBatchError
            A field of the wrong shape, type or range (nothing is written).
        UnknownEventError
            With `require_known`, feedback on an event the log has no decision for (the batch is rolled back).
        LogLockedError
            Another connection held the write lock past the busy timeout (nothing is written).
        """
        rows = feedback_rows(batch, late)
        if not rows:
            return 0
        with self._transaction() as conn:
            last_seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM feedback").fetchone()[0]
            changes = conn.total_changes
            conn.executemany(_INSERT_FEEDBACK, rows)
            stored = conn.total_changes - changes
            if require_known and stored:
                unknown = conn.execute(
                    "SELECT f.event_id FROM feedback f WHERE f.seq > ? AND NOT EXISTS "
                    "(SELECT 1 FROM decisions d WHERE d.event_id = f.event_id) ORDER BY f.seq",
                    (last_seq,),
                ).fetchall()
                if unknown:
                    raise UnknownEventError(self.path, unknown[0][0], len(unknown))
        return stored

    # -----------------------------------------------------------------------------------------------------
    # Reading

    def has_event(self, event_id: str) -> bool:
        """Whether the log holds a decision with this ``event_id``."""
        return bool(
            self._read("SELECT EXISTS (SELECT 1 FROM decisions WHERE event_id = ?)", (str(event_id),))[0][0]
        )

    def count(self, section: str | None = None) -> int:
        """Number of decisions (of one section, if given)."""
        where, params = _where("d", section, None, None)
        return int(self._read(f"SELECT COUNT(*) FROM decisions d {where}", params)[0][0])

    def count_feedback(self) -> int:
        """Number of feedback rows (one per event at most)."""
        return int(self._read("SELECT COUNT(*) FROM feedback")[0][0])

    def sections(self) -> list[str]:
        """The sections with at least one decision, sorted."""
        return [row[0] for row in self._read("SELECT DISTINCT section FROM decisions ORDER BY section")]

    def decisions(
        self,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> pd.DataFrame:
        """Decisions with ``since <= time < until`` (of one section, if given), in the order written.

        Returns
        -------
        DataFrame
            One row per decision; columns as in `bandits.log_codec.decisions_frame`: JSON decoded, candidate
            and shown ids as one numpy array per row (int64 or str, as written).
        """
        where, params = _where("d", section, since, until)
        rows = self._read(f"SELECT {_DECISION_SELECT} FROM decisions d {where} ORDER BY d.seq", params)
        return decisions_frame(rows)

    def iter_decisions(
        self,
        chunk_size: int = 10_000,
        *,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[pd.DataFrame]:
        """`decisions` in frames of at most `chunk_size` rows, for logs too large to hold at once.

        Rows appended while iterating are included when they come after the current chunk.
        """
        return self._iter(
            f"SELECT {_DECISION_SELECT}, d.seq FROM decisions d",
            decisions_frame,
            chunk_size,
            section,
            since,
            until,
        )

    def feedback(self, since: float | None = None, until: float | None = None) -> pd.DataFrame:
        """Feedback rows with ``since <= time < until`` (feedback time), in the order stored.

        Returns
        -------
        DataFrame
            Columns ``event_id, time, clicks, conversions`` (int64 position arrays), ``revenue``,
            ``reward`` (NaN when none was given) and ``late`` (bool), including every late row.
        """
        where, params = _where("f", None, since, until)
        columns = ", ".join(f"f.{c}" for c in FEEDBACK_FIELDS)
        return feedback_frame(self._read(f"SELECT {columns} FROM feedback f {where} ORDER BY f.seq", params))

    def joined(
        self,
        wait_seconds: float | None = None,
        *,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
        seqs: tuple[int, int] | None = None,
    ) -> pd.DataFrame:
        """Decisions (filtered as in `decisions`) left-joined with their feedback, one row per decision.

        Parameters
        ----------
        wait_seconds : float or None
            The wait window: feedback whose ``feedback time - decision time`` exceeds it is left out of the
            join (it stays in the feedback table). None admits all feedback.
        seqs : (after, through) or None
            Only the decisions with ``after < seq <= through`` (their order of arrival, `max_seq`).

        Returns
        -------
        DataFrame
            The decision columns, then ``has_feedback`` (bool), ``feedback_time`` (NaN without feedback),
            ``clicks, conversions`` (int64 position arrays, empty without feedback), ``revenue`` (0
            without feedback), ``reward`` (NaN without an explicit reward) and ``late`` (the stored flag;
            False without feedback).
        """
        sql, params = self._joined_select(wait_seconds)
        where, where_params = _where("d", section, since, until, seqs)
        return joined_frame(self._read(f"{sql} {where} ORDER BY d.seq", params + where_params))

    def iter_joined(
        self,
        chunk_size: int = 10_000,
        *,
        wait_seconds: float | None = None,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
        seqs: tuple[int, int] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """`joined` in frames of at most `chunk_size` decisions."""
        select, params = self._joined_select(wait_seconds, with_seq=True)
        return self._iter(select, joined_frame, chunk_size, section, since, until, params, seqs)

    def max_seq(self) -> int:
        """The ``seq`` of the last decision stored (0 for an empty log). ``seq`` grows with every decision
        appended, so ``(after, through]`` ranges of it name the decisions that arrived in between."""
        return int(self._read("SELECT COALESCE(MAX(seq), 0) FROM decisions")[0][0])

    def id_types(self, section: str | None = None) -> dict[str, str]:
        """How ids are typed in the log: ``{"user_id"|"candidates"|"shown": "int"|"str"|"mixed"|"none"}``.

        "none" means no decision (or only empty id lists) to tell from.
        """
        where, params = _where("d", section, None, None)
        and_where = where.replace("WHERE", "AND", 1)
        out = {}
        rows = self._read(f"SELECT DISTINCT typeof(d.user_id) FROM decisions d {where}", params)
        out["user_id"] = _kind({r[0] == "text" for r in rows})
        for column in ("candidates", "shown"):
            # A JSON array of str ids starts with '["'; one of int ids with a digit or '-'.
            has_str, has_int = self._read(
                f"SELECT EXISTS (SELECT 1 FROM decisions d WHERE d.{column} LIKE '[\"%' {and_where}), "
                f"EXISTS (SELECT 1 FROM decisions d WHERE d.{column} NOT LIKE '[\"%' "
                f"AND d.{column} <> '[]' {and_where})",
                params + params,
            )[0]
            out[column] = _kind({flag for flag, present in ((True, has_str), (False, has_int)) if present})
        return out

    # -----------------------------------------------------------------------------------------------------
    # Internals

    def _joined_select(self, wait_seconds: float | None, *, with_seq: bool = False) -> tuple[str, list[Any]]:
        on, params = "f.event_id = d.event_id", []
        if wait_seconds is not None:
            if not (
                isinstance(wait_seconds, int | float) and math.isfinite(wait_seconds) and wait_seconds >= 0
            ):
                raise InvalidArgumentError(f"Expected `wait_seconds` >= 0 or None, found {wait_seconds!r}")
            on += " AND f.time - d.time <= ?"
            params.append(float(wait_seconds))
        return (
            f"SELECT {_DECISION_SELECT}, {_JOINED_FEEDBACK_SELECT}{', d.seq' if with_seq else ''} "
            f"FROM decisions d LEFT JOIN feedback f ON {on}",
            params,
        )

    def _iter(
        self,
        select: str,
        to_frame: Callable[[list[tuple[Any, ...]]], pd.DataFrame],
        chunk_size: int,
        section: str | None,
        since: float | None,
        until: float | None,
        params: list[Any] | None = None,
        seqs: tuple[int, int] | None = None,
    ) -> Iterator[pd.DataFrame]:
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InvalidArgumentError(f"Expected `chunk_size` to be an integer >= 1, found {chunk_size!r}")
        where, where_params = _where("d", section, since, until, seqs)
        sql = f"{select} {where} {'AND' if where else 'WHERE'} d.seq > ? ORDER BY d.seq LIMIT ?"
        head = list(params or []) + where_params

        def frames() -> Iterator[pd.DataFrame]:
            last_seq = 0
            while True:
                rows = self._read(sql, [*head, last_seq, chunk_size])
                if not rows:
                    return
                last_seq = rows[-1][-1]
                yield to_frame([row[:-1] for row in rows])
                if len(rows) < chunk_size:
                    return

        return frames()

    def _first_known(self, event_ids: np.ndarray) -> str:
        """The first of `event_ids` that has a decision in the log (after a unique-constraint failure)."""
        ids = [str(e) for e in np.asarray(event_ids).tolist()]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            found = {
                row[0]
                for row in self._read(
                    f"SELECT event_id FROM decisions WHERE event_id IN ({', '.join('?' * len(chunk))})", chunk
                )
            }
            for event_id in chunk:
                if event_id in found:
                    return event_id
        return ids[0]  # pragma: no cover - the constraint failed, so one of them is known

    def _read(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock, translated(self.path, self.busy_timeout):
            self._check_usable()
            return self._conn.execute(sql, params).fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` write transaction, committed on success and rolled back on any error."""
        with self._lock, translated(self.path, self.busy_timeout):
            self._check_usable()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _check_usable(self) -> None:
        if self._closed:
            raise LogError(self.path, "the decision log is closed")
        if os.getpid() != self._pid:
            raise LogError(
                self.path,
                f"opened in process {self._pid} and used in process {os.getpid()}: "
                "open the log again after fork",
            )


def _kind(is_str: set[bool]) -> str:
    if not is_str:
        return "none"
    if len(is_str) == 2:
        return "mixed"
    return "str" if True in is_str else "int"


def _where(
    alias: str,
    section: str | None,
    since: float | None,
    until: float | None,
    seqs: tuple[int, int] | None = None,
) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if seqs is not None:
        after, through = (int(v) for v in seqs)
        clauses.append(f"{alias}.seq > ? AND {alias}.seq <= ?")
        params += [after, through]
    if section is not None:
        clauses.append(f"{alias}.section = ?")
        params.append(str(section))
    for name, value, op in (("since", since, ">="), ("until", until, "<")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise InvalidArgumentError(
                f"Expected `{name}` in seconds since the epoch or None, found {value!r}"
            )
        clauses.append(f"{alias}.time {op} ?")
        params.append(float(value))
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params
