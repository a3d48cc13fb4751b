"""Fixtures shared by the whole test suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bandits.log import DecisionLog
from heuristics import SectionsConfig
from ranker.config import RankerConfig
from ranker.dataset import prepare_log
from ranker.features import read_tables
from simulator import World, WorldConfig, simulate


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded generator: every test that draws gets the same numbers on every run."""
    return np.random.default_rng(20240611)


@pytest.fixture(scope="session")
def default_config() -> SectionsConfig:
    """The sections config shipped with the package."""
    return SectionsConfig.load()


# A tiny simulated world, its decision log and the three ranker designs trained on it, built once a session
# and shared by the ranker, service and simulator tests.
WORLD_FILE = Path(__file__).parent / "ranker" / "world_small.toml"
REQUESTS = 4000
SEED = 3


def write_simulation(out: Path, requests: int = REQUESTS, seed: int = SEED) -> Path:
    """catalog.parquet, users.parquet and log.db of the tiny world in `out`."""
    world = World.build(WorldConfig.load(WORLD_FILE), seed)
    world.catalog().to_parquet(out / "catalog.parquet", index=False)
    world.users().to_parquet(out / "users.parquet", index=False)
    with DecisionLog.open(out / "log.db", create=True) as log:
        simulate(world, requests, seed=seed, sink=log.append)
    return out


@pytest.fixture(scope="session")
def sim_dir(tmp_path_factory) -> Path:
    return write_simulation(tmp_path_factory.mktemp("ranker-sim"))


@pytest.fixture(scope="session")
def ranker_config() -> RankerConfig:
    return RankerConfig.load()


@pytest.fixture(scope="session")
def tables(sim_dir):
    """(catalog, users) DataFrames of the tiny world."""
    return read_tables(str(sim_dir / "catalog.parquet"), str(sim_dir / "users.parquet"))


@pytest.fixture(scope="session")
def prepared(sim_dir, ranker_config):
    return prepare_log(sim_dir / "log.db", ranker_config)


@pytest.fixture(scope="session")
def trained(prepared, tables, ranker_config):
    """Each design trained on the tiny log: design -> TrainResult."""
    from ranker.train import train_design

    catalog, users = tables
    return {
        d: train_design(d, prepared, catalog, users, ranker_config)
        for d in ("base", "consolidated", "independent")
    }


@pytest.fixture(scope="session")
def saved(trained, tmp_path_factory):
    """Each trained design saved: design -> model directory."""
    root = tmp_path_factory.mktemp("ranker-models")
    return {design: result.save(root / design) for design, result in trained.items()}
