"""Writes served decisions to the decision log from a background thread, off the response path.

The request thread only puts the decision on a queue (`submit`); the writer thread waits up to `linger`
seconds after a decision arrives for more to queue up, appends them to the log in one transaction, and
repeats. Writing in batches keeps the writer's share of the worker's CPU (and of its GIL, which the request
thread needs) small: a decision appended alone costs about four times as much as one in a batch (86 against
about 20 µs, docs/BENCHMARKS.md, bench_log).

`close` drains the queue before returning, so a clean shutdown (gunicorn's SIGTERM, then its worker-exit
hook) loses no decision that a response acknowledged. Feedback may arrive for a decision that is still
queued: `is_pending` tells, so the API can accept it instead of answering 404.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path

from bandits.errors import BanditsError
from bandits.log import DecisionLog
from bandits.records import DecisionBatch

LOGGER = logging.getLogger(__name__)

_STOP = object()


class DecisionWriter:
    """A queue of decisions and the thread that appends them to the log.

    Parameters
    ----------
    log_path : path
        The decision log; created if missing. Opened by the writer's own connection (after any fork).
    max_batch : int
        Most decisions appended in one transaction.
    max_queue : int
        Queue bound; `submit` raises `queue.Full` past it rather than growing without limit.
    linger : float
        Seconds to wait, after the first queued decision, for more to write in the same transaction
        (0: write whatever is queued at once). A decision reaches the log at most about this much later.
        Longer batches cost less per decision but hold the GIL longer in one go: 10 ms kept the in-process
        p99 at 100 candidates near 2.5 ms where 50 ms gave 3.4 ms.
    """

    def __init__(
        self,
        log_path: str | Path,
        *,
        max_batch: int = 512,
        max_queue: int = 100_000,
        linger: float = 0.01,
    ) -> None:
        if linger < 0:
            raise ValueError(f"linger must be >= 0 seconds, found {linger}")
        self.log_path = Path(log_path)
        self.max_batch = max_batch
        self.linger = linger
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._pending: set[str] = set()
        self._pending_lock = threading.Lock()
        self._log = DecisionLog.open(self.log_path, create=True)
        self.written = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="decision-writer", daemon=True)
        self._thread.start()

    # -- request side -----------------------------------------------------------------------------------
    def submit(self, batch: DecisionBatch) -> None:
        """Queue decisions for writing; returns at once."""
        with self._pending_lock:
            self._pending.update(str(e) for e in batch.event_id)
        self._queue.put_nowait(batch)

    def is_pending(self, event_id: str) -> bool:
        """Whether a decision is queued but not yet written."""
        with self._pending_lock:
            return event_id in self._pending

    def queued(self) -> int:
        with self._pending_lock:
            return len(self._pending)

    @property
    def log(self) -> DecisionLog:
        return self._log

    # -- writer side ------------------------------------------------------------------------------------
    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                break
            batches = [first]
            deadline = time.monotonic() + self.linger
            while len(batches) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stopping = True
                    break
                batches.append(item)
            self._write(batches)

    def _write(self, batches: list[DecisionBatch]) -> None:
        merged = DecisionBatch.concat(batches)
        try:
            self._log.append_decisions(merged)
            self.written += len(merged)
        except BanditsError:
            # One bad or duplicate decision must not lose the others: retry one by one.
            for batch in batches:
                try:
                    self._log.append_decisions(batch)
                    self.written += len(batch)
                except BanditsError as exc:
                    self.failed += len(batch)
                    LOGGER.error("decision log: could not write %s: %s", list(batch.event_id), exc)
        finally:
            with self._pending_lock:
                self._pending.difference_update(str(e) for e in merged.event_id)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.queued() and time.monotonic() < deadline:
            time.sleep(0.002)
        return not self.queued()

    def close(self, timeout: float = 30.0) -> None:
        """Drain the queue, stop the thread and close the log."""
        if not self._thread.is_alive():
            return
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            LOGGER.error("decision log: writer did not drain within %.0f s", timeout)
            return
        self._log.close()
