"""The dataset and Dask options of the command line: `export --dataset`, `simulate --dataset`, `--log DIR`,
and the one-line errors of `--dask`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from bandits.dataset_read import LogDataset
from bandits.log import DecisionLog
from sectionrank.cli import main

TINY = str(Path(__file__).parents[1] / "fixtures" / "world_tiny.toml")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def sims(tmp_path_factory):
    """Two small simulated hosts' SQLite logs, and the first simulated straight into a dataset too."""
    root = tmp_path_factory.mktemp("cli-dataset")
    for name, seed in (("a", 1), ("b", 2)):
        ok("simulate", "--world", TINY, "--requests", 400, "--seed", seed, "--out", root / name, "--quiet")
    ok(
        "simulate", "--world", TINY, "--requests", 400, "--seed", 1, "--out", root / "direct",
        "--dataset", root / "direct" / "ds", "--quiet",
    )  # fmt: skip
    return root


def test_cli_export_dataset_twice_ships_nothing_the_second_time(sims, tmp_path):
    first = ok("export", "--log", sims / "a" / "log.db", "--dataset", tmp_path / "ds", "--host", "a")
    assert "Shipped 400 decisions and 400 feedback rows" in first
    second = ok("export", "--log", sims / "a" / "log.db", "--dataset", tmp_path / "ds", "--host", "a")
    assert "Shipped 0 decisions and 0 feedback rows" in second
    assert LogDataset.open(tmp_path / "ds").count() == 400


def test_cli_two_hosts_shipped_are_both_read(sims, tmp_path):
    for host in ("a", "b"):
        ok("export", "--log", sims / host / "log.db", "--dataset", tmp_path / "ds", "--host", host)
    out = tmp_path / "replay.json"
    ok("replay", "--log", tmp_path / "ds", "--policy", "uniform", "--estimators", "ips", "--out", out)
    rows = json.loads(out.read_text())["rows"]
    assert next(r["n"] for r in rows if r["group"] == "overall") == 800


def test_cli_simulate_dataset_holds_what_the_sqlite_log_holds(sims):
    with DecisionLog.open(sims / "a" / "log.db") as log:
        expected = log.joined()
    got = LogDataset.open(sims / "direct" / "ds").joined()
    assert not (sims / "direct" / "log.db").exists()
    pd.testing.assert_frame_equal(got, expected)


def test_cli_replay_and_learn_read_a_dataset_as_the_log(sims, tmp_path):
    ok("export", "--log", sims / "a" / "log.db", "--dataset", tmp_path / "ds", "--host", "a")
    outputs = {}
    for name, source in (("log", sims / "a" / "log.db"), ("ds", tmp_path / "ds")):
        out = tmp_path / f"{name}.json"
        ok("replay", "--log", source, "--policy", "uniform", "--policy", "default", "--out", out)
        outputs[name] = json.loads(out.read_text())["rows"]
        ok("learn", "--log", source, "--out", tmp_path / f"policy-{name}")
    assert outputs["ds"] == outputs["log"]
    policy = "policy-0001.vw"
    assert (tmp_path / "policy-ds" / policy).read_bytes() == (tmp_path / "policy-log" / policy).read_bytes()


# Errors a user can make with the dataset and Dask options: the arguments, and the one line that says so.
ERRORS = [
    (
        ["export", "--log", "{a}", "--out", "x.parquet", "--dataset", "ds"],
        "give one of --out FILE or --dataset",
    ),
    (["export", "--log", "{a}"], "give one of --out FILE or --dataset"),
    (["export", "--log", "{a}", "--dataset", "ds", "--section", "discover"], "apply to --out"),
    (["export", "--log", "{a}", "--dataset", "ds", "--host", "a/b"], "Expected `host`"),
    (["replay", "--log", "{a}", "--dask", "local:2", "--policy", "uniform"], "ship it with"),
    (["replay", "--log", "{direct}", "--dask", "local:0", "--policy", "uniform"], "expected local:N"),
    (
        ["replay", "--log", "{direct}", "--dask", "local:1", "--policy", "uniform", "--estimators", "dm"],
        "not dm",
    ),
    (["replay", "--log", "{missing}", "--policy", "uniform"], "no such dataset"),
    (["train", "--design", "base", "--log", "{missing}", "--out", "m"], "no such dataset"),
]


@pytest.mark.parametrize(("args", "match"), ERRORS)
def test_cli_dataset_errors_are_one_line(sims, tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    paths = {"a": sims / "a" / "log.db", "direct": sims / "direct" / "ds", "missing": tmp_path / "nope" / "*"}
    result = run(*[a.format(**paths) for a in args])
    assert result.exit_code != 0
    assert match in result.output
    assert "Traceback" not in result.output
