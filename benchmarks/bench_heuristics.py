"""Section pipelines (normalise, boosts, freshness, MMR or category cap, top k) on prepared inputs.

Measures the heuristics alone: no parsing, no base-ranker scoring, no policy. Inputs are built before timing;
each case cycles through 16 different requests so that no single input stays hot in the caches.
"""

from __future__ import annotations

import numpy as np

from benchmarks import Timing, fmt_us, markdown_table, measure
from heuristics import ContextBatch, ItemBatch, SectionPipeline, SectionsConfig

DIM = 32
K = 20
POOL = 16
SEED = 20240611


def make_requests(rng: np.random.Generator, batch: int, n: int) -> tuple[np.ndarray, ItemBatch, ContextBatch]:
    """B requests of n candidates: 12 categories x 4 subcategories, ages, 10% promoted, embeddings."""
    category = rng.integers(0, 12, size=(batch, n))
    centres = rng.normal(size=(12, DIM))
    items = ItemBatch(
        category=category,
        age_days=rng.exponential(20.0, size=(batch, n)),
        promoted=rng.random((batch, n)) < 0.1,
        embedding=centres[category] + 0.7 * rng.normal(size=(batch, n, DIM)),
        subcategory=category * 4 + rng.integers(0, 4, size=(batch, n)),
    )
    context = ContextBatch(
        source_embedding=rng.normal(size=(batch, DIM)), category=rng.integers(0, 12, size=batch)
    )
    return rng.normal(size=(batch, n)), items, context


def single_request_case(pipeline: SectionPipeline, n: int, repeats: int, rng: np.random.Generator) -> Timing:
    """One request of n candidates under the section's default arm, top K."""
    arm = pipeline.section.default_arm
    requests = [make_requests(rng, 1, n) for _ in range(POOL)]

    def call(i: int) -> object:
        scores, items, context = requests[i % POOL]
        return pipeline.rerank(scores[0], items, context, arm, K)

    return measure(f"{pipeline.section.name}, {n} candidates", call, repeats=repeats, warmup=20)


def batch_case(
    pipeline: SectionPipeline, batch: int, n: int, repeats: int, rng: np.random.Generator
) -> Timing:
    """`batch` requests of n candidates in one call, each under a random arm of the section, top K."""
    scores, items, context = make_requests(rng, batch, n)
    arms = rng.integers(0, len(pipeline.section.arms), size=batch)
    return measure(
        f"{pipeline.section.name}, {batch} x {n}",
        lambda i: pipeline.rerank_arms(scores, items, context, arms, K),
        repeats=repeats,
        warmup=2,
        per_call=batch,
    )


def run(quick: bool = False) -> str:
    rng = np.random.default_rng(SEED)
    config = SectionsConfig.load()
    pipelines = {section.name: SectionPipeline(section) for section in config}
    single_repeats = 200 if quick else 3000
    batch_size, batch_repeats = (100, 5) if quick else (1000, 40)

    headline = [
        single_request_case(pipelines["discover"], 500, single_repeats, rng),
        single_request_case(pipelines["discover"], 100, single_repeats, rng),
    ]
    sections = [
        single_request_case(pipelines[name], n, single_repeats, rng)
        for name in pipelines
        if name != "discover"
        for n in (100, 500)
    ]
    batches = [batch_case(p, batch_size, 100, batch_repeats, rng) for p in pipelines.values()]

    def single_rows(timings: list[Timing]) -> list[list[object]]:
        return [[t.label, t.repeats, fmt_us(t.median_us()), fmt_us(t.p99_us())] for t in timings]

    discover = config["discover"]
    pipeline_text = " -> ".join(discover.pipeline)
    default_knobs = ", ".join(f"{k}={v:g}" for k, v in discover.default_arm.knobs.items())
    lines = [
        "## Heuristics: section pipelines (`bench_heuristics`)",
        "",
        f"One request re-ranked to a top {K} by its section's pipeline under the default arm;",
        f"candidates with {DIM}-dimensional embeddings, 12 categories, 4 subcategories each.",
        f"`discover` runs {pipeline_text} ({default_knobs}).",
        "Times cover `SectionPipeline.rerank` only: no parsing, ranker scoring or policy.",
        "",
        markdown_table(["case", "repeats", "median µs", "p99 µs"], single_rows(headline)),
        "",
        "Every section, one request:",
        "",
        markdown_table(["case", "repeats", "median µs", "p99 µs"], single_rows(sections)),
        "",
        f"Batches: {batch_size} requests of 100 candidates in one `rerank_arms` call, each request",
        "under a random arm of its section (mixed knob values), top 20. Per-request figures divide the",
        "batch time by the batch size.",
        "",
        markdown_table(
            [
                "case",
                "repeats",
                "median ms per batch",
                "p99 ms per batch",
                "median µs per request",
                "p99 µs per request",
            ],
            [
                [
                    t.label,
                    t.repeats,
                    f"{t.median_us() / 1e3:.2f}",
                    f"{t.p99_us() / 1e3:.2f}",
                    fmt_us(t.median_us(per_unit=True)),
                    fmt_us(t.p99_us(per_unit=True)),
                ]
                for t in batches
            ],
        ),
    ]
    return "\n".join(lines)
