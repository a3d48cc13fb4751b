"""A worker that boots while another process holds the decision log's write lock (gunicorn replaces a
worker that died) must come up and serve: a worker that fails to boot makes gunicorn's master stop the whole
service."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.service.faults import in_log, locked, wait_for
from tests.service.gunicorn_server import RERANK, request, start, stop, worker_pids

pytestmark = pytest.mark.slow


def test_a_worker_replaced_while_the_log_is_locked_boots_and_serves(tmp_path, store_db, saved):
    process, port, log, out = start(tmp_path, store_db, saved)
    try:
        before = worker_pids(process.pid)
        assert len(before) == 2
        acknowledged = []
        with locked(log, timeout=5.0):
            os.kill(min(before), signal.SIGKILL)
            assert wait_for(lambda: len(worker_pids(process.pid) - before) == 1, timeout=30)
            replaced = worker_pids(process.pid)
            # for 15 s under the lock: every rerank answers, and the new worker stays up (a boot failure
            # would end it, and gunicorn's master with it)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                status, body = request(port, "POST", "/v1/rerank", RERANK)
                assert status == 200, body
                acknowledged.append(json.loads(body)["event_id"])
                time.sleep(0.05)
            assert process.poll() is None, out.read_text()[-2000:]
            assert worker_pids(process.pid) == replaced, out.read_text()[-2000:]
        assert wait_for(lambda: set(acknowledged) <= in_log(log)[0], timeout=60)
    finally:
        stop(process)
