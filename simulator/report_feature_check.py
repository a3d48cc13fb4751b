"""Question 7 of the report: does a feature added for one section make the consolidated model worse in the
sections that never see it? Every sentence is generated from `simulator.compare_results.FeatureCheck`."""

from __future__ import annotations

import math

from simulator.compare_answers import FeatureEffect, FeatureFinding
from simulator.compare_results import CompareResults
from simulator.report_blocks import Block, Bullets, Heading, Paragraph, Table
from simulator.report_format import cell, diff_cell, names, num, percent

ANCHOR = "q7-feature-check"
TITLE = "7. A feature added for one section, and the sections that never see it"
CARRYING, DEFAULT_ONLY = "carrying", "default_only"


def _relative(effect: FeatureEffect, value: float) -> str:
    """`value` (clicks per request) as a signed share of the clicks without the feature."""
    base = num(effect.baseline)
    if not (math.isfinite(value) and math.isfinite(base) and base > 0):
        return "–"
    share = value / base
    return ("+" if share >= 0 else "-") + percent(abs(share), 1)


def _effect_row(label: str, effect: FeatureEffect) -> tuple[str, ...]:
    return (
        label,
        diff_cell(effect.clicks),
        _relative(effect, num(effect.clicks.mean)),
        diff_cell(effect.ndcg),
    )


def effect_table(found: FeatureFinding) -> Table:
    """Per section (carrying first), pooled groups, then each carrying section's independent model."""
    c = found.consolidated
    rows = [_effect_row(f"`{s}` (carries it)", c[s]) for s in found.carrying]
    rows += [_effect_row(f"`{s}` (default only)", c[s]) for s in found.default_only]
    rows += [
        _effect_row("sections that carry it, pooled", c[CARRYING]),
        _effect_row("default-only sections, pooled", c[DEFAULT_ONLY]),
    ]
    rows += [_effect_row(f"independent `{s}` model", e) for s, e in found.independent.items()]
    headers = ("model and requests", "clicks: with − without", "relative", "NDCG: with − without")
    return Table(headers, tuple(rows))


def finding_sentence(found: FeatureFinding, tolerance: float, *, leaking: bool = False) -> str:
    """Regression found (where, how much), no regression, or too noisy to tell, in the default-only
    sections (`leaking`: with the bug injected, they should only see it)."""
    only = "should only see" if leaking else "only see"
    effect = found.consolidated[DEFAULT_ONLY]
    clicks = effect.clicks
    where = names(found.default_only)
    amount = f"{cell(clicks, signed=True)} clicks per request ({_relative(effect, num(clicks.mean))})"
    feature = f"`{found.feature}`"
    if found.finding == "regression":
        worst = min(found.default_only, key=lambda s: num(found.consolidated[s].clicks.mean))
        text = (
            f"Regression: with {feature} the consolidated model is worse in the sections that {only} its "
            f"default, {amount} over {where} pooled; worst in `{worst}` "
            f"({cell(found.consolidated[worst].clicks, signed=True)})"
        )
        significant = found.regressed_in
        text += f", significantly worse (clicks or NDCG) in {names(significant)}." if significant else "."
        return text
    if found.finding == "no_regression":
        verb = "better" if clicks.verdict == "better" else "no worse"
        return (
            f"No regression: with {feature} the consolidated model is {verb} in the sections that {only} "
            f"its default, {amount} over {where} pooled; the interval rules out a loss of more than "
            f"{percent(tolerance, 0)} of the clicks."
        )
    low = _relative(effect, num(clicks.low))
    text = (
        f"Too noisy to tell: with {feature} the consolidated model shows no significant difference in the "
        f"sections that {only} its default, {amount} over {where} pooled, but the interval still allows a "
        f"loss of {low.lstrip('-')} (more than {percent(tolerance, 0)} of the clicks); more seeds or "
        "evaluation requests would tell."
    )
    if found.regressed_in:
        text += (
            f" Alone, {names(found.regressed_in)} is significantly worse (clicks or NDCG), one of "
            f"{len(found.default_only)} sections tested."
        )
    return text


def _compared(effect: FeatureEffect) -> str:
    word = {"better": "better", "worse": "worse", "tie": "not significantly different"}[effect.clicks.verdict]
    return f"{word} with it ({cell(effect.clicks, signed=True)} clicks per request)"


def own_section_sentence(found: FeatureFinding) -> str:
    """What the feature does in the sections that carry it, for both designs."""
    independent = "; ".join(
        f"the independent `{s}` model is {_compared(e)}" for s, e in found.independent.items()
    )
    return (
        f"In the sections that carry `{found.feature}` ({names(found.carrying)}), the consolidated model is "
        f"{_compared(found.consolidated[CARRYING])}; {independent}."
    )


def _not_run() -> list[Block]:
    return [
        Paragraph(
            "Not checked in this run: `--feature-check FEATURE` (`source_similarity` by default with "
            "`--quick`) retrains the consolidated model without a section-context feature and compares."
        )
    ]


def does_a_section_feature_hurt_the_others(results: CompareResults) -> list[Block]:
    """Question 7: each checked feature, the models with minus without it, per section and pooled; with the
    injected pipeline bug, the same read both ways."""
    blocks: list[Block] = [Heading(TITLE, 2, ANCHOR)]
    check = results.feature_check
    if check is None:
        return blocks + _not_run()
    blocks.append(
        Paragraph(
            "Each feature is removed from the consolidated model and from the independent models of the "
            "sections that carry it; both are retrained on the same log with the same seeds and served on "
            "the same evaluation requests. Paired differences, model with the feature minus without it (▲ "
            "the feature helps: the interval lies above 0; ▼ it hurts; = no significant difference), per "
            "section, then pooled over the sections that carry it and over those that only see its default "
            "value; relative: against the clicks without the feature."
        )
    )
    leaking = {f.feature: f for f in check.leaking}
    for found in check.features:
        carried = f"carried by {names(found.carrying)}"
        blocks += [Heading(f"`{found.feature}` ({carried})", 3), effect_table(found)]
        sentences = [finding_sentence(found, check.tolerance), own_section_sentence(found)]
        bug = leaking.get(found.feature)
        if bug is not None:
            blocks.append(Bullets(tuple(sentences)))
            blocks.append(
                Paragraph(
                    f"With the pipeline bug injected: the model with `{found.feature}` served computing it "
                    f"in every section, the requests of {names(found.default_only)} carrying its context "
                    "field (the same models without it, the same requests):"
                )
            )
            blocks.append(effect_table(bug))
            sentences = [finding_sentence(bug, check.tolerance, leaking=True)]
        blocks.append(Bullets(tuple(sentences)))
    return blocks
