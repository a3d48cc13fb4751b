"""`sectionrank live` against a real `sectionrank serve` (gunicorn, 2 workers) on the tiny world: the value
recorded for each slate is the click model's truth for the slate the service logged as shown, every
feedback reaches the decision log with the clicks drawn, no answer is a 5xx, and the files are written."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from sectionrank.cli import main
from service.store import ServiceStore
from simulator import World, WorldConfig
from simulator.live import DRAW_BLOCK, LiveSettings, draw_chunks, run_live
from tests.conftest import SEED, WORLD_FILE
from tests.service.gunicorn_server import start, stop

pytestmark = pytest.mark.slow

REQUESTS = 400


@pytest.fixture(scope="module")
def served(sim_dir, saved, tmp_path_factory):
    """A live run of REQUESTS requests and a CLI run of 100 against a 2-worker server, stopped gracefully:
    (result, CLI result, decision log path, out directory of the CLI)."""
    tmp = tmp_path_factory.mktemp("live-gunicorn")
    store = ServiceStore(tmp / "store.db")
    store.load("catalog", pd.read_parquet(sim_dir / "catalog.parquet"))
    store.load("users", pd.read_parquet(sim_dir / "users.parquet"))
    process, port, log, _ = start(tmp, tmp / "store.db", saved)
    url = f"http://127.0.0.1:{port}"
    try:
        world = World.build(WorldConfig.load(WORLD_FILE), SEED)
        settings = LiveSettings(url=url, requests=REQUESTS, rate=0, seed=11, feedback_delay=0, chunk=70)
        result = run_live(world, settings)
        args = ["live", "--world", str(WORLD_FILE), "--world-seed", str(SEED), "--url", url]
        args += ["--requests", "100", "--rate", "0", "--feedback-delay", "0", "--seed", "12"]
        cli = CliRunner().invoke(main, [*args, "--window", "25", "--out", str(tmp / "cli")])
        # SIGTERM: the workers drain their log queues before they exit.
        os.kill(process.pid, signal.SIGTERM)
        process.wait(60)
    finally:
        stop(process)
    return result, cli, log, tmp / "cli"


def test_live_gunicorn_records_the_truth_of_the_logged_slate(served):
    result, _, log, _ = served
    world = World.build(WorldConfig.load(WORLD_FILE), SEED)
    draws = list(draw_chunks(world, REQUESTS, seed=11))
    with sqlite3.connect(log) as db:
        logged = {
            event_id: (json.loads(shown), json.loads(candidates), user)
            for event_id, shown, candidates, user in db.execute(
                "SELECT event_id, shown, candidates, user_id FROM decisions"
            )
        }
    records = result.records
    assert (records["status"] == 200).all()
    assert records["logged"].all()
    for row in records.itertuples():
        draw = draws[row.request // DRAW_BLOCK]
        one = draw.requests.take(np.array([row.request - draw.first]))
        shown, candidates, user = logged[row.event_id]
        assert candidates == one.candidates[0].tolist()
        assert user == one.user_id[0]
        assert row.shown == len(shown)
        # A naive recomputation, one request at a time, of the slate the service logged as shown.
        truth = world.expected_outcomes(one, np.array([shown], dtype=np.int64))
        assert row.expected_clicks == pytest.approx(truth.clicks[0], rel=1e-9)
        assert row.expected_conversions == pytest.approx(truth.conversions[0], rel=1e-9)
        assert row.expected_revenue == pytest.approx(truth.revenue[0], rel=1e-9)


def test_live_gunicorn_feedback_reaches_the_log_and_nothing_is_a_5xx(served):
    result, _, log, _ = served
    counts = result.counts
    assert counts.server_errors == 0
    assert counts.statuses == {200: REQUESTS}
    assert counts.feedback_statuses == {200: REQUESTS}
    with sqlite3.connect(log) as db:
        feedback = {
            event_id: (json.loads(clicks), json.loads(conversions), late)
            for event_id, clicks, conversions, late in db.execute(
                "SELECT event_id, clicks, conversions, late FROM feedback"
            )
        }
    records = result.records.set_index("event_id")
    assert set(records.index) <= set(feedback)
    for event_id, row in records.iterrows():
        clicks, conversions, late = feedback[event_id]
        assert len(clicks) == row["clicks"]
        assert len(conversions) == row["conversions"]
        assert set(conversions) <= set(clicks)
        assert late == 0
    # The draws are honest: clicks on the served slates average to their expected clicks.
    clicks = records["clicks"].to_numpy()
    se = clicks.std() / np.sqrt(len(clicks))
    assert abs(clicks.mean() - records["expected_clicks"].mean()) < 4 * se


def test_live_gunicorn_cli_writes_the_series_and_the_plot(served):
    _, cli, _, out = served
    assert cli.exit_code == 0, cli.output
    assert "0 failed, 0 5xx" in cli.output
    assert "all sections" in cli.output
    records = pd.read_parquet(out / "records.parquet")
    assert len(records) == 100
    series = pd.read_parquet(out / "series.parquet")
    assert set(series["section"]) >= {"all", *records["section"].unique()}
    assert series.loc[series["section"] == "all", "requests"].sum() == 100
    assert (out / "value.png").read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["server_errors"] == 0
    assert summary["policy_versions"] == ["UniformPolicy"]
