"""Reading a decision-log dataset (`bandits.dataset`): `LogDataset`, and `open_log` for any ``--log``.

A source is a dataset root, a glob of roots (read as their union), or an fsspec URL of either. `LogDataset`
has the reading interface of `DecisionLog` that the jobs use (`joined`, `iter_joined`, `count`, `sections`,
`path`); rows decode through `bandits.log_codec`, the decoder of the SQLite log, and decisions join their
feedback with the reader's wait window as `DecisionLog.joined` does, so a dataset reads back exactly what its
logs hold.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bandits.dataset import DAY_SECONDS, DECISIONS, FEEDBACK, PART_FILE, SCHEMAS, dates_of
from bandits.errors import DatasetError, InvalidArgumentError
from bandits.log import DecisionLog
from bandits.log_codec import (
    DECISION_FIELDS,
    JOINED_FEEDBACK_FIELDS,
    decode_dicts,
    decode_joined_columns,
)

#: Decisions per partition of a distributed job (`LogDataset.partitions`).
PARTITION_ROWS = 200_000


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
    last_seq: int = 0


def _file_of(path: str) -> DataFile | None:
    host = re.search(r"host=([^/]+)/", path)
    date = re.search(r"date=([0-9-]+)/", path)
    part = PART_FILE.search(path)
    if not (host and date and part):
        return None
    return DataFile(
        path=path,
        host=host.group(1),
        date=date.group(1),
        first_seq=int(part.group(1)),
        last_seq=int(part.group(2)),
    )


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
                if table == DECISIONS and "variant" in schema.names and "variant" not in part.column_names:
                    # Shipped before decisions logged their A/B variant: none ("") for each row.
                    blank = pa.array(np.full(len(part), "", object), pa.string())
                    part = part.append_column("variant", blank)
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
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """The decision rows as stored (JSON text), in log order: host by host, each by ``seq``; only the
        fields `columns` (and ``seq``) when given."""
        if columns is not None:
            columns = ["seq", *(c for c in DECISION_FIELDS if c in columns)]
        table = self._read(
            self.files[DECISIONS] if files is None else files,
            DECISIONS,
            columns=columns,
            filters=self._decision_filter(section, since, until),
        )
        frame = table.to_pandas()
        return frame.sort_values(["host_rank", "seq"], kind="stable").reset_index(drop=True)

    def raw_feedback(
        self, filters=None, files: Sequence[DataFile] | None = None, event_ids: pa.Array | None = None
    ) -> pd.DataFrame:
        """The feedback rows as stored, one per ``event_id`` (the first stored, as the log keeps it); of the
        ids `event_ids` only, when given (matched once over all files, not file by file)."""
        table = self._read(self.files[FEEDBACK] if files is None else files, FEEDBACK, filters=filters)
        if event_ids is not None:
            table = table.filter(pc.is_in(table.column("event_id"), value_set=event_ids))
        return table.to_pandas().drop_duplicates("event_id", keep="first")

    # -- the DecisionLog reading interface -------------------------------------------------------------------

    def count(self, section: str | None = None) -> int:
        """Number of decisions (of one section, if given); of all sections from the files' footers alone."""
        if section is None:
            return sum(pq.read_metadata(f.path, filesystem=self.fs).num_rows for f in self.files[DECISIONS])
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

    def partitions(self, rows: int = PARTITION_ROWS) -> list[list[DataFile]]:
        """Consecutive shipped chunks of one host grouped into partitions of at least `rows` decisions (the
        last of a host may hold fewer), in log order: the unit of work of a distributed job. A dataset of
        many small chunks (shipped with a small ``--chunk-size``) is read in big pieces all the same."""
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise InvalidArgumentError(f"Expected `rows` to be an integer >= 1, found {rows!r}")
        out: list[list[DataFile]] = []
        held, host = 0, None
        for files in self.chunks():
            if not out or files[0].host != host or held >= rows:
                out.append([])
                held, host = 0, files[0].host
            out[-1].extend(files)
            held += files[0].last_seq - files[0].first_seq + 1
        return out

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
            frame = self.joined_chunk(
                files, wait_seconds=wait_seconds, section=section, since=since, until=until
            )
            if len(frame):
                yield frame

    def joined_chunk(
        self,
        files: Sequence[DataFile],
        *,
        wait_seconds: float | None = None,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """`joined` of one chunk (`chunks`, or several: `partitions`), with its feedback read as
        `iter_joined` reads it: what one task of a distributed job reads (the dataset object is small: file
        names and the filesystem). With `columns`, only those columns of the joined frame are read and
        decoded (``event_id`` and ``time`` always, for the join), each equal to the full frame's.

        The feedback files are those of the dates `iter_joined` names; within them, rows outside those
        dates' times are skipped by row group, unread, and only the chunk's event ids are kept.
        """
        decisions, feedback, columns = self._raw_chunk(files, wait_seconds, section, since, until, columns)
        return join_raw(decisions, feedback, wait_seconds, columns=columns)

    def joined_slices(
        self,
        files: Sequence[DataFile],
        *,
        slice_rows: int,
        wait_seconds: float | None = None,
        section: str | None = None,
        since: float | None = None,
        until: float | None = None,
        columns: Sequence[str] | None = None,
    ) -> Iterator[pd.DataFrame]:
        """`joined_chunk` in consecutive pieces of at most `slice_rows` decisions: the chunk's stored rows are
        read once, and decoded a slice at a time, so that memory holds one slice's decoded values (Python
        dicts and arrays take several times the stored text) whatever the size of the chunk."""
        if isinstance(slice_rows, bool) or not isinstance(slice_rows, int) or slice_rows < 1:
            raise InvalidArgumentError(f"Expected `slice_rows` to be an integer >= 1, found {slice_rows!r}")
        decisions, feedback, columns = self._raw_chunk(files, wait_seconds, section, since, until, columns)
        for start in range(0, len(decisions), slice_rows):
            part = decisions.iloc[start : start + slice_rows]
            yield join_raw(part, feedback, wait_seconds, columns=columns)

    def _raw_chunk(self, files, wait_seconds, section, since, until, columns):
        """(stored decisions, stored feedback of their event ids, the columns to decode) of a chunk."""
        _check_wait(wait_seconds)
        if columns is not None:
            _check_columns(columns)
            columns = list(dict.fromkeys(["event_id", "time", *columns]))
        decisions = self.raw_decisions(files, section=section, since=since, until=until, columns=columns)
        if decisions.empty:
            return decisions, self.raw_feedback(files=[]), columns
        times = decisions["time"].to_numpy()
        low = str(dates_of(np.array([times.min() - DAY_SECONDS]))[0])
        window = pc.field("time") >= _day_start(low)
        feedback_files = self.files[FEEDBACK]
        if wait_seconds is not None:
            high = str(dates_of(np.array([times.max() + wait_seconds + DAY_SECONDS]))[0])
            feedback_files = [f for f in feedback_files if low <= f.date <= high]
            window = window & (pc.field("time") < _day_start(high) + DAY_SECONDS)
        else:
            feedback_files = [f for f in feedback_files if low <= f.date]
        ids = pa.array(decisions["event_id"].to_numpy(dtype=object), pa.string())
        return decisions, self.raw_feedback(window, feedback_files, event_ids=ids), columns


def _check_wait(wait_seconds: float | None) -> None:
    if wait_seconds is not None and not (
        isinstance(wait_seconds, int | float) and np.isfinite(wait_seconds) and wait_seconds >= 0
    ):
        raise InvalidArgumentError(f"Expected `wait_seconds` >= 0 or None, found {wait_seconds!r}")


def _day_start(date: str) -> float:
    """The Unix time at which the UTC date ``YYYY-MM-DD`` starts."""
    return float(np.datetime64(date, "s").astype(np.int64))


def _check_columns(columns: Sequence[str]) -> None:
    known = DECISION_FIELDS + JOINED_FEEDBACK_FIELDS
    if isinstance(columns, str) or any(c not in known for c in columns):
        raise InvalidArgumentError(
            f"Expected `columns` among the joined frame's ({', '.join(known)}), found {columns!r}"
        )


def join_raw(
    decisions: pd.DataFrame,
    feedback: pd.DataFrame,
    wait_seconds: float | None,
    *,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Raw decision rows left-joined with raw feedback rows within the wait window, decoded by the log's
    codec into the frame `DecisionLog.joined` returns (rows in the order of `decisions`); only the columns
    `columns` of it, in its order, when given (the decision fields among them must be in `decisions`).

    Feedback joins when ``feedback time - decision time <= wait_seconds`` (all of it when None); a decision
    without admitted feedback gets ``has_feedback`` False, empty clicks and conversions, revenue 0, reward
    NaN and late False, as the log's ``LEFT JOIN`` with ``COALESCE`` gives.
    """
    _check_wait(wait_seconds)
    wanted = set(DECISION_FIELDS + JOINED_FEEDBACK_FIELDS) if columns is None else set(columns)
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

    stored: dict[str, Any] = {}
    for name in DECISION_FIELDS:
        if name in wanted:
            # One conversion per column (iterating an Arrow-backed column costs a call per value).
            values = decisions[name].to_numpy(dtype=object)
            stored[name] = decode_dicts(values.tolist()) if name == "user_id" else values
    feedback_columns = {
        "has_feedback": lambda: found,
        "feedback_time": lambda: np.where(found, f_time, np.nan),
        "clicks": lambda: column("clicks", "[]", object).tolist(),
        "conversions": lambda: column("conversions", "[]", object).tolist(),
        "revenue": lambda: column("revenue", 0.0, np.float64),
        "reward": lambda: column("reward", np.nan, np.float64),
        "late": lambda: column("late", False, bool),
    }
    stored.update({name: make() for name, make in feedback_columns.items() if name in wanted})
    return pd.DataFrame(decode_joined_columns(stored))


def open_log(source: str | PathLike[str]) -> DecisionLog | LogDataset:
    """The decision log at `source`: a `LogDataset` for a directory, glob or URL, else a SQLite
    `DecisionLog` (opened for reading: it must exist)."""
    if is_dataset(source):
        return LogDataset.open(source)
    return DecisionLog.open(source)
