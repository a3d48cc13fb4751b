"""The comparison report's plots, drawn from the results alone, as PNG bytes.

Each plot function takes the results (`simulator.compare_results.CompareResults`) and returns PNG bytes.
Figures are drawn with matplotlib's object API and the Agg canvas (no pyplot state, no display).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from simulator.compare_results import CompareResults, Interval
from simulator.report_format import knob_short

ALL = "all"
_DPI = 100


def _errors(cells: Sequence[Interval | None]) -> tuple[np.ndarray, np.ndarray]:
    """(n,) means and the (2, n) distances to the interval ends (0 where an end is missing; NaN means for
    missing intervals)."""
    means = np.array([c.mean if c is not None else math.nan for c in cells], dtype=np.float64)
    low = np.array([c.low if c is not None else math.nan for c in cells], dtype=np.float64)
    high = np.array([c.high if c is not None else math.nan for c in cells], dtype=np.float64)
    below = np.where(np.isfinite(low), means - low, 0.0)
    above = np.where(np.isfinite(high), high - means, 0.0)
    return means, np.vstack([np.maximum(below, 0), np.maximum(above, 0)])


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    return buffer.getvalue()


def _empty(figure: Figure, message: str) -> bytes:
    ax = figure.add_subplot()
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return _png(figure)


#: The forest plot's paired differences, in drawing order: (a, b, label); the first is the decision.
FOREST_PAIRS = (
    ("consolidated", "base+bandit", "consolidated − base+bandit (the decision)"),
    ("consolidated", "base", "ranker: consolidated − base (no knobs on either)"),
    ("base+bandit", "base", "knobs: base+bandit − base"),
    ("consolidated", "base+best_fixed", "consolidated − base+best_fixed (fixed-tuning ceiling)"),
)


def forest(results: CompareResults) -> bytes:
    """The paired differences that decide the verdict, per section and overall, each with its 95% interval
    over the seeds' differences; a filled marker where the interval excludes 0."""
    pairs = {(p.a, p.b): p.by_section for p in results.designs.pairs}
    shown = [(a, b, label) for a, b, label in FOREST_PAIRS if (a, b) in pairs]
    if not shown:
        return _empty(Figure(figsize=(6, 2)), "no paired differences of the designs")
    groups = list(results.groups)
    figure = Figure(figsize=(9, 1.0 + 0.75 * len(groups)))
    ax = figure.add_subplot()
    y = np.arange(len(groups))[::-1].astype(np.float64)
    step = 0.7 / max(len(shown), 1)
    colors = ("black", "tab:blue", "tab:orange", "tab:grey")
    for i, (a, b, label) in enumerate(shown):
        cells = [pairs[(a, b)].get(g) for g in groups]
        means, errors = _errors(cells)
        offset = y + 0.35 - (i + 0.5) * step
        significant = np.array([c is not None and c.verdict != "tie" for c in cells])
        ax.errorbar(
            means,
            offset,
            xerr=errors,
            fmt="none",
            ecolor=colors[i],
            capsize=3,
            linewidth=2 if i == 0 else 1.2,
        )
        ax.scatter(
            means[significant],
            offset[significant],
            color=colors[i],
            marker="o",
            s=40 if i == 0 else 25,
            zorder=3,
        )
        ax.scatter(
            means[~significant],
            offset[~significant],
            facecolors="white",
            edgecolors=colors[i],
            marker="o",
            s=40 if i == 0 else 25,
            zorder=3,
            label=label,
        )
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, groups, fontsize=11)
    ax.set_xlabel("paired difference in expected clicks per request (95% interval over seeds)", fontsize=11)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title("Paired differences per section (filled: the interval excludes 0)", fontsize=12)
    ax.legend(fontsize=10, loc="upper center", bbox_to_anchor=(0.5, -0.14 - 0.3 / len(groups)), ncols=2)
    return _png(figure)


def section_bars(results: CompareResults) -> bytes:
    """Clicks per request of every main strategy, grouped by section, with 95% intervals."""
    headline = results.headline
    groups = list(headline.rows)
    strategies = headline.strategies
    figure = Figure(figsize=(11, 4.2))
    ax = figure.add_subplot()
    width = 0.8 / len(strategies)
    x = np.arange(len(groups))
    for i, strategy in enumerate(strategies):
        means, errors = _errors([headline.rows[g][strategy] for g in groups])
        ax.bar(
            x + (i - (len(strategies) - 1) / 2) * width,
            np.nan_to_num(means),
            width,
            yerr=errors,
            capsize=2,
            label=strategy,
        )
    ax.set_xticks(x, groups)
    ax.set_ylabel("expected clicks per request")
    ax.set_title("Clicks per request by section (95% intervals over seeds)")
    ax.legend(ncols=4, fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.1))
    return _png(figure)


def cross_learning(results: CompareResults) -> bytes:
    """The curve section's clicks and NDCG against its own training lists, consolidated vs independent."""
    cross = results.cross_learning
    curve = cross.curve
    figure = Figure(figsize=(10, 3.8))
    for j, metric in enumerate(("clicks", "ndcg")):
        ax = figure.add_subplot(1, 2, j + 1)
        lists = np.array([max(p.lists, 1.0) for p in curve])
        for design, marker in (("consolidated", "o"), ("independent", "s")):
            means, errors = _errors([getattr(p, design)[metric] for p in curve])
            ax.errorbar(lists, means, yerr=errors, marker=marker, capsize=3, label=design)
        for p, x in zip(curve, lists, strict=True):
            ax.annotate(
                f"{100 * p.share:g}%",
                (x, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize="x-small",
            )
        ax.set_xscale("log")
        ax.set_xlabel(f"{cross.section}: its own training lists (log scale)")
        ax.set_ylabel(
            "expected clicks per request" if metric == "clicks" else "NDCG@k vs true attractiveness"
        )
        ax.legend(fontsize="small")
    figure.suptitle(f"Cross-learning in {cross.section} (95% intervals over seeds)")
    return _png(figure)


def stratification(results: CompareResults) -> bytes:
    """Clicks per request of the consolidated model per union strategy, by section."""
    unions = results.stratification.unions
    groups = list(next(iter(unions.values())).clicks)
    figure = Figure(figsize=(9, 3.8))
    ax = figure.add_subplot()
    width = 0.8 / len(unions)
    x = np.arange(len(groups))
    for i, (union, data) in enumerate(unions.items()):
        means, errors = _errors([data.clicks[g] for g in groups])
        ax.bar(
            x + (i - (len(unions) - 1) / 2) * width,
            np.nan_to_num(means),
            width,
            yerr=errors,
            capsize=3,
            label=f"union = {union}",
        )
    ax.set_xticks(x, groups)
    ax.set_ylabel("expected clicks per request")
    ax.set_title("Consolidated model by union strategy (95% intervals)")
    ax.legend(fontsize="small")
    return _png(figure)


def bandit_gains(results: CompareResults) -> bytes:
    """The bandit's gain over the best fixed arm and over the default arm, per section and user segment."""
    by_section = results.bandit.by_section
    groups = list(by_section)
    figure = Figure(figsize=(12, 4.4))
    first = None
    for j, key in enumerate(("vs_best_fixed", "vs_default")):
        ax = figure.add_subplot(1, 2, j + 1, sharey=first)
        first = first or ax
        segments = sorted({s for g in groups for s in by_section[g].by_segment})
        columns = [*segments, ALL]
        width = 0.8 / len(columns)
        x = np.arange(len(groups))
        for i, segment in enumerate(columns):
            cells = [
                getattr(by_section[g], key)
                if segment == ALL
                else getattr(by_section[g].by_segment[segment], key)
                if segment in by_section[g].by_segment
                else None
                for g in groups
            ]
            means, errors = _errors(cells)
            ax.bar(
                x + (i - (len(columns) - 1) / 2) * width,
                np.nan_to_num(means),
                width,
                yerr=errors,
                capsize=2,
                label=segment,
            )
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks(x, [g.replace("_", "_\n") for g in groups], fontsize=10)
        ax.set_title("bandit minus " + ("the best fixed arm" if j == 0 else "the default arm"), fontsize=11)
        ax.set_ylabel("clicks per request (paired difference)")
        ax.legend(title="segment", fontsize="small")
    figure.suptitle("Bandit knobs: paired gain per section and user segment (95% intervals)")
    return _png(figure)


def bandit_arms(results: CompareResults) -> bytes:
    """Share of requests per knob value, per section and user segment, as the bandit chose (heat maps)."""
    knob_shares = results.bandit.knob_shares
    panels = [(s, k, v) for s, knobs in knob_shares.items() for k, v in knobs.items()]
    if not panels:
        return _empty(Figure(figsize=(6, 2)), "no knob with more than one value was chosen by the bandit")
    cols = 3
    rows = math.ceil(len(panels) / cols)
    figure = Figure(figsize=(4.6 * cols, 2.9 * rows), layout="constrained")
    axes = []
    image = None
    for i, (section, knob, shares) in enumerate(panels):
        ax = figure.add_subplot(rows, cols, i + 1)
        axes.append(ax)
        segments = [s for s in shares if s != ALL] + [ALL]
        values = sorted({v for s in shares.values() for v in s}, key=float)
        matrix = np.array([[shares[s].get(v, 0.0) for s in segments] for v in values])
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="Blues", aspect="auto")
        for (r, c), share in np.ndenumerate(matrix):
            ax.text(
                c,
                r,
                f"{share:.0%}",
                ha="center",
                va="center",
                fontsize=10,
                color="white" if share > 0.6 else "black",
            )
        ax.set_xticks(range(len(segments)), segments, fontsize=10)
        ax.set_yticks(range(len(values)), values, fontsize=10)
        ax.set_xlabel("user segment", fontsize=10)
        ax.set_ylabel(f"{knob_short(knob)} value", fontsize=10)
        ax.set_title(f"{section}: {knob}", fontsize=11)
    figure.colorbar(image, ax=axes, fraction=0.03, label="share of the segment's requests (one scale)")
    figure.suptitle("Knob values the bandit chose, share of requests per user segment", fontsize=13)
    return _png(figure)


def replay_vs_truth(results: CompareResults) -> bytes:
    """Every seed's replay estimate with its bootstrap interval against that seed's truth, per section."""
    rows = [r for r in results.replay.rows if r.section != ALL]
    if not rows:
        return _empty(Figure(figsize=(6, 2)), "no replay rows")
    # Two large panels: the estimator closest to the truth and the furthest (every estimator's error is
    # in question 6's table).
    accuracy = results.replay.by_estimator
    ranked = sorted(accuracy, key=lambda e: accuracy[e].abs_relative_error) or list(
        dict.fromkeys(r.estimator for r in rows)
    )
    estimators = list(dict.fromkeys([ranked[0], ranked[-1]]))
    figure = Figure(figsize=(6.0 * len(estimators), 5.2), layout="constrained")
    truths = [p.truth for r in rows for p in r.per_seed]
    low, high = min(truths), max(truths)
    pad = 0.15 * (high - low or 1.0)
    markers = {"bandit": "o", "default": "s", "best_fixed": "^"}
    for i, estimator in enumerate(estimators):
        ax = figure.add_subplot(1, len(estimators), i + 1)
        ax.plot(
            [low - pad, high + pad],
            [low - pad, high + pad],
            color="grey",
            linewidth=1,
            linestyle="--",
            label="y = x (estimate = truth)",
        )
        for policy, marker in markers.items():
            points = [p for r in rows if r.estimator == estimator and r.policy == policy for p in r.per_seed]
            if not points:
                continue
            value = np.array([p.value for p in points])
            lower = np.array([p.ci_low for p in points])
            upper = np.array([p.ci_high for p in points])
            errors = np.vstack([np.maximum(value - lower, 0), np.maximum(upper - value, 0)])
            ax.errorbar(
                [p.truth for p in points],
                value,
                yerr=np.nan_to_num(errors),
                fmt=marker,
                capsize=2,
                markersize=6,
                alpha=0.75,
                label=policy,
            )
        error = accuracy[estimator].abs_relative_error if estimator in accuracy else math.nan
        which = "closest" if i == 0 else "furthest"
        ax.set_title(f"{estimator}: the {which} estimator (mean |relative error| {error:.1%})", fontsize=11)
        ax.set_xlabel("truth (clicks per request)", fontsize=11)
        ax.set_ylabel("replay estimate (95% bootstrap interval)", fontsize=11)
        ax.legend(fontsize=10, title="policy", loc="upper left")
    figure.suptitle("Offline replay estimates against the exact truth: every seed and section", fontsize=13)
    return _png(figure)


#: Plot id -> (title, function): every plot of the HTML report, in order.
PLOTS: dict[str, tuple[str, Callable[[CompareResults], bytes]]] = {
    "forest": ("Paired differences per section: what decides the verdict", forest),
    "cross_learning": ("Cross-learning curve", cross_learning),
    "stratification": ("Union strategies", stratification),
    "bandit_gains": ("Bandit gains by segment", bandit_gains),
    "bandit_arms": ("The bandit's knob choices by segment", bandit_arms),
    "replay_vs_truth": ("Replay estimates against the truth", replay_vs_truth),
    "section_bars": ("Clicks per request by section (unpaired intervals)", section_bars),
}
