"""The report's part on the bandit's headroom: the context oracle, the best logged fixed arm, capture, the
promotion gate's choices and the knobs' learning curve (`simulator.compare_headroom`)."""

from __future__ import annotations

from simulator.compare_results import CompareResults
from simulator.report_blocks import Block, Bullets, Heading, Paragraph, Table
from simulator.report_format import cell, diff_cell, fmt

ALL = "all"


def _capture_sentences(results: CompareResults) -> list[str]:
    headroom = results.bandit_headroom
    assert headroom is not None
    sentences = []
    for g in results.groups:
        row = headroom.by_section.get(g)
        if row is None:
            continue
        label = "Overall" if g == ALL else f"In `{g}`"
        sentences.append(
            f"{label}, the context the policy observes can gain {cell(row.headroom, signed=True)} clicks per "
            f"request over the best fixed arm ({row.headroom.verdict}); the shipped bandit gains "
            f"{cell(row.gain, signed=True)}, a capture of {cell(row.capture, 2)}, and "
            f"{cell(row.vs_best_fixed_logged, signed=True)} over the best logged fixed arm "
            f"({row.vs_best_fixed_logged.verdict})."
        )
    return sentences


def headroom_blocks(results: CompareResults) -> list[Block]:
    """Headroom and capture per section, what the gate shipped, and the learning curve (nothing for results
    without them)."""
    headroom = results.bandit_headroom
    if headroom is None:
        return []
    groups = [g for g in results.groups if g in headroom.by_section]
    rows = tuple(
        (
            f"`{g}`",
            diff_cell(headroom.by_section[g].headroom),
            diff_cell(headroom.by_section[g].gain),
            cell(headroom.by_section[g].capture, 2),
            diff_cell(headroom.by_section[g].vs_best_fixed_logged),
            diff_cell(headroom.by_section[g].logged_vs_best_fixed),
        )
        for g in groups
    )
    n_seeds = len(results.seeds)
    shipped_rows = tuple(
        (f"`{s}`", ", ".join(f"{source} {n}/{n_seeds}" for source, n in sorted(sources.items())))
        for s, sources in headroom.shipped.items()
    )
    curve_groups = groups
    curve_rows = tuple(
        (
            f"{point.share:.0%}",
            f"`{point.strategy}`",
            fmt(point.decisions, 0),
            *(diff_cell(point.vs_best_fixed_logged.get(g)) for g in curve_groups),
        )
        for point in headroom.curve
    )
    return [
        Heading("Headroom, capture and the promotion gate", 3),
        Paragraph(
            "`base+context_oracle` serves "
            + headroom.oracle_cells
            + ": the ceiling of a knob policy with these features. Headroom = context_oracle - best_fixed; "
            "capture = (bandit - best_fixed) / headroom (ratio of the seeds' means, delta-method interval). "
            "`base+best_fixed_logged` picks each section's fixed arm from the log's learning window by "
            f"{headroom.fixed_logged_estimator.upper()} estimates."
        ),
        Table(
            (
                "section",
                "headroom",
                "bandit - best fixed",
                "capture",
                "bandit - best fixed (logged)",
                "best fixed (logged) - best fixed",
            ),
            rows,
        ),
        Bullets(tuple(_capture_sentences(results))),
        Paragraph(
            "What the promotion gate shipped as `base+bandit` (seeds): the candidate where its paired DR "
            "lower bound on the log's test window is above the best alternative's minus the margin, else "
            "the best logged fixed arm."
        ),
        Table(("section", "shipped"), shipped_rows),
        Paragraph(
            "Learning curve of the knobs: the shipped bandit learned on the latest share of its learning "
            "window, minus `base+best_fixed_logged`, clicks per request."
        ),
        Table(("share", "strategy", "decisions", *curve_groups), curve_rows),
    ]
