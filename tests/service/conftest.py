"""Fixtures of the service tests, on the tiny world and the models trained on it (tests/conftest.py).

- `store_db` (session): a service store filled with the tiny world's catalog and users;
- `config_dict` (session): a factory of config mappings over that store and the saved models;
- `app` (module): an app on that config with its own decision log; each test module gets its own, so what
  one module reloads or logs does not reach another; `client` is its test client;
- `catalog_ids`, `user_ids` (session) and `rerank_body` (session): a factory of valid rerank bodies;
- `admin_auth` (session): the ``Authorization`` header that `config_dict`'s admin token accepts;
- `server`: a real `sectionrank serve` with 2 workers (tests/service/gunicorn_server.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from service.app import create_app, get_state
from service.config import ServiceConfig
from service.store import ServiceStore
from tests.service.gunicorn_server import server  # noqa: F401 (a fixture of the real-server tests)

ADMIN_TOKEN = "s3cret-token"


@pytest.fixture(scope="session")
def store_db(sim_dir, tmp_path_factory) -> Path:
    """A service store filled with the tiny world's catalog and users."""
    path = tmp_path_factory.mktemp("store") / "store.db"
    store = ServiceStore(path)
    store.load("catalog", pd.read_parquet(sim_dir / "catalog.parquet"))
    store.load("users", pd.read_parquet(sim_dir / "users.parquet"))
    return path


@pytest.fixture(scope="session")
def config_dict(store_db, saved) -> Callable[..., dict[str, Any]]:
    """``config_dict(log_path, **overrides)``: a config mapping over `store_db` and every saved design, the
    uniform policy and the admin token `ADMIN_TOKEN`."""

    def make(log_path: str | Path, **overrides: Any) -> dict[str, Any]:
        return {
            "store": str(store_db),
            "log": str(log_path),
            "models": {design: str(path) for design, path in saved.items()},
            "policy": "uniform",
            "admin_token": ADMIN_TOKEN,
            "reward_wait_seconds": 60.0,
            **overrides,
        }

    return make


@pytest.fixture(scope="session")
def admin_auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(scope="module")
def app(config_dict, tmp_path_factory):
    """An app of this test module; the environment does not reach its config."""
    log_path = tmp_path_factory.mktemp("log") / "decisions.db"
    application = create_app(ServiceConfig.from_dict(config_dict(log_path), environ={}))
    yield application
    get_state(application).close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def catalog_ids(tables):
    return tables[0]["item_id"].to_numpy()


@pytest.fixture(scope="session")
def user_ids(tables):
    return tables[1]["user_id"].to_numpy()


@pytest.fixture(scope="session")
def rerank_body(catalog_ids, user_ids) -> Callable[..., dict[str, Any]]:
    """``rerank_body(section="discover", n=30, **extra)``: a valid body with the section's context, the
    first `n` catalog items as candidates and k = 10; `extra` adds or replaces keys."""

    def make(section: str = "discover", n: int = 30, **extra: Any) -> dict[str, Any]:
        context = {
            "discover": {},
            "similar_items": {"source_item": int(catalog_ids[0])},
            "category_explore": {"category": 1},
            "search": {"query": "rere"},
        }[section]
        return {
            "section": section,
            "user": {"id": int(user_ids[0])},
            "context": {**context, "device": "mobile", "time": 1_710_000_000.0},
            "candidates": [int(i) for i in catalog_ids[:n]],
            "k": 10,
            **extra,
        }

    return make
