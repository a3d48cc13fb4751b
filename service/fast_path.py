"""POST /v1/rerank served in front of Flask's per-request machinery.

Flask's request context, routing, response object and after-request hooks cost about 0.19 ms per request on
this machine, a seventh of a whole 100-candidate rerank (`make bench`, bench_service, measures both paths).

`RerankFastPath` wraps the app's WSGI callable: a POST to /v1/rerank with a Content-Length within the body
limit is read, parsed and served here through the same `ServiceState.rerank` and the same JSON error bodies as
the Flask view; anything else (other routes and methods, a missing or oversized Content-Length) goes to Flask
unchanged, which answers it as before (413, 405, 404, ...). The request counters of GET /metrics are kept for
both paths alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from flask import Flask, Response
from werkzeug.exceptions import InternalServerError

from ranker.errors import RequestValidationError
from service.errors import ServiceError
from service.http_errors import JSON_OPTIONS, error_response, http_error_response, validation_error_response
from service.state import ServiceState
from service.validation import parse_json

LOGGER = logging.getLogger(__name__)

ENDPOINT = "/v1/rerank"
_HEADERS = [("Content-Type", "application/json")]

StartResponse = Callable[..., Any]


class RerankFastPath:
    """WSGI middleware: ``app.wsgi_app = RerankFastPath(app)``."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.flask_wsgi = app.wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != ENDPOINT or environ.get("REQUEST_METHOD") != "POST":
            return self.flask_wsgi(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return self.flask_wsgi(environ, start_response)
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if length < 0 or (limit is not None and length > limit):
            return self.flask_wsgi(environ, start_response)
        state = self.app.extensions["sectionrank"]
        body = environ["wsgi.input"].read(length)
        try:
            out = orjson.dumps(state.rerank(parse_json(body)), option=JSON_OPTIONS)
        except ServiceError as exc:
            return self._respond(state, error_response(exc), environ, start_response)
        except RequestValidationError as exc:
            return self._respond(state, validation_error_response(exc), environ, start_response)
        except Exception:
            if self.app.config.get("PROPAGATE_EXCEPTIONS") or self.app.testing:
                raise
            LOGGER.exception("POST %s failed", ENDPOINT)
            return self._respond(state, http_error_response(InternalServerError()), environ, start_response)
        state.metrics.count_http(ENDPOINT, 200)
        start_response("200 OK", [*_HEADERS, ("Content-Length", str(len(out)))])
        return [out]

    @staticmethod
    def _respond(
        state: ServiceState, response: Response, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        state.metrics.count_http(ENDPOINT, response.status_code)
        return response(environ, start_response)
