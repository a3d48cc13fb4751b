"""promote and policy show end to end on a log whose best arm is known: learn, gate, publish, inspect."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from sectionrank.cli import main
from tests.bandits.gate_factories import T0, write_gate_log

CUT = T0 + 6000


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("promote-cli")
    log = root / "log.db"
    write_gate_log(log, 6000, seed=3)
    write_gate_log(log, 2000, seed=4, start=CUT, first_id=6000)
    learned = run("learn", "--log", log, "--out", root / "policy" / "candidates", "--until", CUT)
    assert learned.exit_code == 0, learned.output
    return root


def test_cli_promote_publishes_the_candidate_and_policy_show_prints_the_decision(policy_dir):
    result = run(
        "promote", "--log", policy_dir / "log.db", "--policy-dir", policy_dir / "policy", "--margin", 0.01
    )
    assert result.exit_code == 0, result.output
    assert "Published" in result.output
    assert "[discover] ships candidate" in result.output
    shown = run("policy", "show", policy_dir / "policy")
    assert shown.exit_code == 0, shown.output
    assert shown.output.startswith("version 0001")
    assert "margin 0.01" in shown.output
    # Before any version the status quo is the service's uniform fallback; both challengers face it.
    assert "candidate - fallback" in shown.output
    assert "best_fixed_logged - fallback" in shown.output
    # No decisions of similar_items in the log: it keeps the fallback.
    assert "[similar_items] ships fallback: uniform over the arms" in shown.output


def test_cli_promote_refuses_an_unknown_fallback_in_one_line(policy_dir, tmp_path):
    result = run(
        "promote",
        "--log",
        policy_dir / "log.db",
        "--policy-dir",
        tmp_path / "policy",
        "--candidate",
        policy_dir / "policy" / "candidates",
        "--fallback",
        "logging",
    )
    assert result.exit_code == 2
    assert "'--fallback'" in result.output
    assert "uniform, default, epsilon:EPS" in result.output
    assert not (tmp_path / "policy").exists()


def test_cli_promote_refuses_a_short_window_in_one_line(policy_dir):
    result = run(
        "promote",
        "--log",
        policy_dir / "log.db",
        "--policy-dir",
        policy_dir / "other",
        "--candidate",
        policy_dir / "policy" / "candidates",
        "--until",
        CUT + 50,
    )
    assert result.exit_code == 1
    assert result.output.startswith("Error: too few decisions in the window")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_cli_policy_show_without_a_published_version_is_one_line(tmp_path: Path):
    result = run("policy", "show", tmp_path)
    assert result.exit_code == 1
    assert "no published version" in result.output
    assert len(result.output.strip().splitlines()) == 1
