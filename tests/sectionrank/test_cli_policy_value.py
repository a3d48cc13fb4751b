"""`policy-value` and `learn` say what their numbers measure: gains with intervals, arms by knob values, and
the progressive validation loss as the reward it estimates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from heuristics import SectionsConfig
from heuristics.arm_labels import arm_label
from ranker.config import RankerConfig
from sectionrank.cli import main
from sectionrank.commands.learn import progressive_text
from sectionrank.commands.policy_value import paired_gain
from sectionrank.commands.train import context_blind_sections, context_note

TINY_WORLD = str(Path(__file__).parents[1] / "fixtures" / "world_tiny.toml")


def ok(*args: object):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def test_paired_gain_matches_a_naive_reference():
    rng = np.random.default_rng(3)
    values, reference = rng.random(500), rng.random(500)
    diffs = [v - r for v, r in zip(values, reference, strict=True)]
    mean = sum(diffs) / len(diffs)
    sd = (sum((d - mean) ** 2 for d in diffs) / (len(diffs) - 1)) ** 0.5
    gain = paired_gain(values, reference)
    assert gain.mean == pytest.approx(mean)
    assert gain.low == pytest.approx(mean - 1.959964 * sd / len(diffs) ** 0.5)
    assert gain.high == pytest.approx(mean + 1.959964 * sd / len(diffs) ** 0.5)


def test_paired_gain_of_a_constant_shift_has_no_width():
    reference = np.linspace(0.0, 1.0, 50)
    assert paired_gain(reference + 0.25, reference) == pytest.approx((0.25, 0.25, 0.25))
    assert paired_gain(np.array([1.0]), np.array([0.5])) == (0.5, 0.5, 0.5)


def test_policy_value_names_the_best_fixed_arm_by_knob_values_and_gives_intervals(tmp_path):
    out = tmp_path / "truth.json"
    result = ok(
        "policy-value", "--world", TINY_WORLD, "--requests", 400, "--policy", "epsilon:0.3", "--out", out
    )
    sections = SectionsConfig.load()
    truth = json.loads(out.read_text())["sections"]
    for name, row in truth.items():
        best = row["best_fixed_arm"]
        assert best["knobs"] == arm_label(sections[name], sections[name].arms[best["index"]])
        assert f"best fixed arm: {best['knobs']} " in result.output
        for policy, value in row["policies"].items():
            gain = row["gain_vs_best_fixed"][policy]
            assert gain["mean"] == pytest.approx(value - best["value"])
            assert gain["low"] <= gain["mean"] <= gain["high"]
            assert f"{gain['mean']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}] vs best fixed arm" in (
                result.output
            )
    assert "How to read these numbers" in result.output
    assert "sectionrank\ncompare" in result.output or "sectionrank compare" in result.output


def test_progressive_text_turns_the_loss_into_the_reward_it_estimates():
    text = progressive_text(-0.4851, 0.4273, "clicks")
    assert (
        text.splitlines()[0]
        == "  clicks per decision: 0.4851 estimated for the policy as it learned, 0.4273 logged."
    )
    assert "cost = -reward: its loss here is -0.4851" in text
    assert progressive_text(None, 0.5, "clicks") == "  clicks per decision: 0.5000 logged"
    assert progressive_text(float("nan"), 0.5, "clicks") == "  clicks per decision: 0.5000 logged"


@pytest.mark.slow
def test_learn_prints_the_estimated_reward_of_its_policy(tmp_path):
    ok("simulate", "--world", TINY_WORLD, "--requests", 1500, "--out", tmp_path / "sim", "--quiet")
    result = ok("learn", "--log", tmp_path / "sim" / "log.db", "--out", tmp_path / "policy")
    meta = json.loads((tmp_path / "policy" / "policy-0001.json").read_text())
    loss = meta["metadata"]["progressive_loss"] if "metadata" in meta else meta["progressive_loss"]
    estimated = float(re.search(r"clicks per decision: (-?[\d.]+) estimated", result.output).group(1))
    assert estimated == pytest.approx(-loss, abs=5e-5)


def test_context_blind_sections_of_the_shipped_designs():
    config = RankerConfig.load()
    sections = config.section_names
    # The base design serves the relevance sections (not search) and sees none of their contexts.
    assert context_blind_sections(config, "base", config.design("base").sections) == {
        "similar_items": "source_item",
        "category_explore": "category",
    }
    assert context_blind_sections(config, "consolidated", sections) == {}
    assert context_blind_sections(config, "independent", sections) == {}
    note = context_note(
        config, [("base", "base", ("discover", "similar_items")), ("c", "consolidated", sections)]
    )
    assert note is not None
    assert note.startswith("base: it has no section-context feature, so in similar_items")
    assert "category_explore" not in note
    assert context_note(config, [("c", "consolidated", sections)]) is None
