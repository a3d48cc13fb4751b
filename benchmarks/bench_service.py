"""Benchmark: the HTTP service, in process per stage and over HTTP against a real gunicorn.

`run(quick)` simulates the default world (seed 0), trains the base and independent rankers and a VW knob
policy on it, fills a service store, then:

1. in process (one `ServiceState`): per stage of POST /v1/rerank for 100 and 500 candidates sent as ids
   (discover section): JSON parse + validation, ranker scoring (features + LightGBM, ``num_threads=1``),
   knob policy + heuristics, queueing the decision, serialising the response; and the whole request;
2. over HTTP: `sectionrank serve`'s gunicorn with 2 workers on 127.0.0.1, driven by wrk (a C load generator
   with an event loop, so the load takes little of the two cores; `make bench` installs it) through
   benchmarks/wrk/rerank.lua for a fixed time: p50 and p99 with 1 and 2 concurrent connections, and the
   requests per second with 8 connections (100 candidates).

``quick`` simulates fewer requests and sends fewer: a smoke test, not numbers to quote.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from werkzeug.test import EnvironBuilder

from bandits.learn import LearnSettings, learn_policy
from bandits.log import DecisionLog
from benchmarks import fmt_us, markdown_table, measure
from heuristics import SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import prepare_log
from ranker.features import read_tables
from ranker.train import train_design
from sectionrank.commands.serve import gunicorn_argv
from service import gunicorn_conf
from service.app import create_app, get_state
from service.config import CONFIG_ENV, ServiceConfig
from service.http_errors import json_response
from service.state import ServiceState, response_payload
from service.store import ServiceStore
from service.validation import parse_json, parse_rerank
from simulator import World, simulate

SEED = 0
SIZES = (100, 500)
T0 = 1_710_000_000.0


def _build(out: Path, n_requests: int) -> Path:
    """Simulate, train, learn and fill a store in `out`; returns the service config file."""
    world = World.build("default", SEED)
    world.catalog().to_parquet(out / "catalog.parquet", index=False)
    world.users().to_parquet(out / "users.parquet", index=False)
    with DecisionLog.open(out / "log.db", create=True) as log:
        simulate(world, n_requests, seed=SEED, sink=log.append)
    config = RankerConfig.load()
    prepared = prepare_log(out / "log.db", config)
    catalog, users = read_tables(str(out / "catalog.parquet"), str(out / "users.parquet"))
    models = {}
    for design in ("base", "independent"):
        models[design] = train_design(design, prepared, catalog, users, config).save(out / "models" / design)
    with DecisionLog.open(out / "log.db") as log:
        learn_policy(log, SectionsConfig.load(), out / "policy", LearnSettings())
    store = ServiceStore(out / "store.db")
    store.load("catalog", catalog)
    store.load("users", users)
    lines = [
        f'store = "{out / "store.db"}"',
        f'log = "{out / "served.db"}"',
        f'policy = "{out / "policy"}"',
        "[models]",
        *(f'{d} = "{p}"' for d, p in models.items()),
    ]
    (out / "service.toml").write_text("\n".join(lines) + "\n")
    return out / "service.toml"


def _bodies(catalog_ids: np.ndarray, user_ids: np.ndarray, size: int, count: int) -> list[bytes]:
    rng = np.random.default_rng(SEED + size)
    bodies = []
    for i in range(count):
        candidates = rng.choice(catalog_ids, size=size, replace=False).tolist()
        body = {
            "section": "discover",
            "user": {"id": int(user_ids[i % len(user_ids)])},
            "context": {"device": "mobile", "time": T0 + i},
            "candidates": candidates,
            "k": 20,
        }
        bodies.append(orjson.dumps(body))
    return bodies


def _in_process(state: ServiceState, bodies: list[bytes], repeats: int) -> dict[str, np.ndarray]:
    """Per-stage milliseconds (repeats,) of the rerank path, and the whole of it."""
    stages: dict[str, list[float]] = {
        k: [] for k in ("parse", "score", "policy", "queue", "serialise", "total")
    }
    loaded = state.loaded
    clock = time.perf_counter
    for i in range(repeats + 10):
        raw = bodies[i % len(bodies)]
        t0 = clock()
        request = parse_rerank(parse_json(raw), loaded.sections)
        t1 = clock()
        result = loaded.pipeline.rerank(request)
        t2 = clock()
        state._submit(result.decision)
        t3 = clock()
        json_response(response_payload(result, request, cached=False, total_ms=(t3 - t0) * 1e3))
        t4 = clock()
        if i < 10:
            continue
        stages["parse"].append((t1 - t0) * 1e3)
        stages["score"].append(result.timing_ms.get("score", np.nan))
        stages["policy"].append(result.timing_ms.get("policy_heuristics", np.nan))
        stages["queue"].append((t3 - t2) * 1e3)
        stages["serialise"].append((t4 - t3) * 1e3)
        stages["total"].append((t4 - t0) * 1e3)
    state.writer.flush(60)
    return {k: np.asarray(v) for k, v in stages.items()}


def _wsgi(config: ServiceConfig, bodies: list[bytes], repeats: int) -> dict[str, np.ndarray]:
    """Milliseconds (repeats,) of one WSGI call of POST /v1/rerank, alternating between the fast path
    (`service.fast_path`, behind `service.body`) and Flask's own WSGI callable (the Flask view)."""
    app = create_app(config)
    out: dict[str, list[float]] = {"fast path": [], "Flask view": []}
    clock = time.perf_counter

    def start_response(status, headers, exc_info=None):
        return None

    flask_view = app.wsgi_app.inner.flask_wsgi
    for i in range(2 * (repeats + 10)):
        environ = EnvironBuilder(
            path="/v1/rerank",
            method="POST",
            data=bodies[(i // 2) % len(bodies)],
            content_type="application/json",
        ).get_environ()
        key = "fast path" if i % 2 == 0 else "Flask view"
        # The whole WSGI stack (service.body, then the fast path), or Flask's own WSGI callable behind them.
        wsgi = app.wsgi_app if key == "fast path" else flask_view
        t0 = clock()
        b"".join(wsgi(environ, start_response))
        if i >= 20:
            out[key].append((clock() - t0) * 1e3)
    get_state(app).close()
    return {k: np.asarray(v) for k, v in out.items()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(config: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, CONFIG_ENV: str(config)}
    process = subprocess.Popen(
        gunicorn_argv("127.0.0.1", port, 2),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    ready = 0
    while ready < 4:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("gunicorn did not become ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            ready = ready + 1 if conn.getresponse().status == 200 else 0
            conn.close()
        except OSError:
            time.sleep(0.2)
    return process


WRK_SCRIPT = Path(__file__).parent / "wrk" / "rerank.lua"
CONNECTION_NOTE = {
    "sync": "Sync workers close the connection after each response; wrk reconnects, and its latency starts "
    "once a request is written, so the TCP connect on loopback is not in it.",
    "gthread": "The workers keep connections alive, so each connection is opened once.",
}
# The buffering sync worker serves exactly as the sync worker once a request is whole.
CONNECTION_NOTE["service.worker.BufferingSyncWorker"] = CONNECTION_NOTE["sync"]


@dataclass(frozen=True)
class Load:
    """What one wrk run measured (latencies in milliseconds)."""

    requests: int
    seconds: float
    errors: int
    p50: float
    p99: float
    max: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _wrk(port: int, bodies: Path, connections: int, seconds: float) -> Load:
    """Drive POST /v1/rerank with wrk (one thread, `connections` connections) for `seconds`."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk not found: `make bench` installs it (Debian package wrk)")
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(WRK_SCRIPT)]
    done = subprocess.run(
        [*argv, f"http://127.0.0.1:{port}"],
        env={**os.environ, "BODIES": str(bodies)},
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no RESULT line: {done.stdout}{done.stderr}")
    requests, duration_us, socket_errors, non_2xx, p50, p99, high = (int(x) for x in line.split()[1:])
    return Load(requests, duration_us / 1e6, socket_errors + non_2xx, p50 / 1e3, p99 / 1e3, high / 1e3)


def run(quick: bool = False) -> str:
    n_requests = 5_000 if quick else 30_000
    repeats = 100 if quick else 1000
    seconds = 2.0 if quick else 10.0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        config_path = _build(out, n_requests)
        config = ServiceConfig.load(config_path)
        catalog, users = ServiceStore(config.store).tables()
        catalog_ids, user_ids = catalog["item_id"].to_numpy(), users["user_id"].to_numpy()
        bodies = {n: _bodies(catalog_ids, user_ids, n, 200) for n in SIZES}

        state = ServiceState(config)
        if state.loaded is None:
            raise RuntimeError(f"service did not load: {state.load_error}")
        stages = {n: _in_process(state, bodies[n], repeats) for n in SIZES}
        parse_only = {
            n: measure(f"parse {n}", lambda i, n=n: parse_json(bodies[n][i % 200]), repeats=repeats)
            for n in SIZES
        }
        state.close()
        wsgi = _wsgi(config, bodies[100], repeats)

        files = {}
        for n in SIZES:
            files[n] = out / f"bodies-{n}.jsonl"
            files[n].write_bytes(b"\n".join(bodies[n]) + b"\n")
        port = _free_port()
        process = _start(config_path, port)
        try:
            http_rows = []
            for n in SIZES:
                _wrk(port, files[n], 2, 1.0)  # warm both workers
                http_rows.append((n, _wrk(port, files[n], 1, seconds), _wrk(port, files[n], 2, seconds)))
            eight = _wrk(port, files[100], 8, seconds)
        finally:
            process.terminate()
            process.wait(60)

    stage_rows = []
    for n in SIZES:
        s = stages[n]
        row = [f"{n}"]
        for key in ("parse", "score", "policy", "queue", "serialise", "total"):
            row.append(f"{np.median(s[key]):.3f} / {np.percentile(s[key], 99):.3f}")
        stage_rows.append(row)
    http_table = []
    for n, single, two in http_rows:
        in_p50 = float(np.median(stages[n]["total"]))
        target = 5.0 if n == 100 else 15.0
        http_table.append(
            [
                f"{n}",
                f"{two.requests:,}",
                f"{two.errors}",
                f"{single.p50:.2f}",
                f"{two.p50:.2f}",
                f"{two.p99:.2f}",
                f"{'yes' if two.p99 < target else 'no'} (< {target:g} ms)",
                f"{two.p50 / in_p50:.2f}x ({'yes' if two.p50 <= 1.5 * in_p50 else 'no'})",
            ]
        )
    parse_note = ", ".join(f"{n}: {fmt_us(parse_only[n].median_us())} µs" for n in SIZES)
    return "\n\n".join(
        [
            "## Service",
            f"Default world (seed 0, {n_requests:,} simulated requests), base + independent rankers, a "
            "learned VW knob policy; discover requests with candidates sent as ids, k = 20. In process: one "
            f"worker's `ServiceState`, {repeats:,} requests per size; milliseconds, median / p99.",
            markdown_table(
                ["candidates", "parse+validate", "score", "policy+heuristics", "queue", "serialise", "total"],
                stage_rows,
            ),
            f"orjson parse alone (median): {parse_note}.",
            "One WSGI call of POST /v1/rerank in process (100 candidates, the two alternating): served by "
            "the app's whole WSGI stack (the body reader `service.body`, then the fast path in front of "
            "Flask, `service.fast_path`), or by Flask's own WSGI callable and its view; milliseconds, "
            "median / p99: "
            + ", ".join(f"{k} {np.median(v):.3f} / {np.percentile(v, 99):.3f}" for k, v in wsgi.items())
            + f"; the fast path saves {np.median(wsgi['Flask view']) - np.median(wsgi['fast path']):.3f} ms.",
            "Over HTTP: `sectionrank serve` (gunicorn, 2 workers of class "
            f"`{gunicorn_conf.worker_class}`) on 127.0.0.1, driven by wrk (one thread) on the same machine "
            f"for {seconds:g} s per row, cycling through 200 request bodies (benchmarks/wrk/rerank.lua). "
            f"{CONNECTION_NOTE[gunicorn_conf.worker_class]} Milliseconds: p50 with 1 connection, then p50 "
            "and p99 with 2 concurrent connections (the targets: p99 under 5 ms at 100 candidates, 15 ms at "
            "500; 2-connection HTTP p50 at most 1.5x the in-process p50).",
            markdown_table(
                [
                    "candidates",
                    "requests (2 conn)",
                    "errors",
                    "p50, 1 conn",
                    "p50, 2 conn",
                    "p99, 2 conn",
                    "p99 target met",
                    "HTTP / in-process p50",
                ],
                http_table,
            ),
            f"Throughput with 8 connections, 100 candidates: **{eight.rps:,.0f} requests/s** "
            f"({eight.requests:,} requests in {eight.seconds:.1f} s, {eight.errors} errors; "
            f"p50 {eight.p50:.2f} ms, p99 {eight.p99:.2f} ms).",
        ]
    )


if __name__ == "__main__":  # pragma: no cover
    print(run(quick="--quick" in sys.argv))
