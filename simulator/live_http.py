"""A small pool of HTTP/1.1 connections that sends requests at given times, earliest first.

`HttpPool` runs `connections` threads, each holding one keep-alive `http.client.HTTPConnection` to the same
host (a server that answers ``Connection: close``, as gunicorn's sync workers do, makes the connection open
anew for the next request; http.client does that by itself). Callers `submit` a request with the monotonic
time it is due; the threads take due requests from one heap, earliest first, so a rate limit is the caller's
schedule (request i due at ``start + i / rate``) and feedback due later never holds a thread waiting.

A request submitted with ``first=True`` (feedback) goes before any other request once it is due, so that
feedback is not held back behind a backlog of reranks when the server answers slower than the schedule.

What the server answers is handed to the request's callback as a `Reply`, on the pool's thread: status 0
means no HTTP answer (refused, reset, timed out), with the error's text.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from simulator.errors import SimulationInputError

_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
#: Errors of a request on a connection the server had already closed, before any answer: sent again once.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


@dataclass(frozen=True)
class Reply:
    """What one request got.

    Attributes
    ----------
    status : int
        The HTTP status; 0 when no answer came (the connection failed or timed out).
    body : bytes
        The response body (empty without an answer).
    sent : float
        Monotonic time the request was sent.
    seconds : float
        From sending to the whole answer (or the failure).
    error : str
        Why there was no answer ("" with one).
    """

    status: int
    body: bytes
    sent: float
    seconds: float
    error: str = ""


#: A scheduled request: (due, submission order, method, path, body, callback).
_Task = tuple[float, int, str, str, bytes | None, Callable[[Reply], None]]


def parse_base_url(url: str) -> tuple[str, int]:
    """(host, port) of an ``http://host:port`` URL; anything else is refused, naming `url`."""
    if not isinstance(url, str):
        raise SimulationInputError(f"Expected `url` to be a string, found {type(url).__name__}")
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise SimulationInputError(f"Expected `url` like http://127.0.0.1:8000, found {url!r}")
    try:
        port = parts.port or 80
    except ValueError:
        raise SimulationInputError(f"Expected `url` with a port in 1..65535, found {url!r}") from None
    return parts.hostname, port


class HttpPool:
    """`connections` threads sending scheduled requests to one ``http://host:port``.

    Parameters
    ----------
    url : str
        ``http://host:port`` of the server.
    connections : int >= 1
        Threads, each with its own keep-alive connection.
    timeout : float > 0
        Seconds a request may take before it counts as failed (status 0).
    """

    def __init__(self, url: str, *, connections: int = 4, timeout: float = 10.0) -> None:
        self.host, self.port = parse_base_url(url)
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise SimulationInputError(f"Expected `connections` to be an integer >= 1, found {connections!r}")
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise SimulationInputError(f"Expected `timeout` > 0, found {timeout!r}")
        self.timeout = float(timeout)
        # Two lanes, each a heap by due time: 0 (``first``) is served before 1 whenever its head is due.
        self._lanes: tuple[list[_Task], list[_Task]] = ([], [])
        self._order = itertools.count()
        self._ready = threading.Condition()
        self._closing = False
        self._threads = [
            threading.Thread(target=self._run, name=f"live-http-{i}", daemon=True) for i in range(connections)
        ]
        for thread in self._threads:
            thread.start()

    def submit(
        self,
        due: float,
        method: str,
        path: str,
        body: bytes | None,
        done: Callable[[Reply], None],
        *,
        first: bool = False,
    ) -> None:
        """Send ``method path`` with `body` at monotonic time `due` (or as soon as a thread is free after
        it), and call ``done(reply)`` on the pool's thread. With `first`, it goes before every request
        without it once it is due."""
        with self._ready:
            if self._closing:
                raise SimulationInputError("the HTTP pool is closed")
            lane = self._lanes[0 if first else 1]
            heapq.heappush(lane, (due, next(self._order), method, path, body, done))
            self._ready.notify()

    def close(self) -> None:
        """Send what is queued, then stop the threads and close their connections."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> HttpPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next(self) -> tuple[str, str, bytes | None, Callable[[Reply], None]] | None:
        """The earliest request once it is due; None when the pool is closing and nothing is left."""
        with self._ready:
            while True:
                now = time.monotonic()
                for lane in self._lanes:
                    if lane and lane[0][0] <= now:
                        _, _, method, path, body, done = heapq.heappop(lane)
                        return method, path, body, done
                heads = [lane[0][0] for lane in self._lanes if lane]
                if heads:
                    self._ready.wait(min(heads) - now)
                elif self._closing:
                    return None
                else:
                    self._ready.wait()

    def _run(self) -> None:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            while (task := self._next()) is not None:
                method, path, body, done = task
                done(self._send(connection, method, path, body))
        finally:
            connection.close()

    def _send(
        self, connection: http.client.HTTPConnection, method: str, path: str, body: bytes | None
    ) -> Reply:
        sent = time.perf_counter()
        started = time.monotonic()
        for attempt in range(2):
            reused = connection.sock is not None
            try:
                connection.request(method, path, body=body, headers=_HEADERS)
                response = connection.getresponse()
                data = response.read()
                if response.will_close:
                    connection.close()
                return Reply(response.status, data, started, time.perf_counter() - sent)
            except _STALE as exc:
                connection.close()
                if reused and attempt == 0:
                    continue  # the server closed an idle keep-alive connection: send on a new one
                return Reply(0, b"", started, time.perf_counter() - sent, f"{type(exc).__name__}: {exc}")
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                return Reply(0, b"", started, time.perf_counter() - sent, f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")  # pragma: no cover
