"""The decision log's SQLite schema: tables, indexes, version stamps, and the check made on opening a file.

Version 2 (documented column by column in docs/log-schema.md):

- ``decisions``: one row per re-ranking decision, ``event_id`` unique;
- ``feedback``: at most one row per ``event_id`` (repeats are ignored), so feedback is idempotent;
- ``meta``: ``key -> value`` text pairs, among them ``format`` and ``schema_version``.

A file is a sectionrank decision log of this version when its ``PRAGMA application_id`` is
`APPLICATION_ID`, its ``PRAGMA user_version`` and ``meta.schema_version`` are `SCHEMA_VERSION`, and its tables
have every column listed here. Checking only reads the file.

Version 1 lacked ``decisions.variant`` (the A/B variant of each decision). `upgrade_schema` brings a version-1
file to version 2 in one transaction: the column is added with ``''`` (no experiment) for every existing row,
which SQLite does without rewriting the table.
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version

import sqlite_utils

from bandits.errors import LogSchemaError

#: Bumped whenever a table, column or encoding changes; a file of another version is refused.
SCHEMA_VERSION = 2
#: Older versions that opening a log upgrades, and the statements that bring each to the next version.
UPGRADES: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE decisions ADD COLUMN variant TEXT NOT NULL DEFAULT ''",),
}
#: ``PRAGMA application_id`` of every decision log: the ASCII bytes "SRDL" (sectionrank decision log).
APPLICATION_ID = 0x5352444C
#: ``meta.format`` of every decision log.
FORMAT_NAME = "sectionrank-decision-log"

#: Column -> SQLite type of the decisions table, in table order. ``user_id`` is declared BLOB so that SQLite
#: applies no type conversion: int ids are stored as INTEGER, str ids as TEXT, and read back as given.
DECISION_COLUMNS: dict[str, str] = {
    "seq": "INTEGER",
    "event_id": "TEXT",
    "time": "REAL",
    "section": "TEXT",
    "user_id": "BLOB",
    "context": "TEXT",
    "candidates": "TEXT",
    "shown": "TEXT",
    "shown_scores": "TEXT",
    "arm_id": "TEXT",
    "arm_index": "INTEGER",
    "knobs": "TEXT",
    "propensity": "REAL",
    "arm_probs": "TEXT",
    "model_versions": "TEXT",
    "variant": "TEXT",
}
#: Column -> SQLite type of the feedback table, in table order. ``reward`` NULL means "no explicit reward".
FEEDBACK_COLUMNS: dict[str, str] = {
    "seq": "INTEGER",
    "event_id": "TEXT",
    "time": "REAL",
    "clicks": "TEXT",
    "conversions": "TEXT",
    "revenue": "REAL",
    "reward": "REAL",
    "late": "INTEGER",
}
META_COLUMNS: dict[str, str] = {"key": "TEXT", "value": "TEXT"}

#: Index name -> (table, columns, unique).
INDEXES: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "decisions_event_id": ("decisions", ("event_id",), True),
    "decisions_time": ("decisions", ("time",), False),
    "decisions_section_time": ("decisions", ("section", "time"), False),
    "feedback_event_id": ("feedback", ("event_id",), True),
    "feedback_time": ("feedback", ("time",), False),
}

TABLES: dict[str, dict[str, str]] = {
    "decisions": DECISION_COLUMNS,
    "feedback": FEEDBACK_COLUMNS,
    "meta": META_COLUMNS,
}


def is_blank(db: sqlite_utils.Database) -> bool:
    """True for a database with no tables and no version stamps: a new (or zero-byte) file."""
    return not db.table_names() and _pragma(db, "application_id") == 0 and _pragma(db, "user_version") == 0


def create_schema(db: sqlite_utils.Database) -> None:
    """Create the tables, indexes and version stamps of an empty database.

    Call inside a write transaction (``BEGIN IMMEDIATE``), so that a half-created log is never visible.
    """
    db.create_table(
        "decisions",
        DECISION_COLUMNS,
        pk="seq",
        not_null=[c for c in DECISION_COLUMNS if c not in ("seq", "shown_scores")],
        defaults={"variant": ""},
    )
    db.create_table(
        "feedback",
        FEEDBACK_COLUMNS,
        pk="seq",
        not_null=[c for c in FEEDBACK_COLUMNS if c not in ("seq", "reward")],
        defaults={"late": 0, "revenue": 0.0},
    )
    db.create_table("meta", META_COLUMNS, pk="key", not_null=["value"])
    for name, (table, columns, unique) in INDEXES.items():
        db[table].create_index(list(columns), index_name=name, unique=unique)
    db["meta"].insert_all(
        [
            {"key": "format", "value": FORMAT_NAME},
            {"key": "schema_version", "value": str(SCHEMA_VERSION)},
            {"key": "created_at", "value": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
            {"key": "library_version", "value": _library_version()},
        ]
    )
    # Both pragmas write the database header, inside the same transaction as the tables.
    db.conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def upgradable_version(db: sqlite_utils.Database) -> int | None:
    """The version of a decision log that `upgrade_schema` would upgrade, or None (current, or not one)."""
    if _pragma(db, "application_id") != APPLICATION_ID:
        return None
    version = _pragma(db, "user_version")
    return version if version in UPGRADES else None


def upgrade_schema(db: sqlite_utils.Database) -> None:
    """Bring an older decision log to `SCHEMA_VERSION` (see `UPGRADES`); nothing when it is current.

    Call inside a write transaction (``BEGIN IMMEDIATE``): the log is upgraded whole or not at all.
    """
    version = upgradable_version(db)
    while version is not None and version in UPGRADES:
        for statement in UPGRADES[version]:
            db.conn.execute(statement)
        version += 1
        db.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        db.conn.execute(f"PRAGMA user_version = {version}")


def check_schema(db: sqlite_utils.Database, path: str) -> None:
    """Raise `LogSchemaError` unless `db` is a decision log of `SCHEMA_VERSION`. Only reads.

    Raises
    ------
    LogSchemaError
        "not a sectionrank decision log" (foreign application id or tables), "schema version 3, expected 1",
        or a missing table or column.
    """
    application_id = _pragma(db, "application_id")
    user_version = _pragma(db, "user_version")
    tables = db.table_names()
    if application_id != APPLICATION_ID:
        listing = ", ".join(sorted(tables)) if tables else "none"
        raise LogSchemaError(
            path,
            f"not a sectionrank decision log (application_id {application_id}, expected {APPLICATION_ID}; "
            f"tables: {listing})",
        )
    if user_version != SCHEMA_VERSION:
        raise LogSchemaError(path, f"schema version {user_version}, expected {SCHEMA_VERSION}")
    for table, columns in TABLES.items():
        if table not in tables:
            raise LogSchemaError(path, f"schema version {user_version} but table {table!r} is missing")
        found = set(db[table].columns_dict)
        missing = [c for c in columns if c not in found]
        if missing:
            raise LogSchemaError(path, f"table {table!r} lacks column(s) {', '.join(map(repr, missing))}")
    meta = {row["key"]: row["value"] for row in db.query("SELECT key, value FROM meta")}
    if meta.get("format") != FORMAT_NAME:
        raise LogSchemaError(path, f"meta.format is {meta.get('format')!r}, expected {FORMAT_NAME!r}")
    if meta.get("schema_version") != str(SCHEMA_VERSION):
        raise LogSchemaError(
            path,
            f"meta.schema_version is {meta.get('schema_version')!r} but PRAGMA user_version is "
            f"{user_version}; expected both {SCHEMA_VERSION}",
        )


def _pragma(db: sqlite_utils.Database, name: str) -> int:
    row = db.conn.execute(f"PRAGMA {name}").fetchone()
    return int(row[0])


def _library_version() -> str:
    try:
        return version("sectionrank")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "unknown"


__all__ = [
    "APPLICATION_ID",
    "DECISION_COLUMNS",
    "FEEDBACK_COLUMNS",
    "FORMAT_NAME",
    "INDEXES",
    "SCHEMA_VERSION",
    "UPGRADES",
    "check_schema",
    "create_schema",
    "is_blank",
    "upgradable_version",
    "upgrade_schema",
]
