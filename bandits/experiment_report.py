"""The A/B experiment report: results.json, report.md and one plot per experiment, from the analyses of
`bandits.experiment_stats` alone.

``report.md`` holds, per experiment, the sample sizes, each variant's value per request, and the differences
from the control with their 95% intervals per section and overall, then the reversal check; a reading guide
closes it. The plot (``experiment-NAME.png``) shows each difference with its interval against 0, drawn with
matplotlib's object API on the Agg canvas (no display), as the comparison report's plots are.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bandits.experiment_stats import ALL, OPPOSITE, REVERSAL, ExperimentAnalysis

#: The reading guide at the end of report.md (docs/cli.md#experiment-report says the same).
READING_GUIDE = """## How to read this report

- **Unit.** Users are assigned to variants by a hash of their id and the experiment's name, so the user is
  the unit of randomisation: every interval treats a user's requests as one cluster (delta method for the
  ratio "metric per request", Welch-Satterthwaite degrees of freedom). With one request per user it is
  Welch's t interval.
- **Per request.** A decision without feedback counts as a request without clicks. Differences are
  `variant - control`; `relative` is that difference over the control's value.
- **Verdicts.** `better` when the 95% interval lies above 0, `worse` when below, `tie` otherwise. A tie is
  not a proof of equality: read the interval's width, which shrinks as about 1/sqrt(users).
- **Reversal check.** Only where the overall difference is significant: a section whose own interval lies
  on the other side of 0 is a `reversal` (the overall winner loses there); `opposite, not significant` is a
  section whose estimate has the other sign but whose interval contains 0. Where a section's true
  difference is small, its estimate takes either sign by chance: a few `opposite` marks over many sections
  are expected.
- **Many looks.** Each interval is a 95% interval on its own; checking many sections and metrics, or
  re-reading the report as traffic comes in, finds some "significant" differences by chance.
"""


@dataclass(frozen=True)
class ReportFiles:
    """What `write_report` wrote."""

    report: Path
    results: Path
    plots: tuple[Path, ...]


def results_json(
    analyses: tuple[ExperimentAnalysis, ...], *, source: str, wait_seconds: float | None
) -> dict:
    """Every number of the report, JSON-able (NaN becomes null)."""
    return {
        "schema_version": 1,
        "log": source,
        "wait_seconds": wait_seconds,
        "interval": "95%, delta method over users (clusters), Welch-Satterthwaite df",
        "experiments": [_clean(asdict(a)) for a in analyses],
    }


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _num(x: float, digits: int = 4) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:+.{digits}f}"


def _interval(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "n/a (fewer than 2 users)"
    return f"[{low:+.4f}, {high:+.4f}]"


def render_markdown(
    analyses: tuple[ExperimentAnalysis, ...], *, source: str, wait_seconds: float | None
) -> str:
    """report.md's text."""
    window = "all feedback" if wait_seconds is None else f"feedback within {wait_seconds:g} s of its decision"
    lines = ["# A/B experiment report", "", f"Log: `{source}` ({window}).", ""]
    if not analyses:
        lines += ["No decision in the log was served in an experiment (`variant` is empty everywhere).", ""]
    for a in analyses:
        lines += [f"## Experiment `{a.name}`", "", f"Control: `{a.control}`. Variants: "]
        lines[-1] += ", ".join(f"`{v}`" for v in a.variants) + f". Plot: `experiment-{a.name}.png`."
        lines += ["", "### Sample sizes and value per request", ""]
        lines += [
            "| section | variant | users | requests | "
            + " | ".join(f"{m} / request" for m in a.metrics)
            + " |",
            "| --- | --- | ---: | ---: |" + " ---: |" * len(a.metrics),
        ]
        stats = {(s.section, s.variant, s.metric): s for s in a.stats}
        for section in a.sections:
            for variant in a.variants:
                first = stats.get((section, variant, a.metrics[0]))
                if first is None:
                    continue
                values = [f"{stats[(section, variant, m)].per_request:.4f}" for m in a.metrics]
                cells = [section, variant, str(first.users), str(first.requests), *values]
                lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "### Differences from the control (95% intervals over users)", ""]
        lines += [
            "| metric | section | variant | difference | interval | relative | verdict | reversal check |",
            "| --- | --- | --- | ---: | --- | ---: | --- | --- |",
        ]
        for d in a.differences:
            relative = "n/a" if not math.isfinite(d.relative) else f"{100 * d.relative:+.1f}%"
            cells = [
                d.metric,
                d.section,
                d.variant,
                _num(d.difference),
                _interval(d.low, d.high),
                relative,
                d.verdict,
                d.reversal or ("" if d.section == ALL else "-"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        flagged = [d for d in a.differences if d.reversal == REVERSAL]
        opposite = [d for d in a.differences if d.reversal == OPPOSITE]
        lines += ["", "### Reversal check", ""]
        if flagged:
            for d in flagged:
                lines.append(
                    f"- **reversal** in `{d.section}` ({d.metric}, `{d.variant}`): {_num(d.difference)} "
                    f"{_interval(d.low, d.high)} against a significant overall difference."
                )
        else:
            lines.append("- No section reverses a significant overall difference.")
        if opposite:
            listing = ", ".join(f"`{d.section}` ({d.metric}, `{d.variant}`)" for d in opposite)
            lines.append(f"- Opposite sign, not significant: {listing}.")
        lines.append("")
    lines.append(READING_GUIDE)
    return "\n".join(lines)


def difference_plot(analysis: ExperimentAnalysis) -> bytes:
    """PNG: each variant's difference from the control per section and overall, one panel per metric."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    others = [v for v in analysis.variants if v != analysis.control]
    sections = list(analysis.sections)
    found = {(d.section, d.metric, d.variant): d for d in analysis.differences}
    nan = (math.nan, math.nan, math.nan)  # a section where a variant had no request
    figure = Figure(figsize=(4.2 * len(analysis.metrics) + 1, 0.5 * len(sections) * len(others) + 1.6))
    for j, metric in enumerate(analysis.metrics):
        ax = figure.add_subplot(1, len(analysis.metrics), j + 1)
        y = np.arange(len(sections))[::-1].astype(float)
        for i, variant in enumerate(others):
            rows = [found.get((s, metric, variant)) for s in sections]
            mean, low, high = np.array([nan if d is None else (d.difference, d.low, d.high) for d in rows]).T
            errors = np.vstack([np.nan_to_num(mean - low), np.nan_to_num(high - mean)])
            offset = (i - (len(others) - 1) / 2) * 0.25
            ax.errorbar(mean, y + offset, xerr=np.maximum(errors, 0), fmt="o", capsize=3, label=variant)
        ax.axvline(0.0, color="grey", linewidth=1)
        ax.set_yticks(y, sections)
        compared = others[0] if len(others) == 1 else "variant"
        ax.set_xlabel(f"{metric} per request: {compared} - {analysis.control}")
        if len(others) > 1:
            ax.legend(fontsize="small")
    figure.suptitle(f"Experiment {analysis.name}: differences with 95% intervals over users")
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def write_report(
    analyses: tuple[ExperimentAnalysis, ...],
    out: str | os.PathLike[str],
    *,
    source: str,
    wait_seconds: float | None,
) -> ReportFiles:
    """Write report.md, results.json and ``experiment-NAME.png`` per experiment into `out` (created)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for analysis in analyses:
        path = out / f"experiment-{analysis.name}.png"
        path.write_bytes(difference_plot(analysis))
        plots.append(path)
    results = out / "results.json"
    data = results_json(analyses, source=source, wait_seconds=wait_seconds)
    results.write_text(json.dumps(data, indent=2) + "\n")
    report = out / "report.md"
    report.write_text(render_markdown(analyses, source=source, wait_seconds=wait_seconds))
    return ReportFiles(report=report, results=results, plots=tuple(plots))
