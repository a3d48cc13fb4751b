"""`sectionrank compare` end to end on a tiny world, its one-line errors, and one seed run twice."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from heuristics import SectionsConfig
from ranker.config import RankerConfig
from sectionrank.cli import main
from simulator import WorldConfig
from simulator.compare import read_results
from simulator.compare_run import run_seed
from simulator.compare_settings import MAIN_STRATEGIES, CompareSettings
from simulator.report import SECTIONS, verdict_text
from simulator.report_plots import PLOTS
from simulator.strategies import SLATE_METRICS

TINY = str(Path(__file__).parents[1] / "ranker" / "world_small.toml")
SMALL = ["--requests", "3000", "--knob-requests", "1500", "--eval-requests", "200", "--quick"]


def run(*args: str):
    return CliRunner().invoke(main, ["compare", *args])


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, str] = {}
        self.headings: set[str] = set()
        self._figure: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "figure":
            self._figure = attributes.get("id")
        elif tag == "img" and self._figure:
            self.figures[self._figure] = attributes.get("src", "")
        elif tag == "h2":
            self.headings.add(attributes.get("id", ""))


@pytest.mark.slow
def test_compare_cli_writes_the_reports_and_prints_the_headline(tmp_path):
    out = tmp_path / "cmp"
    result = run("--world", TINY, "--seeds", "2", "--out", str(out), *SMALL)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["seeds"] == [0, 1]
    assert set(MAIN_STRATEGIES) <= set(results["metrics"])
    for strategy in MAIN_STRATEGIES:
        assert f"\n{strategy} " in result.output
    # Not on a terminal: a progress line per finished seed on stderr, no progress bar.
    assert "comparing: seed 1/2 done (" in result.stderr
    assert "comparing: seed 2/2 done (" in result.stderr
    # The oracle orders by the truth NDCG is measured against.
    assert results["metrics"]["oracle"]["all"]["ndcg"]["mean"] == pytest.approx(1.0)
    oracle = results["metrics"]["oracle"]["all"]["clicks"]["mean"]
    random = results["metrics"]["random"]["all"]["clicks"]["mean"]
    assert random < oracle
    parser = _Images()
    parser.feed((out / "report.html").read_text())
    assert set(SECTIONS) <= parser.headings
    for key in PLOTS:
        src = parser.figures[f"plot-{key}"]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG")
    assert "With 2 seeds (fewer than 5)" in (out / "report.md").read_text()
    # The verdict comes last, after the headline table, and is the one the results give.
    assert result.output.index("\noracle ") < result.output.index("Verdict on world")
    assert result.output.rstrip().endswith(verdict_text(read_results(out)).rstrip())
    assert "Only 2 seeds" in result.output.split("Verdict on world")[1]


# Errors a user can cause: (arguments, exit code, start of the output).
ERRORS = [
    (["--world", "nope", "--out", "x"], 1, "Error: world:"),
    (["--world", TINY, "--curve-section", "nope", "--out", "x"], 1, "Error: Expected `curve_section`"),
    (["--world", TINY, "--requests", "50", "--out", "x"], 2, "Usage:"),
    (["--world", TINY, "--seeds", "1", "--out", "x"], 2, "Usage:"),
    (["--world", TINY, "--feature-check", "affinity", "--out", "x"], 1, "Error: Expected distinct `feature_"),
    (["--world", TINY, "--feature-check", "none", "--feature-leak", "--out", "x"], 1, "with `feature_leak`"),
]


@pytest.mark.parametrize(("args", "code", "start"), ERRORS)
def test_compare_cli_errors_are_one_line(tmp_path, args, code, start):
    args = [a if a != "x" else str(tmp_path / "x") for a in args]
    result = run(*args)
    assert result.exit_code == code
    assert start in result.output
    if code == 1:
        assert result.output.startswith("Error:")
        assert result.output.count("\n") == 1
        assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_compare_run_seed_same_seed_same_numbers():
    settings = CompareSettings(
        log_requests=3000,
        knob_requests=1500,
        eval_requests=150,
        tune_requests=100,
        curve_shares=(0.2,),
        n_bootstrap=10,
    )
    args = (WorldConfig.load(TINY), 4, settings, SectionsConfig.load(), RankerConfig.load())
    first, second = run_seed(*args), run_seed(*args)
    assert first.metrics == second.metrics
    assert first.arm_counts == second.arm_counts
    assert first.replay == second.replay
    assert first.best_fixed_arms == second.best_fixed_arms
    assert first.curve == second.curve
    assert first.training_lists == second.training_lists
    assert first.log == second.log
    assert {s.metric for s in first.metrics} == {*SLATE_METRICS, "coverage"}
    assert set(first.seconds) == {
        "log",
        "prepare",
        "train",
        "curve",
        "knob_log",
        "learn",
        "tune",
        "replay",
        "evaluate",
    }
