"""Each question of the report, on results built so that the answer is known (`make_results`: every strategy
earns 1.0 clicks per request plus an edge; without jitter, strategies without an edge tie exactly)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from heuristics import SectionsConfig
from simulator.compare_results import Difference
from simulator.compare_settings import ALL
from simulator.report_blocks import Bullets, Figure, Heading, Paragraph, Table
from simulator.report_questions import (
    QUESTIONS,
    SECTIONS,
    does_consolidation_beat_the_tuned_base_ranker,
    does_consolidation_learn_across_sections,
    does_replay_recover_the_truth,
    does_stratifying_the_union_help,
    does_the_bandit_beat_fixed_knobs,
    does_the_overall_winner_lose_a_section,
    which_design_wins,
)
from tests.simulator.test_compare_results import SECTION_NAMES, make_results


def edges(strategy: str, value: float, sections=SECTION_NAMES) -> dict[tuple[str, str], float]:
    return {(strategy, s): value for s in sections}


def text_of(blocks) -> str:
    """Every sentence of the blocks (paragraphs and bullets), one per line."""
    out = []
    for block in blocks:
        if isinstance(block, Paragraph):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out += block.items
    return "\n".join(out)


def tables_of(blocks) -> list[Table]:
    return [b for b in blocks if isinstance(b, Table)]


@pytest.fixture(scope="module")
def tie():
    return make_results({}, jitter=0.0)


@pytest.fixture(scope="module")
def consolidated_ahead():
    return make_results(
        {**edges("consolidated", 0.2), **edges("random", -0.5), **edges("oracle", 0.5)}, jitter=0.0
    )


@pytest.mark.parametrize(
    ("question", "anchor"),
    [
        (which_design_wins, "headline"),
        *zip(QUESTIONS, [a for a in SECTIONS if a.startswith("q")], strict=True),
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_question_opens_with_its_section_heading(tie, question, anchor):
    first = question(tie)[0]
    assert first == Heading(SECTIONS[anchor], 2, anchor)


def test_which_design_wins_names_the_leader_and_its_share_of_the_gap(consolidated_ahead):
    blocks = which_design_wins(consolidated_ahead)
    # random 0.5, oracle 1.5, consolidated 1.2 above the seed's wobble: 0.7 of the gap.
    assert "Overall, `consolidated` earns the most clicks per request among the designs" in text_of(blocks)
    assert "so `consolidated` closes 70% of the gap between them" in text_of(blocks)
    assert "decided by the paired differences of the verdict" in text_of(blocks)
    assert "Its lead is not significant" not in text_of(blocks)  # +0.2 over base+bandit, paired
    # The unpaired bars are no longer the headline's picture (the verdict's forest plot is).
    assert [b.key for b in blocks if isinstance(b, Figure)] == []


def test_which_design_wins_says_when_the_leader_ties_a_design(consolidated_ahead):
    # The same means, but the paired difference to base+bandit made a tie: the lead is then not significant.
    first = consolidated_ahead.designs.pairs[0]
    tied = Difference(mean=0.2, low=-0.1, high=0.5, n=5, per_seed=(), verdict="tie")
    pair = replace(first, by_section={**first.by_section, ALL: tied})
    results = replace(
        consolidated_ahead,
        designs=replace(consolidated_ahead.designs, pairs=(pair, *consolidated_ahead.designs.pairs[1:])),
    )
    text = text_of(which_design_wins(results))
    assert "Its lead is not significant over `base+bandit`" in text


def test_does_consolidation_beat_the_tuned_base_ranker_when_clearly_better(consolidated_ahead):
    text = text_of(does_consolidation_beat_the_tuned_base_ranker(consolidated_ahead))
    assert "Overall, `consolidated` beats `base+bandit` (+0.200 [+0.200, +0.200] clicks per request)" in text
    assert "it wins in `discover`, `similar_items`, `category_explore` and `search`." in text
    assert "Overall, `consolidated+bandit` loses to `consolidated`" in text


def test_does_consolidation_beat_the_tuned_base_ranker_on_a_tie(tie):
    blocks = does_consolidation_beat_the_tuned_base_ranker(tie)
    text = text_of(blocks)
    assert "Overall, `consolidated` does not differ significantly from `base+bandit`" in text
    assert (
        "shows no significant difference in `discover`, `similar_items`, `category_explore` and `search`"
        in text
    )
    assert "wins in" not in text
    (table,) = tables_of(blocks)
    assert all(cell.endswith(" =") for row in table.rows for cell in row[1:])


def test_does_consolidation_learn_across_sections_finds_the_gain(consolidated_ahead):
    text = text_of(does_consolidation_learn_across_sections(consolidated_ahead))
    sections = "`discover`, `similar_items`, `category_explore` and `search`"
    assert f"consolidation gains from cross-learning in {sections}" in text
    # The curve: 0.3 * (1 - share) ahead at 5% (50 lists) and 20% (200 lists) of category_explore's data.
    assert "when the section has 5% of its data (50 lists: +0.285" in text
    assert "20% of its data (200 lists: +0.240" in text


def test_does_consolidation_learn_across_sections_without_a_gain():
    # Independent models ahead by 0.1 with full data, and by 0.5 on the curve's small shares.
    curve = {(f"independent@{share:g}", "category_explore"): 0.5 for share in (0.05, 0.2)}
    results = make_results({**edges("independent", 0.1), **curve}, jitter=0.0)
    text = text_of(does_consolidation_learn_across_sections(results))
    assert "the consolidated model beats the independent models in no section: no cross-learning gain" in text
    assert (
        "It is significantly worse in `discover`, `similar_items`, `category_explore` and `search`." in text
    )
    assert "model at no share of the section's own data. It is worse at 5%, 20%, 100%." in text


def test_does_the_overall_winner_lose_a_section_finds_none_on_a_tie(tie):
    text = text_of(does_the_overall_winner_lose_a_section(tie))
    # Every pair of the 8 designs ties overall: none has an overall winner, so none is checked or flagged.
    assert "No overall winner in 28 pair(s), whose overall difference is not significant" in text
    assert "`consolidated vs base+bandit`" in text
    assert "No reversal among the 0 (pair, section) checks." in text


def test_does_the_overall_winner_lose_a_section_flags_the_reversal():
    # consolidated wins overall (+0.4 - 0.2 over four sections) but loses every seed in search.
    results = make_results({("consolidated", "discover"): 0.4, ("consolidated", "search"): -0.2}, jitter=0.0)
    blocks = does_the_overall_winner_lose_a_section(results)
    # Only consolidated's 7 pairs have an overall winner (the others tie exactly): 7 x 4 checks.
    assert "7 reversal(s) among the 28 (pair, section) checks" in text_of(blocks)
    (table,) = tables_of(blocks)
    assert {(row[0], row[2]) for row in table.rows} == {
        (f"`consolidated` over `{other}`", "`search`")
        for other in (
            "independent",
            "base",
            "base+default",
            "base+best_fixed",
            "base+best_fixed_logged",
            "base+bandit",
            "consolidated+bandit",
        )
    }


def test_does_stratifying_the_union_help_reads_each_union_against_traffic():
    results = make_results(
        {("consolidated[equal]", "discover"): 0.2, ("consolidated[business]", "search"): -0.2}, jitter=0.0
    )
    text = text_of(does_stratifying_the_union_help(results))
    # A 0.2 edge in one of four sections is 0.05 overall.
    equal = "`equal` against `traffic`: overall +0.050 [+0.050, +0.050] (better); better in `discover`, "
    business = "`business` against `traffic`: overall -0.050 [-0.050, -0.050] (worse); better in none, "
    assert equal + "worse in none" in text
    assert business + "worse in `search`" in text


def test_does_the_bandit_beat_fixed_knobs_when_it_gains_everywhere():
    results = make_results(edges("base+bandit", 0.2), jitter=0.0)
    text = text_of(does_the_bandit_beat_fixed_knobs(results))
    assert "Overall, the bandit's gain over the best fixed arm is +0.200 [+0.200, +0.200] (better)" in text
    assert "it gains significantly for `casual`, `heavy` and `new` and loses for none" in text


def test_does_the_bandit_beat_fixed_knobs_on_a_tie(tie):
    text = text_of(does_the_bandit_beat_fixed_knobs(tie))
    assert "Overall, the bandit's gain over the best fixed arm is +0.000 [+0.000, +0.000] (tie)" in text
    assert "gains significantly" not in text


def test_does_the_bandit_beat_fixed_knobs_reports_the_knob_values_it_chose(tie):
    # Every segment of every section: arms 0, 1 and 2 served 10, 20 and 30 times.
    config = SectionsConfig.load()
    counts = {0: 10, 1: 20, 2: 30}
    blocks = does_the_bandit_beat_fixed_knobs(tie)
    choice = next(t for t in tables_of(blocks) if t.headers[:2] == ("section", "knob"))
    mmr = config["discover"].arms
    share_of_one = sum(c for a, c in counts.items() if mmr[a].knobs["mmr.lambda"] == 1.0) / 60
    row = next(r for r in choice.rows if r[:2] == ("`discover`", "`mmr.lambda`"))
    assert row[-1] == f"1 ({100 * share_of_one:.0f}%)"
    zero = {
        s: sum(c for a, c in counts.items() if config[s].arms[a].knobs["freshness.weight"] == 0) / 60
        for s in SECTION_NAMES
    }
    text = text_of(blocks)
    for section, share in zero.items():
        assert f"`{section}` {100 * share:.0f}%" in text
    assert f"`{ALL}` {100 * sum(zero.values()) / 4:.0f}%" in text


def test_does_replay_recover_the_truth_names_the_biased_estimator(tie):
    # Every estimator is 1% above the truth with an interval of ±0.05 around it, but dm is 20% above.
    text = text_of(does_replay_recover_the_truth(tie))
    assert "`dm` is furthest (20.0%)" in text
    assert "comes closest to the truth (mean absolute relative error 1.0%)" in text
    assert "The 95% bootstrap intervals of `dm` cover the truth in fewer than 90%" in text
    assert "`bandit` with `dm` (+0.200 [+0.200, +0.200])" in text
