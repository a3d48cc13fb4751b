"""The verdict: which design to run, built from the results' numbers (`make_results`: every strategy earns 1.0
clicks per request plus an edge per (strategy, section), so the right answer is known)."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from simulator.compare_settings import ALL, FULL, QUICK
from simulator.report import render_html, render_markdown
from simulator.report_format import arm_label, knob_short
from simulator.report_verdict import group_verdicts, run_mode, verdict_items, verdict_text
from tests.simulator.test_compare_results import SECTION_NAMES, make_results

#: A number followed by its interval, as the verdict writes it: ``+0.200 [+0.197, +0.202]``.
TRIPLE = re.compile(r"([+-]?\d+\.\d+) \[([+-]?\d+\.\d+), ([+-]?\d+\.\d+)\]")


def edges(strategy: str, value: float) -> dict[tuple[str, str], float]:
    return {(strategy, s): value for s in SECTION_NAMES}


def intervals_in(data) -> list[tuple[float, float, float]]:
    """Every (mean, low, high) of results.json, wherever it is nested."""
    found = []
    if isinstance(data, dict):
        if {"mean", "low", "high"} <= set(data) and None not in (data["mean"], data["low"], data["high"]):
            found.append((data["mean"], data["low"], data["high"]))
        for value in data.values():
            found += intervals_in(value)
    elif isinstance(data, list):
        for value in data:
            found += intervals_in(value)
    return found


def assert_every_number_has_its_interval_in_results_json(text: str, results) -> int:
    stored = intervals_in(json.loads(json.dumps(results.to_json())))
    triples = TRIPLE.findall(text)
    for mean, low, high in triples:
        digits = len(mean.split(".")[1])
        wanted = tuple(float(x) for x in (mean, low, high))
        assert any(
            all(
                abs(round(v, digits) - w) < 10 ** (-digits) / 2 + 1e-12
                for v, w in zip(s, wanted, strict=True)
            )
            for s in stored
        ), f"{mean} [{low}, {high}] is not an interval of results.json"
    # No other decimal number: every one is quoted with its interval (counts and percentages aside).
    rest = TRIPLE.sub("", text)
    assert not re.findall(r"\d\.\d", rest), re.findall(r".{30}\d\.\d.{10}", rest)
    return len(triples)


@pytest.fixture(scope="module")
def mixed():
    # consolidated better than base+bandit in discover, worse in search, no difference elsewhere.
    return make_results({("consolidated", "discover"): 0.2, ("consolidated", "search"): -0.2})


def test_every_number_in_the_verdict_appears_with_its_interval_in_results_json(mixed):
    findings, caveats = verdict_items(mixed)
    text = "\n".join([*findings, *caveats])
    assert assert_every_number_has_its_interval_in_results_json(text, mixed) >= 10
    table_text = verdict_text(mixed).split("Caveats:")[0].split("\n", 3)[3]  # after the title and header
    assert assert_every_number_has_its_interval_in_results_json(table_text, mixed) >= 15


@pytest.mark.parametrize(
    ("edge", "overall", "choice"),
    [
        (0.2, "**Run the consolidated model**: overall it earns +0.200", "consolidated"),
        (-0.2, "**Run the base ranker with tuned heuristics**: overall `consolidated` − `base+bandit` "
         "is -0.2", "base + tuned heuristics"),
        (0.0, "**No significant difference overall**", "no significant difference"),
    ],
)  # fmt: skip
def test_verdict_wording_follows_the_sign_of_the_difference(edge, overall, choice):
    results = make_results(edges("consolidated", edge), jitter=0.0)
    findings, _ = verdict_items(results)
    assert findings[0].startswith(overall)
    assert {r.group: r.choice for r in group_verdicts(results)} == {g: choice for g in (*SECTION_NAMES, ALL)}
    assert findings[0] in render_markdown(results)


def test_verdict_changes_when_one_section_swaps_sign(mixed):
    flipped = make_results({("consolidated", "discover"): -0.2, ("consolidated", "search"): 0.2})
    before = {r.group: r.choice for r in group_verdicts(mixed)}
    after = {r.group: r.choice for r in group_verdicts(flipped)}
    assert (before["discover"], before["search"]) == ("consolidated", "base + tuned heuristics")
    assert (after["discover"], after["search"]) == ("base + tuned heuristics", "consolidated")
    assert verdict_items(mixed)[0][0] != verdict_items(flipped)[0][0]
    assert "consolidated in `discover`; base + tuned heuristics in `search`" in verdict_items(mixed)[0][0]
    assert "consolidated in `search`; base + tuned heuristics in `discover`" in verdict_items(flipped)[0][0]


def test_verdict_puts_a_gap_down_to_the_knobs_when_the_rankers_tie():
    # The knobs lose 0.1 on the base ranker, and the consolidated model is the base ranker's equal.
    results = make_results({**edges("base+bandit", -0.1), **edges("consolidated+bandit", -0.1)}, jitter=0.0)
    findings, _ = verdict_items(results)
    assert findings[0].startswith("**Run the consolidated model**")
    assert "both without knobs, makes no significant difference" in findings[1]
    assert "(`base+bandit` − `base`) lose clicks (-0.100 [-0.100, -0.100])" in findings[1]
    assert findings[1].endswith("so the difference comes from the knobs, not from the ranker.")
    # The ranker carries it when the consolidated ranker itself is ahead.
    ahead = make_results(edges("consolidated", 0.1), jitter=0.0)
    assert verdict_items(ahead)[0][1].endswith("so the difference comes from the ranker.")
    # Knobs that add 0.1 to the base ranker win back part of a 0.2 ranker lead.
    both = make_results({**edges("consolidated", 0.2), **edges("base+bandit", 0.1)}, jitter=0.0)
    assert verdict_items(both)[0][1].endswith("from the ranker, the knobs winning back part of it.")
    # A ranker ahead by 0.05 and knobs losing 0.15: the 0.2 gap is three quarters the knobs'.
    split = make_results({**edges("consolidated", 0.05), **edges("base+bandit", -0.15)}, jitter=0.0)
    assert verdict_items(split)[0][1].endswith("so both contribute, the knobs most (75% of the gap).")


def test_verdict_lets_cost_decide_a_tie_and_states_both_costs(mixed):
    cost = next(s for s in verdict_items(mixed)[0] if s.startswith("Cost:"))
    lines = mixed.config_lines.by_strategy
    assert f"`consolidated` 1 model(s), 1 artifact(s), {lines['consolidated']} config lines" in cost
    assert f"{lines['base+bandit']} config lines" in cost
    assert "With no significant difference in clicks, `consolidated` is cheaper in config lines" in cost
    assert "cost decides" in cost
    ahead = make_results(edges("consolidated", 0.2), jitter=0.0)
    assert "cost decides" not in next(s for s in verdict_items(ahead)[0] if s.startswith("Cost:"))


def test_verdict_states_the_cross_learning_answer_both_ways():
    gain = make_results(edges("consolidated", 0.2), jitter=0.0)
    text = next(s for s in verdict_items(gain)[0] if s.startswith("Cross-learning"))
    assert "beats the independent per-section models in `discover` (+0.200 [+0.200, +0.200])" in text
    none = make_results(
        {
            **edges("independent", 0.1),
            **{(f"independent@{s:g}", "category_explore"): 0.5 for s in (0.05, 0.2)},
        },
        jitter=0.0,
    )
    text = next(s for s in verdict_items(none)[0] if s.startswith("Cross-learning"))
    assert "in no section and at no share of `category_explore`'s own data: no cross-learning gain" in text
    assert "it is worse in `discover` (-0.100 [-0.100, -0.100])" in text
    assert "does not come from learning across sections" not in text  # no lead over base+bandit here
    # Consolidated ahead of base+bandit, level with the independent models everywhere (the curve too).
    level = {(f"independent@{s:g}", "category_explore"): 0.3 * (1 - s) for s in (0.05, 0.2)}
    both = {**edges("consolidated", 0.2), **edges("independent", 0.2), **level}
    text = next(s for s in verdict_items(make_results(both, jitter=0.0))[0] if s.startswith("Cross-learning"))
    assert text.endswith(
        "so its lead over `base+bandit` does not come from learning across sections: independent "
        "per-section models do as well."
    )


def test_verdict_caveats_name_the_log_size_and_the_headroom(mixed):
    _, caveats = verdict_items(mixed)
    log = mixed.log[0]
    assert caveats[0].startswith(f"Log size: a custom sizes run, {log.requests:,} logged requests per seed")
    assert "a larger log may change the knobs' answer" in caveats[0]
    assert any(c.startswith("Knob headroom: the context the bandit observes can gain") for c in caveats)


@pytest.mark.parametrize(
    ("bandit", "words"),
    [(0.0, "so it captures none of the headroom that the intervals can show"), (0.05, "so it captures part")],
)
def test_verdict_says_whether_the_bandit_captured_the_headroom(bandit, words):
    # The context oracle gains 0.1 over the best fixed arm everywhere; the bandit 0 or 0.05.
    results = make_results({**edges("base+context_oracle", 0.1), **edges("base+bandit", bandit)}, jitter=0.0)
    caveat = next(c for c in verdict_items(results)[1] if c.startswith("Knob headroom"))
    assert "can gain +0.100 [+0.100, +0.100] clicks per request over the best fixed arm overall" in caveat
    assert "(by section: `discover` +0.100 [+0.100, +0.100]," in caveat
    assert words in caveat
    assert "against the fixed arm a team would pick from the log it" in caveat
    # With the bandit level with consolidated, capturing the 0.1 would tip the decision to base+bandit.
    assert ("would put `base+bandit` ahead of `consolidated` by the means" in caveat) == (bandit == 0.0)


def test_verdict_flags_a_reversal_only_against_a_significant_overall_choice():
    tilted = make_results({("consolidated", "discover"): 0.4, ("consolidated", "search"): -0.2}, jitter=0.0)
    caveats = verdict_items(tilted)[1]
    assert "Reversal: the overall choice (consolidated) loses significantly in `search`" in caveats[-1]
    balanced = make_results({("consolidated", "discover"): 0.2, ("consolidated", "search"): -0.2})
    assert not any(c.startswith("Reversal") for c in verdict_items(balanced)[1])


def test_verdict_is_the_first_thing_after_the_title_in_both_files(mixed):
    markdown = render_markdown(mixed)
    assert markdown.index("## Verdict: which design to run") < markdown.index("## Headline")
    assert markdown.splitlines()[2].startswith("Run: custom sizes, 5 seeds. Per seed: 1,000 logged requests")
    page = render_html(mixed)
    body = page.split("<body>")[1]
    assert body.index('<section id="verdict">') < body.index("<h2")
    assert body.index("<h1>") < body.index("Run: custom sizes") < body.index('<section id="verdict">')
    assert '<figure id="plot-forest">' in body.split("</section>")[0]


def test_verdict_text_is_plain_and_ends_with_the_caveats(mixed):
    text = verdict_text(mixed)
    assert text.startswith("Verdict on world 'default'\nRun: custom sizes, 5 seeds.")
    assert "`" not in text
    assert "**" not in text
    rows = [line for line in text.splitlines() if line.startswith(("discover ", "search ", "all "))]
    assert rows[0].split()[1] == "consolidated"
    assert rows[1].split()[1:4] == ["base", "+", "tuned"]
    assert text.splitlines()[-1].startswith("- ")
    assert "Caveats:" in text


def test_run_mode_names_the_preset():
    assert run_mode(QUICK) == "`--quick`"
    assert run_mode(FULL) == "full"
    assert run_mode(replace(QUICK, log_requests=5_000)) == "custom sizes"


def test_arms_are_named_by_their_knob_values(mixed):
    arms = mixed.arm_knobs["category_explore"]
    arm = next(a for a, k in arms.items() if k["category_cap.cap"] == 4 and k["freshness.weight"] == 0.2)
    label = arm_label(mixed, "category_explore", arm)
    assert "freshness 0.2" in label
    assert "cap 4" in label
    assert "half_life" not in label  # the same in every arm of the section: left out
    assert arm_label(mixed, "discover", "discover-unknown") == "`discover-unknown`"
    assert [knob_short(k) for k in ("freshness.weight", "mmr.lambda", "category_cap.cap")] == [
        "freshness",
        "mmr",
        "cap",
    ]
    assert knob_short("freshness.half_life_days") == "freshness.half_life_days"
