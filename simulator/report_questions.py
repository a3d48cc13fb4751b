"""The questions the comparison report answers, each a function from the results to the report's blocks.

Every sentence that states a finding is generated from the numbers in the results: a design "beats" another
only where the paired 95% interval of the difference lies above 0 (`simulator.compare_stats`). Each question
opens with its section heading (`SECTIONS`) and ends with its figure, drawn by `simulator.report_plots`.
Question 7 (the feature check) is written by `simulator.report_feature_check`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial

from simulator.compare_results import CompareResults, DesignPair, Difference, KnobGain, ReplayRow
from simulator.report_blocks import Block, Bullets, Figure, Heading, Paragraph, Table
from simulator.report_feature_check import ANCHOR as FEATURE_CHECK_ANCHOR
from simulator.report_feature_check import TITLE as FEATURE_CHECK_TITLE
from simulator.report_feature_check import does_a_section_feature_hurt_the_others
from simulator.report_format import arm_label, cell, diff_cell, fmt, names, num, percent
from simulator.report_headroom import headroom_blocks
from simulator.report_plots import PLOTS

ALL = "all"
#: The report's sections: anchor -> heading. Every one is present in every report.
SECTIONS = {
    "headline": "Headline: clicks per request",
    "q1-designs": "1. Consolidated model against the base ranker with bandit-tuned knobs",
    "q2-cross-learning": "2. Cross-learning: consolidated against independent models",
    "q3-reversals": "3. Simpson-style reversals",
    "q4-stratification": "4. Stratification of the union",
    "q5-bandit": "5. Bandit-tuned knobs",
    "q6-replay": "6. Offline replay against the truth",
    FEATURE_CHECK_ANCHOR: FEATURE_CHECK_TITLE,
    "metrics": "All metrics",
    "cost": "Cost of each design",
    "method": "Method",
}


def section_heading(anchor: str) -> Heading:
    """The heading of one of the report's `SECTIONS`."""
    return Heading(SECTIONS[anchor], 2, anchor)


def figure(results: CompareResults, key: str) -> Figure:
    """The figure `key` of `simulator.report_plots.PLOTS`, drawn from `results` when rendered."""
    title, draw = PLOTS[key]
    return Figure(key, title, partial(draw, results))


def _split(by_group: Mapping[str, Difference], groups: Sequence[str]) -> dict[str, list[str]]:
    """The groups where a difference is better, worse and a tie."""
    out: dict[str, list[str]] = {"better": [], "worse": [], "tie": []}
    for g in groups:
        if g in by_group:
            out[by_group[g].verdict].append(g)
    return out


def verdict_sentence(
    subject: str, other: str, by_group: Mapping[str, Difference], sections: Sequence[str]
) -> str:
    """One sentence: where `subject` beats `other`, loses, and ties (per section and overall)."""
    overall = by_group.get(ALL)
    split = _split(by_group, sections)
    if overall is not None:
        word = {"better": "beats", "worse": "loses to", "tie": "does not differ significantly from"}[
            overall.verdict
        ]
        head = f"Overall, `{subject}` {word} `{other}` ({cell(overall, signed=True)} clicks per request)"
    else:
        head = f"`{subject}` against `{other}`"
    parts = []
    if split["better"]:
        parts.append(f"it wins in {names(split['better'])}")
    if split["worse"]:
        parts.append(f"loses in {names(split['worse'])}")
    if split["tie"]:
        parts.append(f"shows no significant difference in {names(split['tie'])}")
    return head + ("; by section, " + ", ".join(parts) if parts else "") + "."


# --- headline -----------------------------------------------------------------------------------------------


def which_design_wins(results: CompareResults) -> list[Block]:
    """The headline: clicks per request of every main strategy, and the design that earns the most."""
    headline = results.headline
    groups = list(headline.rows)
    strategies = headline.strategies
    rows = tuple((f"`{s}`", *(cell(headline.rows[g][s]) for g in groups)) for s in strategies)
    overall = {s: num(headline.rows[ALL][s].mean) for s in strategies}
    designs = [s for s in strategies if s not in ("random", "oracle") and math.isfinite(overall[s])]
    blocks: list[Block] = [
        section_heading("headline"),
        Paragraph(
            "Exact expected clicks per request, mean over seeds [95% interval], per section and overall "
            "(`all`)."
        ),
        Table(("strategy", *groups), rows),
    ]
    if designs:
        best = max(designs, key=lambda s: overall[s])
        oracle, random = overall.get("oracle", math.nan), overall.get("random", math.nan)
        share = (overall[best] - random) / (oracle - random) if oracle > random else math.nan
        close = [
            s
            for s in designs
            if s != best and (diff := _headline_diff(results, best, s)) is not None and diff.verdict == "tie"
        ]
        blocks.append(
            Paragraph(
                f"Overall, `{best}` earns the most clicks per request among the designs "
                f"({cell(headline.rows[ALL][best])}); the random order earns {fmt(random)} and the oracle "
                f"bound {fmt(oracle)}, so `{best}` closes {percent(share)} of the gap between them. "
                + (
                    f"Its lead is not significant over {names(close)} (paired differences of question 1); "
                    if close
                    else ""
                )
                + "which design to run is decided by the paired differences of the verdict, not by this "
                "table's unpaired intervals."
            )
        )
    return blocks


def _headline_diff(results: CompareResults, a: str, b: str) -> Difference | None:
    """The paired difference ``a - b`` overall, where question 1 has the pair (either way round)."""
    for pair in results.designs.pairs:
        if {pair.a, pair.b} == {a, b} and ALL in pair.by_section:
            return pair.by_section[ALL]
    return None


# --- question 1 ---------------------------------------------------------------------------------------------


def _pair_table(pairs: Sequence[DesignPair], groups: Sequence[str]) -> Table:
    rows = tuple((f"`{p.a}` − `{p.b}`", *(diff_cell(p.by_section.get(g)) for g in groups)) for p in pairs)
    return Table(("difference in clicks per request", *groups), rows)


def does_consolidation_beat_the_tuned_base_ranker(results: CompareResults) -> list[Block]:
    """Question 1: the consolidated model against the base ranker with bandit-tuned (and fixed) knobs."""
    pairs = results.designs.pairs
    sentences = tuple(verdict_sentence(p.a, p.b, p.by_section, results.sections) for p in pairs)
    return [
        section_heading("q1-designs"),
        Paragraph(
            "Paired differences in clicks per request (▲ the first is better: the interval lies above 0; "
            "▼ worse; = no significant difference)."
        ),
        _pair_table(pairs, results.groups),
        Bullets(sentences),
    ]


# --- question 2 ---------------------------------------------------------------------------------------------


def _full_data_sentence(gain_sections: Sequence[str], loss_sections: Sequence[str]) -> str:
    if gain_sections:
        text = (
            f"With all of their data, consolidation gains from cross-learning in {names(gain_sections)}: "
            "there the consolidated model beats the independent models significantly."
        )
    else:
        text = (
            "With all of their data, the consolidated model beats the independent models in no section: "
            "no cross-learning gain beyond noise."
        )
    if loss_sections:
        text += f" It is significantly worse in {names(loss_sections)}."
    return text


def _curve_sentence(results: CompareResults) -> str:
    cross = results.cross_learning
    gain_points = [p for p in cross.curve if p.gain.verdict == "better"]
    loss_points = [p for p in cross.curve if p.gain.verdict == "worse"]
    if gain_points:
        text = (
            f"Along the curve, the consolidated model beats the independent `{cross.section}` model when the "
            "section has "
            + ", ".join(
                f"{100 * p.share:g}% of its data ({fmt(p.lists, 0)} lists: {cell(p.gain, signed=True)})"
                for p in gain_points
            )
            + "."
        )
    else:
        text = (
            f"Along the curve, the consolidated model beats the independent `{cross.section}` model at no "
            "share of the section's own data."
        )
    if loss_points:
        text += " It is worse at " + ", ".join(f"{100 * p.share:g}%" for p in loss_points) + "."
    return text


def does_consolidation_learn_across_sections(results: CompareResults) -> list[Block]:
    """Question 2: the consolidated model against independent models, with full data and along the curve
    section's own data."""
    cross = results.cross_learning
    section = cross.section
    rows = tuple(
        (
            f"`{s}`",
            cell(results.metric("consolidated", s, "clicks")),
            cell(results.metric("independent", s, "clicks")),
            diff_cell(cross.by_section[s]),
        )
        for s in results.sections
    )
    curve_rows = tuple(
        (
            f"{100 * p.share:g}%",
            fmt(p.lists, 0),
            cell(p.consolidated["clicks"]),
            cell(p.independent["clicks"]),
            diff_cell(p.gain),
            diff_cell(p.gain_ndcg),
        )
        for p in cross.curve
    )
    curve_headers = (
        "share",
        "training lists",
        "consolidated",
        "independent",
        "difference (clicks)",
        "difference (NDCG)",
    )
    return [
        section_heading("q2-cross-learning"),
        Paragraph(
            "Per section, with every section's full data: clicks per request and the paired difference."
        ),
        Table(("section", "consolidated", "independent", "consolidated − independent"), rows),
        Paragraph(
            f"The curve: `{section}` (the section with the least traffic, unless configured) keeps only a "
            "share of its own logged lists (stats, train and validation windows); the other sections keep "
            f"theirs. Both designs are retrained and valued on the same `{section}` evaluation requests."
        ),
        Table(curve_headers, curve_rows),
        Bullets((_full_data_sentence(cross.gain_sections, cross.loss_sections), _curve_sentence(results))),
        figure(results, "cross_learning"),
    ]


# --- question 3 ---------------------------------------------------------------------------------------------


def does_the_overall_winner_lose_a_section(results: CompareResults) -> list[Block]:
    """Question 3: Simpson-style reversals, where a pair's overall winner loses significantly in a section."""
    rev = results.reversals
    flagged = rev.flagged
    blocks: list[Block] = [section_heading("q3-reversals"), Paragraph(f"Rule: {rev.rule}")]
    if rev.no_overall_winner:
        blocks.append(
            Paragraph(
                f"No overall winner in {len(rev.no_overall_winner)} pair(s), whose overall difference is not "
                "significant: " + ", ".join(f"`{p}`" for p in rev.no_overall_winner) + "."
            )
        )
    if not flagged:
        blocks.append(Paragraph(f"No reversal among the {rev.pairs_checked} (pair, section) checks."))
        return blocks
    blocks.append(
        Paragraph(
            f"{len(flagged)} reversal(s) among the {rev.pairs_checked} (pair, section) checks: the overall "
            "winner loses significantly in that section."
        )
    )
    rows = tuple(
        (f"`{f.winner}` over `{f.loser}`", diff_cell(f.overall), f"`{f.section}`", diff_cell(f.section_diff))
        for f in flagged
    )
    headers = ("overall winner", "overall difference", "section", "difference in the section")
    blocks.append(Table(headers, rows, "lrlr"))
    return blocks


# --- question 4 ---------------------------------------------------------------------------------------------


def does_stratifying_the_union_help(results: CompareResults) -> list[Block]:
    """Question 4: the consolidated model trained on the traffic, equal and business unions."""
    unions = results.stratification.unions
    groups = results.groups
    sections = results.sections
    rows = tuple(
        (f"`{union}`", *(cell(data.clicks.get(g)) for g in groups)) for union, data in unions.items()
    )
    diff_rows = tuple(
        (f"`{u}` − `traffic`", *(diff_cell(d.vs_traffic.get(g)) for g in groups))
        for u, d in unions.items()
        if d.vs_traffic
    )
    list_rows = tuple(
        (f"`{u}`", *(fmt(d.training_lists.get(s), 0) for s in sections)) for u, d in unions.items()
    )
    sentences = []
    for union, data in unions.items():
        if not data.vs_traffic:
            continue
        split = _split(data.vs_traffic, sections)
        overall = data.vs_traffic[ALL]
        sentences.append(
            f"`{union}` against `traffic`: overall {cell(overall, signed=True)} ({overall.verdict}); "
            f"better in {names(split['better'])}, worse in {names(split['worse'])}, no significant "
            f"difference in {names(split['tie'])}."
        )
    blocks: list[Block] = [
        section_heading("q4-stratification"),
        Paragraph(
            "The consolidated model trained on each union of the sections' training lists (clicks per "
            "request)."
        ),
        Table(("union", *groups), rows),
    ]
    if diff_rows:
        blocks.append(Table(("paired difference", *groups), diff_rows))
    blocks.append(Paragraph("Training lists with a positive label per section (mean over seeds)."))
    blocks.append(Table(("union", *sections), list_rows))
    if sentences:
        blocks.append(Bullets(tuple(sentences)))
    blocks.append(figure(results, "stratification"))
    return blocks


# --- question 5 ---------------------------------------------------------------------------------------------


def _segment_verdicts(by_segment: Mapping[str, KnobGain], segments: Sequence[str], verdict: str) -> list[str]:
    return [s for s in segments if s in by_segment and by_segment[s].vs_best_fixed.verdict == verdict]


def _bandit_gain_tables(
    results: CompareResults, groups: Sequence[str], segments: Sequence[str]
) -> list[Block]:
    by_section = results.bandit.by_section
    blocks: list[Block] = []
    for key, other in (("vs_best_fixed", "best fixed arm"), ("vs_default", "default arm")):
        rows = tuple(
            (
                f"`{g}`",
                *(
                    diff_cell(
                        getattr(by_section[g].by_segment[seg], key)
                        if seg in by_section[g].by_segment
                        else None
                    )
                    for seg in segments
                ),
                diff_cell(getattr(by_section[g], key)),
            )
            for g in groups
        )
        blocks.append(Paragraph(f"Bandit knobs minus the {other}, clicks per request, by user segment."))
        blocks.append(Table(("section", *segments, "all segments"), rows))
    return blocks


def _bandit_gain_sentences(
    results: CompareResults, groups: Sequence[str], segments: Sequence[str]
) -> list[str]:
    sentences = []
    for g in groups:
        row = results.bandit.by_section[g]
        gains = _segment_verdicts(row.by_segment, segments, "better")
        losses = _segment_verdicts(row.by_segment, segments, "worse")
        label = "Overall" if g == ALL else f"In `{g}`"
        text = (
            f"{label}, the bandit's gain over the best fixed arm is {cell(row.vs_best_fixed, signed=True)} "
            f"({row.vs_best_fixed.verdict}) and over the default arm {cell(row.vs_default, signed=True)} "
            f"({row.vs_default.verdict})"
        )
        if gains or losses:
            text += f"; it gains significantly for {names(gains)} and loses for {names(losses)}"
        sentences.append(text + ".")
    return sentences


def _knob_choice_rows(results: CompareResults, segments: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Per section and knob: the most chosen value per segment (and overall), with its share."""
    rows = []
    for section, knobs in results.bandit.knob_shares.items():
        for knob, shares in knobs.items():
            cells = []
            for seg in [*segments, ALL]:
                values = shares.get(seg)
                if not values:
                    cells.append("–")
                    continue
                value, share = max(values.items(), key=lambda kv: kv[1])
                cells.append(f"{value} ({percent(share)})")
            rows.append((f"`{section}`", f"`{knob}`", *cells))
    return tuple(rows)


def does_the_bandit_beat_fixed_knobs(results: CompareResults) -> list[Block]:
    """Question 5: bandit-chosen knobs against the best fixed arm and the default arm, per section and user
    segment, and which knob values the bandit chose for whom."""
    bandit = results.bandit
    groups = [g for g in results.groups if g in bandit.by_section]
    segments = sorted({s for g in groups for s in bandit.by_section[g].by_segment})
    freshness = bandit.freshness_zero_share
    fresh_text = (
        "Share of requests served with freshness weight 0 by the bandit: "
        + ", ".join(f"`{s}` {percent(v)}" for s, v in freshness.items())
        + "."
        if freshness
        else "No section has a freshness weight knob."
    )
    best_rows = tuple(
        (
            f"`{s}`",
            "; ".join(f"{arm_label(results, s, a)} ({ids.count(a)})" for a in dict.fromkeys(ids)),
            str(len(set(ids))),
        )
        for s, ids in bandit.best_fixed_arms.items()
    )
    return [
        section_heading("q5-bandit"),
        *_bandit_gain_tables(results, groups, segments),
        Bullets(tuple(_bandit_gain_sentences(results, groups, segments))),
        figure(results, "bandit_gains"),
        Paragraph(
            "Which knob values the bandit chooses for whom: the most chosen value of each knob per user "
            "segment (share of that segment's requests)."
        ),
        Table(("section", "knob", *segments, "all"), _knob_choice_rows(results, segments)),
        Paragraph(fresh_text),
        figure(results, "bandit_arms"),
        Paragraph(
            "The best fixed arm of each section (chosen per seed on the tuning sample), by its knob values:"
        ),
        Table(("section", "arms chosen (seeds)", "distinct"), best_rows, "llr"),
        *headroom_blocks(results),
    ]


# --- question 6 ---------------------------------------------------------------------------------------------


def _replay_rows(rows: Sequence[ReplayRow], first: Callable[[ReplayRow], str]) -> tuple[tuple[str, ...], ...]:
    return tuple(
        (
            first(r),
            f"`{r.estimator}`",
            cell(r.estimate),
            cell(r.truth),
            cell(r.relative_error, 3, signed=True),
            percent(r.coverage),
        )
        for r in rows
    )


def _replay_sentences(results: CompareResults) -> list[str]:
    by_estimator = results.replay.by_estimator
    sentences = []
    if by_estimator:
        best = min(by_estimator, key=lambda e: by_estimator[e].abs_relative_error)
        worst = max(by_estimator, key=lambda e: by_estimator[e].abs_relative_error)
        sentences.append(
            f"Per section, `{best}` comes closest to the truth (mean absolute relative error "
            f"{percent(by_estimator[best].abs_relative_error, 1)}) and `{worst}` is furthest "
            f"({percent(by_estimator[worst].abs_relative_error, 1)})."
        )
        low_cover = [e for e, v in by_estimator.items() if v.coverage < 0.9]
        if low_cover:
            sentences.append(
                f"The 95% bootstrap intervals of {names(low_cover)} cover the truth in fewer than 90% of the "
                "(seed, policy, section) cases: "
                + ", ".join(f"`{e}` {percent(by_estimator[e].coverage)}" for e in low_cover)
                + "."
            )
        else:
            sentences.append("Every estimator's intervals cover the truth in at least 90% of the cases.")
    biased = [
        r
        for r in results.replay.rows
        if r.section == ALL and (num(r.relative_error.low) > 0 or num(r.relative_error.high) < 0)
    ]
    if biased:
        sentences.append(
            "Over all sections, the relative error is significantly different from 0 for "
            + ", ".join(
                f"`{r.policy}` with `{r.estimator}` ({cell(r.relative_error, signed=True)})" for r in biased
            )
            + "."
        )
    else:
        sentences.append("Over all sections, no relative error is significantly different from 0.")
    reconcile = _replay_reconciliation(results)
    if reconcile:
        sentences.append(reconcile)
    return sentences


def _replay_reconciliation(results: CompareResults) -> str | None:
    """How the replay's truth (under the logging scorer) orders the bandit and the best fixed arm, against
    question 5 (on top of the base ranker), in words: the two measure different things."""
    truth = {
        r.policy: r.truth
        for r in results.replay.rows
        if r.section == ALL and r.estimator == next(iter(results.replay.by_estimator), r.estimator)
    }
    gain = results.bandit.by_section.get(ALL)
    if "bandit" not in truth or "best_fixed" not in truth or gain is None:
        return None
    replay_ahead = num(truth["bandit"].mean) > num(truth["best_fixed"].mean)
    served = gain.vs_best_fixed
    order = "above" if replay_ahead else "below"
    head = (
        f"The replay's truth puts the bandit {order} the best fixed arm ({fmt(truth['bandit'].mean)} against "
        f"{fmt(truth['best_fixed'].mean)} clicks per request on the log's test window)"
    )
    agrees = served.verdict == "tie" or (served.verdict == "better") == replay_ahead
    if agrees:
        return head + f", in line with question 5 ({cell(served, signed=True)})."
    return (
        head
        + f", while question 5 finds it {cell(served, signed=True)} against the best fixed arm. Both are "
        "exact, but of different things: the replay values each policy on the logged requests under the "
        "logging scorer (the order the log was written with), question 5 on fresh requests on top of the "
        "base ranker, for which the best fixed arm was chosen; an arm that helps one scorer can hurt the "
        "other."
    )


def does_replay_recover_the_truth(results: CompareResults) -> list[Block]:
    """Question 6: offline replay estimates of the knob policies against their exact value."""
    replay = results.replay
    est_rows = tuple(
        (f"`{e}`", percent(v.abs_relative_error, 1), percent(v.coverage))
        for e, v in replay.by_estimator.items()
    )
    overall = [r for r in replay.rows if r.section == ALL]
    bandit = [r for r in replay.rows if r.section != ALL and r.policy == "bandit"]
    headers = ("estimator", "estimate", "truth", "relative error", "coverage")
    return [
        section_heading("q6-replay"),
        Paragraph(
            "The knob policies of question 5 ("
            + ", ".join(f"`{p}` as in `{s}`" for p, s in replay.policies.items())
            + ") replayed on the log's test window, whose rewards come from the logging scorer, against the "
            "exact value of each policy on those very requests under the same scorer. Relative error = "
            "(estimate − truth) / truth; coverage = share of seeds whose bootstrap interval contains the "
            "truth."
        ),
        Table(("estimator", "mean absolute relative error", "coverage"), est_rows),
        Bullets(tuple(_replay_sentences(results))),
        Paragraph("Over all sections:"),
        Table(("policy", *headers), _replay_rows(overall, lambda r: f"`{r.policy}`")),
        Paragraph("The bandit, per section:"),
        Table(("section", *headers), _replay_rows(bandit, lambda r: f"`{r.section}`")),
        figure(results, "replay_vs_truth"),
    ]


#: The report's questions, in order, after the headline.
QUESTIONS = (
    does_consolidation_beat_the_tuned_base_ranker,
    does_consolidation_learn_across_sections,
    does_the_overall_winner_lose_a_section,
    does_stratifying_the_union_help,
    does_the_bandit_beat_fixed_knobs,
    does_replay_recover_the_truth,
    does_a_section_feature_hurt_the_others,  # simulator.report_feature_check
)
