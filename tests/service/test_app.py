"""The HTTP API through Flask's test client: every endpoint, valid and invalid, on the tiny world's models
(fixtures: tests/service/conftest.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bandits.log import DecisionLog
from service.app import create_app, get_state
from service.config import ServiceConfig
from service.store import ServiceStore
from tests.service.cases import FEED_SECTIONS


def post(client, path, body, **kwargs):
    return client.post(path, json=body, **kwargs)


# -- rerank ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("section", ["discover", "similar_items", "category_explore", "search"])
def test_rerank_returns_top_k_of_the_candidates(client, section, rerank_body):
    body = rerank_body(section)
    response = post(client, "/v1/rerank", body)
    assert response.status_code == 200, response.get_json()
    out = response.get_json()
    ids = [item["id"] for item in out["items"]]
    assert len(ids) == 10
    assert len(set(ids)) == 10
    assert set(ids) <= set(body["candidates"])
    assert [item["rank"] for item in out["items"]] == list(range(1, 11))
    assert all(np.isfinite(item["score"]) for item in out["items"])
    assert out["section"] == section
    assert out["fallback"] is None
    assert 0 < out["arm"]["propensity"] <= 1
    assert out["arm"]["id"].startswith(section)
    assert out["model_versions"]["ranker"]


def test_rerank_k_above_candidates_returns_all(client, rerank_body):
    body = rerank_body(n=4, k=50)
    out = post(client, "/v1/rerank", body).get_json()
    assert sorted(item["id"] for item in out["items"]) == sorted(body["candidates"])


def test_rerank_default_k_is_the_sections(client, app, rerank_body):
    body = rerank_body(n=60)
    del body["k"]
    out = post(client, "/v1/rerank", body).get_json()
    assert len(out["items"]) == get_state(app).loaded.sections["discover"].serving.default_k


def test_rerank_candidate_objects_equal_plain_ids(client, rerank_body):
    body = rerank_body(request_id="same")
    plain = post(client, "/v1/rerank", body).get_json()
    objects = {**body, "candidates": [{"id": i, "price": 3} for i in body["candidates"]]}
    as_objects = post(client, "/v1/rerank", objects).get_json()
    np.testing.assert_allclose(
        sorted(i["score"] for i in plain["items"] if plain["arm"]["id"] == as_objects["arm"]["id"]),
        sorted(i["score"] for i in as_objects["items"] if plain["arm"]["id"] == as_objects["arm"]["id"]),
    )
    assert len(as_objects["items"]) == 10


def test_rerank_unknown_items_and_users_get_defaults(client, rerank_body):
    body = rerank_body(n=5)
    body["user"] = {"id": 10**12}
    body["candidates"] = [*body["candidates"], 10**12 + 1, 10**12 + 2]
    out = post(client, "/v1/rerank", body)
    assert out.status_code == 200
    assert {i["id"] for i in out.get_json()["items"]} == set(body["candidates"])


def test_rerank_string_ids_unknown_to_an_int_catalog_are_served(client):
    body = {"section": "discover", "user": {"id": "anonymous"}, "candidates": ["a", "b", "c"], "k": 2}
    out = post(client, "/v1/rerank", body)
    assert out.status_code == 200
    assert {i["id"] for i in out.get_json()["items"]} <= {"a", "b", "c"}


def test_rerank_decision_reaches_the_log(client, app, rerank_body):
    body = rerank_body(request_id="req-7")
    out = post(client, "/v1/rerank", body).get_json()
    state = get_state(app)
    assert state.writer.flush()
    with DecisionLog.open(state.config.log) as log:
        rows = log.decisions()
    row = rows[rows["event_id"] == out["event_id"]].iloc[0]
    assert list(row["shown"]) == [i["id"] for i in out["items"]]
    assert row["arm_id"] == out["arm"]["id"]
    assert row["propensity"] == pytest.approx(out["arm"]["propensity"])
    assert row["context"]["request_id"] == "req-7"
    assert out["request_id"] == "req-7"


# Each row: string candidate ids that fixed-width numpy strings would change (trailing NULs dropped).
NUL_IDS = [
    ["\x00", "a"],
    ["a\x00", "a"],
    ["\x00\x00", "\x00", "b\x00c"],
]


@pytest.mark.parametrize("ids", NUL_IDS)
def test_rerank_string_ids_round_trip_with_nul_characters(client, app, ids):
    body = {"section": "discover", "user": {"id": "\x00"}, "candidates": ids, "k": len(ids)}
    out = post(client, "/v1/rerank", body)
    assert out.status_code == 200, out.get_json()
    shown = [item["id"] for item in out.get_json()["items"]]
    assert sorted(shown) == sorted(ids)
    event_id = out.get_json()["event_id"]
    clicked = post(client, "/v1/feedback", {"event_id": event_id, "clicks": ids, "conversions": [ids[0]]})
    assert clicked.status_code == 200, clicked.get_json()
    assert clicked.get_json()["clicks"] == list(range(len(ids)))
    assert clicked.get_json()["conversions"] == [shown.index(ids[0])]
    state = get_state(app)
    assert state.writer.flush()
    with DecisionLog.open(state.config.log) as log:
        rows = log.decisions()
    row = rows[rows["event_id"] == event_id].iloc[0]
    assert row["candidates"].tolist() == ids
    assert row["shown"].tolist() == shown
    assert row["user_id"] == "\x00"


def test_feedback_by_a_nul_id_of_a_logged_decision_is_accepted(app, client):
    # Read back from the log, not from this worker's memory of recent decisions.
    ids = ["\x00", "x\x00"]
    out = post(client, "/v1/rerank", {"section": "discover", "user": {"id": 1}, "candidates": ids}).get_json()
    state = get_state(app)
    assert state.writer.flush()
    state.recent._recent.clear()
    response = post(client, "/v1/feedback", {"event_id": out["event_id"], "clicks": ["x\x00", "\x00"]})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["clicks"] == [0, 1]


def test_rerank_string_catalog_ids_differing_by_nul_are_distinct_items(config_dict, sim_dir, tmp_path):
    # Two stores of the same items: ids that differ only by trailing NULs, and plain ids. Each candidate must
    # be scored as its own item (the ranker's order and scores, heuristics off) and logged as given.
    catalog = pd.read_parquet(sim_dir / "catalog.parquet").head(4)
    users = pd.read_parquet(sim_dir / "users.parquet")
    names = {"nul": ["x", "x\x00", "\x00", "\x00\x00"], "plain": ["p0", "p1", "p2", "p3"]}
    scores, apps = {}, []
    for kind, ids in names.items():
        store = ServiceStore(tmp_path / f"{kind}.db")
        store.load("catalog", catalog.assign(item_id=ids))
        store.load("users", users)
        config = config_dict(tmp_path / f"{kind}-log.db", store=str(store.path), heuristics=False)
        apps.append(create_app(ServiceConfig.from_dict(config, environ={})))
        body = {"section": "discover", "user": {"id": int(users["user_id"].iloc[0])}, "k": 5}
        body["candidates"] = [*ids, f"{ids[0]}\x00\x00\x00"]  # the last is no catalog item
        out = post(apps[-1].test_client(), "/v1/rerank", body).get_json()
        scores[kind] = {item["id"]: item["score"] for item in out["items"]}
        state = get_state(apps[-1])
        assert state.writer.flush()
        with DecisionLog.open(state.config.log) as log:
            row = log.decisions().iloc[0]
        assert row["candidates"].tolist() == body["candidates"]
        state.close()
    plain = dict(zip([*names["nul"], "x\x00\x00\x00"], [*names["plain"], "p0\x00\x00\x00"], strict=True))
    assert scores["nul"] == {nul: scores["plain"][plain[nul]] for nul in scores["nul"]}
    assert len(set(scores["plain"].values())) > 2  # the items are told apart by their features


def test_rerank_missing_required_context_is_422_naming_it(client, rerank_body):
    body = rerank_body("similar_items")
    del body["context"]["source_item"]
    response = post(client, "/v1/rerank", body)
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "context.source_item"


def test_rerank_too_many_candidates_is_422(client, app):
    limit = get_state(app).loaded.sections["discover"].serving.max_candidates
    body = {"section": "discover", "user": {"id": 1}, "candidates": list(range(limit + 1))}
    response = post(client, "/v1/rerank", body)
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "status": 422,
        "field": "candidates",
        "message": f"{limit + 1} candidates, section 'discover' takes at most {limit}",
    }


# -- feedback -------------------------------------------------------------------------------------------


def served(client, rerank_body, **extra):
    return post(client, "/v1/rerank", rerank_body(**extra)).get_json()


def test_feedback_joins_with_its_decision(client, app, rerank_body):
    out = served(client, rerank_body)
    shown = [i["id"] for i in out["items"]]
    fb = {"event_id": out["event_id"], "clicks": [shown[2], {"position": 0}], "conversions": [shown[2]]}
    fb["revenue"] = 12.5
    fb["time"] = 1_710_000_010.0
    response = post(client, "/v1/feedback", fb)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {
        "event_id": out["event_id"],
        "stored": True,
        "late": False,
        "clicks": [0, 2],
        "conversions": [2],
        "logged": True,
    }
    state = get_state(app)
    state.writer.flush()
    with DecisionLog.open(state.config.log) as log:
        joined = log.joined()
    row = joined[joined["event_id"] == out["event_id"]].iloc[0]
    assert row["has_feedback"]
    assert list(row["clicks"]) == [0, 2]
    assert list(row["conversions"]) == [2]
    assert row["revenue"] == 12.5


def test_feedback_is_idempotent(client, app, rerank_body):
    out = served(client, rerank_body)
    first = post(client, "/v1/feedback", {"event_id": out["event_id"], "clicks": [{"position": 1}]})
    again = post(client, "/v1/feedback", {"event_id": out["event_id"], "clicks": [{"position": 4}]})
    assert first.get_json()["stored"] is True
    assert again.status_code == 200
    assert again.get_json()["stored"] is False
    assert again.get_json()["clicks"] == [1]  # what is stored, not what the repeat sent
    state = get_state(app)
    state.writer.flush()
    with DecisionLog.open(state.config.log) as log:
        feedback = log.feedback()
    rows = feedback[feedback["event_id"] == out["event_id"]]
    assert len(rows) == 1
    assert list(rows.iloc[0]["clicks"]) == [1]


def test_feedback_after_the_wait_window_is_late(client, app, rerank_body):
    out = served(client, rerank_body)
    wait = get_state(app).config.reward_wait_seconds
    on_time = 1_710_000_000.0 + wait
    response = post(client, "/v1/feedback", {"event_id": out["event_id"], "clicks": [], "time": on_time + 1})
    assert response.get_json()["late"] is True
    out2 = served(client, rerank_body)
    response = post(client, "/v1/feedback", {"event_id": out2["event_id"], "clicks": [], "time": on_time})
    assert response.get_json()["late"] is False


def test_feedback_on_an_unknown_event_is_404(client):
    response = post(client, "/v1/feedback", {"event_id": "no-such-event", "clicks": []})
    assert response.status_code == 404
    assert response.get_json()["error"]["field"] == "event_id"


def test_feedback_on_a_queued_decision_is_accepted(app, rerank_body):
    # A decision served but not yet written (still queued, or in the spill journal) counts as known.
    state = get_state(app)
    out = state.rerank(rerank_body())
    assert state.feedback({"event_id": out["event_id"], "clicks": [{"position": 0}]})["stored"]


def test_feedback_clicks_outside_the_shown_list_are_422(client, rerank_body):
    out = served(client, rerank_body)
    response = post(client, "/v1/feedback", {"event_id": out["event_id"], "clicks": [{"position": 10}]})
    assert response.status_code == 422
    assert response.get_json()["error"]["field"] == "clicks[0].position"
    response = post(client, "/v1/feedback", {"event_id": out["event_id"], "clicks": [10**9]})
    assert response.get_json()["error"]["field"] == "clicks[0]"
    response = post(
        client, "/v1/feedback", {"event_id": out["event_id"], "clicks": [], "conversions": [{"position": 1}]}
    )
    assert response.get_json()["error"]["field"] == "conversions"


# -- the other endpoints ----------------------------------------------------------------------------------


def test_sections_lists_every_section_with_its_model(client):
    out = client.get("/v1/sections").get_json()
    models = {s["name"]: s["model"] for s in out["sections"]}
    assert models == {
        "discover": "base",
        "similar_items": "base",
        "category_explore": "base",
        "search": "independent",
    }


def test_models_lists_versions_and_contracts(client):
    out = client.get("/v1/models").get_json()
    assert set(out["models"]) == {"base", "independent"}
    assert "search" not in out["models"]["base"]["sections"]
    assert [f["name"] for f in out["models"]["base"]["contract"]["features"]]
    assert out["policy"]["spec"] == "uniform"


def test_health_and_ready(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json()["status"] == "ready"


def test_readyz_is_503_until_models_load(tmp_path, config_dict):
    app = create_app(config_dict(tmp_path / "log.db", models={}))
    try:
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["error"]["field"] == "models.base"
        assert app.test_client().post("/v1/rerank", json={}).status_code == 503
    finally:
        get_state(app).close()


def test_startup_without_a_design_for_a_section_is_not_ready_naming_the_key(
    config_dict, rerank_body, tmp_path
):
    sections = tmp_path / "sections.toml"
    sections.write_text(FEED_SECTIONS)
    config = config_dict(tmp_path / "log.db", sections_config=str(sections))
    app = create_app(ServiceConfig.from_dict(config, environ={}))
    try:
        client = app.test_client()
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.get_json()["error"] == {
            "status": 503,
            "field": "section_models.feed",
            "message": "no models loaded: no design serves section 'feed'",
        }
        # A configuration problem, not the request's: no 422.
        assert client.post("/v1/rerank", json=rerank_body()).status_code == 503
    finally:
        get_state(app).close()
