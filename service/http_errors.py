"""JSON errors: every 4xx/5xx body is ``{"error": {"status", "field", "message"}}``.

The handlers answer the service's own errors (`service.errors`: an `ApiError` a view raises, a `LoadError` or
`ServiceConfigError` of a refused reload) with their status and field, the pipeline's
`ranker.errors.RequestValidationError` with its status and field, and werkzeug's HTTP errors (404 unknown
route, 405 wrong method, 413 body too large, 400 malformed JSON) alike. A configuration error of the pipeline
(`ranker.errors.PipelineConfigError`) is no request's fault: it is turned into a `LoadError` while the
pipeline is built (`service.state.build_pipeline`) and never answered as a request error.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ranker.errors import RequestValidationError
from service.errors import ApiError, ServiceError

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_response(payload: Any, status: int = 200) -> Response:
    """`payload` serialised with orjson (numpy scalars and arrays included)."""
    return Response(orjson.dumps(payload, option=JSON_OPTIONS), status=status, mimetype="application/json")


def error_payload(status: int, field: str | None, message: str) -> dict[str, dict[str, object]]:
    return {"error": {"status": status, "field": field, "message": message}}


def error_response(error: ServiceError) -> Response:
    """A service error's JSON body, with its status (and the extra headers of an `ApiError`)."""
    response = json_response(error_payload(error.status, error.field, error.message), error.status)
    for name, value in getattr(error, "headers", {}).items():
        response.headers[name] = value
    return response


def http_error_response(exc: HTTPException) -> Response:
    status = exc.code or 500
    field = "body" if isinstance(exc, RequestEntityTooLarge) else None
    message = exc.description or exc.name
    if isinstance(exc, RequestEntityTooLarge):
        message = "the request body is larger than the configured max_body_bytes"
    response = error_response(ApiError(status, message, field))
    if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
        response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
    return response


def validation_error_response(exc: RequestValidationError) -> Response:
    """The pipeline's refusal of a request: its status, naming its field."""
    message = str(exc).removeprefix(f"{exc.field}: ")
    return json_response(error_payload(exc.status, exc.field, message), exc.status)


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""
    app.register_error_handler(ServiceError, error_response)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(RequestValidationError, validation_error_response)
