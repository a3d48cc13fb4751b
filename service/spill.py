"""The spill journal: an append-only local file of log records that the decision log could not take yet.

A worker's `service.log_writer.LogWriter` appends here while the log cannot be written (another writer holds
its lock, its disk is full), and replays the journal into the log once it can; the replay is idempotent by
event id, so a record replayed twice is stored once.

Format: one record per appended group, ``<length: u32><crc32: u32><pickle of the group>``, flushed and
fsync'd per append. A torn record (a crash in the middle of an append) ends the readable part of the file;
an append that fails (disk full) truncates the file back to where it was, so a later append never follows a
torn record. The file is written and read only by this package, on this machine.

Each writer holds an exclusive ``flock`` on its own file (``<pid>-<random>.spill`` in the spill directory)
while it lives. A file whose lock is free belongs to a writer that has exited (or was killed): any writer
replays it into the log and deletes it (`claim_orphans`). Any worker reads every file as it grows
(`SpillTail`), to answer feedback on decisions that another worker spilled.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_HEADER = struct.Struct("<II")
SUFFIX = ".spill"


class SpillJournal:
    """This process's spill file in `directory` (created if missing), locked while open.

    Raises `OSError` when the directory or the file cannot be created.
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.records = 0

    def append(self, group: Any) -> None:
        """Append one group durably (written, flushed and fsync'd); on failure nothing is appended and
        `OSError` is raised."""
        payload = pickle.dumps(group, protocol=pickle.HIGHEST_PROTOCOL)
        data = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        size = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, size)
            raise
        self.records += 1

    def read(self) -> list[Any]:
        """Every complete group in this file, oldest first."""
        return list(read_groups(self.path))

    def clear(self) -> None:
        """Empty the file once its groups are in the log."""
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self.records = 0

    def size_bytes(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self, *, remove_if_empty: bool = True) -> None:
        if self._fd < 0:
            return
        empty = os.fstat(self._fd).st_size == 0
        if remove_if_empty and empty:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = -1


def read_groups(path: Path) -> Iterator[Any]:
    """The complete groups of a spill file; stops at a torn or corrupt record."""
    for group, _ in _records(path.read_bytes()):
        yield group


def _records(data: bytes) -> Iterator[tuple[Any, int]]:
    """Each complete group of spill bytes with the offset just past it; stops at a torn or corrupt record."""
    at = 0
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        payload = data[at + _HEADER.size : at + _HEADER.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            return
        at += _HEADER.size + length
        yield pickle.loads(payload), at


class SpillTail:
    """Reads what every spill file of `directory` (any worker's) gained since the last call: the decisions
    and feedback that some worker acknowledged while the log could not take them.

    A file that was emptied after its replay (its groups are in the log) is read again from its start: one
    that shrank, or whose first record is no longer the one seen before (emptied and refilled past the
    remembered offset).
    """

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        # Per file: the offset just past the last complete record read, and the header of its first record.
        self._seen: dict[Path, tuple[int, bytes]] = {}

    def new_groups(self) -> list[Any]:
        """The groups appended to the directory's spill files since the last call, oldest first per file."""
        if not self.directory.is_dir():
            self._seen.clear()
            return []
        out: list[Any] = []
        present = set()
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            present.add(path)
            at, first = self._seen.get(path, (0, b""))
            try:
                with open(path, "rb") as file:
                    size = os.fstat(file.fileno()).st_size
                    head = file.read(_HEADER.size)
                    if size < at or head != first:
                        at = 0
                    if size == at:
                        continue
                    file.seek(at)
                    data = file.read()
            except FileNotFoundError:
                continue
            consumed = 0
            for group, consumed in _records(data):  # noqa: B007 (the offset past the last one is kept)
                out.append(group)
            self._seen[path] = (at + consumed, head if at + consumed else b"")
        for gone in set(self._seen) - present:
            del self._seen[gone]
        return out


def claim_orphans(directory: Path, own: Path | None) -> Iterator[tuple[Path, int]]:
    """Spill files of exited writers, each yielded with its descriptor locked (close it when done)."""
    if not directory.is_dir():
        return
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        if own is not None and path == own:
            continue
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        yield path, fd


def spill_bytes(directory: Path) -> int:
    """Bytes in every spill file of `directory` (this worker's and orphans)."""
    if not directory.is_dir():
        return 0
    total = 0
    for path in directory.glob(f"*{SUFFIX}"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            continue
    return total
