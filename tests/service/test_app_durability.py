"""Durable acknowledgement through the app: a locked log sends decisions and feedback to the spill journal
without slowing the responses; when neither the log nor the journal can be written, responses say
``"logged": false`` and GET /readyz answers 503 "degraded"; everything reaches the log once it can."""

from __future__ import annotations

import time

import pytest

from bandits.log import DecisionLog
from service.app import create_app, get_state
from service.config import ServiceConfig
from tests.service.faults import locked, wait_for


@pytest.fixture
def make_app(config_dict, tmp_path):
    apps = []

    def make(**overrides):
        config = ServiceConfig.from_dict(config_dict(tmp_path / "log.db", **overrides), environ={})
        apps.append(create_app(config))
        return apps[-1]

    yield make
    for app in apps:
        get_state(app).close()


def logged(path) -> tuple[set[str], set[str]]:
    with DecisionLog.open(path) as log:
        return set(log.decisions()["event_id"]), set(log.feedback()["event_id"])


def test_locked_log_spills_without_slowing_rerank_or_feedback(make_app, rerank_body, tmp_path):
    app = make_app()
    client = app.test_client()
    state = get_state(app)
    decisions, feedbacks = [], []
    with locked(state.config.log):
        started = time.monotonic()
        for _ in range(20):
            out = client.post("/v1/rerank", json=rerank_body()).get_json()
            assert out["logged"] is True
            decisions.append(out["event_id"])
            fb = client.post("/v1/feedback", json={"event_id": out["event_id"], "clicks": [{"position": 0}]})
            assert fb.status_code == 200, fb.get_json()
            assert fb.get_json()["logged"] is True
            feedbacks.append(out["event_id"])
        assert time.monotonic() - started < 5.0  # no request waited out a busy timeout
        assert wait_for(lambda: state.writer.spill_bytes() > 0)
        assert client.get("/readyz").status_code == 200
    assert wait_for(lambda: state.writer.spill_bytes() == 0 and state.writer.queued() == 0)
    in_log = logged(state.config.log)
    assert set(decisions) <= in_log[0]
    assert set(feedbacks) <= in_log[1]


def test_unwritable_log_and_journal_answer_logged_false_and_degrade_readyz(make_app, rerank_body, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    app = make_app(spill_dir=str(blocker / "spill"))
    client = app.test_client()
    state = get_state(app)
    events = []
    with locked(state.config.log):
        events.append(client.post("/v1/rerank", json=rerank_body()).get_json()["event_id"])
        assert wait_for(lambda: state.writer.degraded)
        out = client.post("/v1/rerank", json=rerank_body()).get_json()
        assert out["logged"] is False
        events.append(out["event_id"])
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["status"] == "degraded"
        assert "sectionrank_log_degraded 1" in client.get("/metrics").get_data(as_text=True)
    assert wait_for(lambda: not state.writer.degraded and state.writer.queued() == 0)
    assert client.get("/readyz").status_code == 200
    assert set(events) <= logged(state.config.log)[0]


def test_feedback_reaches_any_worker_while_its_decision_waits_in_another_journal(make_app, rerank_body):
    # Two workers on one log: a decision spilled by one is known to the other, and so is its feedback.
    first, second = make_app(), make_app()
    log = get_state(first).config.log
    with locked(log):
        out = first.test_client().post("/v1/rerank", json=rerank_body()).get_json()
        assert wait_for(lambda: get_state(first).writer.spilled == 1)
        fb = {"event_id": out["event_id"], "clicks": [{"position": 1}]}
        answer = second.test_client().post("/v1/feedback", json=fb)
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["stored"] is True
        assert wait_for(lambda: get_state(second).writer.spilled == 1)
        repeat = first.test_client().post("/v1/feedback", json={**fb, "clicks": [{"position": 0}]})
        assert repeat.status_code == 200, repeat.get_json()
        assert (repeat.get_json()["stored"], repeat.get_json()["clicks"]) == (False, [1])
    # Each journal is replayed by its own writer once a second; on a busy machine that can take a while.
    assert wait_for(lambda: out["event_id"] in logged(log)[1], timeout=60)
    assert out["event_id"] in logged(log)[0]
