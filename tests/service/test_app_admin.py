"""Hot reload, the admin token, metrics, the OpenAPI document checked on real responses, the section cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

import service.loading
from bandits.log import DecisionLog
from heuristics import SectionsConfig
from ranker.errors import PipelineConfigError
from service.app import create_app, get_state
from service.config import ServiceConfig


@pytest.fixture(scope="module")
def bad_artifact(saved, tmp_path_factory):
    """The base model with one byte of its booster changed: its manifest hash no longer matches."""
    bad = tmp_path_factory.mktemp("bad") / "base"
    shutil.copytree(saved["base"], bad)
    text = (bad / "model.txt").read_text()
    (bad / "model.txt").write_text(text.replace("tree", "Tree", 1))
    return bad


# -- reload -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "expected an 'Authorization: Bearer <token>' header"),
        ({"Authorization": "Bearer wrong"}, "wrong admin token"),
        ({"Authorization": "Basic {token}"}, "expected an 'Authorization: Bearer <token>' header"),
        ({"Authorization": "Bearer"}, "expected an 'Authorization: Bearer <token>' header"),
    ],
)
def test_reload_without_the_token_is_401(client, admin_auth, headers, message):
    token = admin_auth["Authorization"].removeprefix("Bearer ")
    response = client.post(
        "/v1/models/reload", headers={k: v.format(token=token) for k, v in headers.items()}
    )
    assert response.status_code == 401
    assert response.get_json()["error"]["message"] == message
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_reload_is_disabled_without_a_configured_token(tmp_path, monkeypatch, config_dict):
    monkeypatch.delenv("SECTIONRANK_ADMIN_TOKEN", raising=False)
    app = create_app(config_dict(tmp_path / "log.db", admin_token=""))
    try:
        response = app.test_client().post("/v1/models/reload", headers={"Authorization": "Bearer "})
        assert response.status_code == 401
        assert "no admin token" in response.get_json()["error"]["message"]
    finally:
        get_state(app).close()


def test_reload_token_from_the_environment(tmp_path, monkeypatch, config_dict, admin_auth):
    monkeypatch.setenv("SECTIONRANK_ADMIN_TOKEN", "from-env")
    app = create_app(config_dict(tmp_path / "log.db", admin_token=""))
    try:
        client = app.test_client()
        ok = client.post("/v1/models/reload", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200, ok.get_json()
        assert client.post("/v1/models/reload", headers=admin_auth).status_code == 401
    finally:
        get_state(app).close()


def test_reload_switches_a_section_to_the_consolidated_model(client, rerank_body, admin_auth):
    body = {"section_models": {"discover": "consolidated"}}
    response = client.post("/v1/models/reload", json=body, headers=admin_auth)
    assert response.status_code == 200, response.get_json()
    out = response.get_json()
    assert out["reloaded"] is True
    assert out["section_models"]["discover"] == "consolidated"
    served = client.post("/v1/rerank", json=rerank_body()).get_json()
    assert served["model_versions"]["ranker"] == out["models"]["consolidated"]["version"]
    back = client.post("/v1/models/reload", json={"section_models": {"discover": "base"}}, headers=admin_auth)
    assert back.status_code == 200


def test_reload_of_a_bad_artifact_is_refused_and_the_old_keeps_serving(
    client, app, bad_artifact, rerank_body, admin_auth
):
    before = client.get("/v1/models").get_json()
    response = client.post(
        "/v1/models/reload", json={"models": {"base": str(bad_artifact)}}, headers=admin_auth
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["field"] == "models.base"
    assert "model.txt" in error["message"]
    assert client.get("/v1/models").get_json()["models"] == before["models"]
    assert get_state(app).config.models["base"] != bad_artifact
    served = client.post("/v1/rerank", json=rerank_body())
    assert served.status_code == 200
    assert served.get_json()["model_versions"]["ranker"] == before["models"]["base"]["version"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"policy": "epsilon:7"}, 422, "policy"),
        ({"policy": ""}, 422, "policy"),
        ({"policy": "   "}, 422, "policy"),
        ({"policy": None}, 422, "policy"),
        ({"policy": "/no/such/policy/dir"}, 422, "policy"),
        ({"models": {"base": "/no/such/model"}}, 422, "models.base"),
        ({"models": {"fancy": "/x"}}, 422, "models.fancy"),
        ({"section_models": {"search": "base"}}, 422, "section_models"),
        ({"section_models": {"discover": "other"}}, 422, "section_models.discover"),
        ({"models": "x"}, 422, "models"),
        ({"restart": True}, 422, "restart"),
        ([1], 422, "body"),
    ],
)
def test_reload_refusals_name_the_key(client, body, status, field, admin_auth):
    before = client.get("/v1/models").get_json()["models"]
    response = client.post("/v1/models/reload", json=body, headers=admin_auth)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["field"] == field
    assert client.get("/v1/models").get_json()["models"] == before


def test_reload_refuses_a_pipeline_config_error_as_the_configs_not_the_requests(
    client, rerank_body, admin_auth, monkeypatch
):
    def misassembled(*args, **kwargs):
        raise PipelineConfigError("rankers", "no ranker configured for sections ['discover']")

    monkeypatch.setattr(service.loading, "RerankPipeline", misassembled)
    response = client.post("/v1/models/reload", headers=admin_auth)
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "status": 422,
        "field": "section_models",
        "message": "no ranker configured for sections ['discover']",
    }
    assert client.post("/v1/rerank", json=rerank_body()).status_code == 200


def test_reload_with_the_same_config_starts_a_new_pipeline(client, app, admin_auth):
    old = get_state(app).loaded
    response = client.post("/v1/models/reload", headers=admin_auth)
    assert response.status_code == 200
    assert get_state(app).loaded is not old


# -- metrics ----------------------------------------------------------------------------------------------


def test_metrics_parse_and_count_requests(client, rerank_body):
    def families():
        text = client.get("/metrics").get_data(as_text=True)
        return {f.name: f for f in text_string_to_metric_families(text)}

    def value(fams, name, sample_name, **labels):
        return sum(
            s.value
            for s in fams[name].samples
            if s.name == sample_name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    before = families()
    for _ in range(3):
        client.post("/v1/rerank", json=rerank_body("search"))
    client.post("/v1/rerank", json={"section": "search"})
    after = families()
    assert client.get("/metrics").mimetype == "text/plain"

    def delta(name, sample, **labels):
        old = value(before, name, sample, **labels) if name in before else 0
        return value(after, name, sample, **labels) - old

    latency = "sectionrank_rerank_latency_seconds"
    assert delta("sectionrank_rerank_requests", "sectionrank_rerank_requests_total", section="search") == 3
    assert delta(latency, f"{latency}_count", section="search") == 3
    assert delta(latency, f"{latency}_bucket", section="search", le="+Inf") == 3
    assert delta("sectionrank_arm", "sectionrank_arm_total", section="search") == 3
    assert delta("sectionrank_http_errors", "sectionrank_http_errors_total", status="422") == 1
    assert value(after, "sectionrank_models_loaded", "sectionrank_models_loaded") == 1


# -- OpenAPI ----------------------------------------------------------------------------------------------


def schema_of(document, path, method, status):
    content = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
    return {**content["schema"], "components": document["components"]}


def test_openapi_document_is_valid_and_lists_every_route(client, app):
    document = client.get("/openapi.json").get_json()
    assert document["openapi"].startswith("3.")
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert routes == set(document["paths"])
    for name, schema in document["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(schema), name


def test_openapi_schemas_match_real_responses(client, rerank_body, admin_auth):
    document = client.get("/openapi.json").get_json()

    def check(response, path, method):
        schema = schema_of(document, path, method, response.status_code)
        jsonschema.validate(response.get_json(), schema, cls=jsonschema.Draft202012Validator)

    body = rerank_body(request_id="r1")
    check(
        client.post("/v1/rerank", json={**body, "candidates": [{"id": i} for i in body["candidates"]]}),
        "/v1/rerank",
        "post",
    )
    jsonschema.validate(body, {**document["components"]["schemas"]["RerankRequest"], **document})
    served = client.post("/v1/rerank", json=body)
    check(served, "/v1/rerank", "post")
    check(client.post("/v1/rerank", json={"section": 1}), "/v1/rerank", "post")
    check(client.post("/v1/rerank", data=b"{", content_type="application/json"), "/v1/rerank", "post")
    event = served.get_json()["event_id"]
    check(
        client.post("/v1/feedback", json={"event_id": event, "clicks": [{"position": 0}]}),
        "/v1/feedback",
        "post",
    )
    check(client.post("/v1/feedback", json={"event_id": "missing", "clicks": []}), "/v1/feedback", "post")
    check(client.get("/v1/sections"), "/v1/sections", "get")
    check(client.get("/v1/models"), "/v1/models", "get")
    check(client.post("/v1/models/reload", headers=admin_auth), "/v1/models/reload", "post")
    check(client.post("/v1/models/reload"), "/v1/models/reload", "post")
    check(client.get("/healthz"), "/healthz", "get")
    check(client.get("/readyz"), "/readyz", "get")


# -- the section cache ------------------------------------------------------------------------------------


@pytest.fixture
def cached_app(config_dict, tmp_path):
    shipped = SectionsConfig.load().source
    text = Path(shipped).read_text()
    first = "serving = { default_k = 20, max_candidates = 1000, latency_budget_ms = 30.0 }"
    assert first in text
    text = text.replace(first, first.replace(" }", ", cache_size = 2 }"), 1)
    sections = tmp_path / "sections.toml"
    sections.write_text(text)
    config = config_dict(tmp_path / "log.db", sections_config=str(sections))
    app = create_app(ServiceConfig.from_dict(config, environ={}))
    yield app
    get_state(app).close()


def test_cache_reuses_the_first_arm_and_logs_cached(cached_app, rerank_body):
    client = cached_app.test_client()
    body = rerank_body()
    first = client.post("/v1/rerank", json={**body, "request_id": "a"}).get_json()
    again = client.post("/v1/rerank", json={**body, "request_id": "b"}).get_json()
    assert first["cached"] is False
    assert again["cached"] is True
    assert again["event_id"] != first["event_id"]
    assert again["arm"] == first["arm"]
    assert again["items"] == first["items"]
    assert again["request_id"] == "b"
    other = client.post("/v1/rerank", json={**body, "k": 5}).get_json()
    assert other["cached"] is False
    state = get_state(cached_app)
    state.writer.flush()
    with DecisionLog.open(state.config.log) as log:
        rows = log.decisions().set_index("event_id")
    assert rows.loc[again["event_id"], "context"]["cached"] is True
    assert rows.loc[again["event_id"], "context"]["cached_from"] == first["event_id"]
    assert rows.loc[again["event_id"], "context"]["request_id"] == "b"
    assert "cached" not in rows.loc[first["event_id"], "context"]


def test_cache_evicts_the_least_recently_used(cached_app, rerank_body):
    client = cached_app.test_client()
    bodies = [rerank_body(k=k) for k in (3, 4, 5)]
    for body in bodies:
        assert client.post("/v1/rerank", json=body).get_json()["cached"] is False
    assert client.post("/v1/rerank", json=bodies[2]).get_json()["cached"] is True
    assert client.post("/v1/rerank", json=bodies[0]).get_json()["cached"] is False


def test_cache_is_off_for_sections_without_cache_size(cached_app, rerank_body):
    client = cached_app.test_client()
    body = rerank_body("search")
    client.post("/v1/rerank", json=body)
    assert client.post("/v1/rerank", json=body).get_json()["cached"] is False
