"""The comparison report, written from the results alone: report.md and a self-contained report.html.

The report is built once as blocks (`simulator.report_blocks`): an introduction, the headline and the seven
questions (`simulator.report_questions`), every metric, the cost of each design and the method; then rendered
to Markdown or to HTML (`simulator.report_render`). Every sentence that states a finding is generated from the
numbers in the results (`simulator.compare_results.CompareResults`, as returned by `simulator.compare.compare`
or read back from a results.json).
"""

from __future__ import annotations

from simulator.compare_results import CompareResults
from simulator.report_blocks import Block, Bullets, Heading, Paragraph, Table
from simulator.report_format import cell, fmt, num, plus_minus
from simulator.report_questions import QUESTIONS, SECTIONS, figure, section_heading, which_design_wins
from simulator.report_render import to_html, to_markdown
from simulator.report_verdict import run_header, verdict_blocks, verdict_text

__all__ = ["SECTIONS", "build_blocks", "headline_text", "render_html", "render_markdown", "verdict_text"]

ALL = "all"
METRIC_NAMES = {
    "clicks": "expected clicks per request",
    "conversions": "expected conversions per request",
    "revenue": "expected revenue per request",
    "ndcg": "NDCG@k of the slate against the true attractiveness of all candidates",
    "diversity": "intra-list diversity (mean cosine distance of the shown items' embeddings)",
    "age_days": "mean age of the shown items (days)",
    "coverage": "catalog coverage (share of the catalog shown at least once)",
}


def introduction(results: CompareResults) -> list[Block]:
    """The world, the seeds, what each seed does, how the intervals are taken, and how long it took."""
    s = results.settings
    world = results.world
    seeds = results.seeds
    warn = (
        f" With {len(seeds)} seeds (fewer than 5) the intervals are wide; run at least 5 for conclusions."
        if len(seeds) < 5
        else ""
    )
    traffic = ", ".join(f"`{n}` ({100 * v.traffic:g}% of traffic)" for n, v in world.sections.items())
    return [
        Paragraph(
            f"World `{world.name}` ({world.source}): {world.items:,} items, {world.users:,} users, "
            f"{world.candidates} candidates per request, sections {traffic}. {len(seeds)} seeds "
            f"({', '.join(map(str, seeds))}); each seed builds its own world and logs {s.log_requests:,} "
            "requests under uniform knob exploration, trains every design on that log, and values every "
            f"strategy exactly on the same {s.eval_requests:,} fresh requests. Intervals: {results.interval}."
            f"{warn} The whole run took {fmt(results.runtime.seconds, 0)} s."
        )
    ]


def all_metrics(results: CompareResults) -> list[Block]:
    """A table per metric: every main strategy and union model, per section and overall."""
    headline = results.headline.strategies
    order = [*headline] + [s for s in results.metrics if s.startswith("consolidated[") and s not in headline]
    blocks: list[Block] = [
        section_heading("metrics"),
        Paragraph(
            "Clicks per request of every main strategy with its own (unpaired) interval: these overlap where "
            "the paired differences of the verdict and question 1 may not."
        ),
        figure(results, "section_bars"),
    ]
    for metric, title in METRIC_NAMES.items():
        digits = 1 if metric in ("revenue", "age_days") else 3
        rows = tuple(
            (f"`{s}`", *(cell(results.metric(s, g, metric), digits) for g in results.groups))
            for s in order
            if s in results.metrics
        )
        blocks += [Heading(title[0].upper() + title[1:], 3), Table(("strategy", *results.groups), rows)]
    return blocks


def costs(results: CompareResults) -> list[Block]:
    """Models, artifacts, training time, artifact size and config lines of each strategy."""
    lines = results.config_lines.by_strategy
    rows = tuple(
        (
            f"`{name}`",
            str(c.models),
            str(c.artifacts),
            cell(c.train_seconds, 2),
            fmt(num(c.artifact_bytes) / 1024, 0),
            str(lines.get(name, "–")),
        )
        for name, c in results.costs.items()
    )
    return [
        section_heading("cost"),
        Paragraph(
            "Models trained (LightGBM boosters and the VW policy), artifacts deployed (model directories and "
            "policy files), training seconds per seed (LightGBM with "
            f"{results.settings.threads} thread(s); the best fixed arm's tuning and the bandit's "
            "learning included), artifact size, and the config lines a team maintains (non-blank, "
            "non-comment lines of the ranker and sections config tables the design reads, one line per "
            "chosen arm, and one per learning setting of the bandit)."
        ),
        Table(("strategy", "models", "artifacts", "training seconds", "artifact KiB", "config lines"), rows),
    ]


def method(results: CompareResults) -> list[Block]:
    """What each strategy serves, and how the data, the evaluation and the oracle are set up."""
    return [
        section_heading("method"),
        Bullets(
            (
                *(f"`{name}`: {text}." for name, text in results.strategies.items()),
                "The base ranker does not serve search: every `base+*` strategy serves search with the "
                "independent search model under the same knob policy.",
                "The models learn from the log's stats, train and validation windows; the bandit learns "
                "from the knob window, fresh requests of the test window's period served by the base "
                "ranker: on its first half, explored uniformly, where the best logged fixed arm is "
                "chosen too; the gate decides on its second half, a canary served 45% by the candidate, "
                "45% by that fixed arm and 10% uniformly. The evaluation requests are fresh requests "
                "drawn in the test window's period, and the best fixed arm is chosen on "
                f"{results.settings.tune_requests:,} other fresh requests of that period.",
                "Each slate's clicks, conversions and revenue are the world's exact expected values (no "
                "sampled clicks); NDCG@k uses linear gains of the true attractiveness of every candidate in "
                "isolation.",
                "The oracle orders the candidates by their attractiveness in isolation: greedy, it ignores "
                "satiation, so heuristics can in principle exceed it on clicks.",
            )
        ),
    ]


def build_blocks(results: CompareResults) -> list[Block]:
    """The whole report as blocks."""
    blocks: list[Block] = [
        Heading(f"Design comparison on the `{results.world.name}` world", 1),
        Paragraph(run_header(results)),
    ]
    blocks += verdict_blocks(results)
    blocks += introduction(results)
    blocks += which_design_wins(results)
    for question in QUESTIONS:
        blocks += question(results)
    blocks += all_metrics(results)
    blocks += costs(results)
    blocks += method(results)
    return blocks


def render_markdown(results: CompareResults) -> str:
    """report.md: the report's blocks as Markdown (plots are in report.html)."""
    return to_markdown(build_blocks(results))


def render_html(results: CompareResults) -> str:
    """report.html: the same report, self-contained, with every plot embedded as a PNG data URI."""
    return to_html(build_blocks(results), title=f"Design comparison: {results.world.name}")


def headline_text(results: CompareResults) -> str:
    """The headline table as text: clicks per request (mean ± 95% half-width) of every main strategy."""
    headline = results.headline
    groups = list(headline.rows)
    rows = [["strategy", *groups]]
    for s in headline.strategies:
        rows.append([s, *(plus_minus(headline.rows[g][s]) for g in groups)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, row in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
