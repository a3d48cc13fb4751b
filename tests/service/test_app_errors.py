"""Malformed input never produces a 500: every refusal is a JSON error naming the field."""

from __future__ import annotations

import json

import pytest

from tests.service.cases import RERANK_CASES


@pytest.mark.parametrize(("body", "status", "field"), RERANK_CASES)
def test_rerank_malformed_body_is_a_json_error_naming_the_field(client, body, status, field):
    response = client.post("/v1/rerank", data=json.dumps(body), content_type="application/json")
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["status"] == status
    assert error["field"] == field
    assert error["message"]


# Raw bodies that are not JSON at all, or JSON that orjson refuses (NaN, Infinity, bare big numbers).
RAW_CASES = [
    (b"", 400),
    (b"{", 400),
    (b"{'section': 'discover'}", 400),
    (b'{"section": "discover", "k": NaN}', 400),
    (b'{"section": "discover", "k": Infinity}', 400),
    (b'{"k": -Infinity}', 400),
    (b"\xff\xfe\x00", 400),
    (b'{"a": 1} trailing', 400),
    (b"[" * 5000 + b"]" * 5000, 400),
]


@pytest.mark.parametrize(("raw", "status"), RAW_CASES)
@pytest.mark.parametrize("path", ["/v1/rerank", "/v1/feedback"])
def test_malformed_json_is_400(client, path, raw, status):
    response = client.post(path, data=raw, content_type="application/json")
    assert response.status_code == status
    assert response.get_json()["error"]["field"] == "body"


# Each row: a feedback body, the status and the field the error must name.
FEEDBACK_CASES = [
    ({"clicks": []}, 422, "event_id"),
    ({"event_id": 5, "clicks": []}, 422, "event_id"),
    ({"event_id": "", "clicks": []}, 422, "event_id"),
    ({"event_id": "e" * 300, "clicks": []}, 422, "event_id"),
    ({"event_id": "e"}, 422, "clicks"),
    ({"event_id": "e", "clicks": 3}, 422, "clicks"),
    ({"event_id": "e", "clicks": [1.5]}, 422, "clicks[0]"),
    ({"event_id": "e", "clicks": [True]}, 422, "clicks[0]"),
    ({"event_id": "e", "clicks": [{"position": -1}]}, 422, "clicks[0].position"),
    ({"event_id": "e", "clicks": [{"position": "1"}]}, 422, "clicks[0].position"),
    ({"event_id": "e", "clicks": [{"pos": 1}]}, 422, "clicks[0].pos"),
    ({"event_id": "e", "clicks": [{}]}, 422, "clicks[0].position"),
    ({"event_id": "e", "clicks": list(range(10_001))}, 422, "clicks"),
    ({"event_id": "e", "clicks": [], "conversions": "all"}, 422, "conversions"),
    ({"event_id": "e", "clicks": [], "revenue": -1}, 422, "revenue"),
    ({"event_id": "e", "clicks": [], "reward": "high"}, 422, "reward"),
    ({"event_id": "e", "clicks": [], "time": -5}, 422, "time"),
    ({"event_id": "e", "clicks": [], "extra": 1}, 422, "extra"),
    ([], 422, "body"),
]


@pytest.mark.parametrize(("body", "status", "field"), FEEDBACK_CASES)
def test_feedback_malformed_body_is_a_json_error_naming_the_field(client, body, status, field):
    response = client.post("/v1/feedback", json=body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["field"] == field


def test_unknown_route_is_json_404(client):
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["error"]["status"] == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/rerank"), ("put", "/v1/feedback"), ("post", "/healthz"), ("delete", "/v1/models")],
)
def test_wrong_method_is_json_405(client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.get_json()["error"]["status"] == 405
    assert response.headers["Allow"]


def test_body_over_the_limit_is_413(client, app):
    limit = app.config["MAX_CONTENT_LENGTH"]
    body = b'{"section": "discover", "candidates": [' + b"1," * (limit // 2) + b"1]}"
    response = client.post("/v1/rerank", data=body, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["field"] == "body"


def test_no_error_is_a_500(client, rerank_body):
    # Every case above, replayed: none of them may have reached an unhandled exception.
    for body, _, _ in RERANK_CASES:
        assert client.post("/v1/rerank", data=json.dumps(body)).status_code < 500
    for body, _, _ in FEEDBACK_CASES:
        assert client.post("/v1/feedback", json=body).status_code < 500
    assert client.post("/v1/rerank", json=rerank_body()).status_code == 200
