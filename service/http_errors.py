"""JSON errors: every 4xx/5xx body is ``{"error": {"status", "field", "message"}}``.

`ApiError` is what views raise; the handlers turn it, werkzeug's HTTP errors (404 unknown route, 405 wrong
method, 413 body too large, 400 malformed JSON) and the pipeline's `RequestValidationError` into that body.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Response
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ranker.errors import RequestValidationError

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_response(payload: Any, status: int = 200) -> Response:
    """`payload` serialised with orjson (numpy scalars and arrays included)."""
    return Response(orjson.dumps(payload, option=JSON_OPTIONS), status=status, mimetype="application/json")


class ApiError(Exception):
    """An error answered as JSON.

    Parameters
    ----------
    status : int
    message : str
    field : str or None
        The offending field as a JSON path (``candidates[3]``, ``context.query``), when one is at fault.
    headers : dict, optional
        Extra response headers (``WWW-Authenticate`` of a 401).
    """

    def __init__(
        self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = headers or {}

    def payload(self) -> dict[str, dict[str, object]]:
        return {"error": {"status": self.status, "field": self.field, "message": self.message}}


def error_response(error: ApiError) -> Response:
    response = json_response(error.payload(), error.status)
    for name, value in error.headers.items():
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
    message = str(exc)
    prefix = f"{exc.field}: "
    return error_response(ApiError(exc.status, message.removeprefix(prefix), exc.field))


def init_app(app: Flask) -> None:
    """Register the JSON error handlers."""
    app.register_error_handler(ApiError, error_response)
    app.register_error_handler(HTTPException, http_error_response)
    app.register_error_handler(RequestValidationError, validation_error_response)
