"""Slow clients against a real `sectionrank serve` (2 workers): connections that stall their request are
answered a JSON 408 without holding a worker, while health probes and reranks are answered as usual; a client
that waits for ``100 Continue`` and a chunked body are served."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.service.gunicorn_server import RERANK, metric, request, worker_pids

pytestmark = pytest.mark.slow

#: How long the stalled clients keep stalling (the issue's figure), and how many at once.
HOLD_SECONDS = 40.0
STALLED = 4


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def stall(port: int, stop: threading.Event, answers: list[bytes], lock: threading.Lock) -> None:
    """Keep one connection stalled until `stop`: headers and part of the body, then nothing; reconnect when
    the server answers and closes it."""
    while not stop.is_set():
        with socket.create_connection(("127.0.0.1", port), timeout=HOLD_SECONDS + 10) as sock:
            sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
            sock.sendall(b'Content-Length: 100\r\n\r\n{"a":1}')
            answer = read_response(sock)
        with lock:
            answers.append(answer)


def test_stalled_clients_hold_no_worker(server):
    process, port, _, _ = server
    pids = worker_pids(process.pid)
    assert len(pids) == 2
    stop = threading.Event()
    lock = threading.Lock()
    answers: list[bytes] = []
    probes: list[float] = []
    reranks: list[int] = []
    stallers = [threading.Thread(target=stall, args=(port, stop, answers, lock)) for _ in range(STALLED)]

    def probe():
        while not stop.is_set():
            start = time.monotonic()
            try:
                status, _ = request(port, "GET", "/healthz", timeout=5)
            except OSError:
                status = 0
            probes.append(time.monotonic() - start if status == 200 else float("inf"))
            time.sleep(0.1)

    def rerank():
        while not stop.is_set():
            try:
                status, _ = request(port, "POST", "/v1/rerank", RERANK, timeout=5)
            except OSError:
                status = 0
            reranks.append(status)

    helpers = [threading.Thread(target=probe), threading.Thread(target=rerank)]
    for thread in stallers + helpers:
        thread.start()
    time.sleep(HOLD_SECONDS)
    stop.set()
    for thread in helpers:
        thread.join(10)
    for thread in stallers:
        thread.join(15)
    slowest = max(probes)
    failed = sum(status != 200 for status in reranks)
    print(f"\n{STALLED} stalled clients for {HOLD_SECONDS:g} s: {len(probes)} /healthz probes,", end=" ")
    print(f"slowest {slowest:.3f} s;", end=" ")
    print(f"{len(reranks)} reranks, {failed} failed; {len(answers)} stalled requests answered")
    assert slowest < 1.0
    assert failed == 0
    assert len(reranks) > 100
    assert worker_pids(process.pid) == pids, "a worker was restarted"
    # Each stalled request got a JSON 408, not gunicorn's HTML, and /metrics counts them.
    assert len(answers) >= STALLED * (HOLD_SECONDS // 5 - 1)
    for answer in answers:
        head, _, payload = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ")
        assert b"application/json" in head
        assert json.loads(payload)["error"]["status"] == 408
    counted = metric(request(port, "GET", "/metrics")[1], "sectionrank_http_requests_total")
    assert counted[(("endpoint", "incomplete"), ("status", "408"))] == len(answers)


def test_a_client_waiting_for_100_continue_and_a_chunked_body_are_served(server):
    _, port, _, _ = server
    payload = json.dumps(RERANK).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Expect: 100-continue\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(payload)
        answer = read_response(sock)
    final = answer[answer.rindex(b"HTTP/1.1 ") :]
    assert final.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert len(json.loads(final.partition(b"\r\n\r\n")[2])["items"]) == 10

    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (payload[:50], payload[50:]))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n")
        sock.sendall(b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
        time.sleep(0.3)  # the last chunk arrives late: the request waits for it, then is served
        sock.sendall(b"0\r\n\r\n")
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
