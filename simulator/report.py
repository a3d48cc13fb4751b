"""The comparison report, written from results.json alone: report.md and a self-contained report.html.

Every sentence that states a finding is generated from the numbers in the results (`simulator.compare`): a
design "beats" another only where the paired 95% interval of the difference lies above 0. The report is built
once as a list of blocks (headings, text, tables, plots) and rendered to Markdown or to HTML; the HTML embeds
every plot of `simulator.report_plots.PLOTS` as a base64 PNG data URI, so the file needs nothing else.
"""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from simulator.report_plots import PLOTS, num

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
    "metrics": "All metrics",
    "cost": "Cost of each design",
    "method": "Method",
}
METRIC_NAMES = {
    "clicks": "expected clicks per request",
    "conversions": "expected conversions per request",
    "revenue": "expected revenue per request",
    "ndcg": "NDCG@k of the slate against the true attractiveness of all candidates",
    "diversity": "intra-list diversity (mean cosine distance of the shown items' embeddings)",
    "age_days": "mean age of the shown items (days)",
    "coverage": "catalog coverage (share of the catalog shown at least once)",
}
_VERDICT_MARK = {"better": "▲", "worse": "▼", "tie": "="}


# --- blocks -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str | None = None


@dataclass(frozen=True)
class Text:
    """A paragraph; inline `code` and **bold** are the only markup."""

    text: str


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    align: str = ""  # one of "l" / "r" per column; default: first left, others right


@dataclass(frozen=True)
class Plot:
    key: str


Block = Heading | Text | Bullets | Table | Plot


# --- formatting ---------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3, *, signed: bool = False) -> str:
    """A number with `digits` decimals ("–" for a missing value)."""
    x = num(value)
    if not math.isfinite(x):
        return "–"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def cell(summary: Mapping[str, Any] | None, digits: int = 3, *, signed: bool = False) -> str:
    """``mean [low, high]`` of an interval summary."""
    if not summary:
        return "–"
    mean = fmt(summary.get("mean"), digits, signed=signed)
    if not math.isfinite(num(summary.get("low"))):
        return mean
    low, high = fmt(summary["low"], digits, signed=signed), fmt(summary["high"], digits, signed=signed)
    return f"{mean} [{low}, {high}]"


def diff_cell(diff: Mapping[str, Any] | None, digits: int = 3) -> str:
    if not diff:
        return "–"
    return f"{cell(diff, digits, signed=True)} {_VERDICT_MARK.get(diff.get('verdict', 'tie'), '')}"


def plus_minus(summary: Mapping[str, Any] | None, digits: int = 3) -> str:
    """``mean ± half-width`` (the intervals are symmetric)."""
    if not summary:
        return "–"
    mean = fmt(summary.get("mean"), digits)
    if not math.isfinite(num(summary.get("high"))):
        return mean
    return f"{mean} ± {num(summary['high']) - num(summary['mean']):.{digits}f}"


def names(items: Sequence[str]) -> str:
    """`a`, `b` and `c`."""
    quoted = [f"`{i}`" for i in items]
    if not quoted:
        return "none"
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " and " + quoted[-1]


def percent(value: Any, digits: int = 0) -> str:
    x = num(value)
    return "–" if not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def _groups(results: Mapping[str, Any]) -> list[str]:
    return [*results["sections"], ALL]


def _split(by_group: Mapping[str, Mapping[str, Any]], groups: Sequence[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"better": [], "worse": [], "tie": []}
    for g in groups:
        if by_group.get(g):
            out[by_group[g].get("verdict", "tie")].append(g)
    return out


def _verdict_sentence(
    subject: str, other: str, by_group: Mapping[str, Mapping[str, Any]], sections: Sequence[str]
) -> str:
    """One generated sentence: where `subject` beats `other`, loses, and ties (per section and overall)."""
    overall = by_group.get(ALL)
    split = _split(by_group, sections)
    if overall:
        word = {"better": "beats", "worse": "loses to", "tie": "does not differ significantly from"}[
            overall.get("verdict", "tie")
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


# --- the report ---------------------------------------------------------------------------------------------


def build_blocks(results: Mapping[str, Any]) -> list[Block]:
    """The whole report as blocks, from the results dict."""
    blocks: list[Block] = [Heading(f"Design comparison on the `{results['world']['name']}` world", 1)]
    blocks += _intro(results)
    blocks += _headline(results)
    blocks += _q1(results)
    blocks += _q2(results)
    blocks += _q3(results)
    blocks += _q4(results)
    blocks += _q5(results)
    blocks += _q6(results)
    blocks += _all_metrics(results)
    blocks += _cost(results)
    blocks += _method(results)
    return blocks


def _section(anchor: str) -> Heading:
    return Heading(SECTIONS[anchor], 2, anchor)


def _intro(results: Mapping[str, Any]) -> list[Block]:
    s = results["settings"]
    world = results["world"]
    seeds = results["seeds"]
    runtime = results["runtime"]["seconds"]
    warn = (
        f" With {len(seeds)} seeds (fewer than 5) the intervals are wide; run at least 5 for conclusions."
        if len(seeds) < 5
        else ""
    )
    return [
        Text(
            f"World `{world['name']}` ({world['source']}): {world['items']:,} items, {world['users']:,} "
            "users, "
            f"{world['candidates']} candidates per request, sections "
            + ", ".join(f"`{n}` ({100 * v['traffic']:g}% of traffic)" for n, v in world["sections"].items())
            + f". {len(seeds)} seeds ({', '.join(map(str, seeds))}); each seed builds its own world and logs "
            f"{s['log_requests']:,} requests under uniform knob exploration, trains every design on that "
            "log, "
            f"and values every strategy exactly on the same {s['eval_requests']:,} fresh requests. "
            f"Intervals: {results['interval']}.{warn} The whole run took {fmt(runtime, 0)} s."
        )
    ]


def _headline(results: Mapping[str, Any]) -> list[Block]:
    headline = results["headline"]
    groups = list(headline["rows"])
    strategies = headline["strategies"]
    rows = tuple((f"`{s}`", *(cell(headline["rows"][g][s]) for g in groups)) for s in strategies)
    overall = {s: num(headline["rows"][ALL][s]["mean"]) for s in strategies}
    designs = [s for s in strategies if s not in ("random", "oracle") and math.isfinite(overall[s])]
    blocks: list[Block] = [
        _section("headline"),
        Text(
            "Exact expected clicks per request, mean over seeds [95% interval], per section and overall "
            "(`all`)."
        ),
        Table(("strategy", *groups), rows),
    ]
    if designs:
        best = max(designs, key=lambda s: overall[s])
        oracle, random = overall.get("oracle", math.nan), overall.get("random", math.nan)
        share = (overall[best] - random) / (oracle - random) if oracle > random else math.nan
        blocks.append(
            Text(
                f"Overall, `{best}` earns the most clicks per request among the designs "
                f"({cell(headline['rows'][ALL][best])}); the random order earns {fmt(random)} and the oracle "
                f"bound {fmt(oracle)}, so `{best}` closes {percent(share)} of the gap between them. Whether "
                "its "
                "lead over the other designs is significant is answered pairwise below."
            )
        )
    blocks.append(Plot("section_bars"))
    return blocks


def _pair_table(pairs: Sequence[Mapping[str, Any]], groups: Sequence[str]) -> Table:
    rows = tuple(
        (f"`{p['a']}` − `{p['b']}`", *(diff_cell(p["by_section"].get(g)) for g in groups)) for p in pairs
    )
    return Table(("difference in clicks per request", *groups), rows)


def _q1(results: Mapping[str, Any]) -> list[Block]:
    pairs = results["designs"]["pairs"]
    groups = _groups(results)
    sections = results["sections"]
    blocks: list[Block] = [
        _section("q1-designs"),
        Text(
            "Paired differences in clicks per request (▲ the first is better: the interval lies above 0; "
            "▼ worse; = no significant difference)."
        ),
        _pair_table(pairs, groups),
    ]
    blocks.append(Bullets(tuple(_verdict_sentence(p["a"], p["b"], p["by_section"], sections) for p in pairs)))
    return blocks


def _q2(results: Mapping[str, Any]) -> list[Block]:
    cross = results["cross_learning"]
    section = cross["section"]
    sections = results["sections"]
    by_section = cross["by_section"]
    rows = tuple(
        (
            f"`{s}`",
            cell(results["metrics"]["consolidated"][s]["clicks"]),
            cell(results["metrics"]["independent"][s]["clicks"]),
            diff_cell(by_section[s]),
        )
        for s in sections
    )
    curve_rows = tuple(
        (
            f"{100 * p['share']:g}%",
            fmt(p["lists"], 0),
            cell(p["consolidated"]["clicks"]),
            cell(p["independent"]["clicks"]),
            diff_cell(p["gain"]),
            diff_cell(p["gain_ndcg"]),
        )
        for p in cross["curve"]
    )
    if cross["gain_sections"]:
        full = (
            "With all of their data, consolidation gains from cross-learning in "
            f"{names(cross['gain_sections'])}: "
            "there the consolidated model beats the independent models significantly."
        )
    else:
        full = (
            "With all of their data, the consolidated model beats the independent models in no section: "
            "no cross-learning gain beyond noise."
        )
    if cross["loss_sections"]:
        full += f" It is significantly worse in {names(cross['loss_sections'])}."
    gain_points = [p for p in cross["curve"] if p["gain"]["verdict"] == "better"]
    loss_points = [p for p in cross["curve"] if p["gain"]["verdict"] == "worse"]
    if gain_points:
        curve = (
            f"Along the curve, the consolidated model beats the independent `{section}` model when the "
            "section "
            "has "
            + ", ".join(
                f"{100 * p['share']:g}% of its data ({fmt(p['lists'], 0)} lists: "
                f"{cell(p['gain'], signed=True)})"
                for p in gain_points
            )
            + "."
        )
    else:
        curve = (
            f"Along the curve, the consolidated model beats the independent `{section}` model at no share of "
            "the "
            "section's own data."
        )
    if loss_points:
        curve += " It is worse at " + ", ".join(f"{100 * p['share']:g}%" for p in loss_points) + "."
    return [
        _section("q2-cross-learning"),
        Text("Per section, with every section's full data: clicks per request and the paired difference."),
        Table(("section", "consolidated", "independent", "consolidated − independent"), rows),
        Text(
            f"The curve: `{section}` (the section with the least traffic, unless configured) keeps only a "
            "share of "
            "its own logged lists (stats, train and validation windows); the other sections keep theirs. "
            "Both "
            f"designs are retrained and valued on the same `{section}` evaluation requests."
        ),
        Table(
            (
                "share",
                "training lists",
                "consolidated",
                "independent",
                "difference (clicks)",
                "difference (NDCG)",
            ),
            curve_rows,
        ),
        Bullets((full, curve)),
        Plot("cross_learning"),
    ]


def _q3(results: Mapping[str, Any]) -> list[Block]:
    rev = results["reversals"]
    flagged = rev["flagged"]
    blocks: list[Block] = [_section("q3-reversals"), Text(f"Rule: {rev['rule']}")]
    if not flagged:
        blocks.append(Text(f"No reversal among the {rev['pairs_checked']} (pair, section) checks."))
        return blocks
    blocks.append(
        Text(
            f"{len(flagged)} reversal(s) among the {rev['pairs_checked']} (pair, section) checks: the "
            "overall "
            "winner loses significantly in that section."
        )
    )
    rows = tuple(
        (
            f"`{f['winner']}` over `{f['loser']}`",
            diff_cell(f["overall"]),
            f"`{f['section']}`",
            diff_cell(f["section_diff"]),
        )
        for f in flagged
    )
    blocks.append(
        Table(("overall winner", "overall difference", "section", "difference in the section"), rows, "lrlr")
    )
    return blocks


def _q4(results: Mapping[str, Any]) -> list[Block]:
    unions = results["stratification"]["unions"]
    groups = _groups(results)
    sections = results["sections"]
    rows = []
    for union, data in unions.items():
        rows.append((f"`{union}`", *(cell(data["clicks"].get(g)) for g in groups)))
    diff_rows = [
        (f"`{u}` − `traffic`", *(diff_cell(d["vs_traffic"].get(g)) for g in groups))
        for u, d in unions.items()
        if d["vs_traffic"]
    ]
    list_rows = [
        (f"`{u}`", *(fmt(d["training_lists"].get(s), 0) for s in sections)) for u, d in unions.items()
    ]
    sentences = []
    for union, data in unions.items():
        if not data["vs_traffic"]:
            continue
        split = _split(data["vs_traffic"], sections)
        overall = data["vs_traffic"][ALL]
        sentences.append(
            f"`{union}` against `traffic`: overall {cell(overall, signed=True)} ({overall['verdict']}); "
            "better in "
            f"{names(split['better'])}, worse in {names(split['worse'])}, no significant difference in "
            f"{names(split['tie'])}."
        )
    blocks: list[Block] = [
        _section("q4-stratification"),
        Text(
            "The consolidated model trained on each union of the sections' training lists (clicks per "
            "request)."
        ),
        Table(("union", *groups), tuple(rows)),
    ]
    if diff_rows:
        blocks.append(Table(("paired difference", *groups), tuple(diff_rows)))
    blocks.append(Text("Training lists with a positive label per section (mean over seeds)."))
    blocks.append(Table(("union", *sections), tuple(list_rows)))
    if sentences:
        blocks.append(Bullets(tuple(sentences)))
    blocks.append(Plot("stratification"))
    return blocks


def _q5(results: Mapping[str, Any]) -> list[Block]:
    bandit = results["bandit"]
    by_section = bandit["by_section"]
    groups = [g for g in _groups(results) if g in by_section]
    segments = sorted({s for g in groups for s in by_section[g]["by_segment"]})
    tables: list[Block] = []
    for key, other in (("vs_best_fixed", "best fixed arm"), ("vs_default", "default arm")):
        rows = tuple(
            (
                f"`{g}`",
                *(diff_cell(by_section[g]["by_segment"].get(seg, {}).get(key)) for seg in segments),
                diff_cell(by_section[g][key]),
            )
            for g in groups
        )
        tables.append(Text(f"Bandit knobs minus the {other}, clicks per request, by user segment."))
        tables.append(Table(("section", *segments, "all segments"), rows))
    sentences = []
    for g in groups:
        row = by_section[g]
        gains = [
            s
            for s in segments
            if row["by_segment"].get(s, {}).get("vs_best_fixed", {}).get("verdict") == "better"
        ]
        losses = [
            s
            for s in segments
            if row["by_segment"].get(s, {}).get("vs_best_fixed", {}).get("verdict") == "worse"
        ]
        label = "Overall" if g == ALL else f"In `{g}`"
        text = (
            f"{label}, the bandit's gain over the best fixed arm is "
            f"{cell(row['vs_best_fixed'], signed=True)} "
            f"({row['vs_best_fixed']['verdict']}) and over the default arm "
            f"{cell(row['vs_default'], signed=True)} "
            f"({row['vs_default']['verdict']})"
        )
        if gains or losses:
            text += f"; it gains significantly for {names(gains)} and loses for {names(losses)}"
        sentences.append(text + ".")
    choice_rows = []
    for section, knobs in bandit["knob_shares"].items():
        for knob, shares in knobs.items():
            cells = []
            for seg in [*segments, ALL]:
                values = shares.get(seg)
                if not values:
                    cells.append("–")
                    continue
                value, share = max(values.items(), key=lambda kv: kv[1])
                cells.append(f"{value} ({percent(share)})")
            choice_rows.append((f"`{section}`", f"`{knob}`", *cells))
    freshness = bandit.get("freshness_zero_share", {})
    fresh_text = (
        "Share of requests served with freshness weight 0 by the bandit: "
        + ", ".join(f"`{s}` {percent(v)}" for s, v in freshness.items())
        + "."
        if freshness
        else "No section has a freshness weight knob."
    )
    best_rows = tuple(
        (f"`{s}`", ", ".join(f"`{a}`" for a in dict.fromkeys(ids)), str(len(set(ids))))
        for s, ids in bandit["best_fixed_arms"].items()
    )
    return [
        _section("q5-bandit"),
        *tables,
        Bullets(tuple(sentences)),
        Plot("bandit_gains"),
        Text(
            "Which knob values the bandit chooses for whom: the most chosen value of each knob per user "
            "segment "
            "(share of that segment's requests)."
        ),
        Table(("section", "knob", *segments, "all"), tuple(choice_rows)),
        Text(fresh_text),
        Plot("bandit_arms"),
        Text("The best fixed arm of each section (chosen per seed on the tuning sample):"),
        Table(("section", "arms chosen", "distinct"), best_rows),
    ]


def _q6(results: Mapping[str, Any]) -> list[Block]:
    replay = results["replay"]
    rows = replay["rows"]
    by_estimator = replay["by_estimator"]
    est_rows = tuple(
        (f"`{e}`", percent(v["abs_relative_error"], 1), percent(v["coverage"]))
        for e, v in by_estimator.items()
    )
    overall_rows = tuple(
        (
            f"`{r['policy']}`",
            f"`{r['estimator']}`",
            cell(r["estimate"]),
            cell(r["truth"]),
            cell(r["relative_error"], 3, signed=True),
            percent(r["coverage"]),
        )
        for r in rows
        if r["section"] == ALL
    )
    section_rows = tuple(
        (
            f"`{r['section']}`",
            f"`{r['estimator']}`",
            cell(r["estimate"]),
            cell(r["truth"]),
            cell(r["relative_error"], 3, signed=True),
            percent(r["coverage"]),
        )
        for r in rows
        if r["section"] != ALL and r["policy"] == "bandit"
    )
    sentences = []
    if by_estimator:
        best = min(by_estimator, key=lambda e: by_estimator[e]["abs_relative_error"])
        worst = max(by_estimator, key=lambda e: by_estimator[e]["abs_relative_error"])
        sentences.append(
            f"Per section, `{best}` comes closest to the truth (mean absolute relative error "
            f"{percent(by_estimator[best]['abs_relative_error'], 1)}) and `{worst}` is furthest "
            f"({percent(by_estimator[worst]['abs_relative_error'], 1)})."
        )
        low_cover = [e for e, v in by_estimator.items() if v["coverage"] < 0.9]
        if low_cover:
            sentences.append(
                f"The 95% bootstrap intervals of {names(low_cover)} cover the truth in fewer than 90% of the "
                "(seed, policy, section) cases: "
                + ", ".join(f"`{e}` {percent(by_estimator[e]['coverage'])}" for e in low_cover)
                + "."
            )
        else:
            sentences.append("Every estimator's intervals cover the truth in at least 90% of the cases.")
    biased = [
        r
        for r in rows
        if r["section"] == ALL
        and (num(r["relative_error"]["low"]) > 0 or num(r["relative_error"]["high"]) < 0)
    ]
    if biased:
        sentences.append(
            "Over all sections, the relative error is significantly different from 0 for "
            + ", ".join(
                f"`{r['policy']}` with `{r['estimator']}` ({cell(r['relative_error'], signed=True)})"
                for r in biased
            )
            + "."
        )
    else:
        sentences.append("Over all sections, no relative error is significantly different from 0.")
    policies = results["replay"]["policies"]
    return [
        _section("q6-replay"),
        Text(
            "The knob policies of question 5 ("
            + ", ".join(f"`{p}` as in `{s}`" for p, s in policies.items())
            + ") replayed on the log's test window, whose rewards come from the logging scorer, against the "
            "exact "
            "value of each policy on those very requests under the same scorer. Relative error = (estimate − "
            "truth) / truth; coverage = share of seeds whose bootstrap interval contains the truth."
        ),
        Table(("estimator", "mean absolute relative error", "coverage"), est_rows),
        Bullets(tuple(sentences)),
        Text("Over all sections:"),
        Table(("policy", "estimator", "estimate", "truth", "relative error", "coverage"), overall_rows),
        Text("The bandit, per section:"),
        Table(("section", "estimator", "estimate", "truth", "relative error", "coverage"), section_rows),
        Plot("replay_vs_truth"),
    ]


def _all_metrics(results: Mapping[str, Any]) -> list[Block]:
    groups = _groups(results)
    metrics = results["metrics"]
    order = [s for s in results["headline"]["strategies"]] + [
        s for s in metrics if s.startswith("consolidated[") and s not in results["headline"]["strategies"]
    ]
    blocks: list[Block] = [_section("metrics")]
    for metric, title in METRIC_NAMES.items():
        digits = 1 if metric in ("revenue", "age_days") else 3
        rows = tuple(
            (f"`{s}`", *(cell(metrics[s].get(g, {}).get(metric), digits) for g in groups))
            for s in order
            if s in metrics
        )
        blocks += [Heading(title[0].upper() + title[1:], 3), Table(("strategy", *groups), rows)]
    return blocks


def _cost(results: Mapping[str, Any]) -> list[Block]:
    costs = results["costs"]
    lines = results["config_lines"]
    rows = tuple(
        (
            f"`{name}`",
            str(c["models"]),
            str(c["artifacts"]),
            cell(c["train_seconds"], 2),
            fmt(num(c["artifact_bytes"]) / 1024, 0),
            str(lines.get(name, "–")),
        )
        for name, c in costs.items()
    )
    return [
        _section("cost"),
        Text(
            "Models trained (LightGBM boosters and the VW policy), artifacts deployed (model directories and "
            "policy files), training seconds per seed (LightGBM with "
            f"{results['settings']['threads']} thread(s); the best fixed arm's tuning and the bandit's "
            "learning included), artifact size, and the config lines a team maintains (non-blank, "
            "non-comment "
            "lines of the ranker and sections config tables the design reads, one line per chosen arm, and "
            "one "
            "per learning setting of the bandit)."
        ),
        Table(("strategy", "models", "artifacts", "training seconds", "artifact KiB", "config lines"), rows),
    ]


def _method(results: Mapping[str, Any]) -> list[Block]:
    s = results["settings"]
    return [
        _section("method"),
        Bullets(
            (
                *(f"`{name}`: {text}." for name, text in results["strategies"].items()),
                "The base ranker does not serve search: every `base+*` strategy serves search with the "
                "independent search model under the same knob policy.",
                "The models learn from the log's stats, train and validation windows; the bandit learns "
                "from every decision before the test window; the evaluation requests are fresh requests "
                "drawn in the test window's period, and the best fixed arm is chosen on "
                f"{s['tune_requests']:,} other fresh requests of that period.",
                "Each slate's clicks, conversions and revenue are the world's exact expected values (no "
                "sampled clicks); NDCG@k uses linear gains of the true attractiveness of every candidate in "
                "isolation.",
                "The oracle orders the candidates by their attractiveness in isolation: greedy, it ignores "
                "satiation, so heuristics can in principle exceed it on clicks.",
            )
        ),
    ]


# --- rendering ----------------------------------------------------------------------------------------------


def render_markdown(results: Mapping[str, Any]) -> str:
    """report.md: the report's blocks as Markdown (plots are in report.html)."""
    out = []
    for block in build_blocks(results):
        if isinstance(block, Heading):
            out.append("#" * block.level + " " + block.text)
        elif isinstance(block, Text):
            out.append(block.text)
        elif isinstance(block, Bullets):
            out.append("\n".join(f"- {item}" for item in block.items))
        elif isinstance(block, Table):
            out.append(_markdown_table(block))
        else:
            out.append(f"*Plot: {PLOTS[block.key][0]} (in report.html).*")
    return "\n\n".join(out) + "\n"


def _markdown_table(table: Table) -> str:
    align = table.align or "l" + "r" * (len(table.headers) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(table.headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in table.rows]
    return "\n".join(lines)


def _inline(text: str) -> str:
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", escaped)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
td.r { text-align: right; white-space: nowrap; }
code { background: #f5f5f5; padding: 0 0.2em; }
figure { margin: 1em 0; }
img { max-width: 100%; }
""".strip()


def render_html(results: Mapping[str, Any]) -> str:
    """report.html: the same report, self-contained, with every plot embedded as a PNG data URI."""
    body = []
    for block in build_blocks(results):
        if isinstance(block, Heading):
            anchor = f' id="{block.anchor}"' if block.anchor else ""
            body.append(f"<h{block.level}{anchor}>{_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            body.append(f"<p>{_inline(block.text)}</p>")
        elif isinstance(block, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in block.items) + "</ul>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        else:
            title, draw = PLOTS[block.key]
            data = base64.b64encode(draw(results)).decode("ascii")
            body.append(
                f'<figure id="plot-{block.key}">'
                f'<img src="data:image/png;base64,{data}" alt="{html.escape(title)}">'
                f"<figcaption>{html.escape(title)}</figcaption></figure>"
            )
    title = html.escape(f"Design comparison: {results['world']['name']}")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title}</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _html_table(table: Table) -> str:
    align = table.align or "l" + "r" * (len(table.headers) - 1)
    head = "".join(f"<th>{_inline(h)}</th>" for h in table.headers)
    rows = "".join(
        "<tr>"
        + "".join(f'<td class="{a}">{_inline(c)}</td>' for a, c in zip(align, row, strict=True))
        + "</tr>"
        for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def headline_text(results: Mapping[str, Any]) -> str:
    """The headline table as text: clicks per request (mean ± 95% half-width) of every main strategy."""
    headline = results["headline"]
    groups = list(headline["rows"])
    rows = [["strategy", *groups]]
    for s in headline["strategies"]:
        rows.append([s, *(plus_minus(headline["rows"][g][s]) for g in groups)])
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
