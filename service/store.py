"""The service's store of catalog items and user profiles: one SQLite file the workers read at start and on
reload, filled from Parquet or CSV by `sectionrank load-catalog` / `load-users`.

A load replaces a table atomically: the new rows go to a staging table, then one ``BEGIN IMMEDIATE``
transaction drops the old table and renames the staging one, so a reader sees either the old table or the
new one, never a mix. Column dtypes are recorded beside the rows (``table_meta``) so that a read gives back
the dtypes that were loaded (SQLite has no bool). A file or table that cannot be used raises
`service.errors.StoreError` naming it.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ranker.features import CATALOG_COLUMNS, USER_COLUMNS
from service.errors import StoreError

#: Store table -> (required columns, required embedding-column prefix).
TABLES = {"catalog": (CATALOG_COLUMNS, "emb_"), "users": (USER_COLUMNS, "u_emb_")}
ID_COLUMN = {"catalog": "item_id", "users": "user_id"}


def read_input(path: str | os.PathLike) -> pd.DataFrame:
    """A Parquet or CSV table (by its suffix), with one-line errors."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise StoreError(path, f"expected a .parquet or .csv file, found {suffix or 'no suffix'!r}")
    try:
        return pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
    except FileNotFoundError:
        raise StoreError(path, "no such file") from None
    except (OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(path, f"cannot read ({detail})") from None


def check_table(table: str, frame: pd.DataFrame) -> None:
    """Refuse a frame missing a required column, with duplicate or missing ids, naming the column."""
    required, prefix = TABLES[table]
    missing = [c for c in required if c not in frame.columns]
    if not any(str(c).startswith(prefix) and str(c)[len(prefix) :].isdigit() for c in frame.columns):
        missing.append(f"{prefix}0 .. {prefix}<d-1>")
    if missing:
        raise StoreError(table, f"missing columns {missing}; found {[str(c) for c in frame.columns]}")
    ids = frame[ID_COLUMN[table]]
    if ids.isna().any():
        raise StoreError(
            table, f"column {ID_COLUMN[table]!r} has a missing id at row {int(ids.isna().argmax())}"
        )
    duplicated = ids.duplicated()
    if duplicated.any():
        row = int(duplicated.argmax())
        value = ids.iloc[row]
        value = value.item() if isinstance(value, np.generic) else value
        raise StoreError(table, f"column {ID_COLUMN[table]!r} repeats id {value!r} at row {row}")
    if len(frame) == 0:
        raise StoreError(table, "no rows")


class ServiceStore:
    """The store file: `load` replaces a table, `read` returns it as loaded.

    Parameters
    ----------
    path : path
        The SQLite file; `load` creates it, `read` needs it to exist.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def _connect(self, create: bool) -> sqlite3.Connection:
        if not create and not self.path.is_file():
            raise StoreError(self.path, "no such store (fill it with `sectionrank load-catalog`)")
        if create and not self.path.parent.is_dir():
            raise StoreError(self.path, f"directory {str(self.path.parent)!r} does not exist")
        try:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(self.path, f"cannot open the store ({exc})") from None
        return conn

    def load(self, table: str, frame: pd.DataFrame, *, source: str = "") -> int:
        """Replace `table` ("catalog" or "users") with `frame` atomically; returns the rows stored."""
        if table not in TABLES:
            raise StoreError(table, f"unknown store table (expected one of {list(TABLES)})")
        check_table(table, frame)
        dtypes = {str(c): str(frame[c].dtype) for c in frame.columns}
        staging = f"{table}_staging"
        conn = self._connect(create=True)
        try:
            conn.execute(f"DROP TABLE IF EXISTS {staging}")
            frame.to_sql(staging, conn, index=False)
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS table_meta "
                "(name TEXT PRIMARY KEY, dtypes TEXT, rows INTEGER, source TEXT, loaded_at REAL)"
            )
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            conn.execute(f"ALTER TABLE {staging} RENAME TO {table}")
            conn.execute(
                "INSERT OR REPLACE INTO table_meta VALUES (?, ?, ?, ?, ?)",
                (table, json.dumps(dtypes), len(frame), source, time.time()),
            )
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(self.path, f"cannot write table {table!r} ({exc})") from None
        finally:
            conn.close()
        return len(frame)

    def read(self, table: str) -> pd.DataFrame:
        """`table` with the dtypes it was loaded with."""
        conn = self._connect(create=False)
        try:
            meta = conn.execute("SELECT dtypes FROM table_meta WHERE name = ?", (table,)).fetchone()
            if meta is None:
                what = "load-catalog" if table == "catalog" else "load-users"
                raise StoreError(self.path, f"no {table} table (fill it with `sectionrank {what}`)")
            frame = pd.read_sql(f"SELECT * FROM {table}", conn)
        except sqlite3.DatabaseError as exc:
            raise StoreError(self.path, f"cannot read table {table!r} ({exc})") from None
        finally:
            conn.close()
        for column, dtype in json.loads(meta[0]).items():
            if dtype == "bool":
                frame[column] = frame[column].astype(bool)
            elif dtype.startswith(("int", "float")) and frame[column].dtype != np.dtype(dtype):
                frame[column] = frame[column].astype(dtype)
        return frame

    def info(self) -> dict[str, dict[str, object]]:
        """Rows, source and load time of each loaded table."""
        if not self.path.is_file():
            return {}
        conn = self._connect(create=False)
        try:
            rows = conn.execute("SELECT name, rows, source, loaded_at FROM table_meta").fetchall()
        except sqlite3.DatabaseError:
            rows = []
        finally:
            conn.close()
        return {
            name: {"rows": n, "source": src, "loaded_at": at if at is None or math.isfinite(at) else None}
            for name, n, src, at in rows
        }

    def tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(catalog, users)."""
        return self.read("catalog"), self.read("users")
