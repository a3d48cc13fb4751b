"""The HTTP API against its own OpenAPI document: schemathesis generates requests from /openapi.json (valid
and invalid ones, every operation) and sends them to the in-process WSGI app on the tiny world's models
(fixtures: tests/service/conftest.py). No answer may be a server error, and every answer must be one the
document lists, with its content type and schema. The run is bounded and deterministic (derandomized)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.openapi import PATHS

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

RELOAD = "/v1/models/reload"

#: Most generated requests per operation (the GET operations without parameters run out after a few); a
#: reload that validation accepts is a real one, built and smoke-tested in a separate process.
MAX_EXAMPLES = {"/v1/rerank": 1_200, "/v1/feedback": 900, RELOAD: 40}
DEFAULT_MAX_EXAMPLES = 50

#: Least requests of the whole run, over every operation.
MIN_REQUESTS = 2_000

OPERATIONS = [(path, method.upper()) for path, methods in PATHS.items() for method in methods]


class CountingApp:
    """A WSGI app that counts the requests it passes on, by method and path."""

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.requests: Counter[tuple[str, str]] = Counter()

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        self.requests[environ["REQUEST_METHOD"], environ["PATH_INFO"]] += 1
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def counting_app(app) -> CountingApp:
    return CountingApp(app)


@pytest.fixture(scope="module")
def api_schema(counting_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", counting_app)


@pytest.mark.slow
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_api_answers_generated_requests_as_its_schema_says(api_schema, path, method, admin_auth):
    operation = api_schema[path][method]
    cases = operation.as_strategy(GenerationMode.POSITIVE)
    if method == "POST":
        cases = st.one_of(cases, operation.as_strategy(GenerationMode.NEGATIVE))
    # The admin token on every request, so that reload bodies reach validation.
    headers = admin_auth if path == RELOAD else None
    statuses: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES.get(path, DEFAULT_MAX_EXAMPLES),
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def run(case) -> None:
        response = case.call(headers=headers)
        case.validate_response(response, checks=CHECKS, headers=headers)
        statuses.append(response.status_code)

    run()
    # Every generated request was answered, and none with a server error (validate_response raises on any
    # check that fails, the schema's included).
    assert statuses
    assert max(statuses) < 500, sorted(set(statuses))


@pytest.mark.slow
def test_api_schema_run_sends_at_least_the_minimum_requests(counting_app):
    requests = dict(counting_app.requests)
    assert sum(requests.values()) >= MIN_REQUESTS, requests
    assert {path for _, path in requests} >= set(PATHS), requests
