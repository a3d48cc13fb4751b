"""Opening the decision log: missing, foreign and other-version files are refused unchanged; WAL, locks, and
use after close or fork."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from bandits.errors import (
    InvalidArgumentError,
    LogError,
    LogLockedError,
    LogNotFoundError,
    LogSchemaError,
)
from bandits.log import DecisionLog, decision_batch_from_frame
from bandits.log_schema import APPLICATION_ID, INDEXES, SCHEMA_VERSION
from tests.bandits.log_factories import assert_batches_equal, file_digest, make_decisions, make_feedback

# ---------------------------------------------------------------------------------------------------------
# Opening: missing, foreign, other versions, locked


def test_open_missing_file_raises_and_creates_nothing(log_path: Path) -> None:
    with pytest.raises(LogNotFoundError, match=r"log\.db: no such decision log \(create=True creates one\)"):
        DecisionLog.open(log_path)
    assert not log_path.exists()


def test_open_create_in_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(LogNotFoundError, match=r"directory '.*nowhere' does not exist"):
        DecisionLog.open(tmp_path / "nowhere" / "log.db", create=True)


def test_open_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(LogError, match=r"is a directory, not a decision log file"):
        DecisionLog.open(tmp_path, create=True)


def test_open_creates_versioned_schema_with_indexes(log: DecisionLog, log_path: Path) -> None:
    conn = sqlite3.connect(log_path)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    finally:
        conn.close()
    assert meta["format"] == "sectionrank-decision-log"
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert set(INDEXES) <= indexes
    assert log.schema_version == SCHEMA_VERSION


def test_open_existing_log_keeps_its_rows(log_path: Path) -> None:
    batch = make_decisions(5, seed=26)
    with DecisionLog.open(log_path, create=True) as log:
        log.append_decisions(batch)
    with DecisionLog.open(log_path, create=True) as log:
        assert_batches_equal(batch, decision_batch_from_frame(log.decisions()))


def test_wal_mode_and_synchronous(log: DecisionLog, log_path: Path) -> None:
    conn = sqlite3.connect(log_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
    assert log.db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with DecisionLog.open(log_path, synchronous="FULL") as full:
        assert full.db.execute("PRAGMA synchronous").fetchone()[0] == 2


@pytest.mark.parametrize("version", [0, 3, 4])
def test_open_other_schema_version_raises(log_path: Path, version: int) -> None:
    DecisionLog.open(log_path, create=True).close()
    conn = sqlite3.connect(log_path)
    conn.execute(f"PRAGMA user_version = {version}")
    conn.close()
    digest = file_digest(log_path)
    with pytest.raises(
        LogSchemaError, match=rf"log\.db: schema version {version}, expected {SCHEMA_VERSION}"
    ):
        DecisionLog.open(log_path, create=True)
    assert file_digest(log_path) == digest


def test_open_log_missing_a_column_raises(log_path: Path) -> None:
    DecisionLog.open(log_path, create=True).close()
    conn = sqlite3.connect(log_path)
    conn.execute("ALTER TABLE feedback DROP COLUMN late")
    conn.close()
    with pytest.raises(LogSchemaError, match=r"log\.db: table 'feedback' lacks column\(s\) 'late'"):
        DecisionLog.open(log_path)


def test_open_foreign_sqlite_file_refused_unchanged(log_path: Path) -> None:
    conn = sqlite3.connect(log_path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    digest, mtime = file_digest(log_path), log_path.stat().st_mtime_ns
    with pytest.raises(LogSchemaError, match=r"log\.db: not a sectionrank decision log .*tables: users"):
        DecisionLog.open(log_path, create=True)
    assert file_digest(log_path) == digest
    assert log_path.stat().st_mtime_ns == mtime


def test_open_non_sqlite_file_refused_unchanged(log_path: Path) -> None:
    log_path.write_text("event_id,time\nabc,1\n" * 200)
    digest = file_digest(log_path)
    with pytest.raises(LogSchemaError, match=r"log\.db: not an SQLite database"):
        DecisionLog.open(log_path, create=True)
    assert file_digest(log_path) == digest


def test_open_empty_file_needs_create(log_path: Path) -> None:
    log_path.touch()
    with pytest.raises(LogSchemaError, match=r"log\.db: empty database, not a sectionrank decision log"):
        DecisionLog.open(log_path)
    assert log_path.stat().st_size == 0
    with DecisionLog.open(log_path, create=True) as log:
        assert log.count() == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"busy_timeout": -1}, r"`busy_timeout` >= 0 seconds, found -1"),
        ({"busy_timeout": float("nan")}, r"`busy_timeout` >= 0 seconds, found nan"),
        ({"synchronous": "OFF"}, r"`synchronous` 'NORMAL' or 'FULL', found 'OFF'"),
    ],
)
def test_open_rejects_bad_options(log_path: Path, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        DecisionLog.open(log_path, create=True, **kwargs)
    assert not log_path.exists()


def test_locked_log_write_raises_after_busy_timeout(log_path: Path) -> None:
    batch = make_decisions(5, seed=27)
    with DecisionLog.open(log_path, create=True, busy_timeout=0.2) as log:
        log.append_decisions(batch)
        other = sqlite3.connect(log_path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            started = time.perf_counter()
            with pytest.raises(
                LogLockedError, match=r"log\.db: database is locked: .*busy timeout \(0\.2 s\)"
            ):
                log.append_decisions(make_decisions(3, seed=28, start=50))
            assert time.perf_counter() - started >= 0.15
            with pytest.raises(LogLockedError):
                log.append_feedback(make_feedback(batch, seed=29))
            # WAL: readers do not wait for the writer.
            assert log.count() == 5
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert log.append_decisions(make_decisions(3, seed=28, start=50)) == 3
        assert log.count() == 8


def test_open_locked_rollback_journal_file_raises_locked(log_path: Path) -> None:
    DecisionLog.open(log_path, create=True).close()
    other = sqlite3.connect(log_path, isolation_level=None)
    try:
        other.execute("PRAGMA journal_mode = DELETE")
        other.execute("BEGIN EXCLUSIVE")
        with pytest.raises(LogLockedError, match=r"log\.db: database is locked"):
            DecisionLog.open(log_path, busy_timeout=0.05)
        other.execute("ROLLBACK")
    finally:
        other.close()
    with DecisionLog.open(log_path) as log:  # back in WAL mode
        assert log.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_closed_or_forked_log_refuses_use(log_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = DecisionLog.open(log_path, create=True)
    monkeypatch.setattr(log, "_pid", -1)
    with pytest.raises(LogError, match=r"used in process \d+: open the log again after fork"):
        log.count()
    log.close()
    log.close()
    with pytest.raises(LogError, match=r"log\.db: the decision log is closed"):
        log.count()
