"""A real `sectionrank serve` (gunicorn) on 127.0.0.1 for the end-to-end tests: `start` runs one, `stop`
kills it and its workers, the `server` fixture yields one with 2 workers; `request` is one HTTP call on a new
connection, `worker_pids` the master's live workers (read from /proc) and `metric` one metric of a /metrics
scrape."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT = 120.0
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(
    port: int, method: str, path: str, body: object = None, timeout: float = 10.0, headers=None
) -> tuple[int, bytes]:
    """(status, body) of one request on a new connection (gunicorn's workers take turns accepting them)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def start(
    tmp_path: Path,
    store_db: Path,
    saved: dict,
    *,
    log: Path | None = None,
    config: str = "",
    workers: int = 2,
    cwd: Path | None = None,
    command: tuple[str, ...] = (sys.executable, "-m", "sectionrank"),
    name: str = "serve",
    extra_args: tuple[str, ...] = (),
    policy: str = "uniform",
) -> tuple[subprocess.Popen, int, Path, Path]:
    """Start `sectionrank serve` with `workers` workers and wait until /readyz answers 200 three times in a
    row: (process, port, log path, stdout path). `config` adds lines to its config file; `cwd` is where it
    runs, `command` what runs it, `extra_args` more options of serve, `policy` its --policy. The process is
    the gunicorn master (the command replaces itself with gunicorn)."""
    config_path = tmp_path / f"{name}.toml"
    lines = [f'store = "{store_db}"', f'log = "{tmp_path / "other.db"}"', 'policy = "default"', config]
    config_path.write_text("\n".join(lines) + "\n")
    log = log if log is not None else tmp_path / "decisions.db"
    port = free_port()
    out = tmp_path / f"{name}.out"
    # The command-line overrides of the demo (--store, --log, --models, --policy) on top of the config file.
    overrides = ["--log", str(log), "--models", str(Path(saved["base"]).parent), "--policy", policy]
    argv = [*command, "serve", "--config", str(config_path), *overrides]
    argv += ["--port", str(port), "--workers", str(workers), *extra_args]
    with open(out, "w") as stdout:
        process = subprocess.Popen(
            argv, stdout=stdout, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd
        )
    wait_ready(process, port, out)
    return process, port, log, out


def wait_ready(process: subprocess.Popen, port: int, out: Path) -> None:
    """Wait until the server on `port` answers /readyz 200 three times in a row; fail the test with its output
    `out` if it exits or takes longer than `START_TIMEOUT`."""
    deadline = time.monotonic() + START_TIMEOUT
    ready = 0
    while ready < 3:
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"server did not become ready:\n{out.read_text()}")
        try:
            ready = ready + 1 if request(port, "GET", "/readyz", timeout=2)[0] == 200 else 0
        except OSError:
            time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    """SIGKILL the server's process group (master and workers), if it is still running."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def worker_pids(master: int) -> set[int]:
    """The pids of the processes whose parent is `master` (gunicorn's workers)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The fields after the command name (in parentheses, which may hold spaces): state, ppid, ...
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == master:
            pids.add(int(entry.name))
    return pids


#: A discover rerank of 40 candidates, as the real-server tests send it.
RERANK = {
    "section": "discover",
    "user": {"id": 1},
    "context": {"device": "mobile"},
    "candidates": list(range(40)),
    "k": 10,
}


@pytest.fixture
def server(tmp_path, store_db, saved):
    """A running `sectionrank serve` with 2 workers: (process, port, log path, stdout path)."""
    process, port, log, out = start(tmp_path, store_db, saved)
    yield process, port, log, out
    stop(process)


def metric(text: bytes, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples named `name` in a Prometheus text exposition, by their sorted label pairs."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
        if sample.name == name
    }
