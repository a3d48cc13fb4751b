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
from bandits.log_codec import DECISION_FIELDS, decode_dicts, joined_frame


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
    part = PART_FILE.search(path)
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
    ) -> pd.DataFrame:
        """`joined` of one chunk (`chunks`), with its feedback read as `iter_joined` reads it: what one task
        of a distributed job reads (the dataset object is small: file names and the filesystem)."""
        _check_wait(wait_seconds)
        decisions = self.raw_decisions(files, section=section, since=since, until=until)
        if decisions.empty:
            return join_raw(decisions, self.raw_feedback(files=[]), wait_seconds)
        times = decisions["time"].to_numpy()
        low = str(dates_of(np.array([times.min() - DAY_SECONDS]))[0])
        feedback_files = self.files[FEEDBACK]
        if wait_seconds is not None:
            high = str(dates_of(np.array([times.max() + wait_seconds + DAY_SECONDS]))[0])
            feedback_files = [f for f in feedback_files if low <= f.date <= high]
        else:
            feedback_files = [f for f in feedback_files if low <= f.date]
        ids = pa.array(decisions["event_id"].to_numpy(dtype=object), pa.string())
        feedback = self.raw_feedback(pc.field("event_id").isin(ids), feedback_files)
        return join_raw(decisions, feedback, wait_seconds)


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
