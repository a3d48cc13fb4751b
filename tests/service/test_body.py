"""Request bodies are read whole before a view sees them (service.body): oversized bodies are 413 however
they are sent, a non-JSON body is 415, a truncated or stalled one is answered without reaching a view."""

from __future__ import annotations

import io
import json
import re

import pytest
from werkzeug.test import EnvironBuilder


def call(
    app, raw: bytes, *, content_type: str = "application/json", length: str | None = None, chunked=False
):
    environ = EnvironBuilder(path="/v1/rerank", method="POST", data=raw, content_type=content_type)
    environ = environ.get_environ()
    if length is not None:
        environ["CONTENT_LENGTH"] = length
    if chunked:
        del environ["CONTENT_LENGTH"]
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input"] = io.BytesIO(raw)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    body = b"".join(app.wsgi_app(environ, start_response))
    return int(seen["status"].split()[0]), seen["headers"], json.loads(body)


def big_body(app) -> bytes:
    limit = app.config["MAX_CONTENT_LENGTH"]
    return json.dumps({"section": "discover", "pad": "x" * limit}).encode()


# Refused bodies: (how it is sent, status, field, message).
@pytest.mark.parametrize(
    ("case", "status", "field", "match"),
    [
        ("declared too large", 413, "body", "larger than the configured max_body_bytes"),
        ("chunked too large", 413, "body", "larger than the configured max_body_bytes"),
        ("text/plain", 415, "Content-Type", "expected Content-Type application/json, found text/plain"),
        ("form", 415, "Content-Type", "found application/x-www-form-urlencoded"),
        ("xml", 415, "Content-Type", "found application/xml"),
        ("truncated", 400, "body", r"the request body ended after \d+ of 100000 bytes"),
    ],
)
def test_body_refusals_are_json_errors(app, rerank_body, case, status, field, match):
    ok = json.dumps(rerank_body()).encode()
    sent = {
        "declared too large": lambda: call(app, ok, length=str(app.config["MAX_CONTENT_LENGTH"] + 1)),
        "chunked too large": lambda: call(app, big_body(app), chunked=True),
        "text/plain": lambda: call(app, ok, content_type="text/plain"),
        "form": lambda: call(app, ok, content_type="application/x-www-form-urlencoded"),
        "xml": lambda: call(app, b"<a/>", content_type="application/xml"),
        "truncated": lambda: call(app, ok, length="100000"),
    }[case]
    got_status, headers, body = sent()
    assert got_status == status
    assert headers["Content-Type"] == "application/json"
    assert body["error"]["field"] == field
    assert re.search(match, body["error"]["message"])


def test_body_chunked_within_the_limit_is_served(app, rerank_body):
    status, _, body = call(app, json.dumps(rerank_body()).encode(), chunked=True)
    assert status == 200
    assert body["logged"] is True


def test_body_json_with_charset_is_accepted(app, rerank_body):
    status, _, _ = call(
        app, json.dumps(rerank_body()).encode(), content_type="application/json; charset=utf-8"
    )
    assert status == 200
