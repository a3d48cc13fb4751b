"""Simulator throughput: build the default world, then simulate requests under the logging policy.

The headline is requests per second of world + logging policy (request sampling, candidate generation,
legacy scoring, the sections' heuristics under an epsilon-greedy arm, click sampling, record assembly) over
100,000 requests (20,000 in quick mode), processed in chunks of 2,000. Each chunk is timed on its own, so the
table gives the median and 99th percentile per chunk besides the total. A last row adds the SQLite decision
log writer (a temporary file), which is what ``sectionrank simulate`` does.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from bandits.log import DecisionLog
from bandits.records import DecisionBatch, FeedbackBatch
from benchmarks import Timing, markdown_table
from simulator import LoggingPolicy, World

SEED = 20240611
CHUNK = 2000
EPSILON = 0.2


def _timed_chunks(chunks: Iterator[object], label: str, per_call: int) -> Timing:
    """Time each `next()` of an iterator of chunks (the work happens inside it)."""
    seconds = []
    while True:
        start = time.perf_counter()
        try:
            next(chunks)
        except StopIteration:
            break
        seconds.append(time.perf_counter() - start)
    return Timing(label=label, seconds=np.array(seconds), per_call=per_call)


def _log_chunks(
    world: World, n: int, sink: Callable[[DecisionBatch, FeedbackBatch], None] | None = None
) -> Iterator[tuple[DecisionBatch, FeedbackBatch]]:
    policy = LoggingPolicy(world, exploration="epsilon", epsilon=EPSILON, seed=SEED)
    for decisions, feedback in policy.log(n, chunk=CHUNK):
        if sink is not None:
            sink(decisions, feedback)
        yield decisions, feedback


def _request_chunks(world: World, n: int) -> Iterator[object]:
    rng = np.random.default_rng(SEED)
    times = world.sample_times(n, rng)
    for start in range(0, n, CHUNK):
        yield world.sample_requests(
            len(times[start : start + CHUNK]), rng, times=times[start : start + CHUNK]
        )


def run(quick: bool = False) -> str:
    n = 20_000 if quick else 100_000
    builds = []
    for _ in range(1 if quick else 3):
        start = time.perf_counter()
        world = World.build("default", seed=SEED)
        builds.append(time.perf_counter() - start)

    requests = _timed_chunks(
        _request_chunks(world, n), "requests + candidates (`World.sample_requests`)", CHUNK
    )
    totals = {"clicks": 0, "conversions": 0, "revenue": 0.0}

    def count(decisions: DecisionBatch, feedback: FeedbackBatch) -> None:
        totals["clicks"] += sum(len(c) for c in feedback.clicks)
        totals["conversions"] += sum(len(c) for c in feedback.conversions)
        totals["revenue"] += float(feedback.revenue.sum())

    logged = _timed_chunks(
        _log_chunks(world, n, count), "world + logging policy (`LoggingPolicy.log`)", CHUNK
    )
    with tempfile.TemporaryDirectory() as tmp, DecisionLog.open(Path(tmp) / "log.db", create=True) as log:

        def write(decisions: DecisionBatch, feedback: FeedbackBatch) -> None:
            log.append_decisions(decisions)
            log.append_feedback(feedback)

        written = _timed_chunks(_log_chunks(world, n, write), "... + `DecisionLog` appends", CHUNK)

    config = world.config
    rows = [
        [
            t.label,
            f"{n:,}",
            f"{t.seconds.sum():.2f}",
            f"{n / t.seconds.sum():,.0f}",
            f"{t.median_us() / 1e3:.0f}",
            f"{t.p99_us() / 1e3:.0f}",
        ]
        for t in (requests, logged, written)
    ]
    lines = [
        "## Simulator: world + logging policy (`bench_simulator`)",
        "",
        f"The default world ({config.items.count:,} items in {config.items.categories} categories, "
        f"{config.users.count:,} users, {config.candidates.count} candidates per request, top 20 shown), "
        f"built in {np.median(builds):.2f} s (median of {len(builds)}).",
        f"Then {n:,} requests in chunks of {CHUNK:,}, three ways: request sampling with candidate",
        "generation alone; the whole logging policy (legacy scorer, section heuristics under epsilon-greedy",
        f"arms with epsilon = {EPSILON}, click and conversion sampling, `DecisionBatch`/`FeedbackBatch`",
        "assembly); and the same with the decision-log writer (SQLite, WAL, `synchronous=NORMAL`, a",
        "temporary file). Each row's work includes the row above it.",
        "",
        markdown_table(
            ["stage", "requests", "total s", "requests/s", "median ms per chunk", "p99 ms per chunk"], rows
        ),
        "",
        f"Logged outcomes: {totals['clicks'] / n:.3f} clicks, {totals['conversions'] / n:.3f} conversions"
        f" and {totals['revenue'] / n:.2f} revenue per request.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run(quick=True))
