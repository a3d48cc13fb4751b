"""The comparison report: generated from the results' numbers, self-contained HTML with every plot.

The results come from synthetic per-seed means (no simulation), so that the numbers, and hence the expected
sentences, are known.
"""

from __future__ import annotations

import base64
import json
import math
from html.parser import HTMLParser

import numpy as np
import pytest

from heuristics import SectionsConfig
from ranker.config import RankerConfig
from simulator.compare import assemble_results, write_outputs
from simulator.compare_seed import (
    ArmCount,
    BestFixedArm,
    CurveLists,
    LogSummary,
    MetricMean,
    ReplayEstimate,
    SeedResult,
    StrategyCost,
)
from simulator.compare_settings import ALL, MAIN_STRATEGIES, REPLAY_POLICIES, CompareSettings, curve_strategy
from simulator.report import SECTIONS, headline_text, render_html, render_markdown
from simulator.report_plots import PLOTS
from simulator.strategies import SLATE_METRICS
from simulator.world_config import WorldConfig

SECTION_NAMES = ("discover", "similar_items", "category_explore", "search")
SEGMENTS = ("new", "casual", "heavy")
PNG = b"\x89PNG\r\n\x1a\n"
SETTINGS = CompareSettings(log_requests=1000, eval_requests=100, tune_requests=50, curve_shares=(0.05, 0.2))


def _seed_metrics(
    edge: dict[tuple[str, str], float], rng: np.random.Generator, wobble: float, jitter: float
) -> list[MetricMean]:
    """Every metric of every strategy, per section, segment and overall."""
    strategies = [*MAIN_STRATEGIES, "consolidated[equal]", "consolidated[business]"]
    rows = []
    for strategy in strategies:
        per_section = {}
        for section in SECTION_NAMES:
            value = 1.0 + wobble + edge.get((strategy, section), 0.0) + jitter * rng.standard_normal()
            per_section[section] = value
            for metric in (*SLATE_METRICS, "coverage"):
                scale = {"clicks": 1.0, "conversions": 0.1, "revenue": 3.0}.get(metric, 0.5)
                rows.append(MetricMean(strategy, section, ALL, metric, value * scale, 50))
            rows += [MetricMean(strategy, section, segment, "clicks", value, 50) for segment in SEGMENTS]
        overall = float(np.mean(list(per_section.values())))
        rows += [
            MetricMean(strategy, ALL, ALL, metric, overall, 50) for metric in (*SLATE_METRICS, "coverage")
        ]
        rows += [MetricMean(strategy, ALL, segment, "clicks", overall, 50) for segment in SEGMENTS]
    for share in SETTINGS.curve_shares[:-1]:  # at share 1 the curve's models are the main ones
        for design in ("consolidated", "independent"):
            name = curve_strategy(design, share)
            ahead = 0.3 * (1 - share) if design == "consolidated" else 0.0
            value = 1.0 + wobble + ahead + edge.get((name, "category_explore"), 0.0)
            rows += [MetricMean(name, "category_explore", ALL, m, value, 50) for m in ("clicks", "ndcg")]
    return rows


def _seed_replay(wobble: float) -> list[ReplayEstimate]:
    """Every estimator 1% above the truth, but dm 20% above."""
    rows = []
    for policy in REPLAY_POLICIES:
        for section in (*SECTION_NAMES, ALL):
            for estimator in SETTINGS.estimators:
                truth = 1.0 + wobble
                value = truth * (1.2 if estimator == "dm" else 1.01)
                rows.append(
                    ReplayEstimate(policy, section, estimator, value, value - 0.05, value + 0.05, truth, 100)
                )
    return rows


def synthetic_seeds(
    edge: dict[tuple[str, str], float], n_seeds: int = 5, *, jitter: float = 0.001
) -> list[SeedResult]:
    """Per-seed means: every strategy earns 1.0 clicks per request plus `edge[(strategy, section)]`, with a
    seed-dependent wobble shared by all strategies and a `jitter` of its own (so paired differences are
    nearly constant; with no jitter, strategies without an edge tie exactly)."""
    rng = np.random.default_rng(0)
    results = []
    for seed in range(n_seeds):
        wobble = 0.05 * rng.standard_normal()
        results.append(
            SeedResult(
                seed=seed,
                metrics=tuple(_seed_metrics(edge, rng, wobble, jitter)),
                arm_counts=tuple(
                    ArmCount("base+bandit", section, segment, arm, 10 * (arm + 1))
                    for section in SECTION_NAMES
                    for segment in SEGMENTS
                    for arm in range(3)
                ),
                best_fixed_arms={
                    s: BestFixedArm(index=0, id=f"{s}-arm0", tuning_value=1.0) for s in SECTION_NAMES
                },
                curve=tuple(
                    CurveLists(share, design, int(1000 * share))
                    for share in SETTINGS.curve_shares
                    for design in ("consolidated", "independent")
                ),
                replay=tuple(_seed_replay(wobble)),
                costs={
                    name: StrategyCost(models=1, artifacts=1, train_seconds=1.0 + seed, artifact_bytes=2048)
                    for name in MAIN_STRATEGIES
                    if name not in ("random", "oracle")
                },
                training_lists={"consolidated": {s: 100 for s in SECTION_NAMES}},
                seconds={"log": 1.0, "train": 2.0},
                log=LogSummary(
                    requests=1000, windows={"stats": 100}, sections={"discover": 100}, test_window_start=5.0
                ),
            )
        )
    return results


def make_results(edge: dict[tuple[str, str], float], n_seeds: int = 5, *, jitter: float = 0.001) -> dict:
    """The content of results.json from `synthetic_seeds` on the default world's sections."""
    return assemble_results(
        synthetic_seeds(edge, n_seeds, jitter=jitter),
        world_config=WorldConfig.load("default"),
        settings=SETTINGS,
        sections=SectionsConfig.load(),
        ranker_config=RankerConfig.load(),
        seconds=12.0,
    ).to_json()


@pytest.fixture(scope="module")
def results() -> dict:
    # consolidated is better than base+bandit in discover, worse in search.
    return make_results({("consolidated", "discover"): 0.2, ("consolidated", "search"): -0.2})


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: dict[str, str] = {}
        self.images: dict[str, str] = {}
        self._figure: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "id" in attributes:
            self.ids[attributes["id"]] = tag
        if tag == "figure":
            self._figure = attributes.get("id")
        if tag == "img" and self._figure is not None:
            self.images[self._figure] = attributes.get("src", "")

    def handle_endtag(self, tag):
        if tag == "figure":
            self._figure = None


def test_report_html_has_every_section_and_every_plot(results):
    page = render_html(results)
    parser = _Collector()
    parser.feed(page)
    for anchor in SECTIONS:
        assert parser.ids.get(anchor) == "h2", f"missing section {anchor}"
    for key in PLOTS:
        src = parser.images.get(f"plot-{key}")
        assert src is not None, f"missing plot {key}"
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        assert base64.b64decode(src[len(prefix) :]).startswith(PNG)
    assert "http://" not in page
    assert "https://" not in page
    for text in ("nan", "None"):
        assert f">{text}<" not in page


def test_report_sentences_follow_the_numbers(results):
    markdown = render_markdown(results)
    q1 = markdown.split("## 1.")[1].split("## 2.")[0]
    assert "it wins in `discover`" in q1
    assert "loses in `search`" in q1
    flipped = render_markdown(
        make_results({("consolidated", "discover"): -0.2, ("consolidated", "search"): 0.2})
    )
    q1_flipped = flipped.split("## 1.")[1].split("## 2.")[0]
    assert "it wins in `search`" in q1_flipped
    assert "loses in `discover`" in q1_flipped


def test_report_flags_the_reversal(results):
    # With +0.2 and -0.2 the overall difference is 0 and the winner a coin flip: make consolidated win.
    tilted = make_results({("consolidated", "discover"): 0.4, ("consolidated", "search"): -0.2})
    flagged = {(f["winner"], f["loser"], f["section"]) for f in tilted["reversals"]["flagged"]}
    assert ("consolidated", "base+bandit", "search") in flagged
    assert ("consolidated", "base+bandit", "discover") not in flagged
    q3 = render_markdown(tilted).split("## 3.")[1].split("## 4.")[0]
    assert "`consolidated` over `base+bandit`" in q3


def test_report_cross_learning_and_replay_conclusions(results):
    cross = results["cross_learning"]
    # The synthetic curve: consolidated ahead by 0.3 * (1 - share) below the full data, level at 100%.
    assert cross["gain_shares"] == [0.05, 0.2]
    assert results["conclusions"]["cross_learning_gain"] is True
    replay = results["replay"]["by_estimator"]
    assert replay["dm"]["abs_relative_error"] == pytest.approx(0.2, abs=1e-9)
    assert results["conclusions"]["closest_replay_estimator"] != "dm"
    q6 = render_markdown(results).split("## 6.")[1].split("## All")[0]
    assert "`dm` is furthest (20.0%)" in q6


def test_headline_text_lists_every_strategy_with_intervals(results):
    text = headline_text(results)
    lines = text.splitlines()
    assert lines[0].split() == ["strategy", *SECTION_NAMES, ALL]
    for strategy in MAIN_STRATEGIES:
        row = next(line for line in lines if line.startswith(strategy + " "))
        assert row.count("±") == len(SECTION_NAMES) + 1


def test_write_outputs_writes_strict_json_and_both_reports(results, tmp_path):
    results = {**results, "runtime": {**results["runtime"], "seconds": math.nan}}
    paths = write_outputs(results, tmp_path / "out")
    loaded = json.loads(paths["results"].read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert loaded["runtime"]["seconds"] is None
    assert paths["markdown"].read_text().startswith("# Design comparison")
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")
