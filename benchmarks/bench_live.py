"""Benchmark: the request rate `sectionrank live` sustains against a real service.

`run(quick)` simulates the context_flip world (seed 0), trains the base and independent rankers on it
(one tree size, 15 leaves, as `make demo` does), fills a store, and starts `sectionrank serve` (gunicorn,
2 workers, the uniform knob policy) on 127.0.0.1. Then `simulator.live.run_live` sends the world's
requests as fast as the service answers (``rate = 0``) over 1, 2, 4 and 8 keep-alive connections, each
rerank followed by its feedback (delay 0), and once at a fixed rate to show the schedule is kept. Reported
per run: reranks per second sustained (wall time from the first request to the last feedback's answer),
p50 / p99 rerank latency as the client sees it, errors, and the CPU the `live` process itself spent per
request (drawing requests, the click model, JSON and HTTP on its side).

``quick`` sends fewer requests: a smoke test, not numbers to quote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bandits.log import DecisionLog
from benchmarks import markdown_table
from ranker.config import RankerConfig
from ranker.dataset import prepare_log
from ranker.features import read_tables
from ranker.train import train_design
from service.store import ServiceStore
from simulator import World, simulate
from simulator.live import LiveSettings, run_live

WORLD = "context_flip"
SEED = 0
CONNECTIONS = (1, 2, 4, 8)
FIXED_RATE = 100.0


def build(out: Path, n_requests: int) -> Path:
    """Simulate the world, train base + independent, fill a store; returns the service config file."""
    world = World.build(WORLD, SEED)
    world.catalog().to_parquet(out / "catalog.parquet", index=False)
    world.users().to_parquet(out / "users.parquet", index=False)
    with DecisionLog.open(out / "log.db", create=True) as log:
        simulate(world, n_requests, seed=SEED, sink=log.append)
    config = RankerConfig.from_dict({"lightgbm": {"num_leaves": [15]}})
    prepared = prepare_log(out / "log.db", config)
    catalog, users = read_tables(str(out / "catalog.parquet"), str(out / "users.parquet"))
    models = {
        design: train_design(design, prepared, catalog, users, config).save(out / "models" / design)
        for design in ("base", "independent")
    }
    store = ServiceStore(out / "store.db")
    store.load("catalog", catalog)
    store.load("users", users)
    lines = [
        f'store = "{out / "store.db"}"',
        f'log = "{out / "served.db"}"',
        'policy = "uniform"',
        "[models]",
        *(f'{d} = "{p}"' for d, p in models.items()),
    ]
    (out / "service.toml").write_text("\n".join(lines) + "\n")
    return out / "service.toml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(config: Path, port: int) -> subprocess.Popen:
    """`sectionrank serve` with 2 workers, once /readyz has answered 200 four times in a row."""
    argv = [sys.executable, "-m", "sectionrank", "serve", "--config", str(config), "--port", str(port)]
    argv += ["--workers", "2"]
    process = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    ready = 0
    while ready < 4:
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            raise RuntimeError("sectionrank serve did not become ready")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
                ready = ready + 1 if answer.status == 200 else 0
        except OSError:
            ready = 0
            time.sleep(0.2)
    return process


def _row(label: str, world: World, settings: LiveSettings) -> list[str]:
    cpu = time.process_time()
    result = run_live(world, settings)
    cpu = time.process_time() - cpu
    counts = result.counts
    latency = result.records["latency_ms"].to_numpy()
    return [
        label,
        f"{counts.sent:,}",
        f"{counts.requests_per_second:,.0f}",
        f"{np.median(latency):.2f} / {np.percentile(latency, 99):.2f}",
        f"{counts.failed} / {counts.server_errors}",
        f"{cpu / counts.sent * 1e3:.2f}",
    ]


def run(quick: bool = False) -> str:
    n_sim = 4_000 if quick else 20_000
    n_live = 300 if quick else 4_000
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        config = build(out, n_sim)
        world = World.build(WORLD, SEED)
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = serve(config, port)
        try:
            run_live(world, LiveSettings(url=url, requests=100, rate=0, seed=99, feedback_delay=0))  # warm
            rows = [
                _row(
                    f"rate 0, {c} connection{'s' if c > 1 else ''}",
                    world,
                    LiveSettings(url=url, requests=n_live, rate=0, seed=c, connections=c, feedback_delay=0),
                )
                for c in CONNECTIONS
            ]
            fixed = LiveSettings(
                url=url, requests=n_live // 2, rate=FIXED_RATE, seed=7, connections=4, feedback_delay=0
            )
            rows.append(_row(f"rate {FIXED_RATE:g}/s, 4 connections", world, fixed))
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
    return "\n\n".join(
        [
            "## Live",
            "`sectionrank live` (`simulator.live.run_live`) against `sectionrank serve` (gunicorn, 2 "
            f"workers, uniform knob policy) on 127.0.0.1, on the {WORLD} world (seed 0; base and "
            f"independent rankers trained on {n_sim:,} simulated requests, 15 leaves). Each run sends "
            f"{n_live:,} reranks (half at the fixed rate) with the world's requests (100 candidates "
            "each, the section's default k of 20), draws clicks from the click model and posts each "
            "feedback at once (delay 0): two HTTP calls per request. Reranks per second: sent over the wall "
            "time from the first request to the last feedback's answer. Latency: one rerank as the client "
            "sees it, milliseconds. CPU of `live`: the driver's own process time per request (it shares the "
            "two cores with the service).",
            markdown_table(
                [
                    "run",
                    "reranks",
                    "reranks / s",
                    "rerank p50 / p99 ms",
                    "failed / 5xx",
                    "live CPU ms / request",
                ],
                rows,
            ),
        ]
    )
