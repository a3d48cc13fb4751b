"""The verdict of a comparison: which design to run, per section and overall, with what it costs and the
caveats that could change the answer.

It is read from the results alone (`simulator.compare_results.CompareResults`) and every sentence is built
from their numbers: the paired differences with their 95% intervals decide (a design "wins" only where the
interval lies on one side of 0, `simulator.compare_stats.verdict`), and each number is quoted with its
interval as results.json holds it. The decision is `consolidated` against `base+bandit` (the base ranker
with the knobs the promotion gate ships); `base` (the base ranker's own order, no knobs) reads the ranker's
effect (`consolidated - base`) apart from the knobs' (`base+bandit - base`).

`verdict_blocks` is the report's first section (``<section id="verdict">`` in report.html) and
`verdict_text` the same as plain text, the last thing ``sectionrank compare`` prints; `run_header` states
the run's mode and log sizes at the top of both report files.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from simulator.compare_results import CompareResults, Difference
from simulator.compare_settings import FULL, QUICK, CompareSettings
from simulator.report_blocks import Block, Bullets, Figure, Paragraph, Section, Table
from simulator.report_format import arm_label, cell, diff_cell, names, percent
from simulator.report_plots import PLOTS

ALL = "all"
ANCHOR = "verdict"
#: The decision's pair, and the pairs that read the ranker's and the knobs' effects apart.
DESIGN = ("consolidated", "base+bandit")
RANKER = ("consolidated", "base")
KNOBS = ("base+bandit", "base")
FIXED = ("consolidated", "base+best_fixed")
#: What to run, by the verdict of ``consolidated - base+bandit``.
CHOICE = {"better": "consolidated", "worse": "base + tuned heuristics", "tie": "no significant difference"}


@dataclass(frozen=True)
class GroupVerdict:
    """The decision in one section (or ``all``) and the differences it rests on (None where not run)."""

    group: str
    choice: str
    design: Difference
    ranker: Difference | None
    knobs: Difference | None


def run_mode(settings: CompareSettings) -> str:
    """``--quick``, ``full`` or ``custom sizes``: the preset whose sizes the run used."""
    sizes = ("log_requests", "eval_requests", "tune_requests")
    for name, preset in (("`--quick`", QUICK), ("full", FULL)):
        if all(getattr(settings, s) == getattr(preset, s) for s in sizes):
            return name
    return "custom sizes"


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


def _count(value: float) -> str:
    """A count with thousands separators ("–" when missing)."""
    return f"{value:,.0f}" if math.isfinite(value) else "–"


def learning_decisions(results: CompareResults) -> float:
    """Mean decisions per seed the bandit learned from: the uniform part of the knob window (in results
    written before it, every logged decision before the test window)."""
    if results.knob_windows:
        return _mean([w.learn for w in results.knob_windows])
    headroom = results.bandit_headroom
    if headroom is not None and headroom.curve:
        return headroom.curve[-1].decisions
    return _mean([log.requests - log.windows.get("test", 0) for log in results.log])


def run_header(results: CompareResults) -> str:
    """One paragraph: the run's mode, seeds and sizes per seed, and the log's windows."""
    s = results.settings
    windows = [
        w for w in ("stats", "train", "validation", "test") if any(w in log.windows for log in results.log)
    ]
    split = ", ".join(f"{w} {_count(_mean([log.windows.get(w, 0) for log in results.log]))}" for w in windows)
    return (
        f"Run: {run_mode(s)}, {len(results.seeds)} seeds. Per seed: "
        f"{_count(_mean([log.requests for log in results.log]))} logged requests"
        + (f" (decisions by window, mean: {split})" if split else "")
        + _knob_sizes(results)
        + f"; {s.eval_requests:,} evaluation and {s.tune_requests:,} tuning requests."
    )


def _knob_sizes(results: CompareResults) -> str:
    """How much the knobs learned from, as a clause of the run header."""
    if not results.knob_windows:
        return f", the bandit learning from {_count(learning_decisions(results))} of them"
    gate = _mean([w.gate for w in results.knob_windows])
    return (
        f"; a knob window of {_count(_mean([w.requests for w in results.knob_windows]))} requests served by "
        f"the base ranker, the bandit learning from its {_count(learning_decisions(results))} uniformly "
        f"explored decisions and the gate deciding on its {_count(gate)} canary decisions"
    )


def _pair(results: CompareResults, a: str, b: str) -> Mapping[str, Difference] | None:
    for pair in results.designs.pairs:
        if (pair.a, pair.b) == (a, b):
            return pair.by_section
    return None


def group_verdicts(results: CompareResults) -> tuple[GroupVerdict, ...]:
    """The decision per section and overall (empty without ``consolidated - base+bandit``)."""
    design = _pair(results, *DESIGN)
    if design is None:
        return ()
    ranker, knobs = _pair(results, *RANKER), _pair(results, *KNOBS)
    return tuple(
        GroupVerdict(
            group=g,
            choice=CHOICE[design[g].verdict],
            design=design[g],
            ranker=ranker.get(g) if ranker else None,
            knobs=knobs.get(g) if knobs else None,
        )
        for g in results.groups
        if g in design
    )


def _effect(diff: Difference, gain: str, loss: str, tie: str = "makes no significant difference") -> str:
    word = {"better": gain, "worse": loss, "tie": tie}[diff.verdict]
    return f"{word} ({cell(diff, signed=True)})"


def _decision_sentence(overall: GroupVerdict, rows: Sequence[GroupVerdict]) -> str:
    d = cell(overall.design, signed=True)
    if overall.design.verdict == "better":
        head = (
            f"**Run the consolidated model**: overall it earns {d} clicks per request more than `base+bandit`"
        )
    elif overall.design.verdict == "worse":
        head = (
            "**Run the base ranker with tuned heuristics**: overall `consolidated` − `base+bandit` is "
            f"{d} clicks per request"
        )
    else:
        head = (
            f"**No significant difference overall**: `consolidated` − `base+bandit` is {d} clicks per request"
        )
    by = {
        choice: [r.group for r in rows if r.group != ALL and r.choice == choice] for choice in CHOICE.values()
    }
    parts = [f"{label} in {names(by[label])}" for label in CHOICE.values() if by[label]]
    return head + ("; by section, " + "; ".join(parts) if parts else "") + "."


def _attribution_sentence(overall: GroupVerdict) -> str | None:
    """The ranker's and the knobs' effects, and which of them carries a significant decision."""
    if overall.ranker is None or overall.knobs is None:
        return None
    text = (
        "Read apart: the consolidated ranker against the base ranker, both without knobs, "
        + _effect(overall.ranker, "adds clicks", "loses clicks")
        + "; the knobs on the base ranker (`base+bandit` − `base`) "
        + _effect(overall.knobs, "add clicks", "lose clicks", "make no significant difference")
    )
    verdict = overall.design.verdict
    if verdict != "tie":
        ranker_carries = overall.ranker.verdict == verdict
        knobs_against = overall.knobs.verdict == ("worse" if verdict == "better" else "better")
        if knobs_against and not ranker_carries:
            text += ", so the difference comes from the knobs, not from the ranker"
        elif ranker_carries and overall.knobs.verdict == verdict:
            text += ", so the difference comes from the ranker, the knobs winning back part of it"
        elif ranker_carries and not knobs_against:
            text += ", so the difference comes from the ranker"
        elif ranker_carries:
            # The gap is exactly the ranker's part minus the knobs' (paired means are linear).
            knob_part = -overall.knobs.mean / overall.design.mean if overall.design.mean else math.nan
            most = "the knobs" if knob_part > 0.5 else "the ranker"
            share = knob_part if knob_part > 0.5 else 1 - knob_part
            text += f", so both contribute, {most} most ({percent(share)} of the gap)"
    return text + "."


def _fixed_sentence(results: CompareResults) -> str | None:
    fixed = _pair(results, *FIXED)
    if fixed is None or ALL not in fixed:
        return None
    return (
        "Against the base ranker with each section's best fixed arm (chosen with the truth: the ceiling of "
        f"fixed tuning), the consolidated model "
        f"{_effect(fixed[ALL], 'wins', 'loses', 'does not differ significantly')}."
    )


def _cost_sentence(results: CompareResults, overall: GroupVerdict) -> str | None:
    costs, lines = results.costs, results.config_lines.by_strategy
    a, b = DESIGN
    if a not in costs or b not in costs:
        return None

    def one(name: str) -> str:
        c = costs[name]
        return (
            f"`{name}` {c.models} model(s), {c.artifacts} artifact(s), {lines.get(name, '–')} config lines, "
            f"{cell(c.train_seconds, 1)} s of training per seed"
        )

    counts = {
        "models": (costs[a].models, costs[b].models),
        "artifacts": (costs[a].artifacts, costs[b].artifacts),
        "config lines": (lines.get(a, math.nan), lines.get(b, math.nan)),
        "training time": (costs[a].train_seconds.mean, costs[b].train_seconds.mean),
    }
    cheaper_a = [k for k, (x, y) in counts.items() if x < y]
    cheaper_b = [k for k, (x, y) in counts.items() if y < x]
    text = f"Cost: {one(a)}; {one(b)}."
    for name, mine, theirs in ((a, cheaper_a, cheaper_b), (b, cheaper_b, cheaper_a)):
        if mine and not theirs:
            cheaper = f"`{name}` is cheaper " + (
                "on every count" if len(mine) == len(counts) else f"in {', '.join(mine)} (the rest equal)"
            )
            break
    else:
        cheaper = (
            f"`{a}` is cheaper in {', '.join(cheaper_a) or 'nothing'}, "
            f"`{b}` in {', '.join(cheaper_b) or 'nothing'}"
        )
    if overall.design.verdict == "tie" and (cheaper_a or cheaper_b) and not (cheaper_a and cheaper_b):
        text += f" With no significant difference in clicks, {cheaper}: cost decides."
    else:
        text += f" {cheaper[0].upper() + cheaper[1:]}."
    return text


def _cross_learning_sentence(results: CompareResults, overall: GroupVerdict) -> str:
    cross = results.cross_learning
    gains = [p for p in cross.curve if p.gain.verdict == "better" and p.share < 1]
    if cross.gain_sections:
        text = (
            "Cross-learning: the consolidated model beats the independent per-section models in "
            + ", ".join(f"`{s}` ({cell(cross.by_section[s], signed=True)})" for s in cross.gain_sections)
        )
    else:
        text = "Cross-learning: the consolidated model beats the independent per-section models in no section"
    if gains:
        best = max(gains, key=lambda p: p.gain.mean)
        text += (
            f", and by {cell(best.gain, signed=True)} where `{cross.section}` keeps {100 * best.share:g}% of "
            "its own data"
        )
    elif not cross.gain_sections:
        text += f" and at no share of `{cross.section}`'s own data: no cross-learning gain"
    if cross.loss_sections:
        text += "; it is worse in " + ", ".join(
            f"`{s}` ({cell(cross.by_section[s], signed=True)})" for s in cross.loss_sections
        )
    if overall.design.verdict == "better" and not cross.gain_sections and not gains:
        text += (
            "; so its lead over `base+bandit` does not come from learning across sections: independent "
            "per-section models do as well" + (" or better" if cross.loss_sections else "")
        )
    return text + "."


def _best_fixed_arms(results: CompareResults) -> str:
    n = len(results.seeds)
    parts = []
    for section, ids in results.bandit.best_fixed_arms.items():
        arm, count = Counter(ids).most_common(1)[0]
        parts.append(f"`{section}` {arm_label(results, section, arm)} ({count} of {n} seeds)")
    return "; ".join(parts)


def _knobs_sentence(results: CompareResults) -> str | None:
    overall = results.bandit.by_section.get(ALL)
    if overall is None:
        return None
    words = {"better": "beats", "worse": "loses to", "tie": "does not differ significantly from"}
    text = (
        f"Knobs: the bandit {words[overall.vs_best_fixed.verdict]} each section's best fixed arm "
        f"({cell(overall.vs_best_fixed, signed=True)} clicks per request overall)"
    )
    if results.bandit.best_fixed_arms:
        text += "; the best fixed arms: " + _best_fixed_arms(results)
    zero = results.bandit.freshness_zero_share.get(ALL)
    if zero is not None and math.isfinite(zero):
        text += f"; the bandit serves freshness weight 0 to {percent(zero)} of its requests"
    return text + "."


def _log_caveat(results: CompareResults) -> str:
    gain = results.bandit.by_section[ALL].vs_best_fixed if ALL in results.bandit.by_section else None
    text = (
        f"Log size: a {run_mode(results.settings)} run, "
        f"{_count(_mean([log.requests for log in results.log]))} logged requests per seed, "
        + (
            f"the bandit learning from {_count(learning_decisions(results))} uniformly explored decisions of "
            "the base ranker's knob window"
            if results.knob_windows
            else f"{_count(learning_decisions(results))} of them before the test window for the bandit to "
            "learn from"
        )
    )
    if gain is not None and gain.verdict != "better":
        text += (
            "; at this size the bandit does not beat the best fixed arm, so a larger log may change the "
            "knobs' answer, and with it `base+bandit`'s side of the decision"
        )
    return text + "."


def _headroom_caveat(results: CompareResults) -> str | None:
    headroom = results.bandit_headroom
    if headroom is None or ALL not in headroom.by_section:
        return None
    row = headroom.by_section[ALL]
    text = (
        "Knob headroom: the context the bandit observes can gain "
        f"{cell(row.headroom, signed=True)} clicks per request over the best fixed arm overall"
    )
    rich = [
        g
        for g in results.sections
        if g in headroom.by_section and headroom.by_section[g].headroom.verdict == "better"
    ]
    if rich:
        text += (
            " (by section: "
            + ", ".join(f"`{g}` {cell(headroom.by_section[g].headroom, signed=True)}" for g in rich)
            + ")"
        )
    text += f"; the shipped bandit gains {cell(row.gain, signed=True)}"
    if math.isfinite(row.capture.mean):
        text += f" (capture = gain / headroom: {cell(row.capture, 2, signed=True)})"
    if row.headroom.verdict != "better":
        text += ", and there is no significant headroom to capture"
    elif row.gain.verdict == "better":
        text += ", so it captures part of the headroom"
    else:
        text += ", so it captures none of the headroom that the intervals can show"
    logged = row.vs_best_fixed_logged
    against = _effect(logged, "gains", "loses", "does not differ significantly")
    text += f"; against the fixed arm a team would pick from the log it {against}"
    design = _pair(results, *DESIGN)
    if row.headroom.verdict == "better" and design is not None and ALL in design:
        now = design[ALL].mean
        captured = now - (row.headroom.mean - row.gain.mean)
        if now >= 0 > captured:
            text += (
                "; a bandit that captured all of the headroom would put `base+bandit` ahead of "
                "`consolidated` by the means"
            )
    return text + "."


def _feature_caveat(results: CompareResults) -> list[str]:
    check = results.feature_check
    if check is None:
        return []
    words = {
        "regression": "makes the sections that only see its default worse",
        "no_regression": "does not make the sections that only see its default worse",
        "too_noisy": "cannot be told apart from noise in the sections that only see its default",
    }
    out = []
    for f in check.features:
        pooled = f.consolidated.get("default_only")
        number = f" ({cell(pooled.clicks, signed=True)} clicks per request" if pooled is not None else " ("
        if f.finding == "no_regression":
            number += ("; " if pooled is not None else "") + f"a {percent(check.tolerance)} loss ruled out"
        number = number + ")" if number != " (" else ""
        finding = words.get(f.finding, f.finding)
        out.append(f"Feature check: `{f.feature}` in the consolidated model {finding}{number}.")
    return out


def _reversal_caveat(rows: Sequence[GroupVerdict], overall: GroupVerdict) -> str | None:
    if overall.design.verdict == "tie":
        return None
    against = "worse" if overall.design.verdict == "better" else "better"
    lost = [r.group for r in rows if r.group != ALL and r.design.verdict == against]
    if not lost:
        return None
    return (
        f"Reversal: the overall choice ({overall.choice}) loses significantly in {names(lost)}; a "
        "per-section choice would differ there."
    )


def verdict_items(results: CompareResults) -> tuple[list[str], list[str]]:
    """The verdict's findings and its caveats, as sentences (empty without the decision's pair)."""
    rows = group_verdicts(results)
    overall = next((r for r in rows if r.group == ALL), None)
    if overall is None:
        return [], []
    findings = [
        _decision_sentence(overall, rows),
        _attribution_sentence(overall),
        _fixed_sentence(results),
        _cost_sentence(results, overall),
        _cross_learning_sentence(results, overall),
        _knobs_sentence(results),
    ]
    caveats = [
        _log_caveat(results),
        _headroom_caveat(results),
        *_feature_caveat(results),
        _reversal_caveat(rows, overall),
    ]
    if len(results.seeds) < 5:
        caveats.append(f"Only {len(results.seeds)} seeds: the intervals are wide; run at least 5.")
    return [s for s in findings if s], [s for s in caveats if s]


def verdict_table(results: CompareResults) -> Table:
    """Per section and overall: what to run and the paired differences it rests on."""
    rows = tuple(
        (
            f"`{r.group}`",
            r.choice,
            diff_cell(r.design),
            diff_cell(r.ranker),
            diff_cell(r.knobs),
        )
        for r in group_verdicts(results)
    )
    headers = (
        "section",
        "run",
        "`consolidated` − `base+bandit`",
        "ranker: `consolidated` − `base`",
        "knobs: `base+bandit` − `base`",
    )
    return Table(headers, rows, "llrrr")


def verdict_blocks(results: CompareResults) -> list[Block]:
    """The report's verdict section: the decision table, the findings, the caveats and the forest plot."""
    findings, caveats = verdict_items(results)
    if not findings:
        body: list[Block] = [Paragraph("No verdict: these results have no `consolidated` − `base+bandit`.")]
    else:
        title, draw = PLOTS["forest"]
        body = [
            verdict_table(results),
            Bullets(tuple(findings)),
            Paragraph("Caveats that could change the answer:"),
            Bullets(tuple(caveats)),
            Figure("forest", title, lambda: draw(results)),
        ]
    return [Section(ANCHOR, "Verdict: which design to run", tuple(body))]


def _plain(text: str) -> str:
    return re.sub(r"\*\*([^*]+)\*\*", r"\1", text).replace("`", "")


def verdict_text(results: CompareResults) -> str:
    """The verdict as plain text for a terminal: the header, the decision per section, findings, caveats."""
    findings, caveats = verdict_items(results)
    lines = [f"Verdict on world {results.world.name!r}", _plain(run_header(results)), ""]
    if not findings:
        return "\n".join([*lines, "No verdict: these results have no consolidated - base+bandit."])
    table = verdict_table(results)
    rows = [[_plain(h) for h in table.headers], *([_plain(c) for c in row] for row in table.rows)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for j, row in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines += ["", *(f"- {_plain(s)}" for s in findings), "", "Caveats:", *(f"- {_plain(s)}" for s in caveats)]
    return "\n".join(lines)
