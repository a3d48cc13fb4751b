"""The gunicorn worker of `sectionrank serve`: a sync worker that hands a connection to the app only once its
whole request has arrived.

gunicorn's sync worker assumes a buffering proxy in front of it: it reads a request while it serves it, so a
client that sends its headers and stalls its body holds the worker until gunicorn's ``timeout`` aborts it, and
with as many stalled clients as workers nothing else is answered, health probes included. Threads (gthread)
keep probes answering but put two requests in one process behind one GIL, which doubled the latency measured
in `make bench`.

`BufferingSyncWorker` is that buffering front inside the worker, with the sync worker's one-request-at-a-time
serving kept as it is. It accepts connections without blocking and watches them in one selector loop; it
*peeks* at what each one has sent (``MSG_PEEK``: nothing is consumed) and only when the request is complete
(headers, and the body its ``Content-Length`` or its last chunk announces) does it pass the socket to the
sync worker's own ``handle``, which parses and serves it as usual. So a stalled client costs a file
descriptor, not the worker; a connection that has not sent a whole request within `REQUEST_TIMEOUT`
seconds is answered a JSON 408 (counted in ``/metrics`` under the endpoint ``incomplete``) and closed.
A client waiting for ``100 Continue`` before it sends its body is sent one when its headers are in.

A request larger than `PEEK_LIMIT` bytes is passed on once that much has arrived (the client is sending, not
stalled); the app then reads the rest with its own deadline (`service.body.BufferedBody`, 408 after 5 s). TLS
connections are encrypted on the socket, so with TLS configured the worker serves as the plain sync worker.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import selectors
import socket
import time
from dataclasses import dataclass

from gunicorn import util
from gunicorn.workers.sync import SyncWorker

from service.body import READ_TIMEOUT

#: Seconds a connection may take to send its whole request (headers and body) before it is answered 408.
REQUEST_TIMEOUT = READ_TIMEOUT

#: Bytes of a request looked at before it is passed on even if incomplete.
PEEK_LIMIT = 256 * 1024

_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"^content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)
_CHUNKED = re.compile(rb"^transfer-encoding[ \t]*:.*chunked", re.IGNORECASE | re.MULTILINE)
_EXPECT_CONTINUE = re.compile(rb"^expect[ \t]*:[ \t]*100-continue", re.IGNORECASE | re.MULTILINE)
# The last chunk ("0", maybe with extensions), then optional trailer fields, then the empty line.
_LAST_CHUNK = re.compile(rb"(?:^|\r\n)0+(?:;[^\r\n]*)?\r\n(?:[^\r\n]+\r\n)*\r\n$")

_TIMEOUT_BODY = (
    b'{"error": {"status": 408, "field": "body", "message": "the request did not arrive whole within '
    + f"{REQUEST_TIMEOUT:g}".encode()
    + b' s"}}'
)
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nConnection: close\r\n"
    + b"Content-Length: "
    + str(len(_TIMEOUT_BODY)).encode()
    + b"\r\n\r\n"
    + _TIMEOUT_BODY
)


def request_state(data: bytes) -> str:
    """Whether the bytes a connection has sent so far are a whole request: ``"complete"``, ``"partial"``, or
    ``"continue"`` (headers in, body awaited, and the client asked for ``100 Continue``).

    Framing follows HTTP/1.1: a body is what ``Content-Length`` says, or chunks up to the last one; a request
    with neither has none. Anything the check cannot frame is ``"complete"``: gunicorn's parser then answers
    it (400 for a malformed request).
    """
    end = data.find(_HEADER_END)
    if end < 0:
        return "complete" if len(data) >= PEEK_LIMIT else "partial"
    head, body = data[:end], data[end + len(_HEADER_END) :]
    if _CHUNKED.search(head):
        done = _LAST_CHUNK.search(body) is not None
    else:
        lengths = _CONTENT_LENGTH.findall(head)
        if not lengths:
            return "complete"
        if len(set(lengths)) > 1:
            return "complete"
        done = len(body) >= int(lengths[0])
    if done or len(data) >= PEEK_LIMIT:
        return "complete"
    return "continue" if _EXPECT_CONTINUE.search(head) else "partial"


@dataclass
class _Pending:
    """A connection whose request is not whole yet."""

    client: socket.socket
    addr: object
    listener: socket.socket
    deadline: float
    continued: bool = False


class BufferingSyncWorker(SyncWorker):
    """A sync worker that serves a connection only once its whole request has arrived (see the module)."""

    def run(self) -> None:
        if self.cfg.is_ssl:
            super().run()
            return
        for listener in self.sockets:
            listener.setblocking(False)
        selector = selectors.DefaultSelector()
        for listener in self.sockets:
            selector.register(listener, selectors.EVENT_READ, None)
        selector.register(self.PIPE[0], selectors.EVENT_READ, "pipe")
        pending: dict[int, _Pending] = {}
        limit = max(1, self.cfg.worker_connections)
        accepting = True
        tick = self.timeout / 2 if self.timeout else 0.5
        try:
            while self.alive:
                self.notify()
                if not self.is_parent_alive():
                    return
                if accepting != (len(pending) < limit):
                    accepting = not accepting
                    for listener in self.sockets:
                        if accepting:
                            selector.register(listener, selectors.EVENT_READ, None)
                        else:
                            selector.unregister(listener)
                now = time.monotonic()
                wait = min([tick] + [p.deadline - now for p in pending.values()])
                for key, _ in selector.select(max(wait, 0.0)):
                    if key.data == "pipe":
                        with contextlib.suppress(BlockingIOError):
                            os.read(self.PIPE[0], 1)
                    elif key.data is None:
                        self._accept_all(key.fileobj, selector, pending, limit)
                    else:
                        self._check(key.data, selector, pending)
                    if not self.alive:
                        return
                self._expire(selector, pending, time.monotonic())
        finally:
            for entry in pending.values():
                util.close(entry.client)
            selector.close()

    def _accept_all(self, listener, selector, pending: dict[int, _Pending], limit: int) -> None:
        """Accept every waiting connection (up to `limit` pending), serving at once each that is whole."""
        while len(pending) < limit and self.alive:
            try:
                client, addr = listener.accept()
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED):
                    return
                raise
            util.close_on_exec(client)
            client.setblocking(False)
            entry = _Pending(client, addr, listener, time.monotonic() + REQUEST_TIMEOUT)
            state = self._poll(entry)
            if state == "partial":
                pending[client.fileno()] = entry
                selector.register(client, selectors.EVENT_READ, entry)
            else:
                self._finish(entry, state)

    def _check(self, entry: _Pending, selector, pending: dict[int, _Pending]) -> None:
        """A pending connection sent more (or closed): serve it if its request is whole now."""
        state = self._poll(entry)
        if state != "partial":
            del pending[entry.client.fileno()]
            selector.unregister(entry.client)
            self._finish(entry, state)

    def _poll(self, entry: _Pending) -> str:
        """What `entry` has sent so far: ``"complete"``, ``"partial"`` or ``"closed"`` (sending it a
        ``100 Continue`` the first time its headers ask for one)."""
        try:
            data = entry.client.recv(PEEK_LIMIT, socket.MSG_PEEK)
        except BlockingIOError:
            return "partial"
        except OSError:
            return "closed"
        if not data:  # the client closed before sending a whole request
            return "closed"
        state = request_state(data)
        if state == "continue":
            if not entry.continued:
                entry.continued = True
                try:
                    entry.client.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                except OSError:
                    return "closed"
            return "partial"
        return state

    def _finish(self, entry: _Pending, state: str) -> None:
        """Serve a whole request with the sync worker's own handler, or close a connection that went away."""
        if state == "closed":
            util.close(entry.client)
            return
        entry.client.setblocking(True)
        self.handle(entry.listener, entry.client, entry.addr)
        self.notify()

    def _expire(self, selector, pending: dict[int, _Pending], now: float) -> None:
        """Answer 408 to every connection past its deadline, and close it."""
        expired = [entry for entry in pending.values() if entry.deadline <= now]
        for entry in expired:
            del pending[entry.client.fileno()]
            selector.unregister(entry.client)
            _count_timeout()
            _answer_and_close(entry.client, _TIMEOUT_RESPONSE)


def _answer_and_close(client: socket.socket, response: bytes) -> None:
    """Send `response` and close: what the client sent is read first, so that closing does not reset the
    connection (a socket closed with unread data sends RST, and the client may lose the response)."""
    with contextlib.suppress(OSError):
        while client.recv(65536):
            pass
    with contextlib.suppress(OSError):
        client.sendall(response)
        client.shutdown(socket.SHUT_WR)
    util.close(client)


def _count_timeout() -> None:
    """Count a 408 of an incomplete request in the worker's metrics (when its app has loaded them)."""
    from service.state import open_states

    for state in open_states()[:1]:
        state.metrics.count_http("incomplete", 408)
