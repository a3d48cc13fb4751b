"""The comparison report: generated from the results' numbers, self-contained HTML with every plot.

The results come from synthetic per-seed means (no simulation: `test_compare_results.make_results`), so that
the numbers, and hence the expected sentences, are known.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import replace
from html.parser import HTMLParser

import pytest

from simulator.compare import write_outputs
from simulator.compare_results import CompareResults
from simulator.compare_settings import ALL, MAIN_STRATEGIES
from simulator.report import SECTIONS, build_blocks, headline_text, render_html, render_markdown
from simulator.report_blocks import Figure, Heading, Section
from simulator.report_plots import PLOTS
from tests.simulator.test_compare_results import SECTION_NAMES, make_results

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results() -> CompareResults:
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
    assert parser.ids.get("verdict") == "section"
    # The verdict comes first after the title, and every table scrolls inside its own box.
    assert page.index('<section id="verdict">') < page.index("<h2")
    assert page.count("<table>") == page.count('<div class="table-wrap"><table>')
    assert ".table-wrap { overflow-x: auto;" in page
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
    flagged = {(f.winner, f.loser, f.section) for f in tilted.reversals.flagged}
    assert ("consolidated", "base+bandit", "search") in flagged
    assert ("consolidated", "base+bandit", "discover") not in flagged
    q3 = render_markdown(tilted).split("## 3.")[1].split("## 4.")[0]
    assert "`consolidated` over `base+bandit`" in q3


def test_report_cross_learning_and_replay_conclusions(results):
    cross = results.cross_learning
    # The synthetic curve: consolidated ahead by 0.3 * (1 - share) below the full data, level at 100%.
    assert cross.gain_shares == (0.05, 0.2)
    assert results.conclusions.cross_learning_gain is True
    replay = results.replay.by_estimator
    assert replay["dm"].abs_relative_error == pytest.approx(0.2, abs=1e-9)
    assert results.conclusions.closest_replay_estimator != "dm"
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
    results = replace(results, runtime=replace(results.runtime, seconds=math.nan))
    paths = write_outputs(results, tmp_path / "out")
    loaded = json.loads(paths["results"].read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert loaded["runtime"]["seconds"] is None
    assert paths["markdown"].read_text() == render_markdown(results)
    assert "The whole run took – s." in paths["markdown"].read_text()
    assert paths["markdown"].read_text().startswith("# Design comparison")
    assert paths["html"].read_text().startswith("<!DOCTYPE html>")


def test_report_renders_the_same_from_the_results_read_back(results):
    back = CompareResults.from_json(json.loads(json.dumps(results.to_json())))
    assert render_markdown(back) == render_markdown(results)


def test_report_blocks_have_every_section_and_every_plot_once(results):
    blocks = build_blocks(results)
    # The verdict is the first section after the title and the run's header, and holds the forest plot.
    assert isinstance(blocks[2], Section)
    assert blocks[2].anchor == "verdict"
    flat = [inner for b in blocks for inner in (b.blocks if isinstance(b, Section) else (b,))]
    anchors = [b.anchor for b in blocks if isinstance(b, Heading) and b.anchor]
    assert anchors == list(SECTIONS)
    assert [b.key for b in flat if isinstance(b, Figure)] == list(PLOTS)
