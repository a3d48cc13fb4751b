"""Errors raised by the service package: one family under `ServiceError`.

Every error names what is at fault in `field` (a config key, a body field as a JSON path, the store) and
carries the HTTP `status` it is answered with when it reaches the API, as
``{"error": {"status": status, "field": field, "message": message}}`` (`service.http_errors`). The command
line reports any of them as one line (`sectionrank.errors.USER_ERRORS` holds `ServiceError`).

This module needs nothing but the standard library, so the CLI can name these classes without loading Flask
or the models.

- `ServiceConfigError`, 422, ``"service config: {key}: {problem}"``: an invalid config file, dict,
  environment variable or reload override;
- `StoreError`, 422, ``"{where}: {problem}"``: a store file or an input table that cannot be used;
- `LoadError`, 422 on reload (503 on the routes that need a pipeline before one has loaded),
  ``"{key}: {problem}"``: the pipeline cannot be built from the config;
- `ApiError`, any status, ``"{message}"``: a request the API refuses.
"""

from __future__ import annotations

import os


class ServiceError(Exception):
    """Base class of every error a caller or operator of `service` can cause.

    Attributes
    ----------
    status : int
        The HTTP status of the JSON error body.
    field : str or None
        What is at fault: a config key, a body field (JSON path), or None.
    message : str
        The message without the field it names (the JSON body's ``message``).
    """

    status: int = 422
    field: str | None = None
    message: str = ""


class ServiceConfigError(ServiceError, ValueError):
    """An invalid service config (file, dict, environment variable or reload override).

    Message: ``"service config: {key}: {problem}"``, e.g.
    ``"service config: reward_wait_seconds: expected a number >= 0, found -1"``.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = self.field = key
        self.problem = self.message = problem
        super().__init__(f"service config: {key}: {problem}")


class StoreError(ServiceError, ValueError):
    """A store or an input table that cannot be used.

    Message: ``"{where}: {problem}"``, `where` being the file or the table at fault, e.g.
    ``"catalog: missing columns ['price']; found [...]"`` or ``"store.db: no such store (...)"``.
    """

    field = "store"

    def __init__(self, where: str | os.PathLike[str], problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        self.message = f"{self.where}: {problem}"
        super().__init__(self.message)


class LoadError(ServiceError):
    """A pipeline that could not be built from the config, at start or on reload: an operator's problem,
    never a request's. The serving pipeline, if any, stays.

    Message: ``"{key}: {problem}"``, `key` being the config key at fault (``models.base``, ``policy``,
    ``section_models.search``, ``store``). POST /v1/models/reload answers it with 422 naming the key; before
    any pipeline has loaded, the routes that need one answer 503 with it.
    """

    def __init__(self, key: str, problem: str) -> None:
        self.key = self.field = key
        self.problem = self.message = problem
        super().__init__(f"{key}: {problem}")


class ApiError(ServiceError):
    """A request the API refuses, answered with `status` and a JSON body naming `field`.

    Message: ``"{message}"`` as given, e.g. ``ApiError(422, "expected a non-empty string", "section")``.

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
