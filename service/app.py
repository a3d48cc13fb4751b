"""The Flask app factory of the sectionrank HTTP API (docs/serve.md, docs/http-api.md).

Example::

    from service.app import create_app
    app = create_app("service.toml")          # or a dict of config keys, or a ServiceConfig
    app.test_client().get("/readyz")

gunicorn builds the app in each worker, after the fork: ``gunicorn -c service/gunicorn_conf.py
'service.app:create_app()'`` with the config file named by ``SECTIONRANK_CONFIG``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from service import http_errors, views
from service.body import BufferedBody
from service.config import CONFIG_ENV, ServiceConfig
from service.fast_path import RerankFastPath
from service.state import ServiceState


def resolve_config(config: ServiceConfig | Mapping[str, Any] | str | os.PathLike | None) -> ServiceConfig:
    """A `ServiceConfig` from itself, a mapping of keys, a TOML path, or None (``$SECTIONRANK_CONFIG``, else
    the shipped service/service.toml)."""
    if isinstance(config, ServiceConfig):
        return config
    if isinstance(config, Mapping):
        return ServiceConfig.from_dict(config)
    if config is None:
        config = os.environ.get(CONFIG_ENV) or None
    return ServiceConfig.load(None if config is None else Path(config))


def create_app(config: ServiceConfig | Mapping[str, Any] | str | os.PathLike | None = None) -> Flask:
    """Build the app and this process's `ServiceState` (pipeline, decision writer, store tables).

    A pipeline that fails to load does not stop the app: GET /readyz answers 503 with the reason, and a
    successful POST /v1/models/reload makes it ready.
    """
    service_config = resolve_config(config)
    app = Flask("sectionrank")
    app.config["MAX_CONTENT_LENGTH"] = service_config.max_body_bytes
    app.extensions["sectionrank"] = ServiceState(service_config)
    http_errors.init_app(app)
    views.init_app(app)
    app.wsgi_app = RerankFastPath(app)  # type: ignore[method-assign]
    app.wsgi_app = BufferedBody(app.wsgi_app, service_config.max_body_bytes)  # type: ignore[method-assign]
    return app


def get_state(app: Flask) -> ServiceState:
    """The app's `ServiceState`."""
    return app.extensions["sectionrank"]
