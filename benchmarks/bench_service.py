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
from benchmarks import markdown_table
from heuristics import SectionPipeline, SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import prepare_log
from ranker.features import read_tables
from ranker.rerank.batch import RerankBatch
from ranker.train import train_design
from sectionrank.commands.serve import gunicorn_argv
from service import gunicorn_conf
from service.app import create_app, get_state
from service.config import CONFIG_ENV, ServiceConfig
from service.http_errors import JSON_OPTIONS
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


#: The stages of one rerank, each measured alone on the same 200 prepared requests: the parts whose sum the
#: whole request is compared with.
PARTS = {
    "parse": "parse + validate",
    "features": "features",
    "predict": "predict",
    "items": "items + policy context",
    "policy": "knob policy",
    "heuristics": "heuristics",
    "log": "decision queued",
    "serialise": "serialise",
}


@dataclass(frozen=True)
class InProcess:
    """Milliseconds per request of one size: each part alone and the whole request, in `rounds` rounds.

    Attributes
    ----------
    parts : mapping part -> (rounds, repeats) float64
    total : (rounds, repeats) float64
        ``orjson.dumps(state.rerank(parse_json(body)))``: what the fast path does between reading a body and
        writing the response.
    """

    parts: dict[str, np.ndarray]
    total: np.ndarray

    def ratios(self) -> np.ndarray:
        """(rounds,) median total / sum of the parts' medians, per round."""
        parts = sum(np.median(v, axis=1) for v in self.parts.values())
        return np.median(self.total, axis=1) / parts


def _in_process(
    state: ServiceState, bodies: list[bytes], repeats: int, rounds: int, warmup: int = 10
) -> InProcess:
    """Each part of a rerank timed alone, then the whole request, on each of `repeats` inputs in turn (a
    noisy neighbour slows both alike), in `rounds` rounds."""
    loaded = state.loaded
    pipeline, sections = loaded.pipeline, loaded.sections
    requests = [parse_rerank(parse_json(raw), sections) for raw in bodies]
    section = requests[0].section
    model = pipeline.rankers[section]
    n = len(requests[0].candidates)
    batches = [
        RerankBatch.from_contexts([r.section], [r.user_id], [r.context["time"]], [r.context], [r.candidates])
        for r in requests
    ]
    one_request = np.zeros(n, dtype=np.int64)
    features = [model.builder.transform(b.requests, b.candidates.ravel(), one_request) for b in batches]
    scores = [model.predict(section, f).reshape(1, n) for f in features]
    items = [pipeline.items.item_batch(b.candidates, b.requests.time) for b in batches]
    contexts = [pipeline.policy_context(b, it) for b, it in zip(batches, items, strict=True)]
    request_contexts = [pipeline.items.request_context(b.requests) for b in batches]
    rng = np.random.default_rng(SEED)
    arms = [pipeline.policy.choose(c, rng).arm_index for c in contexts]
    heuristics = SectionPipeline(sections[section])
    k = requests[0].k
    results = [pipeline.rerank(r) for r in requests]
    count = len(bodies)

    calls = {
        "parse": lambda i: parse_rerank(parse_json(bodies[i % count]), sections),
        "features": lambda i: model.builder.transform(
            batches[i % count].requests, batches[i % count].candidates.ravel(), one_request
        ),
        "predict": lambda i: model.predict(section, features[i % count]),
        "items": lambda i: (
            pipeline.policy_context(
                batches[i % count],
                pipeline.items.item_batch(batches[i % count].candidates, batches[i % count].requests.time),
            ),
            pipeline.items.request_context(batches[i % count].requests),
        ),
        "policy": lambda i: pipeline.policy.choose(contexts[i % count], rng),
        "heuristics": lambda i: heuristics.rerank_arms(
            scores[i % count], items[i % count], request_contexts[i % count], arms[i % count], k
        ),
        "log": lambda i: state._submit(results[i % count].decision),
        "serialise": lambda i: orjson.dumps(
            response_payload(results[i % count], requests[i % count], cached=False, total_ms=1.0),
            option=JSON_OPTIONS,
        ),
    }

    def whole(i: int) -> bytes:
        return orjson.dumps(state.rerank(parse_json(bodies[i % count])), option=JSON_OPTIONS)

    clock = time.perf_counter
    keys = list(calls)
    parts = {key: np.empty((rounds, repeats)) for key in keys}
    total = np.empty((rounds, repeats))
    for r in range(rounds):
        for i in range(-warmup, repeats):
            # Each part alone, then the whole request, on the same input: a part runs with the caches that
            # the parts before it (and the last request) left, as it does inside a request.
            for key in keys:
                t0 = clock()
                calls[key](i)
                if i >= 0:
                    parts[key][r, i] = (clock() - t0) * 1e3
                if key == "log":
                    state.writer.flush(60)
            t0 = clock()
            whole(i)
            if i >= 0:
                total[r, i] = (clock() - t0) * 1e3
            # The writer thread writes the decision between requests, as it does in a worker while the next
            # request is on the wire; back to back, it would compete with the next timed call instead.
            state.writer.flush(60)
    return InProcess(parts, total)


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


def ratio_line(ratios: dict[int, float]) -> str:
    """``in-process total / sum of parts: 1.12x at 100 candidates, 1.08x at 500 candidates``."""
    return "in-process total / sum of parts: " + ", ".join(
        f"{ratio:.2f}x at {n} candidates" for n, ratio in ratios.items()
    )


def _parts_table(measured: dict[int, InProcess]) -> list[list[str]]:
    rows = []
    for key, label in [*PARTS.items(), ("sum", "sum of the parts"), ("total", "**whole request**")]:
        row = [label]
        for n in SIZES:
            m = measured[n]
            if key == "sum":
                value = sum(float(np.median(v)) for v in m.parts.values())
                row.append(f"{value:.3f}")
                continue
            values = m.total if key == "total" else m.parts[key]
            row.append(f"{np.median(values):.3f} / {np.percentile(values, 99):.3f}")
        rows.append(row)
    return rows


def run(quick: bool = False) -> str:
    n_requests = 5_000 if quick else 30_000
    repeats = 50 if quick else 300
    rounds = 2 if quick else 5
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
        predictors = sorted({p.kind for m in state.loaded.models.values() for p in m.predictors.values()})
        measured = {n: _in_process(state, bodies[n], repeats, rounds) for n in SIZES}
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

    ratios = {n: measured[n].ratios() for n in SIZES}
    line = ratio_line({n: float(np.median(r)) for n, r in ratios.items()})
    print(line, file=sys.stderr, flush=True)
    spread = "; ".join(
        f"{n}: {', '.join(f'{r:.2f}' for r in ratios[n])} (target at most 1.3x: "
        f"{'met' if np.median(ratios[n]) <= 1.3 else 'missed'})"
        for n in SIZES
    )
    http_table = []
    for n, single, two in http_rows:
        in_p50 = float(np.median(measured[n].total))
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
                f"{two.p50 / in_p50:.2f}x",
            ]
        )
    mean_ms = float(np.mean(measured[100].total))
    ideal = 2 / (mean_ms / 1e3)
    return "\n\n".join(
        [
            "## Service",
            f"Default world (seed 0, {n_requests:,} simulated requests), base + independent rankers "
            f"(scored by {' and '.join(predictors)}, `ranker.compiled`), a learned VW knob policy; discover "
            "requests with candidates sent as ids, k = 20.",
            "In process, one worker's `ServiceState`: each part of a request measured alone on the same 200 "
            "prepared requests (parse + validate: `parse_rerank(parse_json(body))`; features: "
            "`FeatureBuilder.transform`; predict: the ranker's predictor; items + policy context: the "
            "candidates' item attributes, the knob policy's context and the heuristics' request context "
            "(`ItemIndex.item_batch`, `RerankPipeline.policy_context`, `ItemIndex.request_context`); knob "
            "policy: the VW policy's "
            "`choose`; heuristics: the section's `SectionPipeline.rerank_arms`; decision queued: the "
            "decision record handed to the log writer; serialise: the response payload to JSON bytes), then "
            "the whole "
            "request (`orjson.dumps(state.rerank(parse_json(body)))`, what the fast path does between "
            "reading the body and writing the response). Each input in turn: every part timed on its own, "
            "then the whole request, so that a part finds the caches the parts before it left, as inside a "
            f"request; {rounds} rounds of {repeats:,} inputs; milliseconds, median / p99 over all rounds.",
            markdown_table(["part", *(f"{n} candidates" for n in SIZES)], _parts_table(measured)),
            f"**{line}** (median of the {rounds} rounds' ratios; each round: {spread}).",
            "One WSGI call of POST /v1/rerank in process (100 candidates, the two alternating): served by "
            "the app's whole WSGI stack (the body reader `service.body`, then the fast path in front of "
            "Flask, `service.fast_path`), or by Flask's own WSGI callable and its view; milliseconds, "
            "median / p99: "
            + ", ".join(f"{k} {np.median(v):.3f} / {np.percentile(v, 99):.3f}" for k, v in wsgi.items())
            + f"; the fast path saves {np.median(wsgi['Flask view']) - np.median(wsgi['fast path']):.3f} ms.",
            "Over HTTP: `sectionrank serve` (gunicorn, 2 workers of class "
            f"`{gunicorn_conf.worker_class}`) on 127.0.0.1, driven by wrk (one thread) on the same machine "
            f"for {seconds:g} s per row, cycling through 200 request bodies (benchmarks/wrk/rerank.lua). "
            f"{CONNECTION_NOTE.get(gunicorn_conf.worker_class, '')} Milliseconds: p50 with 1 connection, "
            "then p50 and p99 with 2 concurrent connections (the targets: p99 under 5 ms at 100 candidates, "
            "15 ms at 500), and the 2-connection p50 over the in-process median.",
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
            f"p50 {eight.p50:.2f} ms, p99 {eight.p99:.2f} ms). Two workers at the in-process mean of "
            f"{mean_ms:.3f} ms could answer {ideal:,.0f} requests/s: HTTP reaches "
            f"**{eight.rps / ideal:.2f}x** of that (target at least 0.7x: "
            f"{'met' if eight.rps >= 0.7 * ideal else 'missed'}).",
        ]
    )


if __name__ == "__main__":  # pragma: no cover
    print(run(quick="--quick" in sys.argv))
