"""POST /v1/rerank answered in front of Flask (service.fast_path) and through the Flask view give the same
responses; what the fast path does not take goes to Flask."""

from __future__ import annotations

import json

import pytest
from werkzeug.test import EnvironBuilder

from service.app import get_state
from tests.service.cases import RERANK_CASES


def call(app, raw: bytes, *, chunked: bool = False):
    """(status, headers, body) of POST /v1/rerank; `chunked` leaves out Content-Length (the body is read to
    its end by service.body.BufferedBody, then served like any other)."""
    environ = EnvironBuilder(path="/v1/rerank", method="POST", data=raw, content_type="application/json")
    environ = environ.get_environ()
    if chunked:
        del environ["CONTENT_LENGTH"]
        environ["wsgi.input_terminated"] = True
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app.wsgi_app(environ, start_response))
    return int(seen["status"].split()[0]), seen["headers"], body


def requests_counted(app, status: int) -> float:
    labels = {"endpoint": "/v1/rerank", "status": str(status)}
    value = get_state(app).metrics.registry.get_sample_value("sectionrank_http_requests_total", labels)
    return value or 0.0


@pytest.mark.parametrize(("body", "status", "field"), RERANK_CASES[:12])
def test_fast_path_and_flask_give_the_same_error(app, body, status, field):
    raw = json.dumps(body).encode()
    fast = call(app, raw)
    flask = call(app, raw, chunked=True)
    assert fast[0] == flask[0] == status
    assert json.loads(fast[2]) == json.loads(flask[2])
    assert json.loads(fast[2])["error"]["field"] == field
    assert fast[1]["Content-Type"] == flask[1]["Content-Type"] == "application/json"


def test_fast_path_and_flask_answer_the_pipelines_request_error_alike(app, rerank_body):
    # The section's required context is checked by the pipeline (ranker.errors.RequestValidationError).
    body = rerank_body("similar_items")
    del body["context"]["source_item"]
    raw = json.dumps(body).encode()
    fast, flask = call(app, raw), call(app, raw, chunked=True)
    assert fast[0] == flask[0] == 422
    assert json.loads(fast[2]) == json.loads(flask[2])
    assert json.loads(fast[2])["error"]["field"] == "context.source_item"


def test_fast_path_and_flask_serve_the_same_response(app, catalog_ids, rerank_body):
    raw = json.dumps(rerank_body("search", request_id="same")).encode()
    fast, flask = call(app, raw), call(app, raw, chunked=True)
    assert fast[0] == flask[0] == 200
    a, b = json.loads(fast[2]), json.loads(flask[2])
    assert a.keys() == b.keys()
    assert a["request_id"] == b["request_id"] == "same"
    assert {item["id"] for item in a["items"]} <= {int(i) for i in catalog_ids}
    assert len(a["items"]) == len(b["items"]) == 10
    assert int(fast[1]["Content-Length"]) == len(fast[2])


def test_fast_path_counts_requests_and_errors_for_metrics(app, rerank_body):
    before_ok, before_bad = requests_counted(app, 200), requests_counted(app, 422)
    assert call(app, json.dumps(rerank_body()).encode())[0] == 200
    assert call(app, json.dumps({"section": "nope"}).encode())[0] == 422
    assert requests_counted(app, 200) == before_ok + 1
    assert requests_counted(app, 422) == before_bad + 1
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'sectionrank_http_errors_total{endpoint="/v1/rerank",status="422"}' in text


def test_an_unexpected_failure_is_a_json_500(app, monkeypatch, rerank_body):
    state = get_state(app)

    def broken(body):
        raise RuntimeError("boom")

    monkeypatch.setattr(state, "rerank", broken)
    monkeypatch.setattr(app, "testing", False)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    status, _, body = call(app, json.dumps(rerank_body()).encode())
    assert status == 500
    assert json.loads(body)["error"]["status"] == 500
    monkeypatch.setattr(app, "testing", True)
    with pytest.raises(RuntimeError, match="boom"):
        call(app, json.dumps(rerank_body()).encode())


def test_other_routes_and_methods_go_to_flask(app):
    assert app.test_client().get("/v1/rerank").status_code == 405
    assert app.test_client().post("/v1/rerank/").status_code == 404
    status, _, body = call(app, b"x" * (app.config["MAX_CONTENT_LENGTH"] + 1))
    assert status == 413
    assert json.loads(body)["error"]["field"] == "body"
