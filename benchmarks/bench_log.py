"""Benchmark: the decision log's write and read throughput, per-request latencies, size, and Parquet export.

`run(quick)` returns a markdown section for docs/BENCHMARKS.md. The full run logs 100,000 decisions of 100
candidates and 20 shown items each (int ids, 8 arms), with one feedback row per decision, the load the
simulator puts on the log; ``quick`` logs 5,000.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bandits.log import DecisionLog
from bandits.log_codec import decision_rows
from bandits.log_export import export_parquet
from bandits.records import DecisionBatch, FeedbackBatch

N_CANDIDATES, N_SHOWN, N_ARMS = 100, 20, 8
T0 = 1_700_000_000.0


def _decisions(n: int, seed: int, prefix: str = "ev") -> DecisionBatch:
    rng = np.random.default_rng(seed)
    candidates = rng.integers(0, 1_000_000, size=(n, N_CANDIDATES))
    probs = rng.dirichlet(np.ones(N_ARMS), size=n)
    arm = rng.integers(0, N_ARMS, size=n)
    sections = np.array(["discover", "similar_items", "category_explore", "search"])
    return DecisionBatch(
        event_id=np.char.add(f"{prefix}-", np.arange(n).astype(str)),
        time=T0 + np.sort(rng.random(n)) * 3600.0,
        section=sections[rng.integers(0, 4, size=n)],
        user_id=rng.integers(0, 50_000, size=n),
        context=[{"device": "ios", "hour": 14, "segment": "returning", "category": 3}] * n,
        candidates=list(candidates),
        shown=list(candidates[:, :N_SHOWN]),
        arm_id=np.char.add("arm-", arm.astype(str)),
        arm_index=arm,
        knobs=[{"freshness.half_life_days": 7.0, "mmr.lambda": 0.7, "boosts.promoted": 0.1}] * n,
        propensity=probs[np.arange(n), arm],
        arm_probs=list(probs),
        model_versions=[{"ranker": "ranker-2024-05-01", "policy": "vw-17"}] * n,
        shown_scores=list(rng.normal(size=(n, N_SHOWN))),
    )


def _feedback(decisions: DecisionBatch, seed: int) -> FeedbackBatch:
    rng = np.random.default_rng(seed)
    n = len(decisions)
    clicked = rng.random((n, N_SHOWN)) < 0.05
    clicks = [np.flatnonzero(row) for row in clicked]
    return FeedbackBatch(
        event_id=decisions.event_id,
        time=decisions.time + rng.exponential(120.0, size=n),
        clicks=clicks,
        conversions=[c[:1] for c in clicks],
        revenue=np.zeros(n),
        reward=np.full(n, np.nan),
    )


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _latencies(fn: Callable[[int], object], calls: int) -> tuple[float, float]:
    """Median and 99th percentile of `calls` timed calls of ``fn(i)``, in microseconds."""
    times = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6, float(np.percentile(times, 99)) * 1e6


def run(quick: bool) -> str:
    """Time writes, reads and export of a decision log; return a markdown section."""
    n = 5_000 if quick else 100_000
    repeats = 1 if quick else 2
    calls = 200 if quick else 2_000
    decisions = _decisions(n, seed=0)
    feedback = _feedback(decisions, seed=1)

    rows: list[tuple[str, float, int]] = []  # (operation, best seconds, rows)
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(
            (
                "validate and encode decisions (JSON)",
                min(_timed(lambda: decision_rows(decisions)) for _ in range(repeats)),
                n,
            )
        )
        write_dec, write_fb, write_chunked = [], [], []
        for r in range(repeats):
            with DecisionLog.open(Path(tmp) / f"write-{r}.db", create=True) as log:
                write_dec.append(_timed(lambda log=log: log.append_decisions(decisions)))
                write_fb.append(_timed(lambda log=log: log.append_feedback(feedback)))
            with DecisionLog.open(Path(tmp) / f"chunked-{r}.db", create=True) as log:

                def chunked(log: DecisionLog = log) -> None:
                    for start in range(0, n, 1_000):
                        log.append_decisions(_slice(decisions, start, start + 1_000))

                write_chunked.append(_timed(chunked))
        rows.append(("`append_decisions`, one batch", min(write_dec), n))
        rows.append(("`append_decisions`, batches of 1,000", min(write_chunked), n))
        rows.append(("`append_feedback`, one batch", min(write_fb), n))

        path = Path(tmp) / "write-0.db"
        with DecisionLog.open(path) as log:
            rows.append(
                (
                    "`append_feedback` again (all repeats, ignored)",
                    _timed(lambda: log.append_feedback(feedback)),
                    n,
                )
            )
            rows.append(
                ("`decisions()` into a DataFrame", min(_timed(log.decisions) for _ in range(repeats)), n)
            )
            rows.append(
                (
                    "`joined(wait_seconds=600)`",
                    min(_timed(lambda: log.joined(600.0)) for _ in range(repeats)),
                    n,
                )
            )
            rows.append(
                (
                    "`iter_decisions(10_000)`, all chunks",
                    _timed(lambda: sum(len(f) for f in log.iter_decisions(10_000))),
                    n,
                )
            )
            out = Path(tmp) / "export.parquet"
            rows.append(
                ("`export_parquet` (joined, list columns)", _timed(lambda: export_parquet(log, out)), n)
            )
            size_db = path.stat().st_size
            size_parquet = out.stat().st_size

            one = _decisions(calls, seed=2, prefix="single")
            single_dec = _latencies(lambda i: log.append_decisions(_slice(one, i, i + 1)), calls)
            one_fb = _feedback(one, seed=3)
            single_fb = _latencies(lambda i: log.append_feedback(_feedback_slice(one_fb, i)), calls)
            repeat_fb = _latencies(lambda i: log.append_feedback(_feedback_slice(one_fb, i)), calls)
            has_event = _latencies(lambda i: log.has_event(f"ev-{(i * 7919) % n}"), calls)
        with DecisionLog.open(path, synchronous="FULL") as log:
            full = _decisions(calls, seed=4, prefix="full")
            full_fb = _feedback(full, seed=5)
            log.append_decisions(full)
            single_fb_full = _latencies(lambda i: log.append_feedback(_feedback_slice(full_fb, i)), calls)

    total_write = min(write_dec) + min(write_fb)
    latencies = [
        ("`append_decisions`, one decision", single_dec),
        ("`append_feedback`, one row", single_fb),
        ("`append_feedback`, one row, `synchronous=FULL`", single_fb_full),
        ("`append_feedback`, one repeated row (ignored)", repeat_fb),
        ("`has_event`", has_event),
    ]
    lines = [
        "## Decision log (SQLite, WAL, synchronous=NORMAL)",
        "",
        f"{n:,} decisions of {N_CANDIDATES} candidates and {N_SHOWN} shown items each (int ids, "
        f"{N_ARMS} arms, shown scores), and one feedback row per decision. Best of {repeats} run(s); each "
        "write goes to a fresh file in one `BEGIN IMMEDIATE` transaction per batch.",
        "",
        "| operation | seconds | rows / s |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {seconds:.2f} | {count / seconds:,.0f} |" for name, seconds, count in rows],
        "",
        f"Decisions and their feedback written in {total_write:.1f} s (target: under 15 s for 100,000).",
        "",
        "| per-request call | median µs | p99 µs |",
        "| --- | ---: | ---: |",
        *[f"| {name} | {median:,.0f} | {p99:,.0f} |" for name, (median, p99) in latencies],
        "",
        f"Size: {size_db / 1e6:,.1f} MB of SQLite ({size_db / n:,.0f} bytes per decision with its feedback "
        f"and indexes); the Parquet export is {size_parquet / 1e6:,.1f} MB.",
    ]
    return "\n".join(lines)


def _slice(batch: DecisionBatch, start: int, stop: int) -> DecisionBatch:
    return DecisionBatch(
        event_id=batch.event_id[start:stop],
        time=batch.time[start:stop],
        section=batch.section[start:stop],
        user_id=batch.user_id[start:stop],
        context=batch.context[start:stop],
        candidates=batch.candidates[start:stop],
        shown=batch.shown[start:stop],
        arm_id=batch.arm_id[start:stop],
        arm_index=batch.arm_index[start:stop],
        knobs=batch.knobs[start:stop],
        propensity=batch.propensity[start:stop],
        arm_probs=batch.arm_probs[start:stop],
        model_versions=batch.model_versions[start:stop],
        shown_scores=None if batch.shown_scores is None else batch.shown_scores[start:stop],
    )


def _feedback_slice(batch: FeedbackBatch, i: int) -> FeedbackBatch:
    return FeedbackBatch(
        event_id=batch.event_id[i : i + 1],
        time=batch.time[i : i + 1],
        clicks=batch.clicks[i : i + 1],
        conversions=batch.conversions[i : i + 1],
        revenue=None if batch.revenue is None else batch.revenue[i : i + 1],
        reward=None if batch.reward is None else batch.reward[i : i + 1],
    )


if __name__ == "__main__":  # pragma: no cover
    print(run(quick=True))
