"""Knob policies: VW learning throughput from logged decisions, and the per-request cost of choosing an arm.

Learning runs `VWKnobPolicy.fit` (examples built column-wise, VW's native reader over a temp file) on
synthetic logged decisions spread over every configured section; the figure includes building the text.
Choosing measures `KnobPolicy.choose` for one request, as the service calls it.
"""

from __future__ import annotations

import time

import numpy as np
import vowpalwabbit

from bandits.context import PolicyContext
from bandits.policies import UniformPolicy
from bandits.vw_format import labelled_blocks
from bandits.vw_policy import VWKnobPolicy, VWSettings, context_lines
from benchmarks import fmt_us, markdown_table, measure
from heuristics import SectionsConfig

SEED = 7


def contexts(n: int, rng: np.random.Generator, sections: list[str]) -> PolicyContext:
    return PolicyContext(
        section=rng.choice(sections, n),
        segment=rng.choice(["new", "casual", "heavy"], n),
        device=rng.choice(["mobile", "desktop", "tablet"], n),
        hour=rng.integers(0, 24, n),
        fresh_share=rng.random(n),
        category_entropy=3 * rng.random(n),
    )


def run(quick: bool = False) -> str:
    rng = np.random.default_rng(SEED)
    config = SectionsConfig.load()
    names = [s.name for s in config]
    n = 20_000 if quick else 200_000
    context = contexts(n, rng, names)
    logged = UniformPolicy(config).choose(context, rng)
    reward = rng.poisson(0.7, n).astype(float)

    fits = []
    for _ in range(1 if quick else 3):
        started = time.perf_counter()
        # The settings `sectionrank learn` and the comparison learn with (the cells layout: the field
        # selection's pass over the decisions is part of the time).
        policy = VWKnobPolicy(config, VWSettings(factored=True, cells=True)).fit(
            context, logged.arm_index, reward, logged.propensity
        )
        fits.append(time.perf_counter() - started)
    fit_seconds = float(np.median(fits))

    # The same examples learned one by one from Python, as a naive learner would, for the ratio.
    loop_n = min(n, 20_000)
    text = labelled_blocks(
        context_lines(context.take(np.arange(loop_n)), policy.cell_choice),
        context.section[:loop_n],
        logged.arm_index[:loop_n],
        reward[:loop_n],
        logged.propensity[:loop_n],
        policy.actions,
    )
    examples = [block.split("\n") for block in text.strip("\n").split("\n\n")]
    workspace = vowpalwabbit.Workspace(" ".join(policy.settings.arguments()))
    started = time.perf_counter()
    for example in examples:
        workspace.learn(example)
    loop_rate = loop_n / (time.perf_counter() - started)
    workspace.finish()

    rows = []
    for section in config:
        one = [contexts(1, rng, [section.name]) for _ in range(64)]
        timing = measure(
            f"{section.name} ({len(section.arms)} arms)",
            lambda i, one=one: policy.choose(one[i % 64], rng),
            repeats=200 if quick else 3000,
        )
        rows.append([timing.label, timing.repeats, fmt_us(timing.median_us()), fmt_us(timing.p99_us())])
    policy.close()
    arms = sum(len(s.arms) for s in config)
    return "\n".join(
        [
            "## Bandits: VW knob policy (`bench_bandits`)",
            "",
            f"Learning: {n:,} logged decisions over {len(names)} sections ({arms} arms in all), one pass, "
            f"median of {len(fits)} runs: {fit_seconds:.2f} s, **{n / fit_seconds:,.0f} decisions/s** "
            "(the cells layout's field selection and building the VW text included). "
            "The same examples fed one by one from Python "
            f"(`Workspace.learn` in a loop): {loop_rate:,.0f} decisions/s, so VW's own reader is "
            f"**{n / fit_seconds / loop_rate:.1f}x** faster.",
            "",
            "Choosing an arm for one request (VW predict over the section's arms, then a seeded draw), µs:",
            "",
            markdown_table(["section", "calls", "median µs", "p99 µs"], rows),
        ]
    )


if __name__ == "__main__":  # pragma: no cover
    print(run(quick=False))
