"""Fixtures of the bandits tests: a fresh decision log in a temporary directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from bandits.log import DecisionLog


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
def log(log_path: Path):
    with DecisionLog.open(log_path, create=True) as opened:
        yield opened
