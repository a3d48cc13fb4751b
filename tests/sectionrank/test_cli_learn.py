"""learn, replay and policy-value end to end: a policy learned from an exploring log beats the best fixed arm
where context matters, and replay's intervals contain the simulator's truth."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sectionrank.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures"
CONTEXT_WORLD = str(FIXTURES / "world_context.toml")
TINY_WORLD = str(FIXTURES / "world_tiny.toml")
# Day 20 of the 30-day simulated period: learn before it, evaluate after it.
CUT = str(1709251200 + 20 * 86400)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn-cli")
    sim, policy = root / "sim", root / "policy"
    ok("simulate", "--world", CONTEXT_WORLD, "--requests", 24000, "--seed", 1, "--out", sim, "--quiet")
    learned = ok("learn", "--log", sim / "log.db", "--out", policy, "--until", CUT, "--wait-seconds", 60)
    ok(
        "policy-value",
        "--world",
        CONTEXT_WORLD,
        "--seed",
        1,
        "--policy",
        policy,
        "--since",
        CUT,
        "--requests",
        3000,
        "--out",
        root / "truth.json",
    )
    ok(
        "replay",
        "--log",
        sim / "log.db",
        "--since",
        CUT,
        "--policy",
        policy,
        "--wait-seconds",
        60,
        "--estimators",
        "ips,snips,dr",
        "--n-bootstrap",
        100,
        "--out",
        root / "replay.json",
    )
    truth = json.loads((root / "truth.json").read_text())["sections"]["discover"]
    replay = json.loads((root / "replay.json").read_text())["rows"]
    return {"root": root, "policy": policy, "learned": learned, "truth": truth, "replay": replay}


@pytest.mark.slow
def test_learned_policy_beats_best_fixed_arm_and_logging_policy(experiment):
    truth = experiment["truth"]
    learned = truth["policies"][str(experiment["policy"])]
    assert truth["context_oracle"] > truth["best_fixed_arm"]["value"] + 0.02  # context matters here
    assert learned > truth["best_fixed_arm"]["value"]
    assert learned > truth["policies"]["uniform"]  # the logging policy explored uniformly


@pytest.mark.slow
def test_replay_intervals_contain_the_truth(experiment):
    learned = experiment["truth"]["policies"][str(experiment["policy"])]
    rows = [r for r in experiment["replay"] if r["group"] == "discover"]
    assert {r["estimator"] for r in rows} == {"ips", "snips", "dr"}
    for row in rows:
        assert row["ci_low"] <= learned <= row["ci_high"], row


@pytest.mark.slow
def test_learn_reports_counts_and_writes_a_version(experiment):
    assert "policy-0001.vw" in experiment["learned"].output
    assert (experiment["policy"] / "policy-0001.json").exists()
    assert "discover" in experiment["learned"].output


def test_learn_missing_log_is_one_line(tmp_path):
    result = run("learn", "--log", tmp_path / "none.db", "--out", tmp_path / "p")
    assert result.exit_code != 0
    assert result.output.startswith("Error:")
    assert result.output.count("\n") == 1
    assert not (tmp_path / "none.db").exists()


@pytest.mark.parametrize(
    ("args", "match"),
    # Invalid replay invocations: each is one line naming what is wrong.
    [
        (("--estimators", "ips,magic"), "--estimators"),
        (("--policy", "fixed:search"), "SECTION=ARM"),
        (("--policy", "/nonexistent/policy"), "no such policy"),
    ],
)
def test_replay_invalid_is_one_line(tmp_path, args, match):
    sim = tmp_path / "sim"
    ok("simulate", "--world", TINY_WORLD, "--requests", 200, "--out", sim, "--quiet")
    base = ["replay", "--log", sim / "log.db"]
    if "--policy" not in args:
        base += ["--policy", "uniform"]
    result = run(*base, *args)
    assert result.exit_code != 0
    assert "Error" in result.output
    assert match in result.output
    assert "Traceback" not in result.output


def test_replay_generic_file(tmp_path):
    example = Path(__file__).parents[2] / "docs" / "examples" / "replay-example.csv"
    out = tmp_path / "r.json"
    ok("replay", "--log", example, "--policy", "uniform", "--estimators", "ips,snips", "--out", out)
    rows = json.loads(out.read_text())["rows"]
    assert {r["estimator"] for r in rows} == {"ips", "snips"}
