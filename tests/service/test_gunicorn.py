"""A real `sectionrank serve` (gunicorn, 2 workers) on 127.0.0.1: it answers, its printed curl works, a
SIGTERM while threads fire requests loses no decision that got a 200, and /metrics counts every worker's
requests whichever worker answers the scrape, and run from a directory holding other `service`, `ranker`,
`sectionrank` and `gunicorn` packages it still serves (and reloads) its own."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from bandits.log import DecisionLog
from tests.service.gunicorn_server import RERANK, STOP_TIMEOUT, metric, request, start, stop

pytestmark = pytest.mark.slow


def test_serve_answers_and_its_curl_example_works(server):
    _, port, _, out = server
    printed = out.read_text()
    assert f"on http://127.0.0.1:{port} with 2 workers" in printed
    curl = next(line.strip() for line in printed.splitlines() if line.strip().startswith("curl "))
    words = shlex.split(curl)
    assert words[words.index("-X") + 1] == "POST"
    assert f"http://127.0.0.1:{port}/v1/rerank" in words
    body = json.loads(words[words.index("-d") + 1])
    status, payload = request(port, "POST", "/v1/rerank", body)
    assert status == 200, payload
    assert len(json.loads(payload)["items"]) == body["k"]
    status, _ = request(port, "GET", "/metrics")
    assert status == 200


def test_sigterm_while_serving_loses_no_acknowledged_decision(server):
    process, port, log, _ = server
    status, _ = request(port, "GET", "/v1/sections")
    assert status == 200
    body = RERANK
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def fire():
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                status, payload = request(port, "POST", "/v1/rerank", body, timeout=5)
            except OSError:
                time.sleep(0.01)
                continue
            if status == 200:
                with lock:
                    acknowledged.append(json.loads(payload)["event_id"])

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    with lock:
        before_term = len(acknowledged)
    process.send_signal(signal.SIGTERM)
    assert process.wait(STOP_TIMEOUT) == 0
    stop.set()
    for t in threads:
        t.join(STOP_TIMEOUT)
    assert before_term > 10
    with DecisionLog.open(log) as decision_log:
        logged = set(decision_log.decisions()["event_id"])
    missing = sorted(set(acknowledged) - logged)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged decisions not in the log"


def test_metrics_count_every_worker_whichever_answers(server):
    _, port, _, _ = server
    deadline = time.monotonic() + 60
    workers: dict = {}
    while workers != {(): 2}:
        assert time.monotonic() < deadline, f"workers never reached 2: {workers}"
        time.sleep(0.2)
        workers = metric(request(port, "GET", "/metrics")[1], "sectionrank_workers")
    body = RERANK
    n = 60
    live_pids: set[int] = set()
    for _ in range(n):
        # A new connection each time: gunicorn's workers take turns accepting them.
        status, _ = request(port, "POST", "/v1/rerank", body)
        assert status == 200
    scrapes = []
    for _ in range(8):
        status, text = request(port, "GET", "/metrics")
        assert status == 200
        scrapes.append(text)
    for text in scrapes:
        assert metric(text, "sectionrank_rerank_requests_total") == {(("section", "discover"),): n}
        assert metric(text, "sectionrank_rerank_latency_seconds_count") == {(("section", "discover"),): n}
        http = metric(text, "sectionrank_http_requests_total")
        assert http[(("endpoint", "/v1/rerank"), ("status", "200"))] == n
        assert metric(text, "sectionrank_workers") == {(): 2}
        live_pids |= {int(dict(labels)["pid"]) for labels in metric(text, "sectionrank_worker_info")}
    assert len(live_pids) == 2


def test_serve_from_a_directory_holding_other_service_and_ranker_packages_runs_ours(
    tmp_path, store_db, saved
):
    # gunicorn and `python -m` put the working directory first on sys.path: these would be imported instead.
    here = tmp_path / "elsewhere"
    for package in ("service", "ranker", "sectionrank", "gunicorn"):
        (here / package).mkdir(parents=True)
        (here / package / "__init__.py").write_text(f"raise ImportError('the {package} of {here}')\n")
    console_script = Path(sys.executable).with_name("sectionrank")
    token = "t0ken"
    process, port, _, out = start(
        tmp_path, store_db, saved, config=f'admin_token = "{token}"', cwd=here, command=(str(console_script),)
    )
    try:
        status, payload = request(port, "POST", "/v1/rerank", RERANK)
        assert status == 200, payload
        # A reload validates in a child process started in the worker's working directory.
        auth = {"Authorization": f"Bearer {token}"}
        status, payload = request(port, "POST", "/v1/models/reload", {}, headers=auth, timeout=120)
        assert status == 200, payload
    finally:
        stop(process)
    assert "ImportError" not in out.read_text()
