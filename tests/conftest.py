"""Fixtures shared by the whole test suite."""

from __future__ import annotations

import numpy as np
import pytest

from heuristics import SectionsConfig


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: every test that draws gets the same numbers on every run."""
    return np.random.default_rng(20240611)


@pytest.fixture(scope="session")
def default_config() -> SectionsConfig:
    """The sections config shipped with the package."""
    return SectionsConfig.load()
