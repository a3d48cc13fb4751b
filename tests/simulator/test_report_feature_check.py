"""Question 7 of the report on answers built to be known: its wording follows the signs and intervals of the
differences (regression found, no regression, too noisy), and the injected bug is read beside the correct
serving."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ranker.config import RankerConfig
from simulator.compare_settings import CompareSettings
from simulator.feature_check_stats import summarize_feature_check
from simulator.report import render_markdown
from simulator.report_blocks import Heading
from simulator.report_feature_check import (
    ANCHOR,
    TITLE,
    does_a_section_feature_hurt_the_others,
    finding_sentence,
)
from simulator.report_questions import SECTIONS
from tests.simulator.test_compare_results import make_results
from tests.simulator.test_feature_check_stats import FEATURE, seeds
from tests.simulator.test_feature_check_stats import SECTIONS as SECTION_NAMES
from tests.simulator.test_report_questions import tables_of, text_of

DEFAULT_ONLY = ("discover", "category_explore", "search")


@pytest.fixture(scope="module")
def base():
    return make_results({}, jitter=0.0)


def answer(base, effect, spread=0.001, leak=None):
    """The report's question 7 on `base` results whose feature check is summarised from `seeds`."""
    settings = CompareSettings(feature_check=(FEATURE,), feature_leak=leak is not None)
    check = summarize_feature_check(
        seeds(effect, spread, leak=leak), settings, sections=SECTION_NAMES, ranker_config=RankerConfig.load()
    )
    return does_a_section_feature_hurt_the_others(replace(base, feature_check=check))


def test_feature_check_section_is_one_of_the_reports_sections(base):
    assert SECTIONS[ANCHOR] == TITLE
    assert does_a_section_feature_hurt_the_others(base)[0] == Heading(TITLE, 2, ANCHOR)
    assert f"## {TITLE}" in render_markdown(base)


def test_feature_check_not_run_says_how_to_run_it(base):
    text = text_of(does_a_section_feature_hurt_the_others(base))
    assert "Not checked in this run" in text
    assert "--feature-check" in text


def test_feature_check_reports_a_regression_where_and_how_much(base):
    blocks = answer(base, {"similar_items": 0.2, "discover": -0.1, "search": -0.02})
    text = text_of(blocks)
    assert "Regression: with `source_similarity` the consolidated model is worse" in text
    assert "worst in `discover` (-0.100 [" in text
    assert "significantly worse (clicks or NDCG) in `discover` and `search`" in text
    assert (
        "In the sections that carry `source_similarity` (`similar_items`), the consolidated model is better"
        in (text)
    )
    assert "the independent `similar_items` model is better with it (+0.400 [" in text
    (table,) = tables_of(blocks)
    labels = [row[0] for row in table.rows]
    assert labels == [
        "`similar_items` (carries it)",
        *(f"`{s}` (default only)" for s in DEFAULT_ONLY),
        "sections that carry it, pooled",
        "default-only sections, pooled",
        "independent `similar_items` model",
    ]
    discover = table.rows[1]
    assert discover[1].startswith("-0.100 [")
    assert discover[1].endswith("▼")


def test_feature_check_wording_follows_the_sign_of_the_difference(base):
    worse = text_of(answer(base, {s: -0.05 for s in DEFAULT_ONLY}))
    better = text_of(answer(base, {s: 0.05 for s in DEFAULT_ONLY}))
    flat = text_of(answer(base, {}))
    assert worse.startswith("Each feature")
    assert "Regression:" in worse
    assert "No regression: with `source_similarity` the consolidated model is better" in better
    assert "No regression: with `source_similarity` the consolidated model is no worse" in flat
    assert "rules out a loss of more than 2% of the clicks" in flat
    assert "Regression:" not in better + flat
    # The carrying section's verdict follows its own sign.
    hurt = text_of(answer(base, {"similar_items": -0.2}))
    assert "the consolidated model is worse with it (-0.200 [" in hurt
    assert "the independent `similar_items` model is worse with it (-0.400 [" in hurt


def test_feature_check_wording_follows_the_width_of_the_interval(base):
    tight = text_of(answer(base, {}, spread=0.001))
    wide = text_of(answer(base, {}, spread=0.08))
    assert "No regression" in tight
    assert "Too noisy to tell" not in tight
    assert "Too noisy to tell: with `source_similarity` the consolidated model shows no significant" in wide
    assert "more seeds or evaluation requests would tell" in wide


def test_feature_check_reads_the_injected_bug_beside_the_correct_serving(base):
    blocks = answer(base, {"similar_items": 0.2}, leak={"similar_items": 0.2, "discover": -0.1})
    text = text_of(blocks)
    assert "With the pipeline bug injected: the model with `source_similarity` served computing it" in text
    assert text.count("Regression:") == 1
    assert (
        text.index("No regression") < text.index("With the pipeline bug injected") < text.index("Regression:")
    )
    correct, leaking = tables_of(blocks)
    assert correct.rows[1][1].endswith("=")  # discover, served correctly: a tie
    assert leaking.rows[1][1].startswith("-0.100 [")
    assert leaking.rows[1][1].endswith("▼")
    assert leaking.rows[0] == correct.rows[0]  # the carrying section is served the same either way


def test_feature_check_names_a_single_worse_section_when_the_pool_is_too_noisy(base):
    settings = CompareSettings(feature_check=(FEATURE,))
    check = summarize_feature_check(
        seeds({}, 0.08), settings, sections=SECTION_NAMES, ranker_config=RankerConfig.load()
    )
    (found,) = check.features
    assert found.finding == "too_noisy"
    quiet = finding_sentence(found, check.tolerance)
    alone = finding_sentence(replace(found, regressed_in=("search",)), check.tolerance)
    assert "Alone" not in quiet
    added = " Alone, `search` is significantly worse (clicks or NDCG), one of 3 sections tested."
    assert alone == quiet + added
