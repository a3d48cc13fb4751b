"""The learning loop: one cycle over N new decisions of a served log (gate, publish, continue learning).

A log of 2N uniformly logged decisions over every configured section (the best arm depends on the user's
segment) is written first, untimed. The loop's first cycle learns the first N (there is no candidate to gate
yet); the second, the one measured, gates that candidate on the next N (paired DR estimates of the candidate,
the best logged fixed arm chosen on the first N, 200 bootstrap resamples), publishes the version, continues
learning on them and moves the watermark. N is 100,000 (``SECTIONRANK_BENCH_LOOP_DECISIONS`` changes it;
``--quick`` uses 5,000).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from bandits.log import DecisionLog
from bandits.loop import LearningLoop, LoopSettings
from bandits.policies import UniformPolicy
from bandits.promote import GateSettings
from bandits.records import DecisionBatch, FeedbackBatch
from benchmarks import markdown_table
from benchmarks.bench_bandits import contexts
from heuristics import SectionsConfig

SEED = 11
DECISIONS = int(os.environ.get("SECTIONRANK_BENCH_LOOP_DECISIONS", "100000"))
T0 = 1_700_000_000.0


def write_log(path: Path, n: int, start: int, config: SectionsConfig, rng: np.random.Generator) -> None:
    """Append n uniformly logged decisions (and their feedback): reward 1 with probability 0.7 on the
    section's last arm for heavy users and its first arm otherwise, 0.3 elsewhere."""
    names = [s.name for s in config]
    context = contexts(n, rng, names)
    choice = UniformPolicy(config).choose(context, rng)
    n_arms = np.array([len(config[s].arms) for s in context.section])
    best = np.where(context.segment == "heavy", n_arms - 1, 0)
    clicked = rng.random(n) < np.where(choice.arm_index == best, 0.7, 0.3)
    arms = [config[s].arms[a] for s, a in zip(context.section, choice.arm_index, strict=True)]
    times = T0 + start + np.arange(n, dtype=np.float64)
    records = [
        {
            "segment": str(context.segment[i]),
            "device": str(context.device[i]),
            "hour": int(context.hour[i]),
            "fresh_share": float(context.fresh_share[i]),
            "category_entropy": float(context.category_entropy[i]),
        }
        for i in range(n)
    ]
    decisions = DecisionBatch(
        event_id=np.array([f"bench-{start + i}" for i in range(n)]),
        time=times,
        section=context.section.astype(str),
        user_id=np.arange(start, start + n, dtype=np.int64),
        context=records,
        candidates=[np.array([7, 8], dtype=np.int64)] * n,
        shown=[np.array([7], dtype=np.int64)] * n,
        arm_id=np.array([a.id for a in arms]),
        arm_index=choice.arm_index,
        knobs=[dict(a.knobs) for a in arms],
        propensity=choice.propensity,
        arm_probs=choice.probs,
        model_versions=[{"policy": "uniform"}] * n,
    )
    one, none = np.array([0], dtype=np.int64), np.array([], dtype=np.int64)
    feedback = FeedbackBatch(
        event_id=decisions.event_id.copy(), time=times + 1.0, clicks=[one if c else none for c in clicked]
    )
    with DecisionLog.open(path, create=not path.exists()) as log:
        log.append(decisions, feedback)


def run(quick: bool = False) -> str:
    n = 5_000 if quick else DECISIONS
    config = SectionsConfig.load()
    rng = np.random.default_rng(SEED)
    settings = LoopSettings(
        min_decisions=1, wait_seconds=0.0, settle_seconds=0.0, gate=GateSettings(min_decisions=50)
    )
    with tempfile.TemporaryDirectory(prefix="sectionrank-bench-loop-") as tmp:
        log_path, policy_dir = Path(tmp) / "log.db", Path(tmp) / "policy"
        write_log(log_path, n, 0, config, rng)
        write_log(log_path, n, n, config, rng)
        with DecisionLog.open(log_path) as log:
            loop = LearningLoop(log, config, policy_dir, settings)
            started = time.perf_counter()
            first = loop.run_cycle(n)
            first_seconds = time.perf_counter() - started
            marks: dict[str, float] = {}
            loop.hook = lambda step: marks.setdefault(step, time.perf_counter())
            started = time.perf_counter()
            second = loop.run_cycle(2 * n)
            seconds = time.perf_counter() - started
    gate = marks["gated"] - started
    learn = marks["learned"] - marks["gated"]
    rows = [
        ["1: learn (no candidate yet)", f"{first.decisions:,}", f"{first_seconds:.2f}", "-", "-"],
        [
            f"2: gate + publish {second.version} + learn",
            f"{second.decisions:,}",
            f"{seconds:.2f}",
            f"{gate:.2f}",
            f"{learn:.2f}",
        ],
    ]
    return "\n".join(
        [
            "## Learning loop: one cycle (`bench_loop`)",
            "",
            f"One `LearningLoop` cycle over {n:,} new decisions of a SQLite decision log "
            f"({len(config.sections)} sections): **{seconds:.1f} s** ({n / seconds:,.0f} decisions/s), of "
            f"which the gate (reading the window and the {n:,} decisions before it, paired DR with 200 "
            f"bootstrap resamples, publishing) took {gate:.1f} s and continued learning {learn:.1f} s.",
            "",
            markdown_table(["cycle", "decisions", "seconds", "gate + publish s", "learn s"], rows),
        ]
    )


if __name__ == "__main__":  # pragma: no cover
    print(run(quick=False))
