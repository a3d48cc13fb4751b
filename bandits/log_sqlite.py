"""The decision log's SQLite connection: opening a file without creating one by accident, WAL mode, creating
the schema once, and SQLite's errors translated into `LogError`s that name the file.

`bandits.log.DecisionLog` is the only user; it holds the connection these functions open.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from bandits.errors import LogError, LogLockedError, LogNotFoundError, LogSchemaError
from bandits.log_schema import SCHEMA_VERSION, create_schema, is_blank, upgradable_version, upgrade_schema

__all__ = ["connect", "enable_wal", "initialise", "translated", "upgrade"]

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = (
    5,
    6,
    8,
    11,
    13,
    26,
)


def connect(path: Path, create: bool, busy_timeout: float) -> sqlite3.Connection:
    """An autocommit connection to `path`, shared across threads; the file is created only with `create`.

    Raises `LogNotFoundError` for a missing file (or, with `create`, a missing directory) and `LogError` for
    a directory or a file SQLite cannot open.
    """
    if path.is_dir():
        raise LogError(path, "is a directory, not a decision log file")
    if not path.exists():
        if not create:
            raise LogNotFoundError(path, "no such decision log (create=True creates one)")
        if not path.parent.is_dir():
            raise LogNotFoundError(
                path, f"cannot create the log: directory {str(path.parent)!r} does not exist"
            )
    # mode=rw never creates a file, so that a reader cannot leave an empty database behind.
    uri = path.absolute().as_uri() + ("?mode=rwc" if create else "?mode=rw")
    try:
        return sqlite3.connect(
            uri, uri=True, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
    except sqlite3.OperationalError as exc:
        if not path.exists() and not create:
            raise LogNotFoundError(path, "no such decision log (create=True creates one)") from exc
        raise LogError(path, f"cannot open: {exc}") from exc


def enable_wal(conn: sqlite3.Connection, path: Path) -> None:
    """Switch the file to WAL journal mode, or raise `LogError` when SQLite keeps another mode."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise LogError(
            path, f"cannot use WAL journal mode (SQLite kept {mode!r}); is it on a network filesystem?"
        )


def initialise(db: sqlite_utils.Database) -> None:
    """Create the schema in one transaction, unless another connection did so since the blank check."""
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        if is_blank(db):
            create_schema(db)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def upgrade(db: sqlite_utils.Database, path: Path) -> None:
    """Upgrade an older decision log to the current schema in one transaction (`log_schema.upgrade_schema`),
    unless another connection did so first; nothing for a current log. A file that cannot be written stays
    as it is and raises `LogSchemaError`."""
    version = upgradable_version(db)
    if version is None:
        return
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
        upgrade_schema(db)
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.OperationalError) and exc.sqlite_errorcode & 0xFF == _SQLITE_READONLY:
            raise LogSchemaError(
                path,
                f"schema version {version}, expected {SCHEMA_VERSION}; opening upgrades it, which needs "
                "write access",
            ) from exc
        raise


@contextmanager
def translated(path: Path, busy_timeout: float) -> Iterator[None]:
    """Turn SQLite's errors about the file into `LogError`s that name it; constraint failures pass through."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
            raise LogLockedError(
                path,
                f"database is locked: another connection held the write lock for more than the busy timeout "
                f"({busy_timeout:g} s)",
            ) from exc
        if code == _SQLITE_NOTADB:
            raise LogSchemaError(path, "not an SQLite database, so not a sectionrank decision log") from exc
        if code == _SQLITE_CORRUPT:
            raise LogError(path, f"the database is corrupt ({exc})") from exc
        if code == _SQLITE_READONLY:
            raise LogError(path, f"cannot write: {exc}") from exc
        if code == _SQLITE_FULL:
            raise LogError(path, "cannot write: the disk is full") from exc
        raise LogError(path, str(exc)) from exc
