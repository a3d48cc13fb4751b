"""The service's one error family: each error's message template, the status and field it reaches the API
with, and that the command line counts every one of them as a user error."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from sectionrank.errors import USER_ERRORS
from service import errors
from service.errors import ApiError, LoadError, ServiceConfigError, ServiceError, StoreError
from service.http_errors import error_response

SERVICE_DIR = Path(errors.__file__).parent

# Each row: an error, its message, and the (status, field, message) of its JSON error body.
FAMILY = [
    (
        ServiceConfigError("seed", "expected an integer >= 0, found -1"),
        "service config: seed: expected an integer >= 0, found -1",
        (422, "seed", "expected an integer >= 0, found -1"),
    ),
    (
        StoreError(Path("/s/store.db"), "no such store"),
        "/s/store.db: no such store",
        (422, "store", "/s/store.db: no such store"),
    ),
    (
        LoadError("models.base", "model.txt does not match its hash"),
        "models.base: model.txt does not match its hash",
        (422, "models.base", "model.txt does not match its hash"),
    ),
    (
        ApiError(404, "no decision with event_id 'e'", "event_id"),
        "no decision with event_id 'e'",
        (404, "event_id", "no decision with event_id 'e'"),
    ),
]


@pytest.mark.parametrize(("error", "message", "body"), FAMILY, ids=lambda v: type(v).__name__)
def test_errors_message_template_and_json_body(error, message, body):
    assert isinstance(error, ServiceError)
    assert str(error) == message
    response = error_response(error)
    status, field, text = body
    assert response.status_code == status
    assert json.loads(response.get_data()) == {"error": {"status": status, "field": field, "message": text}}


def test_errors_api_error_headers_reach_the_response():
    response = error_response(
        ApiError(401, "wrong admin token", "Authorization", {"WWW-Authenticate": "Bearer"})
    )
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_errors_every_service_error_class_is_in_the_one_family():
    defined = {}
    for path in sorted(SERVICE_DIR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                defined[node.name] = path.name
    assert set(defined.values()) == {"errors.py"}, defined
    for name in defined:
        assert issubclass(getattr(errors, name), ServiceError), name


def test_errors_service_family_is_a_cli_user_error():
    assert ServiceError in USER_ERRORS
    assert all(issubclass(cls, USER_ERRORS) for cls in (ServiceConfigError, StoreError, LoadError, ApiError))
