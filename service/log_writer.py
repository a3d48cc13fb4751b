"""Writes served decisions and feedback to the decision log from a background thread, off the response path.

The request thread only puts a record on a queue (`submit_decisions`, `submit_feedback`); once a record
arrives the writer thread sleeps `linger` seconds (cut short by `close`), takes everything queued by then,
and writes it in one transaction per kind. It sleeps rather than waiting on the queue, so that a record
queued meanwhile does not wake it: each wake-up is a GIL hand-off the request thread pays for
(docs/performance.md). Writing in batches keeps the writer's share of the worker's CPU (and of its GIL,
which the request thread needs) small: a decision appended alone costs about four times as much as one in
a batch (86 against about 20 µs, docs/BENCHMARKS.md, bench_log).

Durability (docs/serve.md, "Limits and guarantees"):

- a group the log cannot take (another writer holds its lock past `busy_timeout`, the disk is full) goes to
  this worker's spill journal (`service.spill`), flushed and fsync'd; while the journal holds anything, new
  groups go there too, and every `retry_seconds` the writer replays the journal into the log, idempotently by
  event id, then empties it. Spill files of writers that exited are replayed the same way;
- a group that neither the log nor the journal can take is held in memory and retried; the writer is then
  `degraded` (responses say ``"logged": false``, GET /readyz answers 503) until a write succeeds. Past
  `max_held` held records the oldest are dropped, counted in `dropped` and logged;
- `close` drains the queue (into the log, else the journal) before returning, so a clean shutdown loses no
  acknowledged record. A SIGKILL loses what is queued: the records of about the last `linger` seconds plus one
  write.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bandits.errors import InvalidBatchError, LogError
from bandits.log import DecisionLog
from bandits.records import DecisionBatch, FeedbackBatch
from service.spill import SpillJournal, claim_orphans, read_groups, spill_bytes

LOGGER = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True)
class Group:
    """Records written together: decisions (B) and feedback (F) with its late flags (F,)."""

    decisions: tuple[DecisionBatch, ...] = ()
    feedback: tuple[FeedbackBatch, ...] = ()
    late: tuple[bool, ...] = ()

    def __len__(self) -> int:
        return sum(len(d) for d in self.decisions) + len(self.feedback)


@dataclass(frozen=True)
class WriterHealth:
    """A writer's health at one moment: records queued, held in memory and bytes in the spill journals,
    whether it is degraded, and its running totals (written, failed, spilled, dropped, write errors)."""

    queued: int
    held: int
    spill_bytes: int
    degraded: bool
    written: int
    failed: int
    spilled: int
    dropped: int
    write_errors: int


def _concat_feedback(batches: tuple[FeedbackBatch, ...]) -> FeedbackBatch:
    return FeedbackBatch(
        event_id=np.concatenate([np.asarray(b.event_id, dtype=object) for b in batches]),
        time=np.concatenate([np.asarray(b.time, dtype=float) for b in batches]),
        clicks=[c for b in batches for c in b.clicks],
        conversions=[c for b in batches for c in b.conversions],
        revenue=np.concatenate([np.asarray(b.revenue, dtype=float) for b in batches]),
        reward=np.concatenate([np.asarray(b.reward, dtype=float) for b in batches]),
    )


class LogWriter:
    """Queues of decisions and feedback and the thread that writes them to the log (or the spill journal).

    Parameters
    ----------
    log_path : path
        The decision log; created if missing. Opened by the writer's own connection (after any fork).
    spill_dir : path, optional
        The spill journal's directory (default: ``<log>.spill`` beside the log). Put it on another
        filesystem than the log to survive the log's disk filling up.
    max_batch : int
        Most queued submissions written in one go.
    max_queue : int
        Queue bound; a submit raises `queue.Full` past it rather than growing without limit.
    linger : float
        Seconds the writer sleeps, after the first queued record, for more to write in the same transaction
        (0: write whatever is queued at once). Longer batches cost less per record but hold the GIL longer in
        one go: 10 ms kept the in-process p99 at 100 candidates near 2.5 ms where 50 ms gave 3.4 ms.
    busy_timeout : float
        Seconds a write waits for another writer's lock before the group goes to the journal.
    replay_timeout : float
        Seconds a replay of the journal (or of held records) waits for the lock: short, so that while another
        writer holds the log the writer thread spends little time blocked, and new records reach the journal
        within about `linger` + `replay_timeout` + one write.
    retry_seconds : float
        How often the journal is replayed (and held records retried) while the log cannot be written.
    max_held : int
        Most records held in memory when neither the log nor the journal can be written.
    on_health : callable, optional
        Called by the writer thread with a `WriterHealth` after each write and at least every
        `retry_seconds` (at most every `health_seconds`): the worker's metrics, off the request path.
    health_seconds : float
        Least seconds between two `on_health` calls.
    """

    def __init__(
        self,
        log_path: str | Path,
        *,
        spill_dir: str | Path | None = None,
        max_batch: int = 512,
        max_queue: int = 100_000,
        linger: float = 0.01,
        busy_timeout: float = 1.0,
        replay_timeout: float = 0.05,
        retry_seconds: float = 1.0,
        max_held: int = 1_000_000,
        on_health: Callable[[WriterHealth], None] | None = None,
        health_seconds: float = 0.1,
    ) -> None:
        if linger < 0:
            raise ValueError(f"linger must be >= 0 seconds, found {linger}")
        self.log_path = Path(log_path)
        self.spill_dir = (
            Path(spill_dir)
            if spill_dir is not None
            else self.log_path.with_name(self.log_path.name + ".spill")
        )
        self.max_batch = max_batch
        self.linger = linger
        self.retry_seconds = retry_seconds
        self.max_held = max_held
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._queued = 0
        self._count_lock = threading.Lock()
        self._log = DecisionLog.open(self.log_path, create=True, busy_timeout=busy_timeout)
        self._replay_log = DecisionLog.open(self.log_path, busy_timeout=replay_timeout)
        self._journal: SpillJournal | None = None
        self._held: list[Group] = []
        self._next_retry = 0.0
        self.degraded = False
        self.written = 0
        self.spilled = 0
        self.failed = 0
        self.dropped = 0
        self.write_errors = 0
        self.last_error = ""
        self.on_health = on_health
        self.health_seconds = health_seconds
        self._next_health = 0.0
        self._replay_orphans()
        # Set by `close`: ends the writer's linger at once (a queued record does not: see the module doc).
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    # -- request side -----------------------------------------------------------------------------------
    def submit_decisions(self, batch: DecisionBatch) -> bool:
        """Queue decisions for writing; returns at once whether they are promised to the log (False while
        the writer is degraded: they are still kept and written if the log or journal comes back)."""
        return self._put(Group(decisions=(batch,)), len(batch))

    def submit_feedback(self, batch: FeedbackBatch, *, late: bool) -> bool:
        """Queue one feedback row for writing; like `submit_decisions`."""
        return self._put(Group(feedback=(batch,), late=(bool(late),)), 1)

    def _put(self, group: Group, n: int) -> bool:
        with self._count_lock:
            self._queued += n
        try:
            self._queue.put_nowait(group)
        except queue.Full:
            with self._count_lock:
                self._queued -= n
            raise
        return not self.degraded

    def queued(self) -> int:
        """Records submitted and not yet in the log or the journal (held ones included)."""
        with self._count_lock:
            return self._queued

    def held(self) -> int:
        return sum(map(len, self._held))

    def spill_bytes(self) -> int:
        """Bytes waiting in spill journals (this worker's and those of exited ones)."""
        return spill_bytes(self.spill_dir)

    def health(self) -> WriterHealth:
        """The writer's health now (reads the spill directory's size)."""
        return WriterHealth(
            queued=self.queued(),
            held=self.held(),
            spill_bytes=self.spill_bytes(),
            degraded=self.degraded,
            written=self.written,
            failed=self.failed,
            spilled=self.spilled,
            dropped=self.dropped,
            write_errors=self.write_errors,
        )

    def _report(self) -> None:
        if self.on_health is None or time.monotonic() < self._next_health:
            return
        self._next_health = time.monotonic() + self.health_seconds
        try:
            self.on_health(self.health())
        except OSError as exc:
            LOGGER.error("decision log: health report failed: %s", exc)

    @property
    def log(self) -> DecisionLog:
        return self._log

    # -- writer side ------------------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.retry_seconds)
            except queue.Empty:
                self._write([])
                self._report()
                continue
            if first is _STOP:
                break
            groups = [first]
            if self.linger > 0:
                self._closing.wait(self.linger)
            while len(groups) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                groups.append(item)
            self._write(groups)
            self._report()
        self._write([], final=True)

    def _merge(self, groups: list[Group]) -> Group:
        return Group(
            tuple(d for g in groups for d in g.decisions),
            tuple(f for g in groups for f in g.feedback),
            tuple(x for g in groups for x in g.late),
        )

    def _write(self, groups: list[Group], *, final: bool = False) -> None:
        group = self._merge(groups) if groups else Group()
        n = len(group)
        retry_due = final or time.monotonic() >= self._next_retry
        if (self._held or self._journal_has_records()) and retry_due:
            self._next_retry = time.monotonic() + self.retry_seconds
            self._retry()
        if n == 0:
            return
        if not self._held and not self._journal_has_records():
            try:
                self._to_log(group)
                self._done(n, written=n)
                return
            except LogError as exc:
                self._note_error(exc)
                self._next_retry = time.monotonic() + self.retry_seconds
        self._to_journal_or_hold(group)
        self._done(n)

    def _done(self, n: int, written: int = 0) -> None:
        with self._count_lock:
            self._queued -= n
        self.written += written

    def _to_log(self, group: Group, log: DecisionLog | None = None) -> None:
        """Both kinds in the log (through `log`, default the writer's own connection), idempotently by event
        id; a decision that the codec refuses is dropped alone, with a log line (it would be refused
        forever)."""
        log = self._log if log is None else log
        if group.decisions:
            try:
                log.append_decisions(DecisionBatch.concat(list(group.decisions)), skip_existing=True)
            except InvalidBatchError:
                for batch in group.decisions:
                    try:
                        log.append_decisions(batch, skip_existing=True)
                    except InvalidBatchError as exc:
                        self.failed += len(batch)
                        LOGGER.error("decision log: refused %s: %s", list(batch.event_id), exc)
        if group.feedback:
            merged = _concat_feedback(group.feedback)
            log.append_feedback(merged, late=np.array(group.late, dtype=bool), require_known=False)

    def _journal_has_records(self) -> bool:
        return self._journal is not None and self._journal.records > 0

    def _to_journal_or_hold(self, group: Group) -> None:
        try:
            if self._journal is None:
                self._journal = SpillJournal(self.spill_dir)
            self._journal.append(group)
            self.spilled += len(group)
            if self.degraded:
                LOGGER.warning("decision log: spill journal writable again; no longer degraded")
            self.degraded = False
        except OSError as exc:
            self._note_error(exc)
            self._hold(group)

    def _hold(self, group: Group) -> None:
        if not self.degraded:
            LOGGER.error(
                "decision log: neither %s nor the spill journal in %s can be written (%s); holding records "
                "in memory, responses say logged: false",
                self.log_path,
                self.spill_dir,
                self.last_error,
            )
        self.degraded = True
        self._held.append(group)
        while self.held() > self.max_held and len(self._held) > 1:
            lost = self._held.pop(0)
            self.dropped += len(lost)
            LOGGER.error("decision log: dropped %d held records (memory bound %d)", len(lost), self.max_held)
        with self._count_lock:
            self._queued += len(group)

    def _retry(self) -> None:
        """Replay the journal into the log, then held records into the log (else the journal)."""
        if self._journal_has_records():
            assert self._journal is not None
            replayed = 0
            try:
                # Lazily, a chunk of groups per transaction: the first group alone probes the log, so while
                # it stays locked one group is unpickled each second however long the journal grows (the
                # request thread needs the GIL); once it is free the rest goes in chunks of `max_batch`.
                chunk: list[Group] = []
                size = 1
                for group in read_groups(self._journal.path):
                    chunk.append(group)
                    if len(chunk) == size:
                        self._to_log(self._merge(chunk), self._replay_log)
                        replayed += sum(map(len, chunk))
                        chunk, size = [], self.max_batch
                if chunk:
                    self._to_log(self._merge(chunk), self._replay_log)
                    replayed += sum(map(len, chunk))
            except LogError as exc:
                self._note_error(exc)
                return
            self._journal.clear()
            self.written += replayed
            LOGGER.warning("decision log: replayed %d spilled records into %s", replayed, self.log_path)
        held, self._held = self._held, []
        for i, group in enumerate(held):
            with self._count_lock:
                self._queued -= len(group)
            try:
                self._to_log(group, self._replay_log)
                self.written += len(group)
                self.degraded = False
            except LogError as exc:
                self._note_error(exc)
                self._to_journal_or_hold(group)
                if self._held:
                    # Neither can be written yet: the rest stay held, untried, until the next retry.
                    self._held.extend(held[i + 1 :])
                    break
        self.degraded = bool(self._held)
        self._replay_orphans()

    def _replay_orphans(self) -> None:
        """Replay and delete the spill files of writers that have exited."""
        own = self._journal.path if self._journal is not None else None
        try:
            for path, fd in claim_orphans(self.spill_dir, own):
                try:
                    groups = list(read_groups(path))
                    for group in groups:
                        self._to_log(group, self._replay_log)
                    path.unlink()
                    self.written += sum(map(len, groups))
                    LOGGER.warning("decision log: replayed %d records of %s", sum(map(len, groups)), path)
                finally:
                    os.close(fd)
        except (LogError, OSError) as exc:
            self._note_error(exc)

    def _note_error(self, exc: Exception) -> None:
        self.write_errors += 1
        message = str(exc)
        if message != self.last_error:
            LOGGER.error("decision log: write failed: %s", message)
        self.last_error = message

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is in the log or the journal; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.queued() and time.monotonic() < deadline:
            time.sleep(0.002)
        return not self.queued()

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue (into the log, else the journal), stop the thread and close the log."""
        if not self._thread.is_alive():
            return
        self._closing.set()
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            LOGGER.error("decision log: writer did not drain within %.0f s", timeout)
            return
        if self._held:
            LOGGER.error("decision log: %d records could not be written before exit", self.held())
        if self._journal is not None:
            self._journal.close()
        self._log.close()
        self._replay_log.close()
