"""`sectionrank experiment-report` on small logs: the files and the printed differences, the same numbers from
a SQLite log and from its Parquet dataset, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bandits.dataset import ship_log
from bandits.log import DecisionLog
from bandits.records import FeedbackBatch
from sectionrank.cli import main
from tests.bandits.log_factories import make_decisions


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def ab_log(tmp_path) -> Path:
    """400 decisions of 80 users in experiment "exp" (A or B by user), 20 outside it; B gets more clicks."""
    batch = make_decisions(400, seed=31, sections=("discover", "search"))
    rng = np.random.default_rng(32)
    users = rng.integers(0, 80, size=400)
    variant = np.where(users % 2 == 0, "exp/A", "exp/B").astype(object)
    variant[:20] = ""
    batch = dataclasses.replace(batch, user_id=users, variant=variant)
    lengths = np.array([len(s) for s in batch.shown])
    rate = np.where(variant == "exp/B", 0.6, 0.2)
    n_clicks = np.minimum(rng.binomial(5, rate), lengths)
    feedback = FeedbackBatch(
        event_id=batch.event_id,
        time=batch.time + 1.0,
        clicks=[np.arange(k) for k in n_clicks],
        conversions=[np.arange(min(k, 1)) for k in n_clicks],
        revenue=n_clicks * 3.0,
    )
    path = tmp_path / "log.db"
    with DecisionLog.open(path, create=True) as log:
        log.append_decisions(batch)
        log.append_feedback(feedback)
    return path


def test_cli_experiment_report_writes_the_report(ab_log, tmp_path):
    result = run("experiment-report", "--log", ab_log, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "experiment exp (control A):" in result.output
    assert "all" in result.output
    assert (tmp_path / "out" / "report.md").is_file()
    assert (tmp_path / "out" / "experiment-exp.png").is_file()
    (experiment,) = json.loads((tmp_path / "out" / "results.json").read_text())["experiments"]
    assert experiment["metrics"] == ["clicks", "conversions", "revenue"]
    overall = next(d for d in experiment["differences"] if (d["section"], d["metric"]) == ("all", "clicks"))
    assert overall["verdict"] == "better"
    requests = sum(
        s["requests"] for s in experiment["stats"] if (s["section"], s["metric"]) == ("all", "clicks")
    )
    assert requests == 380  # the 20 decisions outside the experiment are left out


def test_cli_experiment_report_dataset_gives_the_same_numbers(ab_log, tmp_path):
    with DecisionLog.open(ab_log) as log:
        ship_log(log, tmp_path / "ds", host="h1", chunk_size=150)
    assert run("experiment-report", "--log", ab_log, "--out", tmp_path / "a").exit_code == 0
    assert run("experiment-report", "--log", tmp_path / "ds", "--out", tmp_path / "b").exit_code == 0
    a = json.loads((tmp_path / "a" / "results.json").read_text())["experiments"]
    b = json.loads((tmp_path / "b" / "results.json").read_text())["experiments"]
    assert a == b


def test_cli_experiment_report_control_option(ab_log, tmp_path):
    result = run("experiment-report", "--log", ab_log, "--out", tmp_path / "out", "--control", "B")
    assert result.exit_code == 0, result.output
    assert "experiment exp (control B):" in result.output


def test_cli_experiment_report_log_without_experiments(tmp_path):
    path = tmp_path / "plain.db"
    with DecisionLog.open(path, create=True) as log:
        log.append_decisions(make_decisions(10, seed=33))
    result = run("experiment-report", "--log", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "no decision in the log was served in an experiment" in result.output
    assert "No decision in the log was served" in (tmp_path / "out" / "report.md").read_text()


# One-line errors: (arguments after the log, message).
ERRORS = [
    (("--control", "Z"), r"Expected `control` among the variants of experiment 'exp' \(A, B\), found 'Z'"),
    (("--wait-seconds", "-1"), "--wait-seconds"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS)
def test_cli_experiment_report_errors_are_one_line(ab_log, tmp_path, args, message):
    result = run("experiment-report", "--log", ab_log, "--out", tmp_path / "out", *args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert re.search(message, result.output), result.output


def test_cli_experiment_report_missing_log_is_one_line(tmp_path):
    result = run("experiment-report", "--log", tmp_path / "none.db", "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert "none.db" in result.output
