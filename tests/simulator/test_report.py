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

from ranker.config import RankerConfig
from simulator.compare import assemble_results, write_outputs
from simulator.compare_run import ALL, MAIN_STRATEGIES, REPLAY_POLICIES, SeedResult, curve_strategy
from simulator.compare_settings import CompareSettings
from simulator.report import SECTIONS, headline_text, render_html, render_markdown
from simulator.report_plots import PLOTS
from simulator.strategies import SLATE_METRICS
from simulator.world_config import WorldConfig

SECTION_NAMES = ("discover", "similar_items", "category_explore", "search")
SEGMENTS = ("new", "casual", "heavy")
PNG = b"\x89PNG\r\n\x1a\n"
SETTINGS = CompareSettings(log_requests=1000, eval_requests=100, tune_requests=50, curve_shares=(0.05, 0.2))


def synthetic_seeds(edge: dict[tuple[str, str], float], n_seeds: int = 5) -> list[SeedResult]:
    """Per-seed means: every strategy earns 1.0 clicks per request plus `edge[(strategy, section)]`, with a
    small seed-dependent wobble shared by all strategies (so paired differences are nearly constant)."""
    rng = np.random.default_rng(0)
    strategies = [*MAIN_STRATEGIES, "consolidated[equal]", "consolidated[business]"]
    results = []
    for seed in range(n_seeds):
        r = SeedResult(seed=seed)
        wobble = 0.05 * rng.standard_normal()
        for strategy in strategies:
            per_section = {}
            for section in SECTION_NAMES:
                jitter = 0.001 * rng.standard_normal()
                value = 1.0 + wobble + edge.get((strategy, section), 0.0) + jitter
                per_section[section] = value
                for metric in (*SLATE_METRICS, "coverage"):
                    scale = {"clicks": 1.0, "conversions": 0.1, "revenue": 3.0}.get(metric, 0.5)
                    r.metrics.append(_row(strategy, section, ALL, metric, value * scale))
                for segment in SEGMENTS:
                    r.metrics.append(_row(strategy, section, segment, "clicks", value))
            overall = float(np.mean(list(per_section.values())))
            for metric in (*SLATE_METRICS, "coverage"):
                r.metrics.append(_row(strategy, ALL, ALL, metric, overall))
            for segment in SEGMENTS:
                r.metrics.append(_row(strategy, ALL, segment, "clicks", overall))
        for share in SETTINGS.curve_shares:
            for design in ("consolidated", "independent"):
                value = 1.0 + wobble + (0.3 * (1 - share) if design == "consolidated" else 0.0)
                for metric in ("clicks", "ndcg"):
                    r.metrics.append(
                        _row(curve_strategy(design, share), "category_explore", ALL, metric, value)
                    )
                r.curve.append({"share": share, "design": design, "lists": int(1000 * share)})
        for section in SECTION_NAMES:
            for segment in SEGMENTS:
                for arm in range(3):
                    r.arm_counts.append(
                        {"strategy": "base+bandit", "section": section, "segment": segment, "arm": arm,
                         "count": 10 * (arm + 1)}
                    )  # fmt: skip
            r.best_fixed_arms[section] = {"index": 0, "id": f"{section}-arm0", "tuning_value": 1.0}
        for policy in REPLAY_POLICIES:
            for section in (*SECTION_NAMES, ALL):
                for estimator in SETTINGS.estimators:
                    truth = 1.0 + wobble
                    value = truth * (1.2 if estimator == "dm" else 1.01)
                    r.replay.append(
                        {"policy": policy, "section": section, "estimator": estimator, "value": value,
                         "ci_low": value - 0.05, "ci_high": value + 0.05, "truth": truth, "n": 100}
                    )  # fmt: skip
        r.costs = {
            name: {"models": 1, "artifacts": 1, "train_seconds": 1.0 + seed, "artifact_bytes": 2048}
            for name in MAIN_STRATEGIES
            if name not in ("random", "oracle")
        }
        r.training_lists = {"consolidated": {s: 100 for s in SECTION_NAMES}}
        r.seconds = {"log": 1.0, "train": 2.0}
        r.log = {"requests": 1000}
        results.append(r)
    return results


def _row(strategy: str, section: str, segment: str, metric: str, value: float) -> dict:
    return {
        "strategy": strategy,
        "section": section,
        "segment": segment,
        "metric": metric,
        "value": value,
        "n": 50,
    }


def make_results(edge: dict[tuple[str, str], float]) -> dict:
    results = assemble_results(
        synthetic_seeds(edge),
        world_config=WorldConfig.load("default"),
        settings=SETTINGS,
        sections=_sections(),
        ranker_config=RankerConfig.load(),
        seconds=12.0,
    )
    return json.loads(json.dumps(results, default=float).replace("NaN", "null"))


def _sections():
    from heuristics import SectionsConfig

    return SectionsConfig.load()


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
    # The synthetic curve: consolidated ahead by 0.3 * (1 - share) below the full data, even at 100%.
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
