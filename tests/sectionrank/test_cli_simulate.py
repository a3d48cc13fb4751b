"""`sectionrank simulate` end to end on a tiny world."""

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from bandits.log import DecisionLog
from sectionrank.cli import main

TINY = str(Path(__file__).parents[1] / "fixtures" / "world_tiny.toml")


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_simulate_writes_tables_log_and_summary(tmp_path):
    out = tmp_path / "sim"
    result = run("simulate", "--world", TINY, "--requests", "600", "--seed", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    catalog = pd.read_parquet(out / "catalog.parquet")
    users = pd.read_parquet(out / "users.parquet")
    assert len(catalog) == 600
    assert len(users) == 800
    with DecisionLog.open(out / "log.db") as log:
        assert log.count() == 600
        assert log.count_feedback() == 600
        joined = log.joined()
    run_info = json.loads((out / "simulation.json").read_text())
    assert run_info["requests"] == 600
    assert run_info["clicks"] == sum(len(c) for c in joined["clicks"])
    # The summary names every section that got traffic, with its CTR and arm shares.
    for section in joined["section"].unique():
        assert f"[{section}]" in result.output
    assert "clicks by position" in result.output
    assert "arm shares" in result.output
    # The knob policy's view of the candidate set is logged with each decision.
    assert all({"fresh_share", "category_entropy"} <= set(c) for c in joined["context"])


def test_simulate_same_seed_same_log(tmp_path):
    frames = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert (
            run("simulate", "--world", TINY, "--requests", "200", "--out", str(out), "--quiet").exit_code == 0
        )
        with DecisionLog.open(out / "log.db") as log:
            frames.append(log.joined())
    pd.testing.assert_frame_equal(frames[0], frames[1])


def test_simulate_refuses_existing_log_and_keeps_it(tmp_path):
    out = tmp_path / "sim"
    assert run("simulate", "--world", TINY, "--requests", "50", "--out", str(out), "--quiet").exit_code == 0
    before = (out / "log.db").read_bytes()
    result = run("simulate", "--world", TINY, "--requests", "50", "--out", str(out))
    assert result.exit_code != 0
    assert result.output.startswith("Error:")
    assert "already exists" in result.output
    assert (out / "log.db").read_bytes() == before


def test_simulate_bad_world_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[items]\ncount = -5\n")
    result = run("simulate", "--world", str(bad), "--requests", "5", "--out", str(tmp_path / "x"))
    assert result.exit_code != 0
    assert result.output.count("\n") == 1
    assert result.output.startswith("Error: items.count")
